#!/usr/bin/env -S node --import tsx
/**
 * cluster-dev: a local development cluster. Starts a private etcd and three Parley nodes on
 * loopback (sharing one SQLite file, the one-box cluster mode), prints their URLs, and stops
 * them all on Ctrl-C.
 *
 *   npm run cluster:dev              # nodes on 18081-18083, gRPC 19081-19083, etcd on 23790
 *   npm run cluster:dev -- --nodes 5 --base-port 28080
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { startEtcd } from '../services/index.ts';
import { PARLEYD_NODE_ARGS } from './parleyd-node-args.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const program = new Command('cluster-dev')
  .option('--nodes <n>', 'number of nodes', '3')
  .option('--base-port <port>', 'HTTP/WebSocket port of the first node (gRPC: +1000)', '18081')
  .option('--etcd-port <port>', 'etcd client port', '23790')
  .option('--dir <dir>', 'where data goes', join(ROOT, '.services', 'cluster-dev'))
  .parse(process.argv);
const o = program.opts<{ nodes: string; basePort: string; etcdPort: string; dir: string }>();
const count = Number(o.nodes);
const basePort = Number(o.basePort);
if (!Number.isInteger(count) || count < 1 || count > 32) throw new Error('--nodes must be 1..32');

mkdirSync(o.dir, { recursive: true });
const etcd = await startEtcd({ dataDir: join(o.dir, 'etcd'), port: Number(o.etcdPort), peerPort: Number(o.etcdPort) + 10 });
const etcdUrl = `http://127.0.0.1:${o.etcdPort}`;
process.stdout.write(`etcd    ${etcdUrl}\n`);

const children: ChildProcess[] = [];
for (let i = 1; i <= count; i++) {
  const port = basePort + i - 1;
  const args = [...PARLEYD_NODE_ARGS, '--import', 'tsx', join(ROOT, 'bin/parleyd.ts'),
    '--node-id', `n${i}`, '--node-number', String(i), '--host', '127.0.0.1', '--port', String(port),
    '--grpc-port', String(port + 1000), '--data-dir', join(o.dir, `n${i}`), '--etcd', etcdUrl,
    '--store', `sqlite:${join(o.dir, 'shared', 'parley.db')}`, '--log-level', 'warn'];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  children.push(child);
  process.stdout.write(`node n${i} http://127.0.0.1:${port}  ws://127.0.0.1:${port}/v1/ws  grpc 127.0.0.1:${port + 1000}\n`);
}
process.stdout.write('Ctrl-C stops them all.\n');

let stopping = false;
async function stopAll(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
          setTimeout(() => c.kill('SIGKILL'), 15_000).unref();
        }),
    ),
  );
  await etcd.stop({ graceMs: 2_000 });
  process.exit(0);
}
process.on('SIGINT', () => void stopAll());
process.on('SIGTERM', () => void stopAll());
for (const c of children) c.on('exit', (code) => !stopping && process.stderr.write(`a node exited (${code}); Ctrl-C to stop the rest\n`));

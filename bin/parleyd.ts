#!/usr/bin/env -S node --import tsx
/**
 * parleyd: starts one Parley node.
 *
 *   npm start -- --host 127.0.0.1 --port 18080 --data-dir /tmp/x
 *
 * Settings come from flags, PARLEY_* variables or --config FILE (see config/REFERENCE.md).
 * SIGTERM/SIGINT: stop accepting, close sockets with 1001, persist actors, flush, exit 0.
 */
import { Command } from 'commander';
import { createLogger } from '../runtime/log.ts';
import { loadConfig, type Config } from '../config/config.ts';
import { assembleNode, grpcAdvertiseOf, pushProvidersOf } from './node-assembly.ts';
import { flagOf, SETTINGS, type Setting } from '../config/settings.ts';


function parseFlags(argv: string[]): Record<string, unknown> {
  const program = new Command('parleyd').description('Run a Parley chat node').option('--config <file>', 'JSON config file');
  // A yes/no setting may be given bare (`--push-include-text`, true) or with a value (`... false`).
  for (const s of SETTINGS as readonly Setting[]) program.option(`${flagOf(s.key)} ${s.type === 'bool' ? '[value]' : '<value>'}`, s.doc);
  program.parse(argv);
  const opts = program.opts<Record<string, unknown>>();
  const flags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts)) flags[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  return flags;
}

export async function main(argv: string[]): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(parseFlags(argv));
    // Settings that are only wrong together, or in their form, checked with the others:
    // nothing has started yet.
    pushProvidersOf(config);
    grpcAdvertiseOf(config);
  } catch (err) {
    process.stderr.write(`parleyd: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = createLogger({ level: config.log_level, nodeId: config.node_id });
  const running = await assembleNode(config, log);
  log.info({ node_id: config.node_id, port: running.port, ws_url: running.node.publicUrl, store: config.store, cluster: config.etcd ?? null }, 'parley node serving');

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const hard = setTimeout(() => {
      log.error('graceful stop took too long; exiting');
      process.exit(1);
    }, 20_000);
    hard.unref();
    void (async () => {
      await running.stop();
      log.info('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

try {
  await main(process.argv);
} catch (err) {
  let text = err instanceof Error ? err.message : String(err);
  for (let c = (err as { cause?: unknown }).cause; c; c = (c as { cause?: unknown }).cause) text += `: ${c instanceof Error ? c.message : String(c)}`;
  process.stderr.write(`parleyd: ${text}\n`);
  process.exit(1);
}

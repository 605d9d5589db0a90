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
import { openStore } from '../runtime/storage/index.ts';
import { loadSigningSecret } from '../actors/auth/signing-secret.ts';
import { TokenSigner } from '../actors/auth/tokens.ts';
import { ChatNode } from '../actors/chat-node.ts';
import { loadConfig, type Config } from '../config/config.ts';
import { flagOf, SETTINGS, type Setting } from '../config/settings.ts';


function parseFlags(argv: string[]): Record<string, unknown> {
  const program = new Command('parleyd').description('Run a Parley chat node').option('--config <file>', 'JSON config file');
  for (const s of SETTINGS as readonly Setting[]) program.option(`${flagOf(s.key)} <value>`, s.doc);
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
  } catch (err) {
    process.stderr.write(`parleyd: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const log = createLogger({ level: config.log_level });
  const store = await openStore(config.store, { log, dataDir: config.data_dir, durability: config.durability });
  const secret = loadSigningSecret({ dataDir: config.data_dir, ...(config.secret_file ? { secretFile: config.secret_file } : {}) });
  const node = new ChatNode({
    nodeId: config.node_id,
    nodeNumber: config.node_number,
    host: config.host,
    port: config.port,
    ...(config.public_url ? { publicUrl: config.public_url } : {}),
    store,
    signer: new TokenSigner(secret, config.token_ttl_s),
    passwordCost: { logN: config.scrypt_log_n, r: 8, p: 1 },
    log,
    actorIdleMs: config.actor_idle_ms,
    timings: {
      heartbeatIntervalMs: config.heartbeat_interval_ms,
      presenceTimeoutMs: config.presence_timeout_ms,
      touchIntervalMs: Math.max(50, Math.floor(config.presence_timeout_ms / 3)),
      fanoutTimeoutMs: config.fanout_timeout_ms,
    },
    limits: {
      sendRatePerSec: config.send_rate,
      sendBurst: config.send_burst,
      authPerMinute: config.auth_per_minute,
      maxFrameBytes: config.max_frame_bytes,
      maxHttpBodyBytes: config.max_http_body_bytes,
    },
  });
  const port = await node.start();
  log.info({ node_id: config.node_id, port, ws_url: node.publicUrl, store: store.describe }, 'parley node serving');

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
      await node.stop();
      await store.close();
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
  process.stderr.write(`parleyd: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

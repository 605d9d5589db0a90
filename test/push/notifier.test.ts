/**
 * Push for offline users with the push queue in the store (no --redis): the shared end-to-end
 * scenarios (push-scenarios.ts), plus the settings' checks and --push-include-text.
 */
import test from 'ava';
import { loadConfig } from '../../config/config.ts';
import { pushProvidersOf } from '../../bin/node-assembly.ts';
import { eventually, newUser, startServer } from '../support/server.ts';
import { Receiver, pushFlags, runPushScenarios } from './push-scenarios.ts';

runPushScenarios('store queue', { flags: async () => ({}), ownQueueFlags: async () => ({}), ctlArgs: async () => [] });

test('push config - webhook without secret, secret without webhook, non-http URL: CONFIG errors at start', async (t) => {
  const cfg = (flags: Record<string, string>) => loadConfig(flags, {});
  for (const flags of <Record<string, string>[]>[{ push_webhook: 'http://127.0.0.1:1/x' }, { push_webhook_secret: 's' }, { push_webhook: 'ftp://x/y', push_webhook_secret: 's' }, { push_webhook: 'not a url', push_webhook_secret: 's' }]) {
    const err = t.throws(() => pushProvidersOf(cfg(flags)));
    t.is((err as { code?: string }).code, 'CONFIG', JSON.stringify(flags));
  }
  t.is(pushProvidersOf(cfg({ push_webhook: 'https://ops.example/push', push_webhook_secret: 's' })).length, 1);
  t.is(pushProvidersOf(cfg({})).length, 0);
  // And a real start refuses it, naming the setting.
  const failed = await startServer({ flags: { 'push-webhook': 'http://127.0.0.1:9/x' } }).then(
    () => 'started',
    (err: unknown) => String(err),
  );
  t.regex(failed, /push-webhook-secret/);
});

test('push config - coalesce and attempts bounds, at and past; include-text as a bare flag, key and env', (t) => {
  t.is(loadConfig({}, {}).push_coalesce_ms, 10_000);
  t.is(loadConfig({}, {}).push_include_text, false);
  t.is(loadConfig({ push_coalesce_ms: '50' }, {}).push_coalesce_ms, 50);
  t.throws(() => loadConfig({ push_coalesce_ms: '49' }, {}), { message: /at least 50/ });
  t.is(loadConfig({ push_coalesce_ms: '3600000' }, {}).push_coalesce_ms, 3_600_000);
  t.throws(() => loadConfig({ push_coalesce_ms: '3600001' }, {}), { message: /at most 3600000/ });
  t.is(loadConfig({}, { PARLEY_PUSH_COALESCE_MS: '250' }).push_coalesce_ms, 250);
  t.throws(() => loadConfig({ push_max_attempts: '0' }, {}));
  t.is(loadConfig({ push_max_attempts: '1' }, {}).push_max_attempts, 1);
  t.is(loadConfig({ push_include_text: true }, {}).push_include_text, true);
  t.is(loadConfig({}, { PARLEY_PUSH_INCLUDE_TEXT: 'true' }).push_include_text, true);
});

test('push - --push-include-text adds the text', async (t) => {
  const own = new Receiver();
  await own.start();
  const node = await startServer({ flags: { ...pushFlags(own, 1_000), 'push-include-text': 'true' } });
  try {
    const a = await newUser(node, 'snd');
    const b = await newUser(node, 'rcp');
    const { channel_id } = await a.http.openDm(b.userId);
    await a.http.postMessage(channel_id, 'm1', 'first');
    await a.http.postMessage(channel_id, 'm2', 'the latest words');
    t.true(await eventually(() => own.pushes.length === 1, 15_000));
    t.is(own.pushes[0]!.text, 'the latest words');
  } finally {
    await node.stop();
    await own.close();
  }
});

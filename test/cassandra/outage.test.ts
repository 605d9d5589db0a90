import test from 'ava';
import { ParleyError } from '../../client/index.ts';
import { startTestCassandra, type TestCassandra } from '../support/cassandra.ts';
import { connect, newUser, startServer, type ServerHandle } from '../support/server.ts';

let cassandra: TestCassandra;
// Serial: twice, when the parleyctl test's schema change ran during this test's signups, the
// single node left a signup unanswered for over 30 s. Not yet explained; noted in the session note.
let server: ServerHandle;

test.before(async () => {
  cassandra = await startTestCassandra();
  server = await startServer({ flags: { store: cassandra.storeUrl(), 'fanout-timeout-ms': '3000' } });
});

test.after.always(async () => {
  await server?.stop();
  await cassandra?.stop();
});

test.serial('cassandra outage - sends during it get UNAVAILABLE and no ack; every acked message survives; sends work again after, without restarting Parley', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  // No automatic retries here: the test wants to see what the server answers.
  const ac = await connect(server, a, 'd1', { sendRetries: 0 });
  const acked: string[] = [];
  const refused: string[] = [];
  let i = 0;
  const sendOne = async (): Promise<void> => {
    const id = `m${i++}`;
    try {
      const ack = await ac.client.send(channel_id, `text ${id}`, id);
      acked.push(ack.message_id);
    } catch (err) {
      refused.push((err as ParleyError).code);
    }
  };
  for (let k = 0; k < 20; k++) await sendOne();
  t.is(acked.length, 20);

  // Stop Cassandra abruptly mid-traffic, keep sending while it is down.
  const outage = cassandra.restart(8_000);
  const duringEnd = Date.now() + 6_000;
  await new Promise((r) => setTimeout(r, 500));
  while (Date.now() < duringEnd) {
    await sendOne();
    await new Promise((r) => setTimeout(r, 50)); // stay under the per-user rate limit
  }
  await outage;
  t.true(refused.length > 0, 'some sends were refused during the outage');
  t.true(refused.every((c) => c === 'UNAVAILABLE' || c === 'TIMEOUT'), `refusals were retryable: ${[...new Set(refused)].join(',')}`);

  // Back: sends succeed again on the same Parley process (driver reconnects by itself).
  let recovered = false;
  for (const end = Date.now() + 60_000; !recovered && Date.now() < end; ) {
    const before = acked.length;
    await sendOne();
    recovered = acked.length > before;
    if (!recovered) await new Promise((r) => setTimeout(r, 500));
  }
  if (!recovered) t.log(refused.slice(-10), server.logs.filter((l) => !l.includes('"level":30')).slice(-15));
  t.true(recovered, 'sends succeed again after Cassandra is back');

  // Every acked message is in history.
  const stored = new Set<string>();
  let before: string | undefined;
  for (;;) {
    const page = await a.http.history(channel_id, { limit: 100, ...(before ? { before } : {}) });
    for (const m of page.messages) stored.add(m.message_id);
    if (!page.has_more) break;
    before = page.messages[page.messages.length - 1]!.message_id;
  }
  for (const id of acked) t.true(stored.has(id), `acked ${id} is in history`);
  ac.client.close();
});

test.serial('parleyctl schema apply - creates the keyspace and tables, and applying again changes nothing', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const url = cassandra.storeUrl(`schema_${process.pid}`);
  const run = () => spawnSync(process.execPath, ['--import', 'tsx', 'bin/parleyctl.ts', 'schema', 'apply', '--store', url], { encoding: 'utf8', timeout: 120_000 });
  const first = run();
  t.is(first.status, 0, first.stderr);
  t.regex(first.stdout, /"ok":true/);
  const second = run();
  t.is(second.status, 0, second.stderr);
  const { Client } = await import('cassandra-driver');
  const client = new Client({ contactPoints: [`127.0.0.1:${cassandra.port}`], localDataCenter: 'datacenter1' });
  try {
    const rs = await client.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [`schema_${process.pid}`]);
    t.true(rs.rows.length >= 4, `tables: ${rs.rows.map((r) => r.table_name as string).join(', ')}`);
  } finally {
    await client.shutdown();
  }
});

/**
 * Every /metrics figure moves under the bench smoke scenario against a real parleyd: the bench
 * scrapes the node before any load (first), every 250 ms during it, and after it (last), and
 * dumps them (bench/lib/metrics-scraper.ts). Counters and histograms must have grown from first
 * to last; gauges that fall back once the load stops (connections, actors, mailboxes) must have
 * risen above their first value during the run.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MetricsDump, Samples } from '../../bench/lib/metrics-scraper.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('metrics - every figure moves under the bench smoke scenario', async (t) => {
  t.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'parley-metrics-smoke-'));
  const dump = join(dir, 'dump');
  const args = ['--import', 'tsx', join(ROOT, 'bench/run.ts'), '--scenario', 'smoke', '--target', 'parley', '--scrape-metrics', '250', '--metrics-dump', dump, '--out', join(dir, 'smoke.json'), '--quiet'];
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8_000)));
  const killer = setTimeout(() => proc.kill('SIGINT'), 280_000);
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  clearTimeout(killer);
  try {
    t.is(code, 0, stderr);
    const files = readdirSync(dump);
    t.is(files.length, 1, 'one parleyd, one dump');
    const d = JSON.parse(readFileSync(join(dump, files[0]!), 'utf8')) as MetricsDump;
    t.true(d.scrapes >= 3, `scrapes ${d.scrapes}`);
    t.is(d.failures, 0);
    const v = (s: Samples, series: string): number => s[series] ?? 0;
    const grew = (series: string): void => {
      t.true(v(d.last, series) > v(d.first, series), `${series}: ${v(d.first, series)} -> ${v(d.last, series)}`);
    };
    const rose = (series: string): void => {
      t.true(v(d.max, series) > v(d.first, series), `${series}: first ${v(d.first, series)}, highest ${v(d.max, series)}`);
    };
    grew('parley_messages_in_total');
    grew('parley_messages_out_total');
    grew('parley_send_to_delivery_seconds_count');
    grew('parley_send_to_delivery_seconds_sum');
    grew('parley_store_op_seconds_count{op="journal_append"}');
    grew('parley_store_op_seconds_count{op="kv_list"}');
    rose('parley_connections');
    for (const kind of ['session', 'user', 'channel']) {
      rose(`parley_actors_active{kind="${kind}"}`);
      rose(`parley_mailbox_depth_peak{kind="${kind}"}`);
    }
    // Event-loop delay is sampled, not counted: it moved if it reads differently after the load.
    t.not(v(d.last, 'nodejs_eventloop_lag_p99_seconds'), v(d.first, 'nodejs_eventloop_lag_p99_seconds'));
    t.true(v(d.max, 'nodejs_eventloop_lag_max_seconds') > 0);
    // No user in the smoke is offline with a push subscription, so no push job is queued: the
    // gauge is there and reads 0 (test/push covers the queue itself).
    t.is(v(d.last, 'parley_push_queue_depth'), 0);
    t.true('parley_push_queue_depth' in d.last);
    // The instant mailbox depth is there per kind (at a smoke's rate it is usually 0 when read).
    t.true('parley_mailbox_depth{kind="channel"}' in d.last);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

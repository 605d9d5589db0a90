/**
 * `npm run bench -- --scenario smoke` end to end, into a temp dir: every target and scenario must
 * produce figures and the report. Asserts only that the figures exist, never how fast anything was.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Entry {
  scenario: string;
  target: string;
  sent: number;
  delivered: number;
  expected: number;
  errors: number;
  latency_ms: { p50: number; p90: number; p99: number; p999: number; max: number } | null;
  sessions: number | null;
  connected: number | null;
  rss_per_session_bytes: number | null;
  deliveries_per_s: number | null;
  server_rss_bytes: number;
  server_cpu_pct: number;
}

test('smoke: every target runs connections, one-to-one and group, and the report is written', async (t) => {
  t.timeout(300_000); // a loaded CI box may be slow; speed is the benchmark's business, not this test's
  const dir = mkdtempSync(join(tmpdir(), 'parley-bench-smoke-'));
  const out = join(dir, 'smoke.json');
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/run.ts'), '--scenario', 'smoke', '--out', out], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8_000)));
  const killer = setTimeout(() => proc.kill('SIGINT'), 280_000);
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  clearTimeout(killer);
  try {
    t.is(code, 0, stderr);
    const file = JSON.parse(readFileSync(out, 'utf8')) as { results: Entry[]; failures: unknown[]; machine: object; versions: object; parameters: object };
    t.deepEqual(file.failures, []);
    t.truthy(file.machine);
    t.truthy(file.versions);
    t.truthy(file.parameters);
    for (const target of ['parley', 'socketio', 'uws-raw']) {
      const of = (scenario: string): Entry | undefined => file.results.find((r) => r.scenario === scenario && r.target === target);
      const conn = of('connections');
      t.truthy(conn, `${target} connections`);
      t.true((conn?.connected ?? 0) > 0, `${target} connected`);
      t.is(typeof conn?.rss_per_session_bytes, 'number');
      t.true((conn?.server_rss_bytes ?? 0) > 0);
      for (const scenario of ['one-to-one', 'group']) {
        const e = of(scenario);
        t.truthy(e, `${target} ${scenario}`);
        t.true((e?.sent ?? 0) > 0, `${target} ${scenario} sent`);
        t.true((e?.delivered ?? 0) > 0, `${target} ${scenario} delivered`);
        t.truthy(e?.latency_ms, `${target} ${scenario} latency`);
        for (const k of ['p50', 'p90', 'p99', 'p999', 'max'] as const) t.is(typeof e?.latency_ms?.[k], 'number');
        t.is(typeof e?.server_cpu_pct, 'number');
      }
      t.is(typeof of('group')?.deliveries_per_s, 'number');
    }
    t.true(existsSync(join(dir, 'smoke.md')));
    t.true(existsSync(join(dir, 'smoke.latency.svg')));
    t.true(existsSync(join(dir, 'smoke.memory.svg')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

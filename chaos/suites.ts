/**
 * The scenarios that are test suites rather than faults: `fuzz`, `slow-readers` and `security`
 * run the project's own ava files for them (found by pattern when the run starts, so the suite
 * grows with them) and turn ava's verdict into the run's summary line. No test file found is a
 * failure: the guarantee was not shown.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { emptyReport, summaryLine } from './checker.ts';
import { ROOT } from './node-process.ts';

export const SUITES = {
  fuzz: ['test/fuzz/*.test.ts'],
  'slow-readers': ['test/slow-readers/*.test.ts', 'test/e2e/slow-*.test.ts'],
  security: ['test/security/*.test.ts'],
} as const;
export type SuiteName = keyof typeof SUITES;

export interface SuiteResult {
  readonly suite: SuiteName;
  readonly files: string[];
  readonly passed: number;
  readonly failed: number;
  readonly ok: boolean;
  /** `passed/total passed`, or why nothing ran. */
  readonly verdict: string;
  readonly summary: string;
}

/** The files matching `dir/prefix*suffix` patterns (one `*`, in the file name only). */
export function suiteFiles(patterns: readonly string[]): string[] {
  const out: string[] = [];
  for (const pattern of patterns) {
    const slash = pattern.lastIndexOf('/');
    const dir = pattern.slice(0, slash);
    const [prefix, suffix] = pattern.slice(slash + 1).split('*') as [string, string];
    if (!existsSync(join(ROOT, dir))) continue;
    for (const name of readdirSync(join(ROOT, dir)).sort()) {
      if (name.startsWith(prefix) && name.endsWith(suffix) && name.length >= prefix.length + suffix.length) out.push(`${dir}/${name}`);
    }
  }
  return out;
}

export async function runSuite(suite: SuiteName, log: (line: string) => void, timeoutMs = 30 * 60_000): Promise<SuiteResult> {
  const files = suiteFiles(SUITES[suite]);
  if (files.length === 0) {
    const verdict = `no test files (${SUITES[suite].join(', ')})`;
    log(`${suite}: ${verdict}: not run`);
    return { suite, files, passed: 0, failed: 0, ok: false, verdict, summary: summaryLine(emptyReport(), [`${suite}: ${verdict}, FAILED`]) };
  }
  log(`${suite}: ava ${files.join(' ')}`);
  const { code, output } = await runAva(files, log, timeoutMs);
  const count = (re: RegExp) => Number(re.exec(output)?.[1] ?? 0);
  const passed = count(/(\d+) tests? passed/);
  const failed = count(/(\d+) tests? failed/) + count(/(\d+) uncaught exceptions?/) + count(/(\d+) unhandled rejections?/) + count(/(\d+) tests? timed out/);
  const ok = code === 0 && failed === 0;
  const verdict = `${passed}/${passed + failed} passed${ok ? '' : code === null ? ', timed out' : `, ava exited ${code}`}`;
  return { suite, files, passed, failed, ok, verdict, summary: summaryLine(emptyReport(), [`${suite}: ${verdict}`]) };
}

function runAva(files: readonly string[], log: (line: string) => void, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    // A process group of its own: on a timeout, ava's workers and the servers they started go too.
    const child = spawn(process.execPath, [join(ROOT, 'node_modules/ava/entrypoints/cli.mjs'), ...files], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const take = (d: Buffer) => {
      const text = d.toString();
      output += text;
      for (const line of text.split('\n')) if (line.trim()) log(`  ${line}`);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

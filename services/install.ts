import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServiceError, ServiceErrorCodes } from './errors.ts';
import { withDirLock } from './lock.ts';

/**
 * Installing what the services need, from the two registries this project may use: Debian's
 * packages (apt-get) and Maven Central (mvn). Nothing here downloads anything else.
 */

export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The tail of stdout and stderr interleaved, enough for an error message. */
  readonly output: string;
}

export interface RunCommandOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
}

const OUTPUT_TAIL_CHARS = 8_000;

/** Runs a command to completion, killing it (by its pid) if it outlives `timeoutMs`. */
export function runCommand(command: string, args: readonly string[], options: RunCommandOptions): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    }, options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) output += `\n(killed: still running after ${options.timeoutMs} ms)`;
      resolve({ code, signal, output });
    });
  });
}

/** The absolute path of an executable: `name` itself if absolute, else the first hit on PATH. */
export function findExecutable(name: string): string | undefined {
  const candidates = isAbsolute(name) ? [name] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next one
    }
  }
  return undefined;
}

/** A Debian package and the executable it is known to provide. */
export interface DebianNeed {
  readonly executable: string;
  readonly pkg: string;
}

const APT_TIMEOUT_MS = 15 * 60_000;
// How long apt's own locks, held by an apt or dpkg outside the project, are waited for.
const APT_LOCK_WAIT_S = 600;
const APT_LOCK_RETRY_MS = 1_000;

/**
 * Every apt-get of every process on this machine runs under this one lock: two test processes,
 * or two clones of the project, installing at once would otherwise race for apt's own locks,
 * and `DPkg::Lock::Timeout` covers dpkg's lock but not the lists lock `apt-get update` takes
 * (it fails at once, exit 100). /var/lock is machine-wide (unlike a checkout, or a private
 * /tmp); /tmp stands in where it does not exist.
 */
export const APT_LOCK_DIR = join(existsSync('/var/lock') ? '/var/lock' : '/tmp', 'parley-apt.lock');
// A holder runs at most an update and an install, each retried for apt's locks for a while.
const APT_LOCK_TIMEOUT_MS = 2 * (APT_TIMEOUT_MS + APT_LOCK_WAIT_S * 1_000);

let aptUpdated = false;
// One apt-get at a time within this process (the machine-wide lock would do, but polls).
let aptQueue: Promise<unknown> = Promise.resolve();

/**
 * Makes sure each executable exists, installing the packages of the missing ones with
 * `apt-get install -y` (after one `apt-get update` per process). Needs root.
 */
export async function ensureDebianPackages(service: string, needs: readonly DebianNeed[]): Promise<void> {
  const missing = needs.filter((need) => findExecutable(need.executable) === undefined);
  if (missing.length === 0) return;
  await aptInstall(service, [...new Set(missing.map((need) => need.pkg))]);
  const stillMissing = needs.filter((need) => findExecutable(need.executable) === undefined);
  if (stillMissing.length > 0) {
    throw new ServiceError(
      ServiceErrorCodes.INSTALL_FAILED,
      `${service}: still missing ${stillMissing.map((m) => m.executable).join(', ')} after installing ${missing.map((m) => m.pkg).join(' ')}`,
      { service },
    );
  }
}

/**
 * `apt-get install -y` of `packages` (`reinstall`: even if installed), one apt-get at a time on
 * the machine (see APT_LOCK_DIR). Needs root.
 */
export function aptInstall(service: string, packages: readonly string[], options: { readonly reinstall?: boolean } = {}): Promise<void> {
  const run = aptQueue.then(() => aptInstallNow(service, packages, options.reinstall ?? false));
  aptQueue = run.catch(() => undefined);
  return run;
}

async function aptInstallNow(service: string, packages: readonly string[], reinstall: boolean): Promise<void> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new ServiceError(
      ServiceErrorCodes.INSTALL_NEEDS_ROOT,
      `${service}: needs Debian packages ${packages.join(' ')}; install them as root: apt-get install -y ${packages.join(' ')}`,
      { service },
    );
  }
  await withDirLock(APT_LOCK_DIR, { service, timeoutMs: APT_LOCK_TIMEOUT_MS }, async () => {
    if (!aptUpdated) {
      const update = await aptGet(['update']);
      if (update.code !== 0) {
        throw new ServiceError(ServiceErrorCodes.INSTALL_FAILED, `${service}: apt-get update failed (exit ${String(update.code)})\n${update.output}`, {
          service,
        });
      }
      aptUpdated = true;
    }
    const install = await aptGet(['install', '-y', '--no-install-recommends', ...(reinstall ? ['--reinstall'] : []), ...packages]);
    if (install.code !== 0) {
      throw new ServiceError(
        ServiceErrorCodes.INSTALL_FAILED,
        `${service}: apt-get install ${packages.join(' ')} failed (exit ${String(install.code)})\n${install.output}`,
        { service },
      );
    }
  });
}

// What apt-get says when a lock of its own is held: by an apt or dpkg outside this project (an
// unattended upgrade, a person), since ours are serialised by APT_LOCK_DIR.
const APT_LOCK_HELD = /Could not get lock|Unable to lock|Unable to acquire the dpkg frontend lock/;

/** One apt-get, run again while it fails only because apt's own lock is held, for a bounded time. */
async function aptGet(args: readonly string[]): Promise<CommandResult> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const deadline = Date.now() + APT_LOCK_WAIT_S * 1_000;
  for (;;) {
    const result = await runCommand('apt-get', ['-o', `DPkg::Lock::Timeout=${APT_LOCK_WAIT_S}`, ...args], { env, timeoutMs: APT_TIMEOUT_MS });
    if (result.code !== 100 || !APT_LOCK_HELD.test(result.output) || Date.now() >= deadline) return result;
    await sleep(APT_LOCK_RETRY_MS);
  }
}

export interface MavenArtifact {
  readonly groupId: string;
  readonly artifactId: string;
  readonly version: string;
}

export interface MavenCopyOptions {
  readonly service: string;
  readonly artifact: MavenArtifact;
  /** Where the throwaway pom.xml is written; mvn runs here. */
  readonly workDir: string;
  /** Receives the artifact's jar and all its runtime dependencies; replaced as a whole. */
  readonly outputDir: string;
  readonly timeoutMs: number;
}

// Pinned so that the same inputs give the same lib/ on every machine.
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';

/**
 * Resolves `artifact` with its runtime dependencies from Maven Central and copies every jar into
 * `outputDir`. A pom that depends on the artifact makes copy-dependencies include the artifact
 * itself. The copy lands in a sibling dir first and is renamed into place, so `outputDir` is
 * either complete or absent, never half-filled.
 */
export async function mavenCopyDependencies(options: MavenCopyOptions): Promise<void> {
  const { service, artifact } = options;
  if (findExecutable('mvn') === undefined) {
    await ensureDebianPackages(service, [{ executable: 'mvn', pkg: 'maven' }]);
  }
  await mkdir(options.workDir, { recursive: true });
  const pom = join(options.workDir, 'pom.xml');
  await writeFile(pom, pomXml(artifact));
  const staging = `${options.outputDir}.partial`;
  await rm(staging, { recursive: true, force: true });
  const result = await runCommand(
    'mvn',
    [
      '-B',
      '-q',
      '-f',
      pom,
      `${DEPENDENCY_PLUGIN}:copy-dependencies`,
      '-DincludeScope=runtime',
      `-DoutputDirectory=${staging}`,
    ],
    { cwd: options.workDir, timeoutMs: options.timeoutMs },
  );
  if (result.code !== 0) {
    await rm(staging, { recursive: true, force: true });
    throw new ServiceError(
      ServiceErrorCodes.INSTALL_FAILED,
      `${service}: mvn could not resolve ${artifact.groupId}:${artifact.artifactId}:${artifact.version} (exit ${String(result.code)})\n${result.output}`,
      { service },
    );
  }
  await rm(options.outputDir, { recursive: true, force: true });
  await rename(staging, options.outputDir);
}

function pomXml(artifact: MavenArtifact): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by services/install.ts only to resolve jars; never built. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.services</groupId>
  <artifactId>${artifact.artifactId}-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>${artifact.groupId}</groupId>
      <artifactId>${artifact.artifactId}</artifactId>
      <version>${artifact.version}</version>
    </dependency>
  </dependencies>
</project>
`;
}

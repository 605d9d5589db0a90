import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceError, ServiceErrorCodes } from './errors.ts';
import { aptInstall, findExecutable, runCommand } from './install.ts';

/**
 * Finding a JVM that a given server supports. Machines here may carry several JDKs (a Debian
 * OpenJDK 17 as `java`, a Temurin 25 beside it); a server such as Cassandra 5.0 runs on 11 and 17
 * only, so "the first java on PATH" is not good enough.
 */

export interface JavaRuntime {
  readonly executable: string;
  readonly major: number;
}

export async function javaMajorVersion(executable: string): Promise<number | undefined> {
  try {
    const result = await runCommand(executable, ['-version'], { timeoutMs: 30_000 });
    // `openjdk version "17.0.15" 2025-04-15`, or `"1.8.0_412"` for Java 8.
    const match = /version "(\d+)(?:\.(\d+))?/.exec(result.output);
    if (match === null) return undefined;
    const first = Number(match[1]);
    return first === 1 ? Number(match[2]) : first;
  } catch {
    return undefined;
  }
}

function jvmDirCandidates(): string[] {
  try {
    return readdirSync('/usr/lib/jvm', { withFileTypes: true })
      .filter((entry) => entry.isDirectory() || entry.isSymbolicLink())
      .map((entry) => join('/usr/lib/jvm', entry.name, 'bin', 'java'));
  } catch {
    return [];
  }
}

export interface FindJavaOptions {
  readonly service: string;
  /** Supported major versions, best first; the first one found in this order wins. */
  readonly majors: readonly number[];
  /** An explicit java executable; if given it must be supported, nothing else is tried. */
  readonly explicit?: string | undefined;
  /** Debian package to install when no supported JVM is found at all. */
  readonly installPackage: string;
}

export async function findJava(options: FindJavaOptions): Promise<JavaRuntime> {
  if (options.explicit !== undefined && options.explicit !== '') {
    const major = await javaMajorVersion(options.explicit);
    if (major === undefined || !options.majors.includes(major)) {
      throw new ServiceError(
        ServiceErrorCodes.INSTALL_FAILED,
        `${options.service}: ${options.explicit} is Java ${major ?? 'unknown'}; supported: ${options.majors.join(', ')}`,
        { service: options.service },
      );
    }
    return { executable: options.explicit, major };
  }
  const found = await scan(options.majors);
  if (found !== undefined) return found;
  await aptInstall(options.service, [options.installPackage]);
  const installed = await scan(options.majors);
  if (installed !== undefined) return installed;
  throw new ServiceError(
    ServiceErrorCodes.INSTALL_FAILED,
    `${options.service}: no Java ${options.majors.join(' or ')} found (JAVA_HOME, PATH, /usr/lib/jvm), even after installing ${options.installPackage}`,
    { service: options.service },
  );
}

// `java -version` costs ~100 ms a candidate; the answer does not change within a process.
const scanned = new Map<string, Promise<JavaRuntime | undefined>>();

function scan(majors: readonly number[]): Promise<JavaRuntime | undefined> {
  const key = majors.join(',');
  let result = scanned.get(key);
  if (result === undefined) {
    result = scanNow(majors);
    scanned.set(key, result);
    // A miss may turn into a hit after an install, so only hits are kept.
    result.then((found) => found === undefined && scanned.delete(key)).catch(() => scanned.delete(key));
  }
  return result;
}

async function scanNow(majors: readonly number[]): Promise<JavaRuntime | undefined> {
  const candidates = new Set<string>();
  const home = process.env.JAVA_HOME;
  if (home !== undefined && home !== '') candidates.add(join(home, 'bin', 'java'));
  const onPath = findExecutable('java');
  if (onPath !== undefined) candidates.add(onPath);
  for (const candidate of jvmDirCandidates()) candidates.add(candidate);

  const byMajor = new Map<number, string>();
  for (const candidate of candidates) {
    if (findExecutable(candidate) === undefined) continue;
    const major = await javaMajorVersion(candidate);
    if (major === undefined || byMajor.has(major)) continue;
    byMajor.set(major, candidate);
    // The most preferred version needs no further look.
    if (major === majors[0]) break;
  }
  for (const major of majors) {
    const executable = byMajor.get(major);
    if (executable !== undefined) return { executable, major };
  }
  return undefined;
}

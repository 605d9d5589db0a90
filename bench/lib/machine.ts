/** What a result must say about where it was measured: machine, OS limits, software versions. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { loadAverage } from './proc.ts';
import { ROOT } from './targets.ts';

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function openFilesLimit(): string {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    return line ? line.replace(/\s+/g, ' ').replace('Max open files ', '').trim() : 'unknown';
  } catch {
    return 'unknown';
  }
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

export function machineInfo(): Record<string, unknown> {
  const c = cpus();
  let portRange = 'unknown';
  try {
    portRange = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().replace(/\s+/g, '-');
  } catch {
    // not Linux
  }
  return {
    cpu_model: c[0]?.model ?? 'unknown',
    cores: c.length,
    memory_bytes: totalmem(),
    kernel: release(),
    open_files_limit: openFilesLimit(),
    ephemeral_port_range: portRange,
    load_avg_at_start: loadAverage(),
  };
}

export function versions(): Record<string, string> {
  return {
    node: process.version,
    parley: (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    git_commit: git(['rev-parse', '--short', 'HEAD']),
    git_dirty: git(['status', '--porcelain']).length > 0 ? 'yes' : 'no',
    // Other work lands while benchmarks run: this names the exact server code measured.
    server_sources_digest: createHash('sha256')
      .update(git(['diff', 'HEAD', '--', 'runtime', 'actors', 'proto', 'bin/parleyd.ts', 'bin/node-assembly.ts', 'config']))
      .update(git(['ls-files', '--others', '--exclude-standard', '--', 'runtime', 'actors', 'proto']))
      .digest('hex')
      .slice(0, 12),
    'uWebSockets.js': pkgVersion('uWebSockets.js'),
    'socket.io': pkgVersion('socket.io'),
    ws: pkgVersion('ws'),
    'better-sqlite3': pkgVersion('better-sqlite3'),
    protobufjs: pkgVersion('protobufjs'),
    'hdr-histogram-js': pkgVersion('hdr-histogram-js'),
  };
}

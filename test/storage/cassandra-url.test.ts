/**
 * The Cassandra store URL as the docs write it: every example URL in README.md,
 * config/REFERENCE.md, parleyctl's help and docker-compose.yml is taken from those files and
 * parsed, so the docs and the parser cannot drift apart again. Pure parsing: no Cassandra.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RuntimeCodes } from '../../runtime/errors.ts';
import { parseCassandraUrl, REPLICATION_SYNTAX } from '../../runtime/storage/cassandra/cassandra-store.ts';
import { replicationCql } from '../../runtime/storage/cassandra/schema.ts';
import { ROOT } from '../support/server.ts';

const DOCS = ['README.md', 'config/REFERENCE.md', 'bin/parleyctl.ts', 'docker-compose.yml'] as const;

/** Placeholders the docs may show that are not URLs to parse: the grammar and an ellipsis. */
const NOT_EXAMPLES = new Set(['cassandra://HOST[:PORT][,HOST[:PORT]...]/KEYSPACE[?PARAMS]', 'cassandra://...']);

function examplesIn(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(/cassandra:\/\/[^\s`'")]+/g)].map((m) => m[0]).filter((u) => !NOT_EXAMPLES.has(u));
}

test('cassandra URL - every example in the docs parses, the documented network:DC=RF form among them', (t) => {
  const found = new Map<string, string[]>(DOCS.map((f) => [f, examplesIn(f)]));
  for (const f of ['README.md', 'config/REFERENCE.md', 'bin/parleyctl.ts']) {
    t.true(found.get(f)!.some((u) => u.includes('replication=network:')), `${f} shows a network replication example`);
  }
  for (const [file, urls] of found) {
    for (const url of urls) {
      t.notThrows(() => replicationCql(parseCassandraUrl(url).replication), `${file}: ${url}`);
    }
  }
  const readme = parseCassandraUrl(found.get('README.md')!.find((u) => u.includes('network:'))!);
  t.deepEqual(readme.replication, { class: 'network', dataCenters: { dc1: 3 } });
  t.is(readme.localDataCenter, 'dc1', 'the only data centre named is the local one');
  const reference = parseCassandraUrl(found.get('config/REFERENCE.md')!.find((u) => u.includes('network:'))!);
  t.deepEqual(reference.replication, { class: 'network', dataCenters: { dc1: 3, dc2: 2 } });
  t.is(reference.localDataCenter, 'dc1');
  t.is(replicationCql(reference.replication), "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}");
});

test('cassandra URL - config/REFERENCE.md states the replication syntax the parser takes', (t) => {
  const reference = readFileSync(join(ROOT, 'config/REFERENCE.md'), 'utf8');
  for (const form of REPLICATION_SYNTAX.split(' or ')) t.true(reference.includes(`replication=${form}`), `REFERENCE.md shows replication=${form}`);
});

test('cassandra URL - simple and network forms, encoded or not', (t) => {
  t.deepEqual(parseCassandraUrl('cassandra://h/ks').replication, { class: 'simple', replicationFactor: 1 });
  t.deepEqual(parseCassandraUrl('cassandra://h/ks?replication=simple:3').replication, { class: 'simple', replicationFactor: 3 });
  t.is(parseCassandraUrl('cassandra://h/ks?replication=simple:3').localDataCenter, 'datacenter1');
  const encoded = parseCassandraUrl('cassandra://h/ks?replication=network%3Aeu-west.1%3D3%2Cus_east%3D2&dc=us_east');
  t.deepEqual(encoded.replication, { class: 'network', dataCenters: { 'eu-west.1': 3, us_east: 2 } });
  t.is(encoded.localDataCenter, 'us_east');
});

test('cassandra URL - a malformed replication is a CONFIG error naming the expected syntax', (t) => {
  const bad = [
    'network:dc1:3', // the form an older comment showed
    'network:',
    'network:dc1',
    'network:dc1=',
    'network:dc1=0',
    'network:dc1=3,',
    'network:dc1=3,dc1=2',
    'network:dc 1=3',
    "network:dc'1=3",
    'network:dc1=3;dc2=2',
    'simple:',
    'simple:0',
    'simple:x',
    'simple:1,2',
    'quorum:3',
    '',
  ];
  for (const replication of bad) {
    const err = t.throws(() => parseCassandraUrl(`cassandra://h/ks?dc=dc1&replication=${encodeURIComponent(replication)}`), undefined, replication);
    t.is((err as { code?: string }).code, RuntimeCodes.CONFIG, replication);
    t.true(err!.message.includes(`expected ${REPLICATION_SYNTAX}`), `${replication}: ${err!.message}`);
  }
});

test('cassandra URL - the local data centre must hold replicas; with several named it must be given', (t) => {
  const several = t.throws(() => parseCassandraUrl('cassandra://h/ks?replication=network:dc1=3,dc2=2'));
  t.is((several as { code?: string }).code, RuntimeCodes.CONFIG);
  t.regex(several!.message, /several data centres \(dc1, dc2\): say which is local with dc=/);
  const elsewhere = t.throws(() => parseCassandraUrl('cassandra://h/ks?replication=network:dc1=3&dc=datacenter1'));
  t.is((elsewhere as { code?: string }).code, RuntimeCodes.CONFIG);
  t.regex(elsewhere!.message, /dc=datacenter1 holds no replicas/);
});

test('cassandra URL - parleyctl schema apply refuses a malformed replication before connecting, saying the syntax', (t) => {
  const args = ['--import', 'tsx', 'bin/parleyctl.ts', 'schema', 'apply', '--store', 'cassandra://127.0.0.1:1/parley?replication=network:dc1:3'];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  t.is(r.status, 1, r.stderr);
  t.true(r.stderr.includes(`expected ${REPLICATION_SYNTAX}`), r.stderr);
});

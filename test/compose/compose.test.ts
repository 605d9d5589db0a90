import test from 'ava';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { envOf, flagOf, SETTINGS, type Setting } from '../../config/settings.ts';

interface Service {
  image?: string;
  volumes?: string[];
  healthcheck?: { test?: string[] };
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
}

const compose = parse(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8')) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const reference = readFileSync(new URL('../../config/REFERENCE.md', import.meta.url), 'utf8');
const settings = SETTINGS as readonly Setting[];
const parleys = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);

test('compose - etcd, Cassandra, Redis and three Parley nodes are defined', (t) => {
  t.truthy(compose.services.etcd?.image?.includes('etcd'));
  t.truthy(compose.services.cassandra?.image?.startsWith('cassandra:5'));
  t.truthy(compose.services.redis?.image?.startsWith('redis'));
  t.is(parleys.length, 3);
});

test('compose - every flag and variable a Parley node is given exists in the config reference', (t) => {
  for (const [name, s] of parleys) {
    for (const arg of s.command ?? []) {
      const flag = arg.split('=')[0]!;
      t.truthy(settings.find((x) => flagOf(x.key) === flag), `${name}: ${flag} is a setting`);
      t.true(reference.includes(`\`${flag}\``), `${name}: ${flag} is in config/REFERENCE.md`);
    }
    for (const env of Object.keys(s.environment ?? {})) {
      t.truthy(settings.find((x) => envOf(x.key) === env), `${name}: ${env} is a setting`);
      t.true(reference.includes(`\`${env}\``), `${name}: ${env} is in config/REFERENCE.md`);
    }
  }
});

test('compose - ports, hosts and node identities line up', (t) => {
  const value = (s: Service, flag: string) => s.command?.find((a) => a.startsWith(`${flag}=`))?.split('=').slice(1).join('=');
  const ids = new Set<string>();
  const numbers = new Set<string>();
  for (const [name, s] of parleys) {
    const port = value(s, '--port');
    t.truthy(s.ports?.some((p) => p.endsWith(`:${port}`)), `${name} publishes its --port`);
    const published = s.ports![0]!.split(':')[0];
    t.is(value(s, '--public-url'), `ws://localhost:${published}/v1/ws`, `${name} advertises its published port`);
    t.is(value(s, '--grpc-host'), name, `${name} advertises its own service name for gRPC`);
    const etcd = value(s, '--etcd')!;
    t.truthy(compose.services[new URL(etcd).hostname], `${name}: --etcd names a service`);
    const store = value(s, '--store')!;
    t.truthy(compose.services[new URL(store).hostname], `${name}: --store names a service`);
    t.is(new URL(store).port, compose.services.cassandra!.ports![0]!.split(':')[1]);
    const redis = value(s, '--redis')!;
    t.truthy(compose.services[new URL(redis).hostname], `${name}: --redis names a service`);
    ids.add(value(s, '--node-id')!);
    numbers.add(value(s, '--node-number')!);
  }
  t.is(ids.size, 3, 'node ids are distinct');
  t.is(numbers.size, 3, 'node numbers are distinct');
});

test('compose - data lives in named volumes and every service has a health check, /readyz for Parley', (t) => {
  const named = Object.keys(compose.volumes ?? {});
  for (const [name, s] of Object.entries(compose.services)) {
    t.truthy(s.healthcheck?.test?.length, `${name} has a health check`);
    if (name === 'etcd' || name === 'cassandra' || name === 'redis' || s.build !== undefined) {
      const sources = (s.volumes ?? []).map((v) => v.split(':')[0]!);
      t.true(sources.length > 0 && sources.every((v) => named.includes(v)), `${name} keeps its data in a named volume`);
    }
  }
  for (const [name, s] of parleys) {
    t.true(s.healthcheck!.test!.join(' ').includes('/readyz'), `${name} checks /readyz`);
    const dataDir = s.command?.find((a) => a.startsWith('--data-dir='))?.split('=')[1];
    t.truthy(dataDir && s.volumes?.some((v) => v.endsWith(`:${dataDir}`)), `${name}: its --data-dir is the volume`);
  }
});

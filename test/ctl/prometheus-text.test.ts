import test from 'ava';
import { MetricsParseError, parsePrometheusText, seriesKey, sumSamples } from '../../bin/ctl/prometheus-text.ts';

const NODE_A = `# HELP parley_connections Open WebSocket connections.
# TYPE parley_connections gauge
parley_connections 3
# TYPE parley_actors_active gauge
parley_actors_active{kind="user"} 5
parley_actors_active{kind="channel"} 2
# TYPE parley_delivery_seconds histogram
parley_delivery_seconds_bucket{le="0.005"} 10
parley_delivery_seconds_bucket{le="+Inf"} 12
parley_delivery_seconds_sum 0.25
parley_delivery_seconds_count 12
parley_grpc_queue_depth{peer="n2",note="a \\"quoted\\", comma"} 7 1712345678000
`;
const NODE_B = `parley_connections 4
parley_actors_active{kind="channel"} 1
parley_delivery_seconds_bucket{le="+Inf"} 3
parley_delivery_seconds_count 3
parley_store_latency_seconds_count{op="get"} NaN
`;

test('prometheus text - parses names, sorted labels with escapes, special values, and skips comments and timestamps', (t) => {
  const a = parsePrometheusText(NODE_A);
  t.is(a.length, 8);
  t.deepEqual(a[0], { name: 'parley_connections', labels: [], value: 3 });
  t.is(a.find((s) => s.labels.some(([k, v]) => k === 'le' && v === '+Inf'))!.value, 12);
  const q = a.find((s) => s.name === 'parley_grpc_queue_depth')!;
  t.deepEqual(q.labels, [['note', 'a "quoted", comma'], ['peer', 'n2']]);
  t.is(q.value, 7);
  t.is(seriesKey(q), 'parley_grpc_queue_depth{note="a \\"quoted\\", comma",peer="n2"}');
  t.true(Number.isNaN(parsePrometheusText(NODE_B).at(-1)!.value));
});

test('prometheus text - sums over nodes by name and label set, keeping series only one node has', (t) => {
  const sums = sumSamples([parsePrometheusText(NODE_A), parsePrometheusText(NODE_B)]);
  const v = (key: string) => sums.find((s) => seriesKey(s) === key)?.value;
  t.is(v('parley_connections'), 7);
  t.is(v('parley_actors_active{kind="channel"}'), 3);
  t.is(v('parley_actors_active{kind="user"}'), 5);
  t.is(v('parley_delivery_seconds_bucket{le="+Inf"}'), 15);
  t.is(v('parley_delivery_seconds_count'), 15);
  t.is(v('parley_delivery_seconds_sum'), 0.25);
  // Sorted by series key: a stable table.
  t.deepEqual(sums.map(seriesKey), [...sums.map(seriesKey)].sort());
});

test('prometheus text - refuses malformed lines with their line number', (t) => {
  t.throws(() => parsePrometheusText('ok 1\n{x="1"} 2\n'), { instanceOf: MetricsParseError, message: /^line 2:/ });
  t.throws(() => parsePrometheusText('m{a="1} 2\n'), { instanceOf: MetricsParseError });
  t.throws(() => parsePrometheusText('m twelve\n'), { instanceOf: MetricsParseError, message: /bad value/ });
});

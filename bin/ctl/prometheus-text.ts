/**
 * The Prometheus text exposition format (version 0.0.4), read generically: any metric family,
 * counters, gauges, histograms and summaries alike, as flat samples. `parleyctl stats` sums them
 * over the nodes of a cluster by name and label set, which is right for counters, histogram
 * buckets / _sum / _count and for gauges that count things (connections, actors, queue depths).
 */

export interface Sample {
  readonly name: string;
  /** Label pairs sorted by name, so equal sets compare equal. */
  readonly labels: readonly (readonly [string, string])[];
  readonly value: number;
}

export class MetricsParseError extends Error {
  override readonly name = 'MetricsParseError';
  readonly code = 'METRICS_PARSE';

  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(text: string, line: number): number {
  switch (text) {
    case '+Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
  }
  const n = Number(text);
  if (text === '' || Number.isNaN(n)) throw new MetricsParseError(`bad value ${JSON.stringify(text)}`, line);
  return n;
}

/** Every sample of an exposition; comments (# HELP, # TYPE) and blank lines are skipped. */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const lineNo = i + 1;
    const name = NAME.exec(raw)?.[0];
    if (!name) throw new MetricsParseError('expected a metric name', lineNo);
    let pos = name.length;
    const labels: [string, string][] = [];
    if (raw[pos] === '{') {
      pos++;
      for (;;) {
        while (raw[pos] === ' ' || raw[pos] === ',') pos++;
        if (raw[pos] === '}') {
          pos++;
          break;
        }
        const label = LABEL_NAME.exec(raw.slice(pos))?.[0];
        if (!label) throw new MetricsParseError('expected a label name', lineNo);
        pos += label.length;
        if (raw[pos] !== '=' || raw[pos + 1] !== '"') throw new MetricsParseError(`expected ="..." after label ${label}`, lineNo);
        pos += 2;
        let value = '';
        for (;;) {
          const c = raw[pos++];
          if (c === undefined) throw new MetricsParseError('unterminated label value', lineNo);
          if (c === '"') break;
          if (c === '\\') {
            const e = raw[pos++];
            value += e === 'n' ? '\n' : (e ?? '');
          } else value += c;
        }
        labels.push([label, value]);
      }
    }
    // Value, then an optional timestamp (ignored: a sum is of now).
    const rest = raw.slice(pos).trim().split(/\s+/);
    samples.push({ name, labels: labels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)), value: parseValue(rest[0] ?? '', lineNo) });
  }
  return samples;
}

/** `name{a="1",b="2"}`: the sample's identity, as Prometheus prints it. */
export function seriesKey(s: Pick<Sample, 'name' | 'labels'>): string {
  if (s.labels.length === 0) return s.name;
  return `${s.name}{${s.labels.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

/** Samples of several expositions summed by name and labels, sorted by series key. */
export function sumSamples(expositions: readonly (readonly Sample[])[]): Sample[] {
  const sums = new Map<string, Sample>();
  for (const samples of expositions) {
    for (const s of samples) {
      const key = seriesKey(s);
      const seen = sums.get(key);
      sums.set(key, seen ? { ...seen, value: seen.value + s.value } : s);
    }
  }
  return [...sums.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
}

import { collectDefaultMetrics, Gauge, Registry, type Metric } from 'prom-client';

/**
 * A counter the hot path bumps with a plain `+=`: prom-client's own `inc()` builds a label object
 * per call, which a per-message path must not pay. The registry reads `value` at scrape time.
 */
export class FastCounter {
  value = 0;

  add(n = 1): void {
    this.value += n;
  }
}

/**
 * A fixed-bucket histogram that allocates nothing per observation (one bound scan, three adds),
 * rendered in Prometheus form at scrape time. One child per label value, made once up front: a
 * label with an open set of values (actor keys, say) is never allowed here.
 */
export class FastHistogram {
  private readonly children = new Map<string, HistogramCell>();

  constructor(
    readonly bounds: readonly number[],
    private readonly labelName?: string,
  ) {}

  /** The cell for one label value (or the only one, unlabelled); hold on to it on the hot path. */
  child(labelValue = ''): HistogramCell {
    let c = this.children.get(labelValue);
    if (!c) this.children.set(labelValue, (c = new HistogramCell(this.bounds)));
    return c;
  }

  /** @internal prom-client's metric shape: buckets cumulative, as the text format wants. */
  values(name: string): { metricName: string; labels: Record<string, string | number>; value: number }[] {
    const out: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const [lv, c] of this.children) {
      const base: Record<string, string> = this.labelName ? { [this.labelName]: lv } : {};
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += c.counts[i]!;
        out.push({ metricName: `${name}_bucket`, labels: { ...base, le: this.bounds[i]! }, value: acc });
      }
      out.push({ metricName: `${name}_bucket`, labels: { ...base, le: '+Inf' }, value: c.count });
      out.push({ metricName: `${name}_sum`, labels: base, value: c.sum });
      out.push({ metricName: `${name}_count`, labels: base, value: c.count });
    }
    return out;
  }
}

export class HistogramCell {
  /** Per bucket, not cumulative (the last slot is above every bound). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/** Label values and a figure, read when scraped. */
export type GaugeReading = readonly (readonly [labels: Readonly<Record<string, string>>, value: number])[];

/**
 * The node's metrics registry (its own, not prom-client's global one, so several nodes in one
 * test process keep apart). Hot-path figures are FastCounter / FastHistogram; every gauge is
 * computed when scraped, so an unscraped node pays nothing for it.
 */
export class NodeMetrics {
  readonly registry = new Registry();

  /** @param defaults process and Node.js figures (CPU, heap, GC, event-loop lag): once per process is enough. */
  constructor(options: { readonly defaults?: boolean } = {}) {
    if (options.defaults ?? true) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition (Prometheus 0.0.4). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  counter(name: string, help: string): FastCounter {
    const c = new FastCounter();
    this.custom(name, help, 'counter', () => [{ labels: {}, value: c.value }]);
    return c;
  }

  /** A counter its owner keeps (a plain number that only grows), read when scraped. */
  counterReading(name: string, help: string, read: () => number): void {
    this.custom(name, help, 'counter', () => [{ labels: {}, value: read() }]);
  }

  histogram(name: string, help: string, bounds: readonly number[], labelName?: string): FastHistogram {
    const h = new FastHistogram(bounds, labelName);
    this.custom(name, help, 'histogram', () => h.values(name));
    return h;
  }

  /** A gauge whose series are read at scrape time; series missing from a reading disappear. */
  gauge(name: string, help: string, labelNames: readonly string[], read: () => GaugeReading): void {
    new Gauge({
      name,
      help,
      labelNames: [...labelNames],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.set(labels, value);
      },
    });
  }

  private custom(name: string, help: string, type: 'counter' | 'histogram', values: () => unknown[]): void {
    // prom-client renders any object of this shape; its typings only name its own classes.
    const metric = { name, help, type, aggregator: 'sum', get: () => ({ name, help, type, aggregator: 'sum', values: values() }) };
    this.registry.registerMetric(metric as unknown as Metric);
  }
}

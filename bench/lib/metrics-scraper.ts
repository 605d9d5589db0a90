/**
 * `--scrape-metrics MS`: GET /metrics of every Parley node every MS during a target's whole run,
 * as a Prometheus server would, so a run can be compared with and without a scraper (the cost of
 * /metrics). With `--metrics-dump DIR` it also writes, per node and target start,
 * DIR/<n>-<node id>.json: the first scrape (before any load), the last (after it, before the
 * stop) and the highest value each series reached over all scrapes (gauges such as connections
 * are back to 0 by the end). test/metrics/metrics-smoke.test.ts reads those.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeHandle } from './targets.ts';

/** Series name with its labels (as written) -> value. */
export type Samples = Record<string, number>;

export interface MetricsDump {
  readonly node_id: string;
  readonly scrapes: number;
  readonly failures: number;
  readonly first: Samples;
  readonly last: Samples;
  readonly max: Samples;
}

/** The sample lines of a text exposition (comments skipped). */
export function parseMetrics(text: string): Samples {
  const out: Samples = {};
  for (const line of text.split('\n')) {
    if (line.length === 0 || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    const v = Number(line.slice(sp + 1));
    if (sp > 0 && !Number.isNaN(v)) out[line.slice(0, sp)] = v;
  }
  return out;
}

let runs = 0;

export class MetricsScraper {
  private readonly state: { node: NodeHandle; scrapes: number; failures: number; first?: Samples; last?: Samples; max: Samples }[];
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> | undefined;
  private readonly run = ++runs;

  constructor(
    nodes: readonly NodeHandle[],
    private readonly everyMs: number,
    private readonly dumpDir: string | undefined,
  ) {
    this.state = nodes.map((node) => ({ node, scrapes: 0, failures: 0, max: {} }));
  }

  async start(): Promise<this> {
    await this.scrapeAll();
    this.timer = setInterval(() => void (this.busy ??= this.scrapeAll().finally(() => (this.busy = undefined))), this.everyMs);
    return this;
  }

  /** One last scrape (the "after"), then the dump. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.busy;
    await this.scrapeAll();
    if (!this.dumpDir) return;
    mkdirSync(this.dumpDir, { recursive: true });
    for (const s of this.state) {
      const dump: MetricsDump = { node_id: s.node.nodeId, scrapes: s.scrapes, failures: s.failures, first: s.first ?? {}, last: s.last ?? {}, max: s.max };
      writeFileSync(join(this.dumpDir, `${this.run}-${s.node.nodeId}.json`), JSON.stringify(dump));
    }
  }

  private async scrapeAll(): Promise<void> {
    await Promise.all(
      this.state.map(async (s) => {
        try {
          const res = await fetch(`${s.node.httpBase}/metrics`, { signal: AbortSignal.timeout(5_000) });
          const text = await res.text();
          if (!res.ok) throw new Error(`status ${res.status}`);
          s.scrapes++;
          if (!this.dumpDir) return; // a scraper for cost alone: fetch and read, as Prometheus does
          const samples = parseMetrics(text);
          s.first ??= samples;
          s.last = samples;
          for (const [k, v] of Object.entries(samples)) if (!(k in s.max) || v > s.max[k]!) s.max[k] = v;
        } catch {
          s.failures++;
        }
      }),
    );
  }
}

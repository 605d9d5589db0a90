import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface EventLoopDelayStats {
  /** Milliseconds the event loop was late, over the last whole window. */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * How late the event loop runs: Node's sampling histogram (perf_hooks), read out and reset once
 * a window, so a reader sees the last whole window (a stall shows for one window, then goes)
 * however often it asks. For /healthz and the bench, which reads `event_loop_delay_ms`.
 */
export class EventLoopDelay {
  private readonly histogram: IntervalHistogram;
  private readonly timer: NodeJS.Timeout;
  private last: EventLoopDelayStats = { p50: 0, p99: 0, max: 0 };

  constructor(windowMs = 1_000, resolutionMs = 10) {
    this.histogram = monitorEventLoopDelay({ resolution: resolutionMs });
    this.histogram.enable();
    this.timer = setInterval(() => this.roll(), windowMs);
    this.timer.unref();
  }

  get stats(): EventLoopDelayStats {
    return this.last;
  }

  stop(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }

  private roll(): void {
    const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
    const h = this.histogram;
    this.last = h.count === 0 ? { p50: 0, p99: 0, max: 0 } : { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) };
    h.reset();
  }
}

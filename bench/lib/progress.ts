/**
 * A live progress bar on stderr for long steps. On a terminal it redraws one line; otherwise
 * (CI, logs) it prints a plain line every few seconds and at the end, so logs stay readable.
 */
export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private lastLine = 0;
  private readonly t0 = performance.now();
  private active = true;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly quiet = false,
  ) {}

  update(done: number, detail = ''): void {
    if (this.quiet || !this.active) return;
    const now = performance.now();
    if (this.tty ? now - this.lastLine < 100 : now - this.lastLine < 5_000) return;
    this.lastLine = now;
    this.draw(done, detail);
  }

  done(detail = ''): void {
    if (this.quiet || !this.active) return;
    this.active = false;
    this.draw(this.total, detail);
    if (this.tty) process.stderr.write('\n');
  }

  private draw(done: number, detail: string): void {
    const frac = this.total > 0 ? Math.max(0, Math.min(1, done / this.total)) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const secs = ((performance.now() - this.t0) / 1000).toFixed(1);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const line = `${this.label.padEnd(40).slice(0, 40)} ${bar} ${String(Math.round(frac * 100)).padStart(3)}% ${secs.padStart(6)}s ${detail}`;
    const cols = process.stderr.columns ?? 160;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line.slice(0, cols - 1)}`);
    else process.stderr.write(line + '\n');
  }
}

export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/**
 * A one-line progress bar on stderr: stage and fraction, redrawn in place at most ~10 times a
 * second. On by default only when stderr is a terminal; `MOE_PLACER_PROGRESS=1` forces it on (one
 * plain line per update when stderr is not a terminal, for logs), `MOE_PLACER_PROGRESS=0` off.
 */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): boolean;
}

export class Progress {
  readonly enabled: boolean;
  private readonly tty: boolean;
  private last = 0;
  private lastStage = '';
  private drawn = false;

  constructor(
    private readonly stream: ProgressStream = process.stderr,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.tty = stream.isTTY === true;
    const force = env.MOE_PLACER_PROGRESS;
    this.enabled = force === '1' ? true : force === '0' ? false : this.tty;
  }

  /** Show `stage` at `fraction` (0..1, or undefined when unknown). */
  update(stage: string, fraction?: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    const final = fraction !== undefined && fraction >= 1;
    if (stage === this.lastStage && !final && now - this.last < 100) return;
    if (!this.tty && stage === this.lastStage && !final && now - this.last < 1000) return;
    this.last = now;
    this.lastStage = stage;
    const pct = fraction === undefined || !Number.isFinite(fraction) ? '' : ` ${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
    if (!this.tty) {
      this.stream.write(`moe-placer: ${stage}${pct}\n`);
      return;
    }
    const width = 24;
    let bar = '';
    if (fraction !== undefined && Number.isFinite(fraction)) {
      const full = Math.round(Math.min(1, Math.max(0, fraction)) * width);
      bar = `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
    }
    const cols = Math.max(20, (this.stream.columns ?? 80) - 1);
    const line = `${bar}${pct} ${stage}`.trimStart().slice(0, cols);
    this.stream.write(`\r\x1b[K${line}`);
    this.drawn = true;
  }

  /** Clear the bar (before printing results). */
  clear(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
    this.lastStage = '';
  }

  /** A message on its own line (the bar is redrawn by the next update). */
  note(message: string): void {
    this.clear();
    this.stream.write(`moe-placer: ${message}\n`);
  }
}

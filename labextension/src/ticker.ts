/**
 * A polling loop that never overlaps itself: it waits for one tick to finish before it schedules the
 * next, asks for its interval each time (so a view can poll fast only while a run is active), rests
 * while the page is hidden, and logs a failing tick instead of stopping.
 */
export class Ticker {
  private timer: number | null = null;
  private running = false;
  private stopped = true;

  constructor(
    private readonly tick: () => Promise<void>,
    private readonly interval: () => number
  ) {}

  /** Start ticking now (or tick again now if already started). */
  start(): void {
    this.stopped = false;
    this.now();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  get isStarted(): boolean {
    return !this.stopped;
  }

  /** Tick as soon as the current tick (if any) is done. */
  now(): void {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.running) {
      this.again = true;
      return;
    }
    void this.run();
  }

  private again = false;

  private async run(): Promise<void> {
    if (this.stopped) {
      return;
    }
    this.running = true;
    try {
      if (!document.hidden) {
        await this.tick();
      }
    } catch (error) {
      console.warn('nbflow: polling failed:', error);
    } finally {
      this.running = false;
    }
    if (this.stopped) {
      return;
    }
    if (this.again) {
      this.again = false;
      void this.run();
      return;
    }
    this.timer = window.setTimeout(() => {
      this.timer = null;
      void this.run();
    }, this.interval());
  }
}

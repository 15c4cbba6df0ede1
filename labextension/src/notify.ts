/**
 * A Lab notification when a run fails, wherever it ran (the server's scheduler, a daemon, a
 * kernel). It asks the server's event feed for `run_failed` events after the last one seen; a new
 * page starts from the newest event, so history is not replayed.
 */
import { Notification } from '@jupyterlab/apputils';

import { ApiError, IEvent, api } from './api';
import { Ticker } from './ticker';
import { runLabelOfId } from './time';

const INTERVAL = 4000;

export class FailureNotifier {
  private lastId: number | null = null;
  private readonly ticker = new Ticker(() => this.poll(), () => INTERVAL);

  constructor(
    private readonly openDag: (dagId: string, runId?: string) => void,
    private readonly failed: () => void = () => undefined
  ) {}

  start(): void {
    this.ticker.start();
  }

  stop(): void {
    this.ticker.stop();
  }

  private async poll(): Promise<void> {
    let feed;
    try {
      feed = await api.events(this.lastId);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 403)) {
        console.warn('nbflow: no event feed on this server, failed runs will not be announced:', error.message);
        this.stop();
        return;
      }
      throw error;
    }
    if (this.lastId !== null && feed.events.length) {
      for (const event of feed.events) {
        this.announce(event);
      }
      this.failed();
    }
    this.lastId = Math.max(feed.last_id ?? 0, this.lastId ?? 0);
  }

  private announce(event: IEvent): void {
    const dagId = event.dag_id ?? 'a DAG';
    const task = event.task_id ? `, task ${event.task_id}` : '';
    // the run as people name it ("manual · 4 Dec 02:41", the browser's zone), not its raw id
    const text = `nbflow: ${dagId} failed (run ${event.run_id ? runLabelOfId(event.run_id) : '?'}${task})`;
    const actions = event.dag_id
      ? [
          {
            label: 'Show run',
            callback: () => this.openDag(event.dag_id as string, event.run_id ?? undefined)
          }
        ]
      : [];
    Notification.error(text, { autoClose: false, actions });
  }
}

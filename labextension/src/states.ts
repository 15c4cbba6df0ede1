/**
 * Task and run states: their colours, the same as the notebook widget's
 * (`nbflow.jupyter.graph.STATE_STYLES`; a test keeps the two equal), and which ones are still moving.
 */
import type { IStateStyle } from './api';

export const NO_STATUS = 'no_status';

export const STATE_STYLES: Record<string, IStateStyle> = {
  success: { background: '#008000', border: '#006400', text: '#ffffff', label: 'success' },
  running: { background: '#00ff00', border: '#008000', text: '#000000', label: 'running' },
  failed: { background: '#ff0000', border: '#b30000', text: '#ffffff', label: 'failed' },
  upstream_failed: { background: '#ffa500', border: '#cc8400', text: '#000000', label: 'upstream failed' },
  up_for_retry: { background: '#ffd700', border: '#b39700', text: '#000000', label: 'up for retry' },
  up_for_reschedule: { background: '#40e0d0', border: '#2a9d92', text: '#000000', label: 'up for reschedule' },
  queued: { background: '#808080', border: '#595959', text: '#ffffff', label: 'queued' },
  scheduled: { background: '#d2b48c', border: '#a58b66', text: '#000000', label: 'scheduled' },
  skipped: { background: '#ff69b4', border: '#c9518d', text: '#000000', label: 'skipped' },
  removed: { background: '#d3d3d3', border: '#a9a9a9', text: '#000000', label: 'removed' },
  none: { background: '#ffffff', border: '#808080', text: '#000000', label: 'none' },
  no_status: { background: '#ffffff', border: '#c0c0c0', text: '#000000', label: 'no status' }
};

/** Run and task states after which nothing more happens without a clear or a new run. */
const FINISHED = new Set(['success', 'failed', 'skipped', 'upstream_failed', 'removed']);

/** The key of a state in {@link STATE_STYLES}; unknown and missing states are "no status". */
export function stateKey(state: string | null | undefined): string {
  return state && state in STATE_STYLES ? state : NO_STATUS;
}

export function styleOf(
  state: string | null | undefined,
  styles: Record<string, IStateStyle> = STATE_STYLES
): IStateStyle {
  return styles[stateKey(state)] ?? STATE_STYLES[stateKey(state)];
}

/** Whether a run in this state can still change (queued or running). */
export function isActive(state: string | null | undefined): boolean {
  return state === 'queued' || state === 'running';
}

export function isFinished(state: string | null | undefined): boolean {
  return !!state && FINISHED.has(state);
}

/** Paint a badge element in a state's colours and say the state in its title. */
export function paintBadge(el: HTMLElement, state: string | null | undefined, title?: string): void {
  const style = styleOf(state);
  el.style.backgroundColor = style.background;
  el.style.borderColor = style.border;
  el.style.color = style.text;
  el.dataset.state = stateKey(state);
  el.title = title ?? style.label;
}

/**
 * The grid: one row per task (in DAG order), one column per run (oldest on the left), each cell in
 * its task instance's state colour. Clicking a cell picks that run and task; clicking a column head
 * picks the run.
 *
 * Tasks of one task group sit under a row of their group, whose cells show the group's worst state
 * in each run (counts on hover); a click on the group's name folds or unfolds it. Big DAGs start
 * with their groups folded. Rows have one height and only those in sight (and a few around them)
 * are in the DOM: a 2,000-task DAG costs a few dozen rows, however far it is scrolled.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import type { IGrid } from './api';
import { STATE_STYLES, stateKey, styleOf } from './states';
import { runLabel, runTitle } from './time';

export interface IGridPick {
  runId: string;
  taskId: string | null;
}

/** Every row's height in pixels (the stylesheet gives rows this height). */
export const ROW_HEIGHT = 18;
/** Rows drawn beyond each edge of the view, so that scrolling a little shows rows at once. */
const OVERSCAN = 12;
/** From this many tasks on, groups start folded. */
const FOLD_GROUPS_FROM = 100;
/** Worst first, as the graph colours a folded node (`nbflow.jupyter.graph.SEVERITY`). */
const SEVERITY = [
  'failed', 'upstream_failed', 'up_for_retry', 'running', 'up_for_reschedule', 'queued', 'scheduled',
  'none', 'no_status', 'success', 'skipped', 'removed'
];

type Row = { kind: 'group'; group: string; tasks: string[] } | { kind: 'task'; task: string; nested: boolean };

function escape(text: string): string {
  return text.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`);
}

export class GridView extends Widget {
  private readonly _picked = new Signal<this, IGridPick>(this);
  private selection: IGridPick | null = null;
  private grid: IGrid | null = null;
  /** groups the user folded or unfolded; the rest follow FOLD_GROUPS_FROM */
  private readonly folded = new Map<string, boolean>();
  private rows: Row[] = [];
  private drawn = '';
  private frame = 0;
  /** the rows' height as drawn (the stylesheet asks for ROW_HEIGHT; fonts may make them taller) */
  private rowHeight = ROW_HEIGHT;

  constructor() {
    super();
    this.addClass('nbflow-Grid');
    this.node.addEventListener('click', event => this.onClick(event));
    this.node.addEventListener('scroll', () => this.schedule(), { passive: true });
  }

  get picked(): ISignal<this, IGridPick> {
    return this._picked;
  }

  setGrid(grid: IGrid): void {
    this.grid = grid;
    this.rebuild();
  }

  select(pick: IGridPick | null): void {
    this.selection = pick;
    this.markSelection();
  }

  /** Fold (or unfold) a task group's rows. */
  setFolded(group: string, folded: boolean): void {
    this.folded.set(group, folded);
    this.rebuild();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.schedule();
  }

  protected onAfterShow(): void {
    this.schedule();
  }

  private isFolded(group: string): boolean {
    return this.folded.get(group) ?? (this.grid?.tasks.length ?? 0) >= FOLD_GROUPS_FROM;
  }

  /** The rows in order: tasks outside groups, and each group's row followed by its tasks unless folded. */
  private rebuild(): void {
    const grid = this.grid;
    this.rows = [];
    if (!grid) {
      return;
    }
    const groupOf = grid.groups ?? {};
    const members = new Map<string, string[]>();
    for (const task of grid.tasks) {
      const group = groupOf[task];
      if (group) {
        const list = members.get(group) ?? [];
        list.push(task);
        members.set(group, list);
      }
    }
    const seen = new Set<string>();
    for (const task of grid.tasks) {
      const group = groupOf[task];
      if (!group) {
        this.rows.push({ kind: 'task', task, nested: false });
        continue;
      }
      if (seen.has(group)) {
        continue;
      }
      seen.add(group);
      const tasks = members.get(group) ?? [];
      this.rows.push({ kind: 'group', group, tasks });
      if (!this.isFolded(group)) {
        for (const t of tasks) {
          this.rows.push({ kind: 'task', task: t, nested: true });
        }
      }
    }
    this.drawn = '';
    this.render();
  }

  private schedule(): void {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }
  }

  private render(): void {
    const grid = this.grid;
    if (!grid) {
      return;
    }
    if (grid.runs.length === 0) {
      this.node.innerHTML = '<p class="nbflow-Empty">No runs yet: trigger one with ▶.</p>';
      this.drawn = 'empty';
      return;
    }
    const head = this.node.querySelector<HTMLElement>('thead');
    const headHeight = head ? head.offsetHeight : 40;
    const top = Math.max(0, this.node.scrollTop - headHeight);
    const height = this.node.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / this.rowHeight) + OVERSCAN);
    const key = `${first}:${last}:${this.rows.length}`;
    if (key === this.drawn && this.node.querySelector('table')) {
      return;
    }
    this.drawn = key;
    const headCells = grid.runs
      .map(run => {
        const style = styleOf(run.state);
        const title = `${runLabel(run)} · ${run.state}\n${runTitle(run)}`;
        return (
          `<th class="nbflow-Grid-run" data-run="${escape(run.run_id)}" title="${escape(title)}">` +
          `<span class="nbflow-Grid-runBar" style="background:${style.background};border-color:${style.border}"></span></th>`
        );
      })
      .join('');
    const body = this.rows.slice(first, last).map(row => (row.kind === 'group' ? this.groupRow(row) : this.taskRow(row.task, row.nested)));
    const spacer = (rows: number) =>
      rows > 0 ? `<tr class="nbflow-Grid-spacer" style="height:${rows * this.rowHeight}px"><td colspan="${grid.runs.length + 1}"></td></tr>` : '';
    const scroll = this.node.scrollTop;
    this.node.innerHTML =
      `<table class="nbflow-Grid-table" data-rows="${this.rows.length}"><thead><tr><th class="nbflow-Grid-corner">task \\ run</th>${headCells}</tr></thead>` +
      `<tbody>${spacer(first)}${body.join('')}${spacer(this.rows.length - last)}</tbody></table>`;
    this.node.scrollTop = scroll;
    this.markSelection();
    const sample = this.node.querySelector<HTMLElement>('tr.nbflow-Grid-row');
    const measured = sample ? sample.getBoundingClientRect().height : 0;
    if (measured > 0 && Math.abs(measured - this.rowHeight) > 0.01) {
      this.rowHeight = measured;
      this.drawn = '';
      this.schedule();
    }
  }

  private taskRow(task: string, nested: boolean): string {
    const grid = this.grid!;
    const cells = grid.runs
      .map(run => {
        const state = stateKey(grid.states[run.run_id]?.[task]);
        const style = STATE_STYLES[state];
        const mapped = grid.counts?.[run.run_id]?.[task];
        const instances = mapped
          ? ` · ${Object.values(mapped).reduce((a, b) => a + b, 0)} instances: ` +
            Object.entries(mapped).map(([s, n]) => `${n} ${STATE_STYLES[stateKey(s)]?.label ?? s}`).join(', ')
          : '';
        return (
          `<td class="nbflow-Grid-cell" data-run="${escape(run.run_id)}" data-task="${escape(task)}" ` +
          `data-state="${state}" title="${escape(`${task} · ${style.label}${instances}\n${runLabel(run)}\n${runTitle(run)}`)}">` +
          `<span style="background:${style.background};border-color:${style.border}"></span></td>`
        );
      })
      .join('');
    const group = nested ? this.grid?.groups?.[task] : undefined;
    const name = group && task.startsWith(group + '.') ? task.slice(group.length + 1) : task;
    return (
      `<tr class="nbflow-Grid-row"><th class="nbflow-Grid-task${nested ? ' nbflow-Grid-nested' : ''}" title="${escape(task)}">` +
      `${escape(name)}</th>${cells}</tr>`
    );
  }

  private groupRow(row: { group: string; tasks: string[] }): string {
    const grid = this.grid!;
    const folded = this.isFolded(row.group);
    const cells = grid.runs
      .map(run => {
        const tally = new Map<string, number>();
        for (const task of row.tasks) {
          const state = stateKey(grid.states[run.run_id]?.[task]);
          tally.set(state, (tally.get(state) ?? 0) + 1);
        }
        const worst = SEVERITY.find(s => tally.has(s)) ?? 'no_status';
        const style = STATE_STYLES[worst];
        const counts = SEVERITY.filter(s => tally.has(s)).map(s => `${tally.get(s)} ${STATE_STYLES[s].label}`).join(', ');
        return (
          `<td class="nbflow-Grid-groupCell" data-run="${escape(run.run_id)}" data-group="${escape(row.group)}" ` +
          `data-state="${worst}" title="${escape(`${row.group}: ${counts}\n${runLabel(run)}`)}">` +
          `<span style="background:${style.background};border-color:${style.border}"></span></td>`
        );
      })
      .join('');
    return (
      `<tr class="nbflow-Grid-row nbflow-Grid-groupRow"><th class="nbflow-Grid-task nbflow-Grid-group" data-group="${escape(row.group)}" ` +
      `data-folded="${folded}" title="${escape(`${row.group}: ${row.tasks.length} tasks (click to ${folded ? 'show' : 'hide'} them)`)}">` +
      `${folded ? '▸' : '▾'} ${escape(row.group)} <span class="nbflow-Muted">×${row.tasks.length}</span></th>${cells}</tr>`
    );
  }

  private markSelection(): void {
    for (const el of Array.from(this.node.querySelectorAll('.jp-mod-selected'))) {
      el.classList.remove('jp-mod-selected');
    }
    const pick = this.selection;
    if (!pick) {
      return;
    }
    for (const el of Array.from(this.node.querySelectorAll<HTMLElement>('[data-run]'))) {
      if (el.dataset.run !== pick.runId) {
        continue;
      }
      if (el.tagName === 'TH' || (el.dataset.task !== undefined && el.dataset.task === pick.taskId)) {
        el.classList.add('jp-mod-selected');
      }
    }
  }

  private onClick(event: MouseEvent): void {
    const target = event.target as HTMLElement;
    const group = target.closest<HTMLElement>('th[data-group]');
    if (group?.dataset.group) {
      this.setFolded(group.dataset.group, group.dataset.folded !== 'true');
      return;
    }
    const cell = target.closest<HTMLElement>('[data-run]');
    if (!cell || !cell.dataset.run) {
      return;
    }
    this._picked.emit({ runId: cell.dataset.run, taskId: cell.dataset.task ?? null });
  }
}

/**
 * The grid: one row per task (in DAG order), one column per run (oldest on the left), each cell in
 * its task instance's state colour. Clicking a cell picks that run and task; clicking a column head
 * picks the run. Rows are built as one HTML string, so a few thousand tasks render at once.
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

function escape(text: string): string {
  return text.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`);
}

export class GridView extends Widget {
  private readonly _picked = new Signal<this, IGridPick>(this);
  private selection: IGridPick | null = null;
  private grid: IGrid | null = null;

  constructor() {
    super();
    this.addClass('nbflow-Grid');
    this.node.addEventListener('click', event => this.onClick(event));
  }

  get picked(): ISignal<this, IGridPick> {
    return this._picked;
  }

  setGrid(grid: IGrid): void {
    this.grid = grid;
    this.render();
  }

  select(pick: IGridPick | null): void {
    this.selection = pick;
    this.markSelection();
  }

  private render(): void {
    const grid = this.grid;
    if (!grid) {
      return;
    }
    if (grid.runs.length === 0) {
      this.node.innerHTML = '<p class="nbflow-Empty">No runs yet: trigger one with ▶.</p>';
      return;
    }
    const head = grid.runs
      .map(run => {
        const style = styleOf(run.state);
        const title = `${runLabel(run)} · ${run.state}\n${runTitle(run)}`;
        return (
          `<th class="nbflow-Grid-run" data-run="${escape(run.run_id)}" title="${escape(title)}">` +
          `<span class="nbflow-Grid-runBar" style="background:${style.background};border-color:${style.border}"></span></th>`
        );
      })
      .join('');
    const rows = grid.tasks
      .map(task => {
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
        return `<tr><th class="nbflow-Grid-task" title="${escape(task)}">${escape(task)}</th>${cells}</tr>`;
      })
      .join('');
    this.node.innerHTML =
      `<table class="nbflow-Grid-table"><thead><tr><th class="nbflow-Grid-corner">task \\ run</th>${head}</tr></thead>` +
      `<tbody>${rows}</tbody></table>`;
    this.markSelection();
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
      if (el.tagName === 'TH' || el.dataset.task === pick.taskId) {
        el.classList.add('jp-mod-selected');
      }
    }
  }

  private onClick(event: MouseEvent): void {
    const target = (event.target as HTMLElement).closest<HTMLElement>('[data-run]');
    if (!target || !target.dataset.run) {
      return;
    }
    this._picked.emit({ runId: target.dataset.run, taskId: target.dataset.task ?? null });
  }
}

/**
 * Task details: one task instance of one run, with its tries, error, output, the executed notebook
 * and HTML report of a notebook task, and its log, followed while the task runs.
 */
import { Widget } from '@lumino/widgets';

import { ApiError, IOutputInfo, ITaskDetail, ITaskInstance, api } from './api';
import { button, h, replaceChildren } from './dom';
import { isFinished, paintBadge, styleOf } from './states';
import { Ticker } from './ticker';
import { LOCAL_ZONE, duration, localTime, runLabelOfId, timeTitle } from './time';

/** 312 MiB, 2.0 GiB: a size in bytes as people read it (as the CLI and the notebook panel print it). */
function bytesText(size: number): string {
  if (size >= 2 ** 30) {
    return `${(size / 2 ** 30).toFixed(1)} GiB`;
  }
  if (size >= 2 ** 20) {
    return `${Math.round(size / 2 ** 20)} MiB`;
  }
  return size >= 1024 ? `${Math.round(size / 1024)} KiB` : `${size} B`;
}

export interface IDetailsActions {
  /** Open a notebook (a path relative to the server's root) in Lab. */
  openNotebook(path: string): void;
  /** Show an HTML page served by the API in a main-area tab. */
  openHtml(title: string, url: string): void;
  /** Something about a DAG changed here (a run was triggered, the DAG paused). */
  changed?(dagId: string): void;
  /** Open another DAG's view (a DAG an asset connects this one to). */
  openDag?(dagId: string): void;
  /** Show where a DAG is written: its file or notebook cell. */
  showSource?(dagId: string): void;
}

interface ISelection {
  dagId: string;
  runId: string;
  taskId: string;
}

export class TaskDetails extends Widget {
  private selection: ISelection | null = null;
  private detail: ITaskDetail | null = null;
  private tryNumber: number | null = null;
  private logOffset = 0;
  private logComplete = false;
  private readonly header = h('div', { class: 'nbflow-Details-header' });
  private readonly facts = h('div', { class: 'nbflow-Details-facts' });
  private readonly actions = h('div', { class: 'nbflow-Details-actions' });
  private readonly logHead = h('div', { class: 'nbflow-Details-logHead' });
  private readonly logText = h('pre', { class: 'nbflow-Details-log' });
  private readonly ticker: Ticker;

  constructor(private readonly handlers: IDetailsActions) {
    super();
    this.addClass('nbflow-Details');
    this.node.append(this.header, this.facts, this.actions, this.logHead, this.logText);
    this.ticker = new Ticker(() => this.tick(), () => 1000);
    this.showEmpty();
  }

  get current(): ISelection | null {
    return this.selection;
  }

  /** Show one task instance; reloads when it is already shown. */
  showTask(dagId: string, runId: string, taskId: string): void {
    const same =
      this.selection?.dagId === dagId && this.selection.runId === runId && this.selection.taskId === taskId;
    if (!same) {
      this.selection = { dagId, runId, taskId };
      this.detail = null;
      this.tryNumber = null;
      this.resetLog();
      replaceChildren(this.header, h('h3', {}, taskId), h('span', { class: 'nbflow-Muted' }, 'loading…'));
      replaceChildren(this.facts);
      replaceChildren(this.actions);
    }
    this.ticker.start();
  }

  /** Look again now (the run moved on). */
  refresh(): void {
    if (this.selection) {
      this.ticker.start();
    }
  }

  clear(): void {
    this.selection = null;
    this.ticker.stop();
    this.showEmpty();
  }

  dispose(): void {
    this.ticker.stop();
    super.dispose();
  }

  private showEmpty(): void {
    replaceChildren(this.header, h('p', { class: 'nbflow-Empty' }, 'Click a task in the graph or the grid to see its details and log.'));
    replaceChildren(this.facts);
    replaceChildren(this.actions);
    replaceChildren(this.logHead);
    this.logText.textContent = '';
    this.logText.hidden = true;
  }

  private resetLog(): void {
    this.logOffset = 0;
    this.logComplete = false;
    this.logText.textContent = '';
  }

  private async tick(): Promise<void> {
    const selection = this.selection;
    if (!selection) {
      this.ticker.stop();
      return;
    }
    let detail: ITaskDetail;
    try {
      detail = await api.task(selection.dagId, selection.runId, selection.taskId);
    } catch (error) {
      if (selection !== this.selection) {
        return;
      }
      const notRun = error instanceof ApiError && error.status === 404;
      replaceChildren(
        this.header,
        h('h3', {}, selection.taskId),
        h('p', { class: notRun ? 'nbflow-Empty' : 'nbflow-Error' }, notRun ? 'This task has not run in this run.' : String(error))
      );
      this.ticker.stop();
      return;
    }
    if (selection !== this.selection) {
      return;
    }
    this.detail = detail;
    if (this.tryNumber === null || !detail.tries.some(t => t.try_number === this.tryNumber)) {
      this.tryNumber = detail.try_number || (detail.tries.length ? detail.tries[detail.tries.length - 1].try_number : 1);
      this.resetLog();
    }
    this.renderDetail(detail);
    if (detail.instances && detail.instances.length) {
      // a mapped task runs as its instances: the logs are theirs
      replaceChildren(this.logHead, h('span', { class: 'nbflow-Section' }, 'Log'));
      this.logText.textContent = '';
      this.logText.hidden = false;
      this.logText.dataset.empty =
        `A mapped task has no log of its own; each instance has one: nbflow tasks logs ${selection.dagId} ` +
        `${selection.taskId} --map-index N`;
      this.logComplete = true;
    } else {
      await this.readLog(selection);
    }
    if (isFinished(detail.state) && this.logComplete) {
      this.ticker.stop();
    }
  }

  private renderDetail(detail: ITaskDetail): void {
    const mapped = Boolean(detail.instances && detail.instances.length);
    // the header and facts follow the try picked under Log (the latest one until another is picked)
    const picked = mapped ? undefined : detail.tries.find(t => t.try_number === this.tryNumber);
    const shown = picked && picked.try_number !== detail.try_number
      ? {
          state: picked.state ?? null,
          try_number: picked.try_number,
          start_date: picked.start_date ?? null,
          end_date: picked.end_date ?? null,
          duration: picked.duration ?? null,
          hostname: picked.hostname ?? null,
          error: picked.error ?? null
        }
      : detail;
    const badge = h('span', { class: 'nbflow-Badge nbflow-StateLabel' }, styleOf(shown.state).label);
    paintBadge(badge, shown.state);
    replaceChildren(this.header, h('h3', { title: detail.task_id }, detail.task_id), badge);

    const rows: [string, string, string?][] = [
      ['run', runLabelOfId(this.selection?.runId ?? ''), this.selection?.runId ?? ''],
      ...(mapped ? [] : [['try', `${shown.try_number} of ${detail.max_tries}`] as [string, string]]),
      ['started', localTime(shown.start_date, true), timeTitle(shown.start_date)],
      ['ended', localTime(shown.end_date, true), timeTitle(shown.end_date)],
      ['duration', duration(shown.duration)],
      ...(mapped ? [] : [['host', shown.hostname ?? '—'] as [string, string]])
    ];
    const current = detail.tries.find(t => t.try_number === shown.try_number);
    if (!mapped && current?.worker) {
      rows.push(['worker', current.worker, 'the cluster worker that ran this try']);
    }
    if (!mapped && current?.peak_rss) {
      rows.push(['peak memory', bytesText(current.peak_rss), 'most resident memory of the try and the processes it started']);
    }
    if (detail.progress) {
      const p = detail.progress;
      rows.push(['progress', `cell ${p.cell} of ${p.cells} · ${duration(p.elapsed)}`]);
    }
    const table = h('table', { class: 'nbflow-Facts' });
    for (const [name, value, title] of rows) {
      table.append(h('tr', {}, h('th', {}, name), h('td', { title: title ?? value }, value)));
    }
    const parts: (Node | null)[] = [table, h('p', { class: 'nbflow-Muted' }, `Times in local time (${LOCAL_ZONE}).`)];
    if (shown.error) {
      const lines = shown.error.trim().split('\n');
      const last = lines[lines.length - 1];
      parts.push(
        h('div', { class: 'nbflow-Section' }, 'Error'),
        h('div', { class: 'nbflow-Details-errorLine' }, last),
        lines.length > 1
          ? h('details', { class: 'nbflow-Details-traceback' }, h('summary', {}, 'traceback'), h('pre', { class: 'nbflow-Details-error' }, shown.error))
          : null
      );
    }
    if (detail.instances && detail.instances.length) {
      parts.push(instancesSection(detail.instances));
    }
    if (detail.output_preview && shown === detail) {
      parts.push(
        h('div', { class: 'nbflow-Section' }, 'Output ', h('span', { class: 'nbflow-Muted nbflow-Details-outputInfo' }, outputInfo(detail.output))),
        h('pre', { class: 'nbflow-Details-output' }, detail.output_preview)
      );
    }
    replaceChildren(this.facts, ...parts);
    this.renderActions(detail);
  }

  private renderActions(detail: ITaskDetail): void {
    const selection = this.selection;
    const notebook = detail.notebook;
    if (!selection || !notebook) {
      replaceChildren(this.actions);
      return;
    }
    const { dagId, runId, taskId } = selection;
    const buttons: HTMLButtonElement[] = [];
    if (notebook.lab_path) {
      const path = notebook.lab_path;
      buttons.push(button('Open output notebook', () => this.handlers.openNotebook(path), {
        class: 'jp-Button jp-mod-styled jp-mod-accept nbflow-OpenNotebook',
        title: path
      }));
    } else if (notebook.output_path) {
      buttons.push(button('View executed notebook', () =>
        this.handlers.openHtml(`${taskId} · notebook`, api.notebookHtmlUrl(dagId, runId, taskId)), {
        class: 'jp-Button jp-mod-styled jp-mod-accept nbflow-ViewNotebook',
        title: notebook.output_path
      }));
    }
    if (notebook.report_path) {
      buttons.push(button('Show HTML report', () =>
        this.handlers.openHtml(`${taskId} · report`, api.reportUrl(dagId, runId, taskId)), {
        class: 'jp-Button jp-mod-styled jp-mod-accept nbflow-OpenReport',
        title: notebook.report_path
      }));
    }
    replaceChildren(this.actions, ...buttons);
  }

  private renderLogHead(): void {
    const detail = this.detail;
    if (!detail) {
      return;
    }
    const title = h('span', { class: 'nbflow-Section' }, 'Log');
    if (detail.tries.length <= 1) {
      replaceChildren(this.logHead, title);
      return;
    }
    const select = h('select', { class: 'jp-mod-styled nbflow-TrySelect', title: 'Which try' });
    for (const t of detail.tries) {
      const peak = t.peak_rss ? ` · ${bytesText(t.peak_rss)}` : '';
      const option = h('option', { value: t.try_number }, `try ${t.try_number}${t.state ? ` · ${styleOf(t.state).label}` : ''}${peak}`);
      option.selected = t.try_number === this.tryNumber;
      select.append(option);
    }
    select.addEventListener('change', () => {
      this.tryNumber = Number(select.value);
      this.resetLog();
      if (this.detail) {
        this.renderDetail(this.detail);
      }
      this.ticker.start();
    });
    replaceChildren(this.logHead, title, select);
  }

  private async readLog(selection: ISelection): Promise<void> {
    this.renderLogHead();
    this.logText.hidden = false;
    if (this.logComplete || this.tryNumber === null) {
      return;
    }
    try {
      // Read everything there is now, a chunk at a time.
      for (let i = 0; i < 20; i++) {
        const chunk = await api.log(selection.dagId, selection.runId, selection.taskId, this.tryNumber, this.logOffset);
        if (selection !== this.selection) {
          return;
        }
        const atBottom = this.logText.scrollHeight - this.logText.scrollTop - this.logText.clientHeight < 24;
        if (chunk.text) {
          this.logText.append(chunk.text);
        }
        const moved = chunk.offset !== this.logOffset;
        this.logOffset = chunk.offset;
        this.logComplete = chunk.complete;
        if (atBottom) {
          this.logText.scrollTop = this.logText.scrollHeight;
        }
        if (chunk.complete || !moved || !chunk.text) {
          break;
        }
      }
      if (!this.logText.textContent) {
        this.logText.dataset.empty = this.logComplete ? 'This try wrote no log.' : 'Waiting for the log…';
      } else {
        delete this.logText.dataset.empty;
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        this.logText.dataset.empty = 'No log for this try.';
        this.logComplete = true;
      } else {
        throw error;
      }
    }
  }
}

/** A mapped task's instances: one row each (failed ones first, at most 50), state, try and error line. */
function instancesSection(instances: ITaskInstance[]): HTMLElement {
  const failed = (s: string | null) => s === 'failed' || s === 'upstream_failed';
  const ordered = [...instances].sort(
    (a, b) => Number(failed(b.state)) - Number(failed(a.state)) || (a.map_index ?? 0) - (b.map_index ?? 0)
  );
  const table = h('table', { class: 'nbflow-Facts nbflow-Details-instances' });
  for (const ti of ordered.slice(0, 50)) {
    const badge = h('span', { class: 'nbflow-Badge nbflow-StateLabel' }, styleOf(ti.state).label);
    paintBadge(badge, ti.state);
    const lines = (ti.error ?? '').trim().split('\n');
    table.append(
      h('tr', {}, h('th', {}, `[${ti.map_index}]`), h('td', {}, badge), h('td', {}, `try ${ti.try_number}`),
        h('td', { class: 'nbflow-Details-errorLine' }, ti.error ? lines[lines.length - 1] : ''))
    );
  }
  const more = instances.length > 50 ? h('p', { class: 'nbflow-Muted' }, `… and ${instances.length - 50} more`) : null;
  return h('div', {}, h('div', { class: 'nbflow-Section' }, `Mapped instances (${instances.length})`), table, more);
}

/** "str · json · 18 bytes": the output's type, how it is kept, and its size. */
function outputInfo(output: IOutputInfo | null | undefined): string {
  if (!output) {
    return '';
  }
  const size = output.size === null ? null : output.size === 1 ? '1 byte' : `${output.size.toLocaleString('en')} bytes`;
  // an output over dask_keep_outputs_over stays on the Dask cluster: the store has its preview only
  const kept = output.kind === 'cluster' ? 'kept on the Dask cluster' : output.kind;
  return [output.type, kept, size].filter(part => part).join(' · ');
}

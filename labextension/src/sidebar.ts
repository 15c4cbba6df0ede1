/**
 * The left-sidebar panel: every DAG with the state of its last run, its schedule and next run in
 * local time, the pause switch, a trigger button and its recent runs; then the files that failed
 * to load. It polls the DAG list only while it is visible, faster while a run is active.
 */
import { Notification } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IDagList, IDagSummary, IImportError, IRunSummary, ISchedulerHost, api } from './api';
import { button, h, replaceChildren } from './dom';
import { nbflowIcon } from './icons';
import { paintBadge, styleOf } from './states';
import { pauseSwitch } from './switch';
import { Ticker } from './ticker';
import { openTriggerDialog } from './trigger';
import { preferences } from './preferences';
import { LOCAL_ZONE, localTime, relative, runLabel, runTitle, timeTitle } from './time';

/** An unchanged list is still redrawn this often, so that relative times stay true. */
const REDRAW_AFTER_MS = 60_000;

/** While a run is active (the idle interval is the refreshInterval setting). */
const ACTIVE_INTERVAL = 1500;

export interface ISidebarActions {
  openDag(dagId: string, runId?: string): void;
  scheduleNotebook(): void;
  /** Show where a DAG is written. */
  showSource(dagId: string): void;
}

export class DagListPanel extends Widget {
  private list: IDagList | null = null;
  private readonly body = h('div', { class: 'nbflow-Sidebar-body' });
  private readonly errors = h('div', { class: 'nbflow-Sidebar-errors' });
  private readonly footer = h('div', { class: 'nbflow-Sidebar-footer nbflow-Muted' });
  /** where the running scheduler hosts send their tasks, when that is a Dask cluster */
  private readonly clusters = h('div', { class: 'nbflow-Sidebar-clusters nbflow-Muted' });
  private hosts: ISchedulerHost[] = [];
  private readonly ticker: Ticker;
  private drawnKey = '';
  private drawnAt = 0;
  private problem: string | null = null;

  constructor(private readonly actions: ISidebarActions) {
    super();
    this.id = 'nbflow-sidebar';
    this.addClass('nbflow-Sidebar');
    this.title.icon = nbflowIcon;
    this.title.caption = 'nbflow: DAGs and runs';
    const header = h(
      'div',
      { class: 'nbflow-Sidebar-header' },
      h('h2', {}, 'nbflow'),
      h('span', { class: 'nbflow-Spacer' }),
      button('Schedule…', () => this.actions.scheduleNotebook(), {
        class: 'jp-Button jp-mod-minimal nbflow-ScheduleButton',
        title: 'Schedule a notebook: run it on a cron schedule'
      }),
      button('⟳', () => this.refresh(), { class: 'jp-Button jp-mod-minimal nbflow-Refresh', title: 'Refresh' })
    );
    this.node.append(header, this.body, this.errors, this.clusters, this.footer);
    this.ticker = new Ticker(() => this.load(), () =>
      this.anyActive() ? preferences.activeInterval(ACTIVE_INTERVAL) : preferences.idleInterval
    );
    // a new interval applies from now, not after the wait already under way
    preferences.changed.connect(() => {
      if (this.ticker.isStarted) {
        this.ticker.now();
      }
    });
    replaceChildren(this.body, h('p', { class: 'nbflow-Empty' }, 'Loading DAGs…'));
  }

  /** Load the list again now. */
  refresh(): void {
    this.ticker.now();
  }

  /** The DAGs shown, as last loaded. */
  get dags(): IDagSummary[] {
    return this.list?.dags ?? [];
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.ticker.start();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.ticker.start();
    }
  }

  protected onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    this.ticker.stop();
  }

  dispose(): void {
    this.ticker.stop();
    super.dispose();
  }

  private anyActive(): boolean {
    return this.dags.some(dag => dag.active_runs > 0);
  }

  private async load(): Promise<void> {
    try {
      this.list = await api.listDags();
      this.problem = null;
    } catch (error) {
      this.problem = String(error instanceof Error ? error.message : error);
    }
    try {
      this.hosts = (await api.scheduler()).hosts.filter(host => host.state === 'running');
    } catch {
      this.hosts = []; // the DAG list says what is wrong with the server
    }
    this.renderClusters();
    this.render();
  }

  private render(): void {
    if (this.problem) {
      replaceChildren(this.body, h('p', { class: 'nbflow-Error' }, `Could not load the DAGs: ${this.problem}`));
      return;
    }
    const list = this.list;
    if (!list) {
      return;
    }
    if (!list.dags.length) {
      replaceChildren(
        this.body,
        h('p', { class: 'nbflow-Empty' }, 'No DAGs yet. Put a DAG file into dags_folder, or schedule a notebook.')
      );
    } else {
      // Redraw only when something changed (or a minute passed, for the "in 18 h" texts): a redraw
      // replaces the rows, and a click whose press and release straddle it would be lost.
      const key = JSON.stringify(list.dags);
      const now = Date.now();
      if (key === this.drawnKey && now - this.drawnAt < REDRAW_AFTER_MS && this.body.querySelector('.nbflow-DagList')) {
        this.renderErrors(list.import_errors);
        return;
      }
      this.drawnKey = key;
      this.drawnAt = now;
      const sorted = [...list.dags].sort((a, b) => a.dag_id.localeCompare(b.dag_id));
      replaceChildren(this.body, h('ul', { class: 'nbflow-DagList' }, ...sorted.map(dag => this.row(dag))));
    }
    this.renderErrors(list.import_errors);
    this.footer.textContent = `Times in local time (${LOCAL_ZONE}).`;
  }

  private row(dag: IDagSummary): HTMLLIElement {
    const last = dag.last_run;
    const badge = h('span', { class: 'nbflow-Badge nbflow-DagBadge' }, last ? styleOf(last.state).label : 'no runs');
    paintBadge(badge, last?.state ?? null, last ? `last run ${last.run_id}: ${last.state}` : 'never run');
    const shown = dag.dag_display_name || dag.dag_id;
    const hint = [shown === dag.dag_id ? '' : dag.dag_id, dag.description || dag.fileloc || ''].filter(Boolean).join(' · ');
    const name = h('a', { class: 'nbflow-DagName', href: '#', title: hint || dag.dag_id }, shown);
    name.addEventListener('click', event => {
      event.preventDefault();
      this.actions.openDag(dag.dag_id);
    });
    const source = button('</>', () => this.actions.showSource(dag.dag_id), {
      class: 'jp-Button jp-mod-minimal nbflow-SourceButton',
      title: `Show the source of ${dag.dag_id}${dag.fileloc ? `: ${dag.fileloc}` : ''}`
    });
    const trigger = button('▶', () => this.trigger(dag), {
      class: 'jp-Button jp-mod-minimal nbflow-Trigger',
      title: `Trigger ${dag.dag_id} now`
    });
    const schedule = dag.schedule
      ? h('span', { title: `${dag.schedule} (${dag.timezone})` }, dag.schedule_text || dag.schedule)
      : h('span', {}, 'manual only');
    const next = dag.next_run && !dag.is_paused
      ? h('span', { class: 'nbflow-Next', title: timeTitle(dag.next_run, dag.timezone) },
          `next ${localTime(dag.next_run)} (${relative(dag.next_run)})`)
      : null;
    const runs = h('span', { class: 'nbflow-RecentRuns' }, ...[...dag.recent_runs].reverse().map(run => this.runChip(dag, run)));
    const li = h(
      'li',
      { class: `nbflow-DagRow${dag.is_paused ? ' nbflow-mod-paused' : ''}`, 'data-dag-id': dag.dag_id },
      h('div', { class: 'nbflow-DagRow-top' }, name, h('span', { class: 'nbflow-Spacer' }), source, trigger, pauseSwitch(dag, () => this.refresh())),
      h('div', { class: 'nbflow-DagRow-meta' }, badge, schedule, dag.is_paused ? h('span', { class: 'nbflow-Tag' }, 'paused') : null, next),
      dag.recent_runs.length ? h('div', { class: 'nbflow-DagRow-runs' }, runs,
        dag.active_runs ? h('span', { class: 'nbflow-Muted' }, `${dag.active_runs} active`) : null) : null
    );
    return li;
  }

  private runChip(dag: IDagSummary, run: IRunSummary): HTMLElement {
    const chip = h('span', { class: 'nbflow-RunChip', 'data-run-id': run.run_id });
    paintBadge(chip, run.state, `${runLabel(run)} · ${run.state}\n${runTitle(run, dag.timezone)}`);
    chip.addEventListener('click', () => this.actions.openDag(dag.dag_id, run.run_id));
    return chip;
  }

  private async trigger(dag: IDagSummary): Promise<void> {
    try {
      // a DAG with params asks for them, as the DAG view's Trigger does
      const detail = await api.getDag(dag.dag_id);
      const triggered = detail.params.length ? await openTriggerDialog(detail) : await api.trigger(dag.dag_id);
      if (!triggered) {
        return;
      }
      const { run, how } = triggered;
      Notification.info(
        how === 'queued' ? `${dag.dag_id}: run ${runLabel(run)} queued for the scheduler` : `${dag.dag_id}: run ${runLabel(run)} started`,
        {
          autoClose: 3000,
          actions: [{ label: 'Show', callback: () => this.actions.openDag(dag.dag_id, run.run_id) }]
        }
      );
    } catch (error) {
      Notification.error(`nbflow: could not trigger ${dag.dag_id}: ${String(error instanceof Error ? error.message : error)}`, {
        autoClose: 8000
      });
    }
    this.refresh();
  }

  /** One line per Dask cluster the running hosts use, with its dashboard link. */
  private renderClusters(): void {
    const lines = this.hosts
      .filter(host => host.cluster)
      .map(host =>
        h(
          'div',
          { class: 'nbflow-ClusterLine', 'data-host-id': host.host_id },
          `${host.kind ?? 'scheduler'}: tasks run on the Dask cluster ${host.cluster}`,
          host.dashboard
            ? h('span', {}, ' · ', h('a', { href: host.dashboard, target: '_blank', rel: 'noopener', title: 'the cluster\'s Dask dashboard' }, 'dashboard'))
            : null
        )
      );
    replaceChildren(this.clusters, ...lines);
  }

  private renderErrors(errors: IImportError[]): void {
    if (!errors.length) {
      replaceChildren(this.errors);
      return;
    }
    const items = errors.map(error =>
      h(
        'details',
        { class: 'nbflow-ImportError' },
        h('summary', { title: error.fileloc }, h('strong', {}, error.fileloc.split('/').pop() ?? error.fileloc), ' ', error.summary),
        h('pre', {}, error.traceback)
      )
    );
    replaceChildren(
      this.errors,
      h('h3', {}, `Import errors (${errors.length})`),
      ...items
    );
  }
}

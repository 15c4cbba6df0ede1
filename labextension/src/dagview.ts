/**
 * The DAG view in the main area: a header with the schedule, the pause switch, the trigger button
 * and the run picker; the graph or the grid; the details of the task picked in either. It polls the
 * run's detail every second only while that run is active, and the run list every few seconds.
 */
import { Notification } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { BoxPanel, SplitPanel, StackedPanel, Widget } from '@lumino/widgets';

import { IDagDetail, IRunSummary, api } from './api';
import { IDetailsActions, TaskDetails } from './details';
import { GraphView } from './graph';
import { GridView } from './grid';
import { button, h, replaceChildren } from './dom';
import { isActive, paintBadge, styleOf } from './states';
import { pauseSwitch } from './switch';
import { Ticker } from './ticker';
import { openTriggerDialog } from './trigger';
import { LOCAL_ZONE, localTime, relative, runLabel, runTitle, timeTitle } from './time';
import { preferences } from './preferences';

const ACTIVE_INTERVAL = 1000;
/** While no run is active: the refreshInterval setting. */
const idleInterval = (): number => preferences.idleInterval;

type Tab = 'graph' | 'grid';

export class DagView extends BoxPanel {
  readonly dagId: string;
  readonly graph = new GraphView();
  readonly grid = new GridView();
  readonly details: TaskDetails;
  private readonly header = new Widget();
  private readonly headerInner = h('div', { class: 'nbflow-DagView-headerInner' });
  private readonly stack = new StackedPanel();
  private readonly ticker: Ticker;
  private dag: IDagDetail | null = null;
  private runs: IRunSummary[] = [];
  private runId: string | null = null;
  private follow = true;
  private runState: string | null = null;
  private statesLoadedFor: string | null = null;
  private lastRunsAt = 0;
  private lastGridAt = 0;
  private tab: Tab = preferences.defaultView;
  private selectedTask: string | null = null;
  /** the folded nodes opened in the graph, in order (the server replays them) */
  private opened: string[] = [];
  private readonly status = h('span', { class: 'nbflow-Muted nbflow-DagView-status' });

  constructor(dagId: string, runId: string | null, private readonly actions: IDetailsActions) {
    super({ direction: 'top-to-bottom', spacing: 0 });
    this.dagId = dagId;
    this.id = `nbflow-dag-${dagId}`;
    this.addClass('nbflow-DagView');
    this.title.label = dagId;
    this.title.caption = `nbflow DAG ${dagId}`;
    this.title.closable = true;
    this.details = new TaskDetails(actions);
    this.header.addClass('nbflow-DagView-header');
    this.header.node.append(this.headerInner);

    this.stack.addClass('nbflow-DagView-stack');
    this.stack.addWidget(this.graph);
    this.stack.addWidget(this.grid);
    this.grid.hide();
    const split = new SplitPanel({ orientation: 'horizontal', spacing: 1 });
    split.addClass('nbflow-DagView-split');
    split.addWidget(this.stack);
    split.addWidget(this.details);
    split.setRelativeSizes([3, 1.3]);
    BoxPanel.setStretch(this.header, 0);
    BoxPanel.setStretch(split, 1);
    this.addWidget(this.header);
    this.addWidget(split);

    this.graph.taskSelected.connect((_, taskId) => this.pickTask(taskId));
    this.graph.openRequested.connect((_, nodeId) => void this.openNode(nodeId));
    this.graph.closeRequested.connect((_, nodeId) => void this.closeNode(nodeId));
    this.grid.picked.connect((_, pick) => {
      this.chooseRun(pick.runId, false);
      if (pick.taskId) {
        this.pickTask(pick.taskId);
      }
    });
    this.ticker = new Ticker(() => this.tick(), () => (isActive(this.runState) ? preferences.activeInterval(ACTIVE_INTERVAL) : idleInterval()));
    if (runId) {
      this.runId = runId;
      this.follow = false;
    }
    void this.load();
  }

  /** Show a given run (or follow the newest, with null). */
  showRun(runId: string | null): void {
    if (runId) {
      this.chooseRun(runId, false);
    } else {
      this.follow = true;
      this.ticker.now();
    }
  }

  /** Which run the view shows, its state, and how long the graph took to draw. */
  get shown(): { runId: string | null; state: string | null } {
    return { runId: this.runId, state: this.runState };
  }

  dispose(): void {
    this.ticker.stop();
    super.dispose();
  }

  protected onCloseRequest(msg: Message): void {
    super.onCloseRequest(msg);
    this.dispose();
  }

  private async load(): Promise<void> {
    replaceChildren(this.headerInner, h('h2', {}, this.dagId), h('span', { class: 'nbflow-Muted' }, 'loading…'));
    try {
      const [dag, graph] = await Promise.all([api.getDag(this.dagId), api.graph(this.dagId)]);
      this.dag = dag;
      const ms = this.graph.setGraph(graph);
      this.graph.node.dataset.drawMs = ms.toFixed(0);
      this.graph.foldAll = () => void this.foldAll();
      this.renderHeader();
    } catch (error) {
      replaceChildren(this.headerInner, h('h2', {}, this.dagId), h('p', { class: 'nbflow-Error' }, String(error)));
      this.fitHeader();
      return;
    }
    this.ticker.start();
  }

  /** Open a folded node: the server folds the graph again with it opened, the rest in place. */
  private async openNode(nodeId: string): Promise<void> {
    try {
      const graph = await api.graph(this.dagId, [...this.opened, nodeId]);
      this.opened = [...this.opened, nodeId];
      const ms = this.graph.setGraph(graph, nodeId);
      this.graph.node.dataset.drawMs = ms.toFixed(0);
      if (this.selectedTask) {
        this.graph.select(this.selectedTask);
      }
      this.status.textContent = `opened ${nodeId.replace(/^(group|agg):/, '')}`;
    } catch (error) {
      Notification.error(`nbflow: could not open ${nodeId}: ${String(error)}`, { autoClose: 8000 });
    }
  }

  /** Close an open group (a double click on its box): the server replays the opens and this
   * close ("!" before the id), so the group folds again and the nodes opened inside it go with it. */
  private async closeNode(nodeId: string): Promise<void> {
    const steps = [...this.opened, `!${nodeId}`];
    try {
      const graph = await api.graph(this.dagId, steps);
      this.opened = steps;
      const ms = this.graph.setGraph(graph, nodeId);
      this.graph.node.dataset.drawMs = ms.toFixed(0);
      if (this.selectedTask) {
        this.graph.select(this.selectedTask);
      }
      this.status.textContent = `closed ${nodeId.replace(/^group:/, '')}`;
    } catch (error) {
      Notification.error(`nbflow: could not close ${nodeId}: ${String(error)}`, { autoClose: 8000 });
    }
  }

  /** Fold the graph again as it first showed. */
  private async foldAll(): Promise<void> {
    this.opened = [];
    const ms = this.graph.setGraph(await api.graph(this.dagId));
    this.graph.node.dataset.drawMs = ms.toFixed(0);
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const wasActive = isActive(this.runState);
    if (now - this.lastRunsAt >= idleInterval() - 100 || !this.runs.length) {
      await this.loadRuns();
    }
    if (this.runId && (isActive(this.runState) || this.statesLoadedFor !== this.runId)) {
      await this.loadRunStates(this.runId);
    }
    const ended = wasActive && !isActive(this.runState);
    if (ended) {
      await this.loadRuns();
      await this.loadDag();
    }
    if (this.tab === 'grid' && (ended || isActive(this.runState) || now - this.lastGridAt >= idleInterval() - 100)) {
      await this.loadGrid();
    }
  }

  private async loadDag(): Promise<void> {
    this.dag = await api.getDag(this.dagId);
    this.renderHeader();
  }

  private async loadRuns(): Promise<void> {
    const { runs } = await api.runs(this.dagId, 25);
    this.runs = runs;
    this.lastRunsAt = Date.now();
    if (this.follow) {
      this.runId = runs.length ? runs[0].run_id : null;
    }
    const current = runs.find(run => run.run_id === this.runId);
    if (current) {
      if (current.state !== this.runState) {
        // the run moved on (it may have ended since the last look at its tasks): load them again,
        // or the graph would keep the colours it had while the run was going
        this.statesLoadedFor = null;
      }
      this.runState = current.state;
    }
    this.renderRunPicker();
  }

  private async loadRunStates(runId: string): Promise<void> {
    const run = await api.run(this.dagId, runId);
    if (runId !== this.runId) {
      return;
    }
    const states: Record<string, string | null> = {};
    const counts: Record<string, Record<string, number>> = {};
    for (const ti of run.task_instances) {
      states[ti.task_id] = ti.state;
      if (ti.map_counts) {
        counts[ti.task_id] = ti.map_counts;
      }
    }
    this.graph.setStates(states);
    this.graph.setCounts(counts);
    const changed = this.runState !== run.state;
    this.runState = run.state;
    this.statesLoadedFor = runId;
    const index = this.runs.findIndex(r => r.run_id === runId);
    if (index >= 0) {
      this.runs[index] = { ...this.runs[index], state: run.state, end_date: run.end_date };
    }
    this.renderRunPicker();
    this.node.dataset.runState = run.state;
    if (changed || isActive(run.state)) {
      this.details.refresh();
    }
  }

  /** The assets the DAG updates and runs on, each with the DAGs on its other side (a click opens one). */
  private assetsLine(dag: IDagDetail): HTMLElement | null {
    const assets = dag.assets;
    if (!assets || (!assets.produces.length && !assets.consumes.length)) {
      return null;
    }
    const dagLink = (dagId: string) =>
      button(dagId, () => this.actions.openDag?.(dagId), { class: 'nbflow-AssetDag', title: `open DAG ${dagId}` });
    const items: HTMLElement[] = [];
    for (const a of assets.consumes) {
      items.push(
        h('span', { class: 'nbflow-Asset', 'data-role': 'consumes', title: a.last_event_at ? `last updated ${localTime(a.last_event_at)}` : 'no update yet' },
          '⟵ runs on ', h('code', {}, a.uri),
          ...(a.producers.length ? [' from ', ...a.producers.map(p => dagLink(p.dag_id))] : []))
      );
    }
    for (const a of assets.produces) {
      items.push(
        h('span', { class: 'nbflow-Asset', 'data-role': 'produces', title: `updated by ${a.tasks.join(', ')}` },
          'updates ', h('code', {}, a.uri), ' ⟶',
          ...(a.consumers.length ? [' ', ...a.consumers.map(dagLink)] : [' (no DAG runs on it)']))
      );
    }
    return h('div', { class: 'nbflow-DagView-assets' }, ...items);
  }

  private async loadGrid(): Promise<void> {
    this.grid.setGrid(await api.grid(this.dagId, 25));
    this.lastGridAt = Date.now();
    this.grid.select(this.runId ? { runId: this.runId, taskId: this.selectedTask } : null);
  }

  private chooseRun(runId: string, follow: boolean): void {
    this.follow = follow;
    if (runId !== this.runId) {
      this.runId = runId;
      this.runState = this.runs.find(run => run.run_id === runId)?.state ?? null;
      this.statesLoadedFor = null;
      if (this.selectedTask) {
        this.details.showTask(this.dagId, runId, this.selectedTask);
      }
    }
    this.grid.select({ runId, taskId: this.selectedTask });
    this.renderRunPicker();
    this.ticker.now();
  }

  private pickTask(taskId: string): void {
    this.selectedTask = taskId;
    this.graph.select(taskId);
    if (this.runId) {
      this.grid.select({ runId: this.runId, taskId });
      this.details.showTask(this.dagId, this.runId, taskId);
    }
  }

  private showTab(tab: Tab): void {
    this.tab = tab;
    if (tab === 'graph') {
      this.grid.hide();
      this.graph.show();
    } else {
      this.graph.hide();
      this.grid.show();
      void this.loadGrid();
    }
    for (const el of Array.from(this.header.node.querySelectorAll<HTMLElement>('[data-tab]'))) {
      el.classList.toggle('jp-mod-active', el.dataset.tab === tab);
    }
  }

  private async trigger(): Promise<void> {
    try {
      // a DAG with params asks for them first; the dialog shows the server's refusals itself
      const triggered = this.dag?.params.length ? await openTriggerDialog(this.dag) : await api.trigger(this.dagId);
      if (!triggered) {
        return;
      }
      const { run, how } = triggered;
      this.status.textContent = how === 'queued' ? `run ${runLabel(run)} queued for the scheduler` : `run ${runLabel(run)} started`;
      this.status.title = run.run_id;
      this.runs = [run, ...this.runs.filter(r => r.run_id !== run.run_id)];
      this.chooseRun(run.run_id, true);
      this.runState = run.state;
      this.actions.changed?.(this.dagId);
    } catch (error) {
      Notification.error(`nbflow: could not trigger ${this.dagId}: ${String(error)}`, { autoClose: 8000 });
    }
  }

  private renderHeader(): void {
    const dag = this.dag;
    if (!dag) {
      return;
    }
    this.title.label = dag.dag_display_name || dag.dag_id;
    this.title.caption = `nbflow DAG ${dag.dag_id}`;
    const next = dag.next_runs.length
      ? h(
          'span',
          { class: 'nbflow-DagView-next', title: dag.next_runs.map(t => timeTitle(t, dag.timezone)).join('\n\n') },
          `next: ${localTime(dag.next_runs[0])} (${relative(dag.next_runs[0])})`
        )
      : h('span', {}, dag.is_paused ? 'paused' : 'no scheduled runs');
    const schedule = dag.schedule
      ? h('span', { title: dag.schedule }, dag.schedule_text || dag.schedule)
      : h('span', {}, 'manual runs only');
    const tabs = h(
      'span',
      { class: 'nbflow-Tabs' },
      button('Graph', () => this.showTab('graph'), { class: 'nbflow-Tab', 'data-tab': 'graph' }),
      button('Grid', () => this.showTab('grid'), { class: 'nbflow-Tab', 'data-tab': 'grid' })
    );
    const select = h('select', { class: 'jp-mod-styled nbflow-RunSelect', title: 'Which run the graph shows' });
    select.addEventListener('change', () => {
      if (select.value === '') {
        this.follow = true;
        this.runId = this.runs.length ? this.runs[0].run_id : null;
        this.statesLoadedFor = null;
        this.ticker.now();
      } else {
        this.chooseRun(select.value, false);
      }
    });
    replaceChildren(
      this.headerInner,
      h(
        'div',
        { class: 'nbflow-DagView-title' },
        h('h2', { title: [dag.dag_id, dag.fileloc ?? ''].filter(Boolean).join(' · ') }, dag.dag_display_name || dag.dag_id),
        pauseSwitch(dag, updated => {
          if (this.dag) {
            this.dag = { ...this.dag, ...updated };
          }
          void this.loadDag();
          this.actions.changed?.(this.dagId);
        }),
        button('</> Source', () => this.actions.showSource?.(this.dagId), {
          class: 'jp-Button jp-mod-styled jp-mod-reject nbflow-SourceButton',
          title: `Show where ${dag.dag_id} is written${dag.fileloc ? `: ${dag.fileloc}` : ''}`
        }),
        button('▶ Trigger', () => this.trigger(), {
          class: 'jp-Button jp-mod-styled jp-mod-accept nbflow-Trigger',
          title: 'Start a manual run now'
        }),
        this.status
      ),
      h(
        'div',
        { class: 'nbflow-DagView-meta' },
        schedule,
        h('span', {}, dag.timezone),
        next,
        dag.owner ? h('span', {}, `owner: ${dag.owner}`) : null,
        ...dag.tags.map(tag => h('span', { class: 'nbflow-Tag' }, tag))
      ),
      dag.description ? h('p', { class: 'nbflow-DagView-description' }, dag.description) : null,
      this.assetsLine(dag),
      h(
        'div',
        { class: 'nbflow-DagView-controls' },
        tabs,
        h('label', { class: 'nbflow-RunPicker' }, 'Run ', select, h('span', { class: 'nbflow-Badge nbflow-RunBadge' })),
        h('span', { class: 'nbflow-Muted' }, `times in local time (${LOCAL_ZONE})`)
      )
    );
    this.showTab(this.tab);
    this.renderRunPicker();
    this.fitHeader();
  }

  /** Give the header the height its content needs (the box layout does not measure content). */
  private fitHeader(): void {
    const style = getComputedStyle(this.header.node);
    const height = this.headerInner.offsetHeight + parseFloat(style.paddingTop) + parseFloat(style.paddingBottom) + 1;
    if (this.headerInner.offsetHeight > 0 && Math.abs(height - this.header.node.offsetHeight) > 1) {
      this.header.node.style.minHeight = `${Math.ceil(height)}px`;
      this.header.node.style.maxHeight = `${Math.ceil(height)}px`;
      this.fit();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.fitHeader();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.fitHeader();
  }

  private renderRunPicker(): void {
    const select = this.header.node.querySelector<HTMLSelectElement>('.nbflow-RunSelect');
    const badge = this.header.node.querySelector<HTMLElement>('.nbflow-RunBadge');
    if (!select || !badge) {
      return;
    }
    const options: HTMLOptionElement[] = [h('option', { value: '' }, 'newest (follow)')];
    for (const run of this.runs) {
      const option = h('option', { value: run.run_id, title: runTitle(run, this.dag?.timezone) },
        `${runLabel(run)} · ${run.state}`);
      options.push(option);
    }
    replaceChildren(select, ...options);
    select.value = this.follow || !this.runId ? '' : this.runId;
    if (this.runId && this.runState) {
      badge.hidden = false;
      badge.textContent = styleOf(this.runState).label;
      paintBadge(badge, this.runState, this.runId);
    } else {
      badge.hidden = true;
    }
  }
}

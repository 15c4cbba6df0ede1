/**
 * "Schedule this notebook…": a dialog that turns a notebook into a single-notebook DAG. The cron
 * expression is previewed in words with its next five times as it is typed, the time zone comes
 * from the server's list, parameters from the notebook's `parameters` cell. Submitting writes the
 * DAG file into dags_folder (the same file `nbflow schedule` writes); errors stay in the dialog.
 */
import { Widget } from '@lumino/widgets';

import { ApiError, IScheduled, api } from './api';
import { button, h, replaceChildren } from './dom';
import { ParametersForm } from './params';
import { LOCAL_ZONE, localTime, zonedTime } from './time';

const PRESETS: [string, string][] = [
  ['0 7 * * *', 'every day at 07:00'],
  ['0 7 * * 1-5', 'weekdays at 07:00'],
  ['0 * * * *', 'every hour'],
  ['*/15 * * * *', 'every 15 minutes'],
  ['0 7 * * 1', 'Mondays at 07:00'],
  ['0 7 1 * *', 'the 1st of each month at 07:00']
];

function stem(path: string): string {
  const name = path.split('/').pop() ?? path;
  return name.replace(/\.ipynb$/, '');
}

function debounce(fn: () => void, ms: number): () => void {
  let timer: number | null = null;
  return () => {
    if (timer !== null) {
      window.clearTimeout(timer);
    }
    timer = window.setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

function message(error: unknown): string {
  if (error instanceof ApiError) {
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Open the dialog for `path`; resolves with the new DAG, or null when cancelled. */
export function openScheduleDialog(path: string): Promise<IScheduled | null> {
  return new Promise(resolve => {
    const dialog = new ScheduleDialog(path, resolve);
    Widget.attach(dialog, document.body);
    dialog.focus();
  });
}

class ScheduleDialog extends Widget {
  private readonly pathInput = h('input', { type: 'text', class: 'jp-mod-styled', name: 'path', spellcheck: 'false' });
  private readonly dagIdInput = h('input', { type: 'text', class: 'jp-mod-styled', name: 'dag_id', spellcheck: 'false' });
  private readonly cronInput = h('input', { type: 'text', class: 'jp-mod-styled nbflow-Cron', name: 'cron', spellcheck: 'false' });
  private readonly presets = h('select', { class: 'jp-mod-styled', title: 'Common schedules' });
  private readonly zoneInput = h('input', { type: 'text', class: 'jp-mod-styled', name: 'timezone', list: '', spellcheck: 'false' });
  private readonly zones = h('datalist', { id: `nbflow-zones-${Math.random().toString(36).slice(2, 8)}` });
  private readonly report = h('select', { class: 'jp-mod-styled', name: 'report' });
  private readonly preview = h('div', { class: 'nbflow-CronPreview', 'aria-live': 'polite' });
  private readonly params = new ParametersForm();
  private readonly problem = h('div', { class: 'nbflow-Error nbflow-Schedule-error' });
  private readonly submit: HTMLButtonElement;
  private previewToken = 0;
  private paramsToken = 0;
  private closed = false;

  constructor(path: string, private readonly done: (result: IScheduled | null) => void) {
    super();
    this.addClass('jp-Dialog');
    this.addClass('nbflow-ScheduleDialog');
    this.pathInput.value = path;
    this.dagIdInput.placeholder = `report_${stem(path)} (default)`;
    this.cronInput.value = PRESETS[0][0];
    this.cronInput.placeholder = 'minute hour day-of-month month day-of-week';
    this.zoneInput.setAttribute('list', this.zones.id);
    this.presets.append(h('option', { value: '' }, 'presets…'), ...PRESETS.map(([cron, text]) => h('option', { value: cron }, text)));
    this.report.append(h('option', { value: 'html' }, 'HTML report and executed notebook'), h('option', { value: 'none' }, 'executed notebook only'));

    this.submit = button('Schedule', () => this.onSubmit(), { class: 'jp-Dialog-button jp-mod-accept jp-mod-styled nbflow-Submit' });
    const cancel = button('Cancel', () => this.finish(null), { class: 'jp-Dialog-button jp-mod-reject jp-mod-styled' });

    const field = (label: string, input: HTMLElement, hint?: string) =>
      h('div', { class: 'nbflow-Field' }, h('label', {}, label), input, hint ? h('div', { class: 'nbflow-Muted' }, hint) : null);

    const content = h(
      'div',
      { class: 'jp-Dialog-content nbflow-ScheduleDialog-content', role: 'dialog', 'aria-label': 'Schedule a notebook' },
      h('div', { class: 'jp-Dialog-header' }, 'Schedule this notebook'),
      h(
        'div',
        { class: 'jp-Dialog-body nbflow-ScheduleDialog-body' },
        field('Notebook', this.pathInput, 'path relative to the Jupyter root'),
        h('div', { class: 'nbflow-Field nbflow-CronField' }, h('label', {}, 'Schedule (cron)'), h('div', { class: 'nbflow-Row' }, this.cronInput, this.presets), this.preview),
        field('Time zone', h('div', {}, this.zoneInput, this.zones), `the schedule is wall-clock time in this zone, DST included (yours is ${LOCAL_ZONE})`),
        field('Output', this.report),
        field('DAG id', this.dagIdInput),
        h('div', { class: 'nbflow-Field' }, h('label', {}, 'Parameters'), this.params.node),
        this.problem
      ),
      h('div', { class: 'jp-Dialog-footer' }, cancel, this.submit)
    );
    this.node.append(content);

    const previewSoon = debounce(() => void this.updatePreview(), 250);
    this.cronInput.addEventListener('input', previewSoon);
    this.zoneInput.addEventListener('input', previewSoon);
    this.zoneInput.addEventListener('change', previewSoon);
    this.presets.addEventListener('change', () => {
      if (this.presets.value) {
        this.cronInput.value = this.presets.value;
        this.presets.value = '';
        void this.updatePreview();
      }
    });
    const paramsSoon = debounce(() => void this.loadParameters(), 400);
    this.pathInput.addEventListener('input', () => {
      this.dagIdInput.placeholder = `report_${stem(this.pathInput.value)} (default)`;
      paramsSoon();
    });
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        event.preventDefault();
        this.finish(null);
      }
    });
    this.node.addEventListener('click', event => {
      if (event.target === this.node) {
        this.finish(null);
      }
    });
    void this.init();
  }

  focus(): void {
    this.cronInput.focus();
    this.cronInput.select();
  }

  private async init(): Promise<void> {
    try {
      const zones = await api.timezones();
      // the browser's zone: a person schedules "07:00" on their own clock, not the server's
      const known = LOCAL_ZONE === 'UTC' || zones.timezones.includes(LOCAL_ZONE);
      this.zoneInput.value = known ? LOCAL_ZONE : zones.default;
      for (const zone of zones.timezones) {
        this.zones.append(h('option', { value: zone }));
      }
    } catch (error) {
      this.zoneInput.value = LOCAL_ZONE;
      this.problem.textContent = `Could not load the time zones: ${message(error)}`;
    }
    await Promise.all([this.updatePreview(), this.loadParameters()]);
  }

  private async updatePreview(): Promise<void> {
    const token = ++this.previewToken;
    const cron = this.cronInput.value.trim();
    const zone = this.zoneInput.value.trim();
    if (!cron) {
      replaceChildren(this.preview, h('span', { class: 'nbflow-Muted' }, 'Type a cron expression, e.g. 0 7 * * *'));
      return;
    }
    try {
      const result = await api.cron(cron, zone, 5);
      if (token !== this.previewToken) {
        return;
      }
      this.cronInput.classList.remove('nbflow-mod-invalid');
      const items = result.next_runs.map((utc, i) =>
        h('li', {}, zonedTime(result.next_runs_local[i] ?? utc, result.timezone),
          result.timezone === LOCAL_ZONE ? null : h('span', { class: 'nbflow-Muted' }, ` · ${localTime(utc)} your time`))
      );
      replaceChildren(
        this.preview,
        h('div', { class: 'nbflow-CronText' }, result.description),
        h('ol', { class: 'nbflow-NextRuns' }, ...items)
      );
    } catch (error) {
      if (token !== this.previewToken) {
        return;
      }
      this.cronInput.classList.add('nbflow-mod-invalid');
      replaceChildren(this.preview, h('div', { class: 'nbflow-Error nbflow-CronError' }, message(error)));
    }
  }

  private async loadParameters(): Promise<void> {
    const token = ++this.paramsToken;
    const path = this.pathInput.value.trim();
    if (!path) {
      this.params.setParameters([], 'Name a notebook to see its parameters.');
      return;
    }
    try {
      const result = await api.parameters(path);
      if (token === this.paramsToken) {
        this.params.setParameters(result.parameters);
      }
    } catch (error) {
      if (token === this.paramsToken) {
        this.params.setParameters([], `Could not read the notebook's parameters: ${message(error)}`);
      }
    }
  }

  private async onSubmit(): Promise<void> {
    this.problem.textContent = '';
    let parameters: Record<string, unknown>;
    try {
      parameters = this.params.values();
    } catch (error) {
      this.problem.textContent = message(error);
      return;
    }
    const report = this.report.value === 'none' ? 'none' : 'html';
    const dagId = this.dagIdInput.value.trim();
    this.submit.disabled = true;
    try {
      const result = await api.schedule({
        path: this.pathInput.value.trim(),
        cron: this.cronInput.value.trim(),
        timezone: this.zoneInput.value.trim(),
        parameters,
        report,
        ...(dagId ? { dag_id: dagId } : {})
      });
      this.finish(result);
    } catch (error) {
      this.problem.textContent = message(error);
    } finally {
      this.submit.disabled = false;
    }
  }

  private finish(result: IScheduled | null): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.done(result);
    this.dispose();
  }
}

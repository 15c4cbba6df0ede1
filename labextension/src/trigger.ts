/**
 * The trigger dialog of a DAG that declares params: one field per param, typed by its JSON Schema
 * (or by its default), with its description and rules as help. Only the values someone changed are
 * sent as the run's conf, so the DAG's defaults stay in charge of the rest. The server checks every
 * Param; a refusal (one line naming the param) stays in the dialog, next to the field to fix.
 */
import { Widget } from '@lumino/widgets';

import { ApiError, IDagDetail, ITriggered, api } from './api';
import { button, h } from './dom';
import { ParametersForm } from './params';

function message(error: unknown): string {
  if (error instanceof ApiError) {
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Ask for `dag`'s params and trigger a run with them; resolves with the run, or null when cancelled. */
export function openTriggerDialog(dag: IDagDetail): Promise<ITriggered | null> {
  return new Promise(resolve => {
    const dialog = new TriggerDialog(dag, resolve);
    Widget.attach(dialog, document.body);
    dialog.focus();
  });
}

class TriggerDialog extends Widget {
  private readonly params = new ParametersForm();
  private readonly problem = h('div', { class: 'nbflow-Error nbflow-Trigger-error', 'aria-live': 'polite' });
  private readonly submit: HTMLButtonElement;
  private closed = false;

  constructor(
    private readonly dag: IDagDetail,
    private readonly done: (result: ITriggered | null) => void
  ) {
    super();
    this.addClass('jp-Dialog');
    this.addClass('nbflow-ScheduleDialog');
    this.addClass('nbflow-TriggerDialog');
    this.submit = button('Trigger', () => void this.onSubmit(), {
      class: 'jp-Dialog-button jp-mod-accept jp-mod-styled nbflow-Submit'
    });
    const cancel = button('Cancel', () => this.finish(null), { class: 'jp-Dialog-button jp-mod-reject jp-mod-styled' });
    const required = dag.params.filter(p => p.required).map(p => p.name);
    this.params.setParameters(dag.params);
    this.node.append(
      h(
        'div',
        { class: 'jp-Dialog-content nbflow-ScheduleDialog-content', role: 'dialog', 'aria-label': `Trigger ${dag.dag_id}` },
        h('div', { class: 'jp-Dialog-header' }, `Trigger ${dag.dag_display_name || dag.dag_id}`),
        h(
          'div',
          { class: 'jp-Dialog-body nbflow-ScheduleDialog-body' },
          h(
            'p',
            { class: 'nbflow-Muted' },
            required.length
              ? `Give ${required.join(', ')}; the other params keep their defaults unless you change them.`
              : 'The params keep their defaults unless you change them.'
          ),
          this.params.node,
          this.problem
        ),
        h('div', { class: 'jp-Dialog-footer' }, cancel, this.submit)
      )
    );
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        event.preventDefault();
        this.finish(null);
      }
    });
  }

  focus(): void {
    this.node.querySelector<HTMLElement>('input, textarea')?.focus();
  }

  private async onSubmit(): Promise<void> {
    this.problem.textContent = '';
    let conf: Record<string, unknown>;
    try {
      conf = this.params.values();
    } catch (error) {
      this.problem.textContent = message(error);
      return;
    }
    this.submit.disabled = true;
    try {
      this.finish(await api.trigger(this.dag.dag_id, conf));
    } catch (error) {
      this.problem.textContent = message(error);
    } finally {
      this.submit.disabled = false;
    }
  }

  private finish(result: ITriggered | null): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.done(result);
    this.dispose();
  }
}

/** The on/off switch that pauses and unpauses a DAG (on = runs are scheduled). */
import { api, IDagSummary } from './api';
import { h } from './dom';

export function pauseSwitch(dag: IDagSummary, changed: (dag: IDagSummary) => void): HTMLLabelElement {
  const input = h('input', { type: 'checkbox', class: 'nbflow-Switch-input' });
  input.checked = !dag.is_paused;
  const label = h(
    'label',
    { class: 'nbflow-Switch', title: dag.is_paused ? 'Paused: no new runs. Click to unpause.' : 'Scheduled. Click to pause.' },
    input,
    h('span', { class: 'nbflow-Switch-track' })
  );
  label.addEventListener('click', event => event.stopPropagation());
  input.addEventListener('change', () => {
    const paused = !input.checked;
    input.disabled = true;
    api
      .setPaused(dag.dag_id, paused)
      .then(updated => changed(updated))
      .catch(error => {
        input.checked = !paused;
        console.error('nbflow: could not change the pause switch:', error);
      })
      .finally(() => {
        input.disabled = false;
      });
  });
  return label;
}

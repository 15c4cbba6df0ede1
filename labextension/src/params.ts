/**
 * The parameters form of the schedule dialog, built from the notebook's `parameters` cell: one
 * input per parameter, typed by its default. Only the values someone changed are sent, so the
 * notebook's own defaults stay in charge of the rest.
 */
import type { INotebookParameter } from './api';
import { h } from './dom';

interface IField {
  parameter: INotebookParameter;
  input: HTMLInputElement | HTMLTextAreaElement;
  touched: boolean;
}

function initialText(parameter: INotebookParameter): string {
  const value = parameter.default;
  if (value === null || value === undefined) {
    return parameter.source ?? '';
  }
  if (typeof value === 'string') {
    return value;
  }
  // Show the default as written in the notebook when that is JSON too ("[3, 1, 2]").
  try {
    JSON.parse(parameter.source);
    return parameter.source;
  } catch {
    return JSON.stringify(value);
  }
}

/** Parse what was typed for `parameter`; throws an Error that names the parameter. */
function parse(parameter: INotebookParameter, input: HTMLInputElement | HTMLTextAreaElement): unknown {
  const text = input.value;
  const name = parameter.name;
  switch (parameter.type) {
    case 'bool':
      return (input as HTMLInputElement).checked;
    case 'int': {
      if (!/^\s*[-+]?\d+\s*$/.test(text)) {
        throw new Error(`${name} must be a whole number, not "${text}"`);
      }
      return Number.parseInt(text, 10);
    }
    case 'float': {
      const value = Number(text);
      if (text.trim() === '' || Number.isNaN(value)) {
        throw new Error(`${name} must be a number, not "${text}"`);
      }
      return value;
    }
    case 'str':
      return text;
    case 'list':
    case 'dict': {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new Error(`${name} must be JSON (${parameter.type === 'list' ? 'e.g. [1, 2]' : 'e.g. {"a": 1}'})`);
      }
      const isList = Array.isArray(value);
      const isDict = value !== null && typeof value === 'object' && !isList;
      if ((parameter.type === 'list' && !isList) || (parameter.type === 'dict' && !isDict)) {
        throw new Error(`${name} must be a JSON ${parameter.type === 'list' ? 'list' : 'object'}`);
      }
      return value;
    }
    default:
      // Like `nbflow schedule -p key=value`: JSON when it parses, else the text itself.
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
  }
}

export class ParametersForm {
  readonly node = h('div', { class: 'nbflow-Params' });
  private fields: IField[] = [];

  /** Show the form for `parameters` (an empty list says there is nothing to fill). */
  setParameters(parameters: INotebookParameter[], note?: string): void {
    this.node.textContent = '';
    this.fields = [];
    if (!parameters.length) {
      this.node.append(h('p', { class: 'nbflow-Muted' }, note ?? 'This notebook has no cell tagged "parameters".'));
      return;
    }
    for (const parameter of parameters) {
      const id = `nbflow-param-${parameter.name}-${Math.random().toString(36).slice(2, 8)}`;
      let input: HTMLInputElement | HTMLTextAreaElement;
      if (parameter.type === 'bool') {
        input = h('input', { type: 'checkbox', id });
        (input as HTMLInputElement).checked = parameter.default === true;
      } else if (parameter.type === 'list' || parameter.type === 'dict') {
        input = h('textarea', { id, rows: 2, class: 'jp-mod-styled', spellcheck: 'false' });
        input.value = initialText(parameter);
      } else {
        const numeric = parameter.type === 'int' || parameter.type === 'float';
        input = h('input', {
          id,
          type: 'text',
          inputmode: numeric ? 'decimal' : null,
          class: 'jp-mod-styled',
          spellcheck: 'false'
        });
        input.value = initialText(parameter);
        if (parameter.type === 'str') {
          input.placeholder = 'text; templates such as {{ ds }} are filled in per run';
        }
      }
      input.dataset.param = parameter.name;
      const field: IField = { parameter, input, touched: false };
      input.addEventListener('input', () => {
        field.touched = true;
      });
      input.addEventListener('change', () => {
        field.touched = true;
      });
      this.fields.push(field);
      this.node.append(
        h(
          'div',
          { class: 'nbflow-Param' },
          h('label', { for: id, title: `default: ${parameter.source}` }, parameter.name, h('span', { class: 'nbflow-ParamType' }, parameter.type)),
          input,
          parameter.help ? h('div', { class: 'nbflow-Muted nbflow-ParamHelp' }, parameter.help) : null
        )
      );
    }
  }

  /** The values changed from the notebook's defaults; throws on a value that does not parse. */
  values(): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const field of this.fields) {
      if (field.touched) {
        values[field.parameter.name] = parse(field.parameter, field.input);
      }
    }
    return values;
  }
}

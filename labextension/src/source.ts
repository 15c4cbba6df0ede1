/**
 * "Source": where a DAG is written, from every DAG view. A file inside the server's root opens in
 * Lab itself: a `.py` file in the editor with the cursor on the line that defines the DAG, a
 * notebook scrolled to its `%%dag` cell. A file outside the root (dags_folder elsewhere) is shown
 * read-only in a tab, the defining line marked.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IDagSource, api } from './api';
import { h } from './dom';
import { nbflowIcon } from './icons';

interface IPosition {
  line: number;
  column: number;
}

/** What Lab's file editor and notebook widgets offer, as far as this module uses them. */
interface IEditorLike {
  setCursorPosition(position: IPosition): void;
  revealPosition?(position: IPosition): void;
  focus(): void;
}

interface IOpened extends Widget {
  context?: { ready: Promise<void> };
  content?: {
    editor?: IEditorLike;
    widgets?: { editor: IEditorLike | null }[];
    activeCellIndex?: number;
    scrollToCell?(cell: unknown, align?: string): Promise<void>;
  };
}

/** Show the source of `dagId`; resolves with the widget that shows it. */
export async function openDagSource(app: JupyterFrontEnd, dagId: string): Promise<Widget | null> {
  let found: IDagSource;
  try {
    found = await api.source(dagId);
  } catch (error) {
    Notification.error(`nbflow: no source for ${dagId}: ${error instanceof Error ? error.message : String(error)}`, {
      autoClose: 8000
    });
    return null;
  }
  if (found.lab_path) {
    const opened = (await app.commands.execute('docmanager:open', {
      path: found.lab_path,
      factory: found.kind === 'notebook' ? 'Notebook' : 'Editor'
    })) as IOpened | undefined;
    if (opened) {
      await goTo(opened, found);
      opened.node.dataset.nbflowSourceLine = String(found.line);
      return opened;
    }
  }
  return showReadOnly(app, found);
}

async function goTo(widget: IOpened, found: IDagSource): Promise<void> {
  await widget.context?.ready;
  const position = { line: Math.max(0, found.line - 1), column: 0 };
  const content = widget.content;
  if (!content) {
    return;
  }
  if (found.kind === 'notebook' && found.cell !== null && content.widgets) {
    const cell = content.widgets[found.cell];
    if (!cell) {
      return;
    }
    content.activeCellIndex = found.cell;
    await content.scrollToCell?.(cell, 'start');
    cell.editor?.setCursorPosition(position);
    return;
  }
  const editor = content.editor;
  if (editor) {
    editor.setCursorPosition(position);
    editor.revealPosition?.(position);
    editor.focus();
  }
}

/** A read-only tab with the source, its lines numbered and the defining line marked and in view. */
function showReadOnly(app: JupyterFrontEnd, found: IDagSource): Widget {
  const lines = found.text.split('\n');
  const body = h('div', { class: 'nbflow-Source-lines' });
  lines.forEach((text, index) => {
    const row = h(
      'div',
      { class: `nbflow-Source-line${index + 1 === found.line ? ' jp-mod-selected' : ''}`, 'data-line': index + 1 },
      h('span', { class: 'nbflow-Source-number' }, String(index + 1)),
      h('span', { class: 'nbflow-Source-text' }, text || ' ')
    );
    body.append(row);
  });
  const where = found.cell === null ? `${found.path}, line ${found.line}` : `${found.path}, cell ${found.cell + 1}`;
  const content = new Widget();
  content.addClass('nbflow-Source');
  content.node.append(
    h('div', { class: 'nbflow-Source-where nbflow-Muted' }, `${where} (read-only: outside the Jupyter root)`),
    body
  );
  const widget = new MainAreaWidget({ content });
  widget.id = `nbflow-source-${found.dag_id}-${Date.now()}`;
  widget.title.label = `${found.dag_id} · source`;
  widget.title.caption = where;
  widget.title.icon = nbflowIcon;
  widget.title.closable = true;
  app.shell.add(widget, 'main', { mode: 'split-right' });
  app.shell.activateById(widget.id);
  requestAnimationFrame(() => body.querySelector('.jp-mod-selected')?.scrollIntoView({ block: 'center' }));
  return widget;
}

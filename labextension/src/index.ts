/**
 * nbflow in JupyterLab: the DAGs sidebar, DAG views, the "Schedule this notebook…" command (notebook
 * toolbar, file browser context menu, command palette) and notifications of failed runs.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  IFrame,
  MainAreaWidget,
  Notification,
  ToolbarButton,
  WidgetTracker
} from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';

import { DagView } from './dagview';
import { IDetailsActions } from './details';
import { nbflowIcon } from './icons';
import { FailureNotifier } from './notify';
import { openScheduleDialog } from './schedule';
import { preferences } from './preferences';
import { DagListPanel } from './sidebar';
import { openDagSource } from './source';
import { watchGraphFits } from './graphfit';
import { watchOutputTimes } from './outputtimes';
import { localTime } from './time';

namespace CommandIDs {
  export const openSidebar = 'nbflow:open-sidebar';
  export const openDag = 'nbflow:open-dag';
  export const schedule = 'nbflow:schedule-notebook';
  export const scheduleSelected = 'nbflow:schedule-selected-notebook';
  export const refresh = 'nbflow:refresh';
  export const showSource = 'nbflow:show-dag-source';
}

const PLUGIN_ID = 'nbflow-labextension:plugin';

function isNotebookPath(path: string | undefined | null): path is string {
  return !!path && path.endsWith('.ipynb');
}

class ScheduleButton implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private readonly app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const item = new ToolbarButton({
      icon: nbflowIcon,
      label: 'Schedule…',
      tooltip: 'Schedule this notebook (nbflow)',
      className: 'nbflow-ToolbarSchedule',
      onClick: () => {
        void this.app.commands.execute(CommandIDs.schedule, { path: panel.context.path });
      }
    });
    panel.toolbar.insertAfter('cellType', 'nbflow-schedule', item);
    return new DisposableDelegate(() => item.dispose());
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'nbflow DAGs, runs, graphs, logs and notebook schedules in JupyterLab.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette, INotebookTracker, IFileBrowserFactory, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null,
    browsers: IFileBrowserFactory | null,
    registry: ISettingRegistry | null
  ) => {
    const views = new Map<string, DagView>();
    // open DAG views, so that the layout restorer opens them again after a reload
    const tracker = new WidgetTracker<DagView>({ namespace: 'nbflow-dag' });
    if (registry) {
      registry
        .load(PLUGIN_ID)
        .then(settings => preferences.follow(settings))
        .catch(error => console.warn('nbflow: could not load the settings; using the defaults:', error));
    }

    const openHtml = (title: string, url: string): void => {
      const frame = new IFrame({ sandbox: ['allow-scripts', 'allow-popups'], referrerPolicy: 'no-referrer' });
      frame.url = url;
      frame.addClass('nbflow-Report');
      const widget = new MainAreaWidget({ content: frame });
      widget.id = `nbflow-html-${Date.now()}`;
      widget.title.label = title;
      widget.title.icon = nbflowIcon;
      widget.title.closable = true;
      app.shell.add(widget, 'main', { mode: 'split-right' });
      app.shell.activateById(widget.id);
    };

    const details: IDetailsActions = {
      openNotebook: path => {
        void app.commands.execute('docmanager:open', { path });
      },
      openHtml,
      changed: () => sidebar.refresh(),
      openDag: dagId => {
        void app.commands.execute(CommandIDs.openDag, { dagId });
      },
      showSource: dagId => {
        void app.commands.execute(CommandIDs.showSource, { dagId });
      }
    };

    const openDag = (dagId: string, runId?: string): DagView => {
      let view = views.get(dagId);
      if (view && !view.isDisposed) {
        view.showRun(runId ?? null);
      } else {
        view = new DagView(dagId, runId ?? null, details);
        views.set(dagId, view);
        view.disposed.connect(() => views.delete(dagId));
        app.shell.add(view, 'main');
        void tracker.add(view);
      }
      app.shell.activateById(view.id);
      return view;
    };

    const currentNotebookPath = (): string => {
      const current = app.shell.currentWidget;
      const panel = notebooks?.currentWidget;
      if (panel && (current === panel || !current || !isNotebookPath((current as { context?: { path?: string } }).context?.path))) {
        return panel.context.path;
      }
      return '';
    };

    const selectedNotebookPath = (): string => {
      const browser = browsers?.tracker.currentWidget;
      if (!browser) {
        return '';
      }
      for (const item of browser.selectedItems()) {
        if (isNotebookPath(item.path)) {
          return item.path;
        }
      }
      return '';
    };

    const sidebar = new DagListPanel({
      openDag: (dagId, runId) => {
        openDag(dagId, runId);
      },
      scheduleNotebook: () => {
        void app.commands.execute(CommandIDs.schedule, {});
      },
      showSource: dagId => {
        void app.commands.execute(CommandIDs.showSource, { dagId });
      }
    });

    const schedule = async (path: string): Promise<void> => {
      const result = await openScheduleDialog(path);
      if (!result) {
        return;
      }
      sidebar.refresh();
      const next = result.next_runs.length ? `; next run ${localTime(result.next_runs[0])}` : '';
      Notification.success(`nbflow: scheduled ${result.dag_id} (${result.schedule_text})${next}`, {
        autoClose: 6000,
        actions: [{ label: 'Show', callback: () => void openDag(result.dag_id) }]
      });
    };

    app.commands.addCommand(CommandIDs.openSidebar, {
      label: 'Show nbflow DAGs',
      caption: 'Open the nbflow sidebar',
      execute: () => {
        app.shell.activateById(sidebar.id);
      }
    });
    app.commands.addCommand(CommandIDs.openDag, {
      label: args => (args.dagId ? `Open DAG ${String(args.dagId)}` : 'Open an nbflow DAG'),
      execute: args => {
        if (typeof args.dagId === 'string') {
          return openDag(args.dagId, typeof args.runId === 'string' ? args.runId : undefined);
        }
      }
    });
    app.commands.addCommand(CommandIDs.showSource, {
      label: args => (args.dagId ? `Show the source of DAG ${String(args.dagId)}` : 'Show a DAG\'s source'),
      caption: 'Open the file or notebook cell that defines the DAG',
      execute: args => (typeof args.dagId === 'string' ? openDagSource(app, args.dagId) : undefined)
    });
    app.commands.addCommand(CommandIDs.schedule, {
      label: 'Schedule this notebook…',
      caption: 'Run this notebook on a schedule with nbflow',
      icon: args => (args.isPalette ? undefined : nbflowIcon),
      execute: args => {
        const path = typeof args.path === 'string' ? args.path : currentNotebookPath() || selectedNotebookPath();
        return schedule(path);
      }
    });
    app.commands.addCommand(CommandIDs.scheduleSelected, {
      label: 'Schedule this notebook…',
      caption: 'Run the selected notebook on a schedule with nbflow',
      icon: nbflowIcon,
      execute: () => schedule(selectedNotebookPath())
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh nbflow DAGs',
      execute: () => sidebar.refresh()
    });

    app.contextMenu.addItem({
      command: CommandIDs.scheduleSelected,
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 55
    });
    if (palette) {
      for (const command of [CommandIDs.schedule, CommandIDs.openSidebar, CommandIDs.refresh]) {
        palette.addItem({ command, category: 'nbflow' });
      }
    }
    app.docRegistry.addWidgetExtension('Notebook', new ScheduleButton(app));

    app.shell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, sidebar.id);
    if (restorer) {
      void restorer.restore(tracker, {
        command: CommandIDs.openDag,
        args: view => ({ dagId: view.dagId }),
        name: view => view.dagId
      });
    }

    const notifier = new FailureNotifier(
      (dagId, runId) => {
        openDag(dagId, runId);
      },
      () => sidebar.refresh()
    );
    void app.restored.then(() => notifier.start());
    // nbflow's outputs in notebooks: graphs fit their views, times in the browser's zone
    watchGraphFits();
    watchOutputTimes();
  }
};

export default plugin;

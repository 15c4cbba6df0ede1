/**
 * The extension's settings (schema/plugin.json, edited in Lab's Settings Editor), as the views read
 * them: how often to refresh while nothing runs, and which view a DAG opens on. The setting registry
 * validates against the schema, so a value out of range is refused there, never half-applied here.
 */
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ISignal, Signal } from '@lumino/signaling';

export type DagTab = 'graph' | 'grid';

class Preferences {
  private _refreshSeconds = 5;
  private _defaultView: DagTab = 'graph';
  private readonly _changed = new Signal<this, void>(this);

  /** Milliseconds between refreshes while no run is active. */
  get idleInterval(): number {
    return this._refreshSeconds * 1000;
  }

  /** While a run is active: `fast` ms, or the idle interval when that is shorter. */
  activeInterval(fast: number): number {
    return Math.min(fast, this.idleInterval);
  }

  get defaultView(): DagTab {
    return this._defaultView;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Take the values of `settings` now and whenever they change. */
  follow(settings: ISettingRegistry.ISettings): void {
    const read = () => {
      const seconds = settings.get('refreshInterval').composite;
      const view = settings.get('defaultView').composite;
      this._refreshSeconds = typeof seconds === 'number' ? seconds : 5;
      this._defaultView = view === 'grid' ? 'grid' : 'graph';
      this._changed.emit();
    };
    read();
    settings.changed.connect(read);
  }
}

export const preferences = new Preferences();

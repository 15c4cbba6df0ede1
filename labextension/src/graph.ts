/**
 * The DAG graph in plain cytoscape.js. The server lays the graph out and sends it whole; this view
 * only places the nodes where it was told (a `preset` layout), adds everything in one batch, and
 * recolours tasks in one batch per refresh through their `state` data. Big graphs use cytoscape's
 * viewport texture and hide edges while panning, and labels vanish when too small to read, so
 * 5,000 tasks stay fluent.
 */
import cytoscape from 'cytoscape';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import type { IGraph, IStateStyle } from './api';
import { NO_STATUS, STATE_STYLES, stateKey } from './states';

/** From this many elements on, the view trades a little finish for speed. */
const BIG_GRAPH = 1500;

function stylesheet(styles: Record<string, IStateStyle>, big: boolean): cytoscape.StylesheetJson {
  const none = styles[NO_STATUS] ?? STATE_STYLES[NO_STATUS];
  const sheet: cytoscape.StylesheetJson = [
    {
      selector: 'node',
      style: {
        // cytoscape's types do not list data mappers for the shape, which it accepts
        shape: 'data(shape)' as unknown as cytoscape.Css.NodeShape,
        width: 'data(width)',
        height: 'data(height)',
        label: 'data(label)',
        'font-size': 13,
        'font-family': 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
        'text-valign': 'center',
        'text-halign': 'center',
        'text-wrap': 'ellipsis',
        'text-max-width': 'data(labelWidth)',
        'min-zoomed-font-size': big ? 9 : 5,
        'background-color': none.background,
        'border-color': none.border,
        'border-width': 2,
        color: none.text
      }
    },
    {
      // Joints (empty tasks) are small: their label goes under them, where it has room.
      selector: 'node[kind = "empty"][!is_group]',
      style: {
        'text-valign': 'bottom',
        'text-margin-y': 3,
        'text-max-width': '160px',
        'font-size': 12
      }
    },
    {
      selector: 'node[?is_group]',
      style: {
        shape: 'round-rectangle',
        'background-color': '#9e9e9e',
        'background-opacity': 0.07,
        'border-style': 'dashed',
        'border-color': '#9e9e9e',
        'border-width': 1.5,
        color: '#616161',
        'text-valign': 'top',
        'text-halign': 'center',
        'font-weight': 'bold',
        padding: '14px'
      }
    },
    {
      selector: 'edge',
      style: {
        width: 1.5,
        'line-color': '#9e9e9e',
        'curve-style': big ? 'haystack' : 'straight',
        'target-arrow-shape': big ? 'none' : 'triangle',
        'target-arrow-color': '#9e9e9e',
        'arrow-scale': 0.9
      }
    },
    {
      // A Label's words, along the edge, on a light band so that they stay readable over it.
      selector: 'edge[label]',
      style: {
        label: 'data(label)',
        'font-size': 10,
        color: '#424242',
        'text-rotation': 'autorotate',
        'text-background-color': '#ffffff',
        'text-background-opacity': 0.9,
        'text-background-padding': '2px',
        'min-zoomed-font-size': 6
      }
    }
  ];
  for (const [state, style] of Object.entries(styles)) {
    sheet.push({
      selector: `node[state = "${state}"]`,
      style: { 'background-color': style.background, 'border-color': style.border, color: style.text }
    });
  }
  sheet.push({ selector: 'node[kind = "empty"][!is_group]', style: { color: '#424242' } });
  sheet.push({
    selector: 'node:selected',
    style: {
      'border-width': 4,
      'border-color': '#1565c0',
      'overlay-color': '#1565c0',
      'overlay-opacity': 0.12,
      'overlay-padding': 4
    }
  });
  return sheet;
}

function elements(graph: IGraph): cytoscape.ElementDefinition[] {
  // Groups first, so that every parent exists when its children arrive.
  const nodes = [...graph.nodes].sort((a, b) => Number(b.is_group) - Number(a.is_group));
  const result: cytoscape.ElementDefinition[] = nodes.map(node => ({
    group: 'nodes',
    data: {
      id: node.id,
      label: node.label,
      kind: node.kind,
      shape: node.shape,
      width: node.width,
      height: node.height,
      labelWidth: Math.max(20, node.width - 14),
      baseLabel: node.label,
      is_group: node.is_group,
      state: NO_STATUS,
      ...(node.parent ? { parent: node.parent } : {})
    },
    position: { x: node.x, y: node.y },
    selectable: !node.is_group
  }));
  for (const edge of graph.edges) {
    result.push({
      group: 'edges',
      data: {
        id: edge.id,
        source: edge.source,
        target: edge.target,
        ...(edge.label ? { label: edge.label } : {})
      }
    });
  }
  return result;
}

/** A Lumino widget holding one cytoscape instance for one DAG. */
export class GraphView extends Widget {
  private cy: cytoscape.Core | null = null;
  private readonly canvas: HTMLDivElement;
  private readonly _taskSelected = new Signal<this, string>(this);
  private fitPending = false;
  private userMoved = false;
  private fitting = false;
  private legend: HTMLDivElement;
  private styles: Record<string, IStateStyle> = {};

  constructor() {
    super();
    this.addClass('nbflow-Graph');
    this.canvas = document.createElement('div');
    this.canvas.className = 'nbflow-Graph-canvas';
    this.legend = document.createElement('div');
    this.legend.className = 'nbflow-Graph-legend';
    this.node.append(this.canvas, this.legend);
  }

  /** Emitted with the task id when a task node is clicked. */
  get taskSelected(): ISignal<this, string> {
    return this._taskSelected;
  }

  /** The number of task nodes shown. */
  get taskCount(): number {
    return this.cy ? this.cy.nodes('[!is_group]').length : 0;
  }

  /** Draw `graph`, replacing what was drawn; returns how long cytoscape took, in ms. */
  setGraph(graph: IGraph): number {
    const started = performance.now();
    this.cy?.destroy();
    const styles = { ...STATE_STYLES, ...graph.styles };
    this.styles = styles;
    const big = graph.nodes.length + graph.edges.length > BIG_GRAPH;
    const cy = cytoscape({
      container: this.canvas,
      style: stylesheet(styles, big),
      layout: { name: 'preset' },
      minZoom: 0.002,
      maxZoom: 3,
      wheelSensitivity: 0.4,
      boxSelectionEnabled: false,
      autoungrabify: true,
      textureOnViewport: big,
      hideEdgesOnViewport: big,
      motionBlur: false,
      pixelRatio: big ? 1 : 'auto'
    });
    cy.batch(() => {
      cy.add(elements(graph));
    });
    // Once someone pans or zooms, resizing the view keeps their viewport instead of fitting again.
    cy.on('viewport', () => {
      if (!this.fitting) {
        this.userMoved = true;
      }
    });
    cy.on('tap', 'node', event => {
      const node = event.target as cytoscape.NodeSingular;
      if (!node.data('is_group')) {
        this._taskSelected.emit(node.id());
      }
    });
    this.cy = cy;
    this.userMoved = false;
    this.renderLegend(styles);
    this.fit();
    const elapsed = performance.now() - started;
    this.canvas.dataset.renderMs = elapsed.toFixed(0);
    this.canvas.dataset.nodes = String(graph.nodes.length);
    return elapsed;
  }

  /** Colour every task by `states` (task id -> state) in one batch; absent tasks show "no status". */
  setStates(states: Record<string, string | null | undefined>): void {
    const cy = this.cy;
    if (!cy) {
      return;
    }
    cy.batch(() => {
      cy.nodes('[!is_group]').forEach(node => {
        const state = stateKey(states[node.id()]);
        if (node.data('state') !== state) {
          node.data('state', state);
        }
      });
    });
  }

  /** Label mapped tasks with their instances: `name [4] (3✓ 1✗)` for each task in `counts` (task
   * id -> state -> instances); a node not in it goes back to its own label. */
  setCounts(counts: Record<string, Record<string, number>>): void {
    const cy = this.cy;
    if (!cy) {
      return;
    }
    cy.batch(() => {
      cy.nodes('[!is_group]').forEach(node => {
        const base = String(node.data('baseLabel') ?? node.data('label'));
        const tally = counts[node.id()];
        let label = base;
        if (tally) {
          const total = Object.values(tally).reduce((a, b) => a + b, 0);
          const parts = Object.entries(tally).map(([state, n]) => `${n}${this.styles[state]?.symbol ?? ' ' + state}`);
          label = `${base.replace(/ \[ \]$/, '')} [${total}] (${parts.join(' ')})`;
        }
        if (node.data('label') !== label) {
          node.data('label', label);
        }
      });
    });
  }

  /** Show `taskId` as selected (or nothing, with null). */
  select(taskId: string | null): void {
    const cy = this.cy;
    if (!cy) {
      return;
    }
    cy.batch(() => {
      cy.$(':selected').unselect();
      if (taskId) {
        cy.getElementById(taskId).select();
      }
    });
  }

  /** Fit the whole graph in the view (deferred until the view has a size). */
  fit(): void {
    if (!this.cy) {
      return;
    }
    if (this.canvas.clientWidth === 0 || this.canvas.clientHeight === 0) {
      this.fitPending = true;
      return;
    }
    this.fitPending = false;
    this.fitting = true;
    try {
      this.fitNow(this.cy);
    } finally {
      this.fitting = false;
    }
  }

  private fitNow(cy: cytoscape.Core): void {
    cy.resize();
    const padding = 24;
    const box = cy.elements().boundingBox();
    const width = Math.max(1, cy.width() - 2 * padding);
    const height = Math.max(1, cy.height() - 2 * padding);
    const byWidth = width / Math.max(1, box.w);
    const byHeight = height / Math.max(1, box.h);
    const whole = Math.min(byWidth, byHeight);
    if (whole < 0.2 && Math.max(byWidth, byHeight) > 4 * whole) {
      // A drawing far taller than wide (or wider than tall) would shrink to a line: fill the short
      // side instead and start at the top (or left); "Fit all" still shows everything.
      const zoom = Math.min(1, Math.max(byWidth, byHeight));
      cy.zoom(zoom);
      if (byWidth > byHeight) {
        cy.pan({ x: (cy.width() - box.w * zoom) / 2 - box.x1 * zoom, y: padding - box.y1 * zoom });
      } else {
        cy.pan({ x: padding - box.x1 * zoom, y: (cy.height() - box.h * zoom) / 2 - box.y1 * zoom });
      }
      return;
    }
    cy.fit(undefined, padding);
    // Small DAGs should not be blown up to fill a big view.
    if (cy.zoom() > 1.25) {
      cy.zoom(1.25);
      cy.center();
    }
  }

  /** Show the whole drawing, however small that makes it. */
  fitAll(): void {
    if (this.cy) {
      this.fitting = true;
      this.cy.fit(undefined, 16);
      this.fitting = false;
      this.userMoved = false;
    }
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.afterSizeChange();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.afterSizeChange();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.afterSizeChange();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.cy?.destroy();
    this.cy = null;
    super.dispose();
  }

  private afterSizeChange(): void {
    if (!this.cy) {
      return;
    }
    if (this.fitPending || !this.userMoved) {
      this.fit();
    } else {
      this.cy.resize();
    }
  }

  private renderLegend(styles: Record<string, IStateStyle>): void {
    this.legend.textContent = '';
    const order = ['success', 'running', 'failed', 'upstream_failed', 'up_for_retry', 'queued', 'skipped', NO_STATUS];
    for (const state of order) {
      const style = styles[state];
      if (!style) {
        continue;
      }
      const item = document.createElement('span');
      item.className = 'nbflow-Graph-legendItem';
      const swatch = document.createElement('span');
      swatch.className = 'nbflow-Swatch';
      swatch.style.backgroundColor = style.background;
      swatch.style.borderColor = style.border;
      item.append(swatch, style.label);
      this.legend.append(item);
    }
    const spacer = document.createElement('span');
    spacer.className = 'nbflow-Spacer';
    const fit = document.createElement('button');
    fit.type = 'button';
    fit.className = 'jp-Button jp-mod-minimal nbflow-FitAll';
    fit.textContent = 'Fit all';
    fit.title = 'Show the whole graph';
    fit.addEventListener('click', () => this.fitAll());
    this.legend.append(spacer, fit);
  }
}

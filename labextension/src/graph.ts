/**
 * The DAG graph in plain cytoscape.js. The server folds the graph to fit a page and lays it out,
 * with the model the notebook's graph uses (`nbflow.jupyter.graph.GraphModel`); this view only
 * places the nodes where it was told (a `preset` layout), adds everything in one batch, and
 * recolours tasks in one batch per refresh through their `state` data. A folded node (a collapsed
 * task group, or look-alike tasks drawn as one) takes the colour of its worst task and counts its
 * tasks by state in its label; a click opens it (the server folds again with it opened, and
 * everything else keeps its place).
 *
 * Zoom is semantic: zoomed out, single tasks' labels give way, while folded nodes' and group boxes'
 * labels grow in the drawing so that they stay readable on screen.
 */
import cytoscape from 'cytoscape';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import type { IGraph, IStateStyle } from './api';
import { NO_STATUS, STATE_STYLES, stateKey } from './states';

/** From this many elements on, the view trades a little finish for speed. */
const BIG_GRAPH = 1500;
/** Labels are drawn at 13px at zoom 1; below this many on-screen pixels a single task's label hides. */
const FONT = 13;
const MIN_TASK_FONT = 7;
/**
 * Semantic zoom, by level of detail. Down to MID_ZOOM every label shows as it is (single tasks'
 * labels hide once smaller than MIN_TASK_FONT on screen). Below it, a folded node shows only its
 * name, kept at READABLE pixels on screen. Below FAR_ZOOM folded nodes are too close together for
 * any name to read: the view shows the DAG's shape without their labels.
 */
const MID_ZOOM = 0.6;
const FAR_ZOOM = 0.33;
const READABLE = 10;
/** The wheel's zoom per notch, as a multiple of cytoscape's own (about 15% a notch). */
const WHEEL = 5;
/** A folded node's height: its label on two lines. */
const FOLDED_HEIGHT = 46;
const FOLDED_WIDTH = 150;
const SEVERITY = [
  'failed', 'upstream_failed', 'up_for_retry', 'running', 'up_for_reschedule', 'queued', 'scheduled',
  'none', NO_STATUS, 'success', 'skipped', 'removed'
];

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
        'font-size': FONT,
        'font-family': 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
        'text-valign': 'center',
        'text-halign': 'center',
        // a long label wraps at its spaces, never cut
        'text-wrap': 'wrap',
        'line-height': 1.1,
        'text-max-width': 'data(labelWidth)',
        'min-zoomed-font-size': big ? 9 : MIN_TASK_FONT,
        'background-color': none.background,
        'border-color': none.border,
        'border-width': 2,
        color: none.text
      }
    },
    {
      // Joints (empty tasks) are small: their label goes under them, where it has room.
      selector: 'node[kind = "empty"][!is_group][!is_folded]',
      style: {
        'text-valign': 'bottom',
        'text-margin-y': 3,
        'text-max-width': '160px',
        'font-size': 12
      }
    },
    {
      // many tasks in one node: a double border, its label (name ×N and counts) on up to two lines
      selector: 'node[?is_folded]',
      style: {
        'border-style': 'double',
        'border-width': 4,
        'font-size': 'data(fontSize)',
        'text-max-width': 'data(labelWidth)',
        'min-zoomed-font-size': 0
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
        'font-size': 'data(fontSize)',
        'min-zoomed-font-size': 0,
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
      // An edge that would pass over a node it does not connect bends round it, at the points the
      // server computed (the notebook's graph bends it the same way).
      selector: 'edge[bends]',
      style: big
        ? {}
        : {
            'curve-style': 'segments',
            'edge-distances': 'node-position',
            'segment-weights': 'data(bend_weights)',
            'segment-distances': 'data(bend_distances)'
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
  sheet.push({ selector: 'node[kind = "empty"][!is_group][!is_folded]', style: { color: '#424242' } });
  // A group box's name sits above the box, on the page, not on its state's fill: a state's text
  // colour (white on green) would make it vanish.
  sheet.push({ selector: 'node[?is_group]', style: { color: '#424242' } });
  // semantic zoom (GraphView.sizeLabels): zoomed out, a folded node shows only its name; far out, none
  // Its name, grown to stay readable, is wider than the node: in the state's text colour (white)
  // the part past the node vanished on the page, so it is dark ink on a light band there.
  sheet.push({
    selector: 'node.nbflow-mid[?is_folded]',
    style: {
      label: 'data(name)',
      color: '#212121',
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.85,
      'text-background-shape': 'roundrectangle',
      'text-background-padding': '1px'
    }
  });
  sheet.push({ selector: 'node.nbflow-far[?is_folded]', style: { label: '' } });
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
  const result: cytoscape.ElementDefinition[] = nodes.map(node => {
    // many tasks in one node: a full-size node whatever their kind, tall enough for two lines
    const width = node.is_folded ? Math.max(node.width, FOLDED_WIDTH) : node.width;
    const height = node.is_folded ? Math.max(node.height, FOLDED_HEIGHT) : node.height;
    return {
      group: 'nodes',
      data: {
        id: node.id,
        label: node.label,
        kind: node.kind,
        shape: node.shape,
        width,
        height,
        labelWidth: Math.max(20, width - 14),
        baseWidth: Math.max(20, width - 14),
        fontSize: FONT,
        baseLabel: node.label,
        name: node.label.replace(/ ×\d+$/, ''),
        is_group: node.is_group,
        is_folded: !!node.is_folded,
        size: node.size ?? 1,
        state: NO_STATUS,
        ...(node.parent ? { parent: node.parent } : {})
      },
      position: { x: node.x, y: node.y },
      selectable: !node.is_group
    };
  });
  for (const edge of graph.edges) {
    result.push({
      group: 'edges',
      data: {
        id: edge.id,
        source: edge.source,
        target: edge.target,
        ...(edge.label ? { label: edge.label } : {}),
        ...(edge.bends
          ? { bends: edge.bends, bend_weights: edge.bend_weights, bend_distances: edge.bend_distances }
          : {})
      }
    });
  }
  return result;
}

/** What a view showed: to show it again after a redraw. */
interface IView {
  extent: cytoscape.BoundingBox12 & cytoscape.BoundingBoxWH;
  zoom: number;
  pan: cytoscape.Position;
  shown: string[];
}

/** A Lumino widget holding one cytoscape instance for one DAG. */
export class GraphView extends Widget {
  private cy: cytoscape.Core | null = null;
  private readonly canvas: HTMLDivElement;
  private readonly _taskSelected = new Signal<this, string>(this);
  private readonly _openRequested = new Signal<this, string>(this);
  private readonly _closeRequested = new Signal<this, string>(this);
  private nodeOf: Record<string, string> = {};
  private severity: string[] = SEVERITY;
  private states: Record<string, string | null | undefined> = {};
  private zoomFrame = 0;
  /** Set by the DAG view: fold the graph again as it first showed (the "Fold all" button). */
  foldAll: (() => void) | null = null;
  private detail = 'near';
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

  /** Emitted with a folded node's id when it is clicked: the view asks the server to open it. */
  get openRequested(): ISignal<this, string> {
    return this._openRequested;
  }

  /** Emitted with an open group's id when its box is double-clicked: the view asks the server to close it. */
  get closeRequested(): ISignal<this, string> {
    return this._closeRequested;
  }

  /** The number of task nodes shown. */
  get taskCount(): number {
    return this.cy ? this.cy.nodes('[!is_group]').length : 0;
  }

  /** The drawn node that stands for `taskId` (itself, or the folded node holding it). */
  nodeFor(taskId: string): string {
    return this.nodeOf[taskId] ?? taskId;
  }

  /**
   * Draw `graph`, replacing what was drawn; returns how long cytoscape took, in ms. With `opened`
   * (the node just opened), the view keeps showing what it showed, widened if need be to show all
   * of what the node opened into: the server laid everything else out where it was.
   */
  setGraph(graph: IGraph, opened: string | null = null): number {
    const started = performance.now();
    const before = opened && this.cy && !this.cy.destroyed() ? this.viewOf(this.cy) : null;
    this.cy?.destroy();
    this.nodeOf = graph.node_of ?? {};
    this.severity = graph.severity ?? SEVERITY;
    const styles = { ...STATE_STYLES, ...graph.styles };
    this.styles = styles;
    const big = graph.nodes.length + graph.edges.length > BIG_GRAPH;
    const cy = cytoscape({
      container: this.canvas,
      style: stylesheet(styles, big),
      layout: { name: 'preset' },
      minZoom: 0.05,
      maxZoom: 3,
      // cytoscape turns a mouse wheel's notch into about 3% of zoom: five notches should double it
      wheelSensitivity: WHEEL,
      boxSelectionEnabled: false,
      autoungrabify: true,
      textureOnViewport: big,
      hideEdgesOnViewport: big,
      motionBlur: false,
      pixelRatio: big ? 1 : 'auto'
    });
    (this.canvas.dataset as Record<string, string>).opened = (graph.opened ?? []).join('\n');
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
      if (node.data('is_folded')) {
        this._openRequested.emit(node.id());
      } else if (!node.data('is_group')) {
        this._taskSelected.emit(node.id());
      }
    });
    // a double click on an open group's own box (not on a node inside it) folds the group again
    cy.on('dbltap', 'node', event => {
      const node = event.target as cytoscape.NodeSingular;
      if (node.data('is_group')) {
        this._closeRequested.emit(node.id());
      }
    });
    cy.on('zoom', () => this.scheduleLabels());
    this.cy = cy;
    this.renderLegend(styles);
    this.setStates(this.states);
    this.detail = 'near';
    if (before && opened) {
      this.keepView(cy, before, opened);
    } else {
      this.userMoved = false;
      this.fit();
    }
    this.sizeLabels();
    const elapsed = performance.now() - started;
    this.canvas.dataset.renderMs = elapsed.toFixed(0);
    this.canvas.dataset.nodes = String(graph.nodes.length);
    return elapsed;
  }

  /**
   * Colour every task by `states` (task id -> state) in one batch; absent tasks show "no status".
   * A folded node and an open group box take their worst task's state, and a folded node's label
   * counts its tasks by state: `partition_04 ×100 (60✓ 40▶)`.
   */
  setStates(states: Record<string, string | null | undefined>): void {
    this.states = states;
    const cy = this.cy;
    if (!cy) {
      return;
    }
    const tallies = new Map<string, Map<string, number>>();
    const count = (nodeId: string, state: string) => {
      const tally = tallies.get(nodeId) ?? new Map<string, number>();
      tally.set(state, (tally.get(state) ?? 0) + 1);
      tallies.set(nodeId, tally);
    };
    for (const [task, nodeId] of Object.entries(this.nodeOf)) {
      if (nodeId === task) {
        continue;
      }
      const state = stateKey(states[task]);
      count(nodeId, state);
    }
    // an open group box counts every task inside it, folded or not
    for (const box of cy.nodes('[?is_group]').toArray()) {
      for (const inner of box.descendants('[!is_group]').toArray()) {
        const tally = tallies.get(inner.id());
        if (tally) {
          for (const [state, n] of tally) {
            for (let i = 0; i < n; i++) {
              count(box.id(), state);
            }
          }
        } else {
          count(box.id(), stateKey(states[inner.id()]));
        }
      }
    }
    cy.batch(() => {
      cy.nodes().forEach(node => {
        const tally = tallies.get(node.id());
        let state: string;
        if (tally) {
          state = this.severity.find(s => tally.has(s)) ?? NO_STATUS;
          const known = this.severity.filter(s => tally.has(s) && s !== NO_STATUS);
          const base = String(node.data('baseLabel'));
          const label = known.length && !node.data('is_group')
            ? `${base} (${known.map(s => `${tally.get(s)}${this.styles[s]?.symbol ?? ' ' + s}`).join(' ')})`
            : base;
          if (node.data('label') !== label) {
            node.data('label', label);
          }
        } else if (node.data('is_group')) {
          return;
        } else {
          state = stateKey(states[node.id()]);
        }
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
      cy.nodes('[!is_group][!is_folded]').forEach(node => {
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
        cy.getElementById(this.nodeFor(taskId)).select();
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

  private viewOf(cy: cytoscape.Core): IView {
    const extent = cy.extent();
    const shown = cy.nodes().filter(n => {
      const p = n.position();
      return p.x >= extent.x1 && p.x <= extent.x2 && p.y >= extent.y1 && p.y <= extent.y2;
    }).map(n => n.id());
    return { extent, zoom: cy.zoom(), pan: cy.pan(), shown };
  }

  /**
   * After opening a node: show what was shown, widened if need be to the opened node's box and to
   * the nodes that were in sight (those beside the opened node moved aside to make room).
   */
  private keepView(cy: cytoscape.Core, before: IView, opened: string): void {
    cy.resize();
    this.fitting = true;
    try {
      cy.zoom(before.zoom);
      cy.pan(before.pan);
      const old = before.extent;
      const union = { x1: old.x1, y1: old.y1, x2: old.x2, y2: old.y2 };
      const keep = cy.collection();
      for (const id of [opened, ...before.shown]) {
        keep.merge(cy.getElementById(id));
      }
      if (keep.nonempty()) {
        const grown = keep.boundingBox({});
        union.x1 = Math.min(union.x1, grown.x1);
        union.y1 = Math.min(union.y1, grown.y1);
        union.x2 = Math.max(union.x2, grown.x2);
        union.y2 = Math.max(union.y2, grown.y2);
      }
      if (union.x1 < old.x1 || union.y1 < old.y1 || union.x2 > old.x2 || union.y2 > old.y2) {
        const zoom = Math.min(cy.width() / (union.x2 - union.x1 + 48), cy.height() / (union.y2 - union.y1 + 48));
        cy.zoom(Math.min(before.zoom, zoom));
        cy.pan({
          x: cy.width() / 2 - ((union.x1 + union.x2) / 2) * cy.zoom(),
          y: cy.height() / 2 - ((union.y1 + union.y2) / 2) * cy.zoom()
        });
      }
    } finally {
      this.fitting = false;
    }
  }

  private scheduleLabels(): void {
    if (!this.zoomFrame) {
      this.zoomFrame = requestAnimationFrame(() => {
        this.zoomFrame = 0;
        this.sizeLabels();
      });
    }
  }

  /** Semantic zoom: which labels show, and how big, at the current zoom (see MID_ZOOM). */
  private sizeLabels(): void {
    const cy = this.cy;
    if (!cy || cy.destroyed()) {
      return;
    }
    const zoom = cy.zoom();
    const detail = zoom >= MID_ZOOM ? 'near' : zoom >= FAR_ZOOM ? 'mid' : 'far';
    const font = Math.round(Math.max(FONT, READABLE / zoom));
    const key = detail === 'near' ? detail : `${detail}:${font}`;
    if (key === this.detail) {
      return;
    }
    this.detail = key;
    this.canvas.dataset.detail = detail;
    cy.batch(() => {
      cy.nodes('[?is_folded], [?is_group]').forEach(node => {
        node.removeClass('nbflow-mid nbflow-far');
        if (detail !== 'near') {
          node.addClass(`nbflow-${detail}`);
        }
        const size = detail === 'near' ? FONT : font;
        node.data('fontSize', size);
        // the label wraps where it did at zoom 1: cytoscape cuts what reaches past its max width
        node.data('labelWidth', Number(node.data('baseWidth')) * (size / FONT));
      });
    });
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
    const fold = document.createElement('button');
    fold.type = 'button';
    fold.className = 'jp-Button jp-mod-minimal nbflow-FoldAll';
    fold.textContent = 'Fold all';
    fold.title = "Close every node you opened (double-click an open group's box to close only that one)";
    fold.addEventListener('click', () => this.foldAll?.());
    this.legend.append(spacer, fold, fit);
  }
}

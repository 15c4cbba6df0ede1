/**
 * nbflow's graphs in notebook outputs fit their view whenever the view gets a size.
 *
 * The graph under a cell is drawn by cytoscape, which measures its container once, when it first
 * draws. After a reload of Lab, on reopening a notebook, or when the cell ran while its output was
 * off-screen, that first measure is wrong (often no size at all) and the graph stays drawn small in
 * a corner. Here each graph view (the element with class `nbflow-graph`) is watched with a
 * ResizeObserver: whenever it gets a new, non-empty size, cytoscape measures again and fits, unless
 * the user has zoomed or panned since the last fit: then their view is kept (only re-measured).
 */

const GRAPH = 'nbflow-graph';
const PADDING = 24;

interface ICy {
  destroyed(): boolean;
  resize(): void;
  fit(elements?: unknown, padding?: number): void;
  elements(): { length: number };
  zoom(): number;
  pan(): { x: number; y: number };
}

interface IViewport {
  zoom: number;
  x: number;
  y: number;
}

function viewportOf(cy: ICy): IViewport {
  const pan = cy.pan();
  return { zoom: cy.zoom(), x: pan.x, y: pan.y };
}

function moved(a: IViewport, b: IViewport): boolean {
  return Math.abs(a.zoom - b.zoom) > 1e-6 || Math.abs(a.x - b.x) > 0.5 || Math.abs(a.y - b.y) > 0.5;
}

function cyOf(view: HTMLElement): ICy | null {
  const candidates = [view, ...Array.from(view.querySelectorAll<HTMLElement>('div'))];
  for (const el of candidates) {
    const reg = (el as unknown as { _cyreg?: { cy?: ICy } })._cyreg;
    if (reg && reg.cy && !reg.cy.destroyed()) {
      return reg.cy;
    }
  }
  return null;
}

const watched = new WeakSet<HTMLElement>();
const fitted = new WeakMap<HTMLElement, string>();
/** Where this module's last fit left each view: a viewport since moved was moved by the user. */
const lastFit = new WeakMap<HTMLElement, IViewport>();

function fit(view: HTMLElement, attempt = 0): void {
  const width = view.clientWidth;
  const height = view.clientHeight;
  if (!width || !height || !view.isConnected) {
    return; // no size yet: the observer calls again when it gets one
  }
  const cy = cyOf(view);
  if (!cy || !cy.elements().length) {
    if (attempt < 20) {
      // cytoscape draws (or gets its elements) a little after its view is attached
      window.setTimeout(() => fit(view, attempt + 1), 100);
    }
    return;
  }
  const size = `${width}x${height}`;
  const before = viewportOf(cy);
  cy.resize();
  if (fitted.get(view) !== size) {
    fitted.set(view, size);
    const last = lastFit.get(view);
    if (last && moved(last, before)) {
      return; // the user zoomed or panned (or pressed fit) since: a new size keeps their view
    }
    cy.fit(undefined, PADDING);
    lastFit.set(view, viewportOf(cy));
  }
}

function watch(view: HTMLElement, observer: ResizeObserver): void {
  if (watched.has(view)) {
    return;
  }
  watched.add(view);
  observer.observe(view);
}

/** Watch the page for nbflow graph views, and fit each whenever its size changes. */
export function watchGraphFits(target: HTMLElement = document.body): MutationObserver {
  const resizes = new ResizeObserver(entries => {
    for (const entry of entries) {
      const view = entry.target as HTMLElement;
      window.requestAnimationFrame(() => fit(view));
    }
  });
  const scan = (root: ParentNode): void => {
    root.querySelectorAll<HTMLElement>(`.${GRAPH}`).forEach(view => watch(view, resizes));
  };
  let pending = false;
  const mutations = new MutationObserver(() => {
    if (pending) {
      return;
    }
    pending = true;
    window.requestAnimationFrame(() => {
      pending = false;
      scan(target);
    });
  });
  mutations.observe(target, { childList: true, subtree: true });
  scan(target);
  return mutations;
}

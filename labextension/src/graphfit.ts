/**
 * nbflow's graphs in notebook outputs fit their view whenever the view gets a size.
 *
 * The graph under a cell is drawn by cytoscape, which measures its container once, when it first
 * draws. After a reload of Lab, on reopening a notebook, or when the cell ran while its output was
 * off-screen, that first measure is wrong (often no size at all) and the graph stays drawn small in
 * a corner. Here each graph view (the element with class `nbflow-graph`) is watched with a
 * ResizeObserver: whenever it gets a new, non-empty size, cytoscape measures again and fits.
 */

const GRAPH = 'nbflow-graph';
const PADDING = 24;

interface ICy {
  destroyed(): boolean;
  resize(): void;
  fit(elements?: unknown, padding?: number): void;
  elements(): { length: number };
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
  cy.resize();
  if (fitted.get(view) !== size) {
    fitted.set(view, size);
    cy.fit(undefined, PADDING);
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

/**
 * nbflow's notebook outputs in the browser's time zone.
 *
 * The kernel writes times as `<time class="nbflow-time" datetime="ISO in UTC">` with text in the
 * kernel's own zone (what a page without this extension keeps showing). Here every such element
 * that appears in the page gets the same instant in the browser's zone, named, with UTC on hover,
 * so a notebook's graph and Lab's own views say the same time. A run picker (the `select` in a
 * `.nbflow-runs-box` whose `data-nbflow-runs` element lists its runs) gets its labels rewritten the
 * same way, each run's id on hover.
 */

const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
const DONE = 'nbflowLocal';

function pad(value: number): string {
  return String(value).padStart(2, '0');
}

function parse(iso: string | null | undefined): Date | null {
  if (!iso) {
    return null;
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** The zone's short name at that instant ("CET", "GMT+9"), as the browser knows it. */
function shortZone(date: Date): string {
  const part = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' })
    .formatToParts(date)
    .find(p => p.type === 'timeZoneName');
  return part ? part.value : '';
}

/** "2024-03-05 11:00:02 CET (Europe/Berlin)", as the kernel writes it in its own zone. */
export function browserTime(date: Date, seconds = true): string {
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}${seconds ? `:${pad(date.getSeconds())}` : ''}`;
  const short = shortZone(date);
  return short && short !== ZONE ? `${day} ${clock} ${short} (${ZONE})` : `${day} ${clock} (${ZONE})`;
}

/** "4 Dec 02:41", a run picker's short time in the browser's zone. */
export function browserShortTime(date: Date): string {
  const month = new Intl.DateTimeFormat('en-GB', { month: 'short' }).format(date);
  return `${date.getDate()} ${month} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function utcText(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function localiseTime(element: HTMLElement): void {
  const iso = element.getAttribute('datetime');
  if (element.dataset[DONE] === iso) {
    return;
  }
  const date = parse(iso);
  if (!date) {
    return;
  }
  element.dataset[DONE] = iso ?? '';
  element.textContent =
    element.dataset.format === 'short' ? browserShortTime(date) : browserTime(date, element.dataset.seconds !== 'false');
  element.title = utcText(date);
}

interface IRunOption {
  iso: string | null;
  before: string;
  after: string;
  run_id: string;
}

function localisePicker(holder: HTMLElement): void {
  const select = (holder.closest('.nbflow-runs-box') ?? holder).querySelector('select');
  if (!select) {
    return;
  }
  let runs: IRunOption[];
  try {
    runs = JSON.parse(holder.dataset.nbflowRuns || '[]') as IRunOption[];
  } catch {
    return;
  }
  Array.from(select.options).forEach((option, index) => {
    const run = runs[index];
    if (!run) {
      return;
    }
    const date = parse(run.iso);
    const text = `${run.before}${date ? browserShortTime(date) : ''}${run.after}`;
    // ipywidgets renders spaces as no-break spaces: compare and write the same way
    const shown = text.replace(/ /g, '\u00a0');
    if (option.textContent !== shown) {
      option.textContent = shown;
    }
    const title = date ? `${run.run_id}\n${utcText(date)}` : run.run_id;
    if (option.title !== title) {
      option.title = title;
    }
  });
}

/** Localise every nbflow time and run picker inside `root`. */
export function localiseOutputTimes(root: ParentNode): void {
  root.querySelectorAll<HTMLElement>('time.nbflow-time').forEach(localiseTime);
  root.querySelectorAll<HTMLElement>('[data-nbflow-runs]').forEach(localisePicker);
}

/** Watch the page for nbflow times and run pickers as outputs appear and change. */
export function watchOutputTimes(target: HTMLElement = document.body): MutationObserver {
  let pending = false;
  const observer = new MutationObserver(() => {
    if (pending) {
      return;
    }
    pending = true;
    // one pass per frame, however many mutations came in it
    requestAnimationFrame(() => {
      pending = false;
      localiseOutputTimes(target);
    });
  });
  observer.observe(target, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-nbflow-runs'] });
  localiseOutputTimes(target);
  return observer;
}

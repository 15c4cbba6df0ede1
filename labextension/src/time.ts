/**
 * Times as people read them: in the browser's local time zone, which is named once where the
 * times are shown, with UTC and the DAG's own zone in the tooltip.
 */

export const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

// 24-hour clocks whatever the locale's habit, as nbflow writes times everywhere else (the notebook,
// the command line, schedules in words): "05:00" in the sidebar is the 05:00 of a cron.
const LOCAL = new Intl.DateTimeFormat(undefined, {
  weekday: 'short',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23'
});
const LOCAL_SECONDS = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23'
});

function parse(iso: string | null | undefined): Date | null {
  if (!iso) {
    return null;
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "Tue, Dec 3, 07:00" in local time, or an em dash. */
export function localTime(iso: string | null | undefined, seconds = false): string {
  const date = parse(iso);
  if (!date) {
    return '—';
  }
  return (seconds ? LOCAL_SECONDS : LOCAL).format(date);
}

/** The wall-clock time in another zone, "Tue, Dec 3, 07:00 (Europe/Paris)". */
export function zonedTime(iso: string | null | undefined, timeZone: string): string {
  const date = parse(iso);
  if (!date) {
    return '—';
  }
  try {
    const format = new Intl.DateTimeFormat(undefined, {
      weekday: 'short',
      month: 'short',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
      timeZone
    });
    return `${format.format(date)} (${timeZone})`;
  } catch {
    return `${date.toISOString()} (UTC)`;
  }
}

/** A tooltip naming the same instant in local time, UTC and, when given, the DAG's zone. */
export function timeTitle(iso: string | null | undefined, dagZone?: string): string {
  const date = parse(iso);
  if (!date) {
    return '';
  }
  const lines = [`${localTime(iso)} local (${LOCAL_ZONE})`, `${date.toISOString().replace('.000Z', 'Z')} UTC`];
  if (dagZone && dagZone !== LOCAL_ZONE && dagZone !== 'UTC') {
    lines.push(zonedTime(iso, dagZone));
  }
  return lines.join('\n');
}

/** "in 3 h", "5 min ago". */
export function relative(iso: string | null | undefined, now: number = Date.now()): string {
  const date = parse(iso);
  if (!date) {
    return '';
  }
  const seconds = Math.round((date.getTime() - now) / 1000);
  const size = Math.abs(seconds);
  let text: string;
  if (size < 60) {
    text = `${size} s`;
  } else if (size < 3600) {
    text = `${Math.round(size / 60)} min`;
  } else if (size < 86400 * 2) {
    text = `${Math.round(size / 3600)} h`;
  } else {
    text = `${Math.round(size / 86400)} days`;
  }
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

/** "1.2 s", "3 min 4 s". */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) {
    return '—';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ${Math.round(seconds % 60)} s`;
  }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

const SHORT_PARTS = new Intl.DateTimeFormat(undefined, {
  day: 'numeric',
  month: 'short',
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23'
});

/** "4 Dec 02:41" in local time (day, month, 24-hour time, whatever the locale's order), or an em dash. */
export function shortTime(iso: string | null | undefined): string {
  const date = parse(iso);
  if (!date) {
    return '—';
  }
  const part = (type: string) => SHORT_PARTS.formatToParts(date).find(p => p.type === type)?.value ?? '';
  return `${part('day')} ${part('month')} ${part('hour')}:${part('minute')}`;
}

interface IRunNaming {
  run_id: string;
  run_type?: string | null;
  logical_date?: string | null;
  start_date?: string | null;
}

/** "manual · 4 Dec 02:41": a run as people name it (its type and logical date in local time). */
export function runLabel(run: IRunNaming): string {
  const kind = run.run_type || run.run_id.split('__')[0] || 'run';
  const when = run.logical_date ?? run.start_date ?? null;
  return when ? `${kind} · ${shortTime(when)}` : run.run_id;
}

/** A run's tooltip: the raw run id, then its logical date in local time (zone named) and UTC. */
export function runTitle(run: IRunNaming, dagZone?: string): string {
  const when = run.logical_date ?? run.start_date ?? null;
  return [run.run_id, when ? timeTitle(when, dagZone) : ''].filter(Boolean).join('\n');
}

/** A run named from its id alone ("manual__2026-12-04T01:41:01+00:00" → "manual · 4 Dec 02:41"). */
export function runLabelOfId(runId: string): string {
  const [kind, when] = runId.split('__', 2);
  return when && parse(when) ? runLabel({ run_id: runId, run_type: kind, logical_date: when }) : runId;
}

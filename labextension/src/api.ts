/**
 * The nbflow REST API of the Jupyter server extension, typed.
 *
 * Every call goes through `ServerConnection.makeRequest`, so it carries Lab's token and XSRF
 * cookie. Times are ISO 8601 strings in UTC unless a field ends with `_local` (the DAG's zone).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IRunSummary {
  run_id: string;
  state: string;
  run_type: string;
  logical_date: string | null;
  start_date: string | null;
  end_date: string | null;
  conf: Record<string, unknown> | null;
}

export interface IDagSummary {
  dag_id: string;
  /** what views show for the DAG (its id when it has no display name) */
  dag_display_name: string;
  is_paused: boolean;
  schedule: string | null;
  schedule_text: string | null;
  timezone: string;
  next_run: string | null;
  owner: string | null;
  tags: string[];
  description: string | null;
  fileloc: string | null;
  last_run: IRunSummary | null;
  recent_runs: IRunSummary[];
  active_runs: number;
  failed_runs: number;
}

export interface IImportError {
  fileloc: string;
  summary: string;
  traceback: string;
  timestamp: string | null;
}

export interface IDagList {
  dags: IDagSummary[];
  import_errors: IImportError[];
}

/** A scheduler host as GET scheduler gives it (the fields the sidebar shows). */
export interface ISchedulerHost {
  host_id: string;
  kind: string | null;
  state: string | null;
  /** its executor; on a Dask cluster, the cluster's scheduler address and dashboard link */
  executor?: string | null;
  cluster?: string | null;
  dashboard?: string | null;
}

export interface ISchedulerStatus {
  alive: boolean;
  in_server: boolean;
  hosts: ISchedulerHost[];
}

export interface ITaskSpec {
  task_id: string;
  display_name: string;
  kind: string;
  upstream: string[];
  group: string | null;
  trigger_rule: string;
}

export interface IDagParam extends INotebookParameter {
  /** a Param without a default: the trigger must give it */
  required: boolean;
}

export interface IDagAssets {
  /** assets its tasks update (outlets), with the DAGs scheduled on each */
  produces: { uri: string; tasks: string[]; consumers: string[] }[];
  /** assets it is scheduled on, with the DAGs and tasks that update each */
  consumes: { uri: string; producers: { dag_id: string; task_id: string }[]; last_event_at: string | null }[];
}

export interface IDagDetail extends IDagSummary {
  tasks: ITaskSpec[];
  params: IDagParam[];
  next_runs: string[];
  next_runs_local: string[];
  assets?: IDagAssets;
}

export interface IStateStyle {
  background: string;
  border: string;
  text: string;
  label: string;
  /** what counts on a mapped task's node use: `3✓ 1✗` */
  symbol?: string;
}

export interface IGraphNode {
  id: string;
  label: string;
  kind: string;
  shape: string;
  parent: string | null;
  x: number;
  y: number;
  width: number;
  height: number;
  /** an open group box, drawn around its members */
  is_group: boolean;
  /** a collapsed group or a folded node: many tasks in one node, which opens on a click */
  is_folded?: boolean;
  /** how many tasks the node stands for */
  size?: number;
}

export interface IGraphEdge {
  id: string;
  source: string;
  target: string;
  /** the words of a Label on this edge, when it has one */
  label?: string;
  /** how many task-to-task edges it stands for */
  count?: number;
  /** for an edge bent round nodes it would pass over: how many bend points, and where they are
   * (cytoscape's segment weights along the line between the node centres and distances from it) */
  bends?: number;
  bend_weights?: string;
  bend_distances?: string;
}

export interface IGraph {
  dag_id: string;
  nodes: IGraphNode[];
  edges: IGraphEdge[];
  styles: Record<string, IStateStyle>;
  /** task id -> the drawn node that stands for it (itself, or a folded node) */
  node_of?: Record<string, string>;
  /** states worst first: a folded node takes the colour of the worst state among its tasks */
  severity?: string[];
  /** the nodes opened to get this graph, in order */
  opened?: string[];
}

export interface ITaskInstance {
  task_id: string;
  state: string | null;
  try_number: number;
  max_tries: number;
  start_date: string | null;
  end_date: string | null;
  duration: number | null;
  hostname: string | null;
  error: string | null;
  /** -1, or the instance's place in a mapped task */
  map_index?: number;
  /** a mapped task's instances per state */
  map_counts?: Record<string, number>;
}

export interface IRunDetail extends IRunSummary {
  task_instances: ITaskInstance[];
}

export interface IGrid {
  runs: IRunSummary[];
  tasks: string[];
  /** task id -> its outermost task group (tasks outside groups are absent) */
  groups?: Record<string, string>;
  states: Record<string, Record<string, string | null>>;
  /** a mapped task's instances per state: run id -> task id -> state -> n */
  counts?: Record<string, Record<string, Record<string, number>>>;
}

export interface ITry {
  try_number: number;
  state?: string | null;
  start_date?: string | null;
  end_date?: string | null;
  /** the most resident memory (bytes) the try's processes held at once; null where not measured */
  peak_rss?: number | null;
  duration?: number | null;
  hostname?: string | null;
  /** the address of the cluster worker that ran the try (a Dask worker's tcp://...); "" elsewhere */
  worker?: string | null;
  error?: string | null;
  [key: string]: unknown;
}

export interface INotebookFiles {
  output_path: string | null;
  report_path: string | null;
  lab_path: string | null;
}

export interface IProgress {
  cell: number;
  cells: number;
  elapsed: number;
}

/** What the store says of a task's output, written when the output was (never read by unpickling). */
export interface IOutputInfo {
  kind: string | null;
  type: string | null;
  size: number | null;
  preview: string;
  preview_stored: boolean;
}

export interface ITaskDetail extends ITaskInstance {
  tries: ITry[];
  /** a mapped task's instances, by map index */
  instances?: ITaskInstance[];
  output_preview: string | null;
  output?: IOutputInfo | null;
  notebook: INotebookFiles | null;
  progress: IProgress | null;
}

export interface ILogChunk {
  text: string;
  offset: number;
  complete: boolean;
  path: string | null;
}

export interface ICronPreview {
  expression: string;
  timezone: string;
  description: string;
  next_runs: string[];
  next_runs_local: string[];
}

export interface ITimezones {
  default: string;
  timezones: string[];
}

export type ParameterType = 'int' | 'float' | 'str' | 'bool' | 'list' | 'dict' | 'None' | 'other';

export interface INotebookParameter {
  name: string;
  type: ParameterType;
  default: unknown;
  source: string;
  help: string | null;
}

export interface INotebookParameters {
  path: string;
  kernel_name: string | null;
  parameters: INotebookParameter[];
}

export interface IScheduleRequest {
  path: string;
  cron: string;
  timezone: string;
  parameters: Record<string, unknown>;
  report: 'html' | 'none';
  dag_id?: string;
}

export interface IScheduled {
  dag_id: string;
  fileloc: string;
  schedule_text: string;
  next_runs: string[];
  next_runs_local: string[];
}

export interface IEvent {
  id: number;
  at: string;
  kind: string;
  dag_id: string | null;
  run_id: string | null;
  task_id: string | null;
  detail: unknown;
}

export interface IEvents {
  events: IEvent[];
  last_id: number;
}

/** Where a DAG is written (GET dags/<id>/source). */
export interface IDagSource {
  dag_id: string;
  /** the file on the server */
  path: string;
  kind: 'python' | 'notebook';
  /** 1-based, within `text` (the whole file, or the defining cell) */
  line: number;
  /** the defining cell's index in a notebook */
  cell: number | null;
  text: string;
  /** the file relative to the server's root (what Lab opens), or null outside it */
  lab_path: string | null;
}

export interface ITriggered {
  run: IRunSummary;
  how: 'queued' | 'started';
}

/** An error answered by the server: its nbflow error class, message and extra fields. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
    readonly fields: Record<string, unknown> = {}
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const settings = ServerConnection.makeSettings();

/** The absolute URL of an API path, for links and iframes (the page's cookie authenticates them). */
export function apiUrl(path: string, query: Record<string, string | number | string[]> = {}): string {
  const url = URLExt.join(settings.baseUrl, 'nbflow/api', path);
  const search = Object.entries(query)
    .flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map(v => [key, v] as const))
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`)
    .join('&');
  return search ? `${url}?${search}` : url;
}

async function request<T>(
  path: string,
  init: RequestInit = {},
  query: Record<string, string | number | string[]> = {}
): Promise<T> {
  const url = apiUrl(path, query);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(0, 'NetworkError', `The Jupyter server did not answer: ${String(error)}`);
  }
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    const fields = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
    const kind = typeof fields.error === 'string' ? fields.error : `HTTP ${response.status}`;
    let message = typeof fields.message === 'string' ? fields.message : response.statusText;
    if (response.status === 404 && !fields.error) {
      message = `${url} is not served: is the nbflow server extension enabled?`;
    }
    throw new ApiError(response.status, kind, message, fields);
  }
  return body as T;
}

function send<T>(path: string, method: 'POST' | 'PATCH', payload: unknown): Promise<T> {
  return request<T>(path, {
    method,
    body: JSON.stringify(payload),
    headers: { 'Content-Type': 'application/json' }
  });
}

const enc = encodeURIComponent;

function dagPath(dagId: string, ...rest: string[]): string {
  return ['dags', enc(dagId), ...rest.map(enc)].join('/');
}

export const api = {
  listDags: () => request<IDagList>('dags'),
  scheduler: () => request<ISchedulerStatus>('scheduler'),
  getDag: (dagId: string) => request<IDagDetail>(dagPath(dagId)),
  setPaused: (dagId: string, isPaused: boolean) =>
    send<IDagSummary>(dagPath(dagId), 'PATCH', { is_paused: isPaused }),
  /** the graph folded to fit a page, after opening the folded nodes `opens` one after the other */
  graph: (dagId: string, opens: string[] = []) => request<IGraph>(dagPath(dagId, 'graph'), {}, { open: opens }),
  runs: (dagId: string, limit = 25) =>
    request<{ runs: IRunSummary[] }>(dagPath(dagId, 'runs'), {}, { limit }),
  trigger: (dagId: string, conf: Record<string, unknown> = {}) =>
    send<ITriggered>(dagPath(dagId, 'runs'), 'POST', { conf }),
  run: (dagId: string, runId: string) => request<IRunDetail>(dagPath(dagId, 'runs', runId)),
  source: (dagId: string) => request<IDagSource>(dagPath(dagId, 'source')),
  grid: (dagId: string, limit = 25) => request<IGrid>(dagPath(dagId, 'grid'), {}, { limit }),
  task: (dagId: string, runId: string, taskId: string) =>
    request<ITaskDetail>(dagPath(dagId, 'runs', runId, 'tasks', taskId)),
  log: (dagId: string, runId: string, taskId: string, tryNumber: number, offset: number) =>
    request<ILogChunk>(
      dagPath(dagId, 'runs', runId, 'tasks', taskId, 'log'),
      {},
      { try: tryNumber, offset }
    ),
  reportUrl: (dagId: string, runId: string, taskId: string) =>
    apiUrl(dagPath(dagId, 'runs', runId, 'tasks', taskId, 'report')),
  notebookHtmlUrl: (dagId: string, runId: string, taskId: string) =>
    apiUrl(dagPath(dagId, 'runs', runId, 'tasks', taskId, 'notebook'), { format: 'html' }),
  cron: (expression: string, timezone: string, n = 5) =>
    request<ICronPreview>('cron', {}, { expression, timezone, n }),
  timezones: () => request<ITimezones>('timezones'),
  parameters: (path: string) => request<INotebookParameters>('notebooks/parameters', {}, { path }),
  schedule: (payload: IScheduleRequest) => send<IScheduled>('schedule', 'POST', payload),
  events: (after: number | null, kind = 'run_failed') =>
    request<IEvents>('events', {}, after === null ? { kind } : { after, kind })
};

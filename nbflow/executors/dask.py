"""Run calls on a Dask cluster: ``executor = "dask"``.

When the work outgrows one machine, the tries go to a ``dask.distributed`` cluster rather than to a
scheduler of nbflow's own: a ``LocalCluster`` started for this host (``dask_address`` empty, sized by
``dask_workers`` and ``dask_threads_per_worker`` and closed with the host), or a cluster started
elsewhere (``dask scheduler`` and ``dask worker`` on several machines, dask-jobqueue on HPC,
dask-kubernetes), named by ``dask_address``.

Workers need no database. Each call travels as one Dask future: the function and its arguments are
pickled here (cloudpickle, so functions defined in a notebook or in ``__main__`` go by value, as
they do to the process executor), and the worker sends back how the call ended. This host stays the
one writer of outcomes. A call whose one argument carries a ``log_path`` (the runner's
``TaskRequest``) writes its log to a temporary file on the worker, sent here in pieces while it runs
(Dask events, every LOG_INTERVAL) and whatever is left with the result, and written at that
``log_path``: logs live, and can be followed, where they do for other executors.

Failure semantics match the process executor's:

* a worker that dies while it runs a call fails that call with ``WorkerLostError`` (a
  ``LocalCluster`` started here lets no try run twice: ``allowed_failures`` is 0; on a cluster of
  your own, every call says when it starts, and a second start of the same call is noticed and
  reported the same way);
* ``timeout`` counts from when the call starts on a worker (the worker says so with a Dask event);
  at the deadline the future is cancelled and the call reported as timed out. Dask cannot stop a
  running thread, so the stray call goes on on its worker until it returns, and its result is dropped;
* a cluster that cannot be reached or goes away fails the calls it held with ``WorkerLostError``
  naming the cluster. The host goes on: while the cluster cannot be reached no slot is free (a
  host's tries wait, in the store), and a probe thread connects again, or starts a new
  ``LocalCluster``, with a growing pause between attempts.

``memory_limit`` applies on the worker: a call with one runs there in a worker process of a process
executor of that Dask worker's own, whose memory watcher holds the call's process tree to it as on
any host (threads of one process cannot be told apart); its peak memory comes back with the result.
``resources`` go to Dask as worker resources (a call no worker offers them to fails at once, saying
so, rather than wait for good) and ``priority`` as the Dask priority.

Large outputs stay on the cluster (``keep_outputs_over``, the ``dask_keep_outputs_over`` setting):
a try whose return value is larger publishes it on the cluster as a Dask dataset named for the try,
from the worker that made it, and sends back only its preview, size and name, which the store keeps.
A downstream try on the cluster gets the value there from the dataset; one that runs elsewhere gets it
through this host (:meth:`DaskExecutor.fetch_output`). The host unpublishes a run's datasets when the
run ends (:meth:`DaskExecutor.release_outputs`), so a cluster shared by several hosts does not fill up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import os
import pickle
import queue
import re
import socket
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from nbflow.errors import (
    ConfigError, OutputNotSerializableError, OutputOnClusterError, RemoteTaskError, TaskTimeoutError, WorkerLostError,
)
from nbflow.executors.base import HOSTNAME, Executor, Outcome, format_error, log
from nbflow.outputs import CLUSTER, cluster_names, kept_on_cluster

#: seconds to wait for a cluster named by ``dask_address`` before its calls fail
CONNECT_TIMEOUT = 10.0
#: after a failed connection, seconds before the next attempt (doubling up to MAX_RECONNECT_WAIT),
#: made by a probe thread so that a cluster that is down never holds the host
RECONNECT_AFTER = 1.0
MAX_RECONNECT_WAIT = 30.0
#: a running try's log travels to the host in pieces this often (seconds), at most LOG_CHUNK bytes
#: at a time (the rest follows, or comes with the result): the scheduler keeps its last
#: thousand events per topic, so a piece must stay small
LOG_INTERVAL = 0.5
LOG_CHUNK = 32 * 1024
#: a reply at most this large (bytes of its value, log and artifacts) comes to the host as a Dask
#: event, on the connections that are open anyway, before the worker says the call ended; a larger
#: one is fetched from its worker (a gather). Measured: fetching every small reply by a gather as the
#: calls ended cost the workers' event loops twice what bare Dask's did for 0.1 s tasks
REPLY_INLINE = 8 * 1024


@dataclass(eq=False)
class _Call:
    key: Hashable
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    timeout: float | None
    #: the Dask priority (the task's priority_weight: higher starts first in the cluster's queue)
    priority: int = 0
    #: Dask worker resources the call needs ({"GPU": 1}); only workers that offer them run it
    resources: dict[str, float] | None = None
    #: bytes the call's processes may hold, enforced on the worker (the call runs in a process of its own there)
    memory_limit: int | None = None
    token: str = ""
    future: Any = None
    started_at: float | None = None
    #: how many times a worker said it started the call (twice: Dask re-ran it after a worker died)
    starts: int = 0
    #: bytes of the call's log written here so far, from pieces sent while it ran
    log_written: int = 0
    #: the host's artifacts folder when the call was sent, where artifacts sent back are written
    artifacts: str = ""
    reported: bool = False
    #: the reply the worker sent as an event, if it was small enough to (else it is fetched)
    reply: Any = None


class DaskExecutor(Executor):
    """Up to ``parallelism`` calls in flight on a Dask cluster; the rest wait here, in order.

    ``address`` names a running cluster's scheduler (``tcp://host:8786``); without one, the first
    call starts a ``LocalCluster`` of ``workers`` worker processes with ``threads_per_worker``
    threads each (0: Dask's choice for this machine), which ``shutdown`` closes.
    ``shutdown(wait=False)`` cancels the calls in flight and reports them as lost.
    """

    name = "dask"
    in_process = False
    reads_kept_outputs = True

    def __init__(self, parallelism: int = 16, address: str = "", workers: int = 0, threads_per_worker: int = 0,
                 artifacts_folder: str | None = None, keep_outputs_over: int = 0) -> None:
        super().__init__(parallelism)
        check_options(address, workers, threads_per_worker)
        if isinstance(keep_outputs_over, bool) or not isinstance(keep_outputs_over, int) or keep_outputs_over < 0:
            raise ConfigError("dask_keep_outputs_over", keep_outputs_over,
                              "give a size in bytes, or 0 to keep every output in the store")
        self.keep_outputs_over = keep_outputs_over
        #: the host's artifacts folder (None: the artifacts_folder setting when a call is sent)
        self.artifacts_folder = artifacts_folder
        #: artifacts folder -> name of the marker file left there, by which a worker tells whether
        #: it sees the host's folder (shared storage, or the same machine)
        self._markers: dict[str, str] = {}
        self.address = address.strip()
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: deque[_Call] = deque()
        self._calls: dict[str, _Call] = {}            # in flight on the cluster, by token
        self._client: Any = None
        self._cluster: Any = None
        #: why the cluster cannot be reached, while it cannot; no slot is free meanwhile
        self._down_reason = ""
        #: True once the cluster was reached: after that, a cluster that goes away is an outage
        #: during which queued calls wait, where one never reached fails the calls (a wrong address
        #: says so at once)
        self._reached = False
        #: the connected cluster's scheduler address and dashboard link, for where()
        self._seen: dict[str, str] = {}
        self._probe: threading.Thread | None = None
        self._stopped = threading.Event()
        self._topic = f"nbflow-started-{uuid.uuid4().hex}"
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._deadlines: list[tuple[float, int, _Call]] = []
        self._seq = itertools.count()
        self._pump: threading.Thread | None = None
        self._pump_closes = False
        #: calls that ended on their worker and whose results are on their way here
        self._fetching = 0

    # -- the contract -----------------------------------------------------------------------------

    def submit(
        self, key: Hashable, fn: Callable[..., Any], args: tuple[Any, ...] = (), *,
        timeout: float | None = None, memory_limit: int | None = None,
        resources: dict[str, float] | None = None, priority: int = 0,
    ) -> None:
        self._check_open()
        with self._lock:
            self._queue.append(_Call(key, fn, tuple(args), timeout, priority, dict(resources) if resources else None,
                                     memory_limit=memory_limit or None))
            if self._pump is None:
                self._pump = threading.Thread(target=self._pump_loop, name="nbflow-dask-pump", daemon=True)
                self._pump.start()
            elif threading.current_thread() is self._pump:
                return  # from on_done: the pump sends what was queued once it has reported
        # The pump connects and sends: the caller never waits for a cluster to start, and calls
        # submitted together go in one graph (Dask's scheduler takes a graph of many tasks for
        # about the cost of one). One wake-up covers every call queued before the pump looks.
        self._events.put(("wake", None))

    def cancel(self, key: Hashable, reason: str) -> bool:
        """A queued call is dropped, one in flight has its future cancelled (its thread on the
        worker runs on until it returns); either is reported as lost with ``reason``."""
        with self._lock:
            call = next((c for c in self._queue if c.key == key), None)
            if call is not None:
                self._queue.remove(call)
            else:
                call = next((c for c in self._calls.values() if c.key == key and not c.reported), None)
                if call is None:
                    return False
                self._forget(call)
            call.reported = True
        if call.future is not None:
            _cancel(call.future)
        self._report(_lost(call, reason))
        self._events.put(("wake", None))  # its slot is free for a queued call
        return True

    @property
    def free_slots(self) -> int:
        with self._lock:
            if self._closed or self._down_reason:
                return 0
            return max(0, self.parallelism - len(self._calls) - len(self._queue))

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopped.set()  # a probe thread gives up
            dropped: list[_Call] = []
            if not wait:
                dropped = [*self._queue, *(c for c in self._calls.values() if not c.reported)]
                self._queue.clear()
                for call in dropped:
                    call.reported = True
                    self._forget(call)
            inside = threading.current_thread() is self._pump
        for call in dropped:
            if call.future is not None:
                _cancel(call.future)
            self._report(_lost(call, "the executor was shut down before the call ended"))
        if wait and not inside:
            with self._lock:
                while self._queue or self._calls or self._fetching:
                    self._idle.wait()
        if inside:
            self._pump_closes = True  # the pump closes the client once the last call has reported
            return
        self._events.put(("stop", None))
        pump = self._pump
        if pump is not None:
            pump.join()
        self._close_client()

    def where(self) -> dict[str, str]:
        """The cluster's scheduler address and dashboard link, once connected; why it cannot be
        reached while it cannot. Lock-free: a host's heartbeat asks while the pump may hold the lock
        for seconds, starting a LocalCluster, and a heartbeat that waited would make the host look dead."""
        found: dict[str, str] = {"cluster": self._seen.get("cluster") or self.address or "local"}
        down = self._down_reason
        if down:
            found["cluster_down"] = down
        elif self._seen.get("dashboard"):
            found["dashboard"] = self._seen["dashboard"]
        return found

    def fetch_output(self, name: str) -> tuple[str, str | bytes]:
        """The encoded (kind, data) of the output kept on the cluster as dataset ``name``. Connects
        to a cluster at ``address``; a local cluster that is not running held nothing of it."""
        fix = "Clear the task that made it so that it runs again."
        with self._lock:
            if self._client is None and not self.address:
                raise OutputOnClusterError(None, None, name, "the local Dask cluster that held it is closed", fix)
            try:
                client = self._connect()
            except WorkerLostError as exc:
                raise OutputOnClusterError(None, None, name, f"the cluster cannot be reached ({exc.detail})", fix) from None
        try:
            kind, data = client.get_dataset(name).result(timeout=CONNECT_TIMEOUT)
        except KeyError:
            raise OutputOnClusterError(None, None, name, "the cluster no longer holds it", fix) from None
        except Exception as exc:
            raise OutputOnClusterError(None, None, name, f"it could not be read ({type(exc).__name__}: {exc})",
                                       fix) from None
        return kind, data

    def release_outputs(self, names: list[str]) -> None:
        """Unpublish these datasets, so the cluster frees them; quietly, for each that is gone."""
        client = self._client
        if client is None or not names:
            return
        for name in names:
            try:
                client.unpublish_dataset(name)
            except Exception as exc:  # gone already (another host ended the same run), or the cluster is
                log.debug("dask executor: dataset %s not released: %s", name, exc)

    # -- the cluster ------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` of this executor (connecting first if need be)."""
        with self._lock:
            return self._connect()

    def _connect(self) -> Any:
        """The client, connected (or the cluster started) on first use; raises WorkerLostError at
        once while the cluster is known to be down. Called with the lock held."""
        if self._client is not None:
            # a LocalCluster of ours that was closed under us is started again at once, rather
            # than waiting for its client to give up reconnecting
            cluster_gone = self._cluster is not None and str(getattr(self._cluster, "status", "")).endswith(
                ("closed", "closing", "failed"))
            if self._client.status == "running" and not cluster_gone:
                return self._client
            if self._client.status == "connecting" and not cluster_gone and not self.address:
                return self._client
            lost = self.address and self._client.status == "connecting"
            self._close_client()
            if lost:  # the scheduler at dask_address went away: an outage, until the probe reaches it
                self._went_down(ConnectionError("the connection to its scheduler was lost"))
        if self._down_reason:
            raise WorkerLostError(None, self._down_reason)
        try:
            client, cluster = self._open()
        except Exception as exc:
            self._went_down(exc)
            raise WorkerLostError(None, self._down_reason) from exc
        self._adopt(client, cluster)
        return client

    def _open(self) -> tuple[Any, Any]:
        """A new client of the cluster at ``address``, or of a LocalCluster started for it."""
        import dask
        from distributed import Client, LocalCluster

        if self.address:
            return Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False), None
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(
                n_workers=self.workers or None, threads_per_worker=self.threads_per_worker or None,
                processes=True, dashboard_address=None,
                # the scheduler's HTTP endpoint on a free port: two hosts on one machine must not
                # fight over Dask's default 8787
                scheduler_kwargs={"allowed_failures": 0, "dashboard_address": ":0"},
            )
        try:
            return Client(cluster, set_as_default=False), cluster
        except BaseException:
            _quietly(cluster.close)
            raise

    def _adopt(self, client: Any, cluster: Any) -> None:
        self._reached = True
        seen = {"cluster": self.address or "local", "dashboard": ""}
        try:
            seen["cluster"] = str(client.scheduler.address)
            seen["dashboard"] = str(client.dashboard_link or "")
        except Exception as exc:  # its address is all we know
            log.debug("dask executor: no dashboard link: %s", exc)
        self._seen = seen  # one assignment: where() reads it without the lock
        client.subscribe_topic(self._topic, self._started)
        client.subscribe_topic(f"{self._topic}-log", self._log_piece)
        client.subscribe_topic(f"{self._topic}-reply", self._reply)
        self._client, self._cluster = client, cluster

    def _went_down(self, exc: BaseException) -> None:
        """The cluster cannot be reached: no slot is free until a probe thread reaches it again, so
        a host keeps its tries waiting instead of failing them one after another."""
        where = f"the Dask cluster at {self.address}" if self.address else "a local Dask cluster"
        self._down_reason = f"{where} could not be reached ({type(exc).__name__}: {exc})"
        log.warning("dask executor: %s; no task starts until it answers", self._down_reason)
        if self._probe is None:
            self._probe = threading.Thread(target=self._probe_loop, name="nbflow-dask-probe", daemon=True)
            self._probe.start()

    def _probe_loop(self) -> None:
        wait = RECONNECT_AFTER
        while True:
            if self._stopped.wait(wait):
                break
            try:
                client, cluster = self._open()
            except Exception as exc:
                log.debug("dask executor: still unreachable: %s", exc)
                wait = min(wait * 2, MAX_RECONNECT_WAIT)
                continue
            with self._lock:
                if not self._closed:
                    self._adopt(client, cluster)
                    self._down_reason = ""
                    client = cluster = None
            if client is not None:
                _quietly(client.close)
                if cluster is not None:
                    _quietly(cluster.close)
            log.warning("dask executor: the cluster answers again; tasks start again")
            break
        with self._lock:
            self._probe = None
        self._events.put(("wake", None))  # the pump sends what waited meanwhile

    def _close_client(self) -> None:
        for folder, marker in self._markers.items():
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, marker))
        self._markers.clear()
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            _quietly(client.close)
        if cluster is not None:
            _quietly(cluster.close)

    # -- sending calls and taking their ends ------------------------------------------------------

    def _flush(self) -> None:
        """Send queued calls while there are free slots, as few graphs as their placement allows;
        report those that cannot go."""
        failed: list[Outcome] = []
        calls: list[_Call] = []
        with self._lock:
            room = min(len(self._queue), self.parallelism - len(self._calls))
            if room > 0:
                try:
                    client = self._connect()
                except WorkerLostError as exc:
                    if not self._reached:
                        failed = [_lost(call, exc.detail) for call in self._queue]
                        self._queue.clear()
                    room = 0  # else the calls wait, in order, for the probe to reach the cluster
            if room > 0:
                calls = [self._queue.popleft() for _ in range(room)]
                for call in calls:  # in flight from now on: cancel finds them, free_slots counts them
                    call.token = f"{_name_of(call.fn)}-{uuid.uuid4().hex}"
                    self._calls[call.token] = call
        if calls:
            failed += self._send(client, calls)
        with self._lock:
            self._notify_if_idle()
        for outcome in failed:
            self._report(outcome)

    def _send(self, client: Any, calls: list[_Call]) -> list[Outcome]:
        """Pickle ``calls`` and hand them to Dask, one ``client.map`` per placement; return the
        outcomes of those that could not go. Runs on the pump without the lock: pickling a batch
        must not hold up ``submit``."""
        failed: list[tuple[_Call, Outcome]] = []
        artifacts, marker = self._artifacts_marker()
        groups: dict[tuple[int, tuple[tuple[str, float], ...]], list[tuple[_Call, bytes]]] = {}
        for call in calls:
            # Each call is pickled once, here, into bytes: Dask's client, its scheduler and the
            # worker then only move bytes. A call that Dask pickled itself was pickled on the
            # client's event loop, then unpickled and pickled again by the scheduler: most of the
            # host's CPU per try, on the thread that also takes every result.
            try:
                payload = cloudpickle.dumps((call.fn, call.args, call.memory_limit), protocol=5)
            except Exception as exc:
                failed.append((call, _unpicklable_call(call, exc)))
                continue
            placement = (call.priority, tuple(sorted((call.resources or {}).items())))
            groups.setdefault(placement, []).append((call, payload))
            call.artifacts = artifacts
        log_topic = f"{self._topic}-log"
        reply_topic = f"{self._topic}-reply"
        sent: list[tuple[_Call, Any]] = []
        for (priority, resources), group in groups.items():
            missing = self._unoffered(client, dict(resources)) if resources else ""
            if missing:
                failed += [(call, _resources_refused(call, missing)) for call, _ in group]
                continue
            # a worker says when it starts a call that has a deadline, and, on a cluster not
            # started here (where Dask may run a call again after its worker died), every call:
            # an event costs a message through the scheduler
            topics = [self._topic if call.timeout is not None or self.address else "" for call, _ in group]
            tokens = [call.token for call, _ in group]
            try:
                # one argument per task: Dask's client and scheduler handle each argument of each task
                futures = client.map(
                    _run_packed, [(payload, token, topic, log_topic, artifacts, marker, reply_topic)
                                  for (_, payload), token, topic in zip(group, tokens, topics)],
                    key=tokens, pure=False, retries=0, priority=priority, resources=dict(resources) or None,
                )
            except Exception as exc:  # the client lost its cluster between two calls
                detail = f"the call could not be sent to the Dask cluster ({type(exc).__name__}: {exc})"
                failed += [(call, _lost(call, detail)) for call, _ in group]
                continue
            sent += [(call, future) for (call, _), future in zip(group, futures)]
        outcomes: list[Outcome] = []
        with self._lock:
            for call, outcome in failed:
                if not call.reported:  # else cancelled meanwhile, and reported then
                    call.reported = True
                    self._forget(call)
                    outcomes.append(outcome)
            watched = []
            for call, future in sent:
                call.future = future
                if call.reported:  # cancelled (or shut down) while it was being sent
                    _cancel(future)
                    continue
                watched.append(future)
        if watched:
            self._watch(client, watched)
        return outcomes

    def _watch(self, client: Any, futures: list[Any]) -> None:
        """Hand each future to the pump when it ends, from the client's event loop. (A future's
        ``add_done_callback`` runs every callback through a thread pool: a hand-over per try that
        cost the host more than the hand-over itself.)"""
        from distributed.client import done_callback

        try:
            for future in futures:
                client.loop.add_callback(done_callback, future, self._done)
        except Exception:  # no loop to watch on (the client is closing): Dask's own way
            for future in futures:
                future.add_done_callback(self._done)

    def _artifacts_marker(self) -> tuple[str, str]:
        """The host's artifacts folder and the name of a marker file in it: a worker that finds the
        marker writes a try's artifacts there, one that does not sends them back with the result."""
        folder = self.artifacts_folder
        if folder is None:
            from nbflow.settings import get_settings

            folder = str(get_settings().artifacts_folder)
        marker = self._markers.get(folder)
        if marker is None:
            marker = f".nbflow-host-{self._topic}"
            try:
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, marker), "w") as handle:
                    handle.write(f"{HOSTNAME} {os.getpid()}\n")
            except OSError as exc:  # workers send every artifact back
                log.debug("dask executor: no marker in %s: %s", folder, exc)
            self._markers[folder] = marker
        return folder, marker

    def _unoffered(self, client: Any, resources: dict[str, float]) -> str:
        """Why no worker of the cluster can run a call that needs ``resources`` ("" if one can, or
        if the cluster has no workers yet to tell): Dask would keep such a call waiting for good."""
        try:
            workers = client.scheduler_info()["workers"]
        except Exception:  # the cluster went away: the call fails when it is sent
            return ""
        if not workers:
            return ""
        for info in workers.values():
            offered = info.get("resources") or {}
            if all(offered.get(name, 0) >= amount for name, amount in resources.items()):
                return ""
        where = f"the Dask cluster at {self.address}" if self.address else "the local Dask cluster"
        wanted = " ".join(f"{name}={amount:g}" for name, amount in resources.items())
        return (f"no worker of {where} offers {wanted} (its workers offer "
                f"{sorted({n for i in workers.values() for n in (i.get('resources') or {})}) or 'no resources'}): "
                f"start workers with `dask worker --resources \"{wanted}\"`, or change the task's resources")

    def _done(self, future: Any) -> None:
        """On the client's event loop: hand the finished future to the pump."""
        self._events.put(("done", future))

    def _log_piece(self, event: tuple[float, Any]) -> None:
        """On the client's event loop: a piece of a running call's log."""
        self._events.put(("log", event[1]))

    def _reply(self, event: tuple[float, Any]) -> None:
        """On the client's event loop: a small reply, sent by the worker before its call ended."""
        self._events.put(("reply", event[1]))

    def _started(self, event: tuple[float, Any]) -> None:
        """On the client's event loop: a worker started a call (the Dask event the call sends)."""
        self._events.put(("started", (event[1], time.time())))

    def _pump_loop(self) -> None:
        """The one thread that takes finished futures (in batches), starts deadlines and enforces them."""
        while True:
            with self._lock:
                wait = self._deadlines[0][0] - time.monotonic() if self._deadlines else None
            try:
                first = self._events.get(timeout=max(wait, 0.0) if wait is not None else None)
                batch = [first]
            except queue.Empty:
                batch = []
            while True:
                try:
                    batch.append(self._events.get_nowait())
                except queue.Empty:
                    break
            stop = any(kind == "stop" for kind, _ in batch)
            outcomes = self._take(batch)
            outcomes += self._expire()
            for outcome in outcomes:
                self._report(outcome)
            self._flush()
            if stop:
                return
            with self._lock:
                done = self._pump_closes and not self._calls and not self._queue and not self._fetching
            if done:  # shut down from on_done: this thread closes the client once drained
                self._close_client()
                return

    def _take(self, batch: list[tuple[str, Any]]) -> list[Outcome]:
        finished: list[tuple[_Call, Any]] = []
        outcomes: list[Outcome] = []
        with self._lock:
            for kind, item in batch:
                if kind == "started":
                    token, at = item
                    call = self._calls.get(token)
                    if call is None or call.reported:
                        continue
                    call.starts += 1
                    if call.starts > 1:  # Dask ran it again after its worker died: that try is lost
                        call.reported = True
                        self._forget(call)
                        _cancel(call.future)
                        outcomes.append(_lost(call, "the Dask worker running it died (Dask started it again elsewhere)"))
                        continue
                    call.started_at = at
                    if call.timeout is not None:
                        heapq.heappush(self._deadlines, (time.monotonic() + call.timeout, next(self._seq), call))
                elif kind == "done":
                    call = self._calls.get(item.key)
                    if call is None or call.reported or call.future is not item:
                        continue
                    call.reported = True
                    self._forget(call)
                    finished.append((call, item))
                elif kind == "reply":
                    token, reply = item
                    call = self._calls.get(token)
                    if call is not None and not call.reported:
                        call.reply = tuple(reply)
                elif kind == "log":
                    token, offset, piece = item
                    call = self._calls.get(token)
                    if call is not None and not call.reported and offset == call.log_written and piece:
                        _write_log(call, piece)
                        call.log_written += len(piece)
                elif kind == "fetched":
                    self._fetching -= len(item[0])
                    finished.extend((call, future) for call, future in item[0])
        # Results are fetched on the client's event loop, so that this thread goes on sending
        # queued calls meanwhile: a fetch waited for here would hold every slot that just freed.
        ok = [(call, future) for call, future in finished if future.status == "finished"]
        results: dict[int, Any] = {id(call): call.reply for call, _ in ok if call.reply is not None}
        for kind, item in batch:
            if kind == "fetched":
                pairs, values, error = item
                if error is None:
                    results.update(zip((id(call) for call, _ in pairs), values))
                else:  # one by one, so that one lost result does not lose the others
                    for call, future in pairs:
                        try:
                            results[id(call)] = future.result(timeout=CONNECT_TIMEOUT)
                        except Exception as exc:
                            results[id(call)] = exc
        unfetched = [(call, future) for call, future in ok if id(call) not in results]
        if unfetched:
            self._fetch(unfetched)
        requeued = False
        for call, future in finished:
            if id(call) in results:
                outcomes.append(_decode(call, results[id(call)]))
            elif self.address and call.starts == 0 and future.status == "cancelled" and not self._closed:
                # dropped by a cluster that went away before any worker started it (on a cluster
                # not started here every call says when it starts): nothing ran, so it goes again
                # once the cluster answers, rather than count as a try
                with self._lock:
                    call.reported, call.future, call.token = False, None, ""
                    self._queue.appendleft(call)
                requeued = True
            elif future.status != "finished":
                outcomes.append(_failed_future(call, future, self.address))
        if requeued:
            self._events.put(("wake", None))
        with self._lock:
            self._notify_if_idle()
        return outcomes

    def _fetch(self, pairs: list[tuple[_Call, Any]]) -> None:
        """Gather the results of finished futures on the client's loop; they come back as an event."""
        with self._lock:
            self._fetching += len(pairs)
        client = pairs[0][1].client
        try:
            gathering = client.gather([future for _, future in pairs], errors="raise", asynchronous=True)
        except Exception as exc:
            self._events.put(("fetched", (pairs, None, exc)))
            return

        async def fetch() -> None:
            try:
                values = await gathering
            except Exception as exc:
                self._events.put(("fetched", (pairs, None, exc)))
            else:
                self._events.put(("fetched", (pairs, values, None)))

        client.loop.add_callback(fetch)

    def _expire(self) -> list[Outcome]:
        expired: list[_Call] = []
        with self._lock:
            now = time.monotonic()
            while self._deadlines and (self._deadlines[0][2].reported or self._deadlines[0][0] <= now):
                _, _, call = heapq.heappop(self._deadlines)
                if not call.reported:
                    call.reported = True
                    self._forget(call)
                    expired.append(call)
            self._notify_if_idle()
        outcomes = []
        for call in expired:
            _cancel(call.future)
            error = TaskTimeoutError(None, None, call.timeout or 0.0)
            outcomes.append(Outcome(
                call.key, ok=False, error=error, traceback=format_error(error), timed_out=True,
                started_at=call.started_at, ended_at=time.time(), hostname=HOSTNAME,
            ))
        return outcomes

    def _forget(self, call: _Call) -> None:
        self._calls.pop(call.token, None)

    def _notify_if_idle(self) -> None:
        if not self._calls and not self._queue and not self._fetching:
            self._idle.notify_all()


# -- options ----------------------------------------------------------------------------------------


def check_options(address: str, workers: int, threads_per_worker: int) -> None:
    """Refuse settings the Dask executor cannot use, naming the setting and the fix."""
    if not isinstance(address, str):
        raise ConfigError("dask_address", address, "give the scheduler's address (tcp://host:8786), or leave it "
                          "empty to start a local cluster")
    address = address.strip()
    if address and ":" not in address:
        raise ConfigError("dask_address", address, "give the Dask scheduler's address with its port, e.g. "
                          "tcp://host:8786, or leave it empty to start a local cluster")
    for key, value in (("dask_workers", workers), ("dask_threads_per_worker", threads_per_worker)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(key, value, "it must be a whole number, 0 for Dask's choice for this machine")
        if value and address:
            raise ConfigError(key, value, "it sizes the local Dask cluster started when dask_address is empty; "
                              f"the cluster at dask_address ({address}) has the workers it was started with: "
                              "set it to 0, or leave dask_address empty")


# -- on the worker ----------------------------------------------------------------------------------


def _run_packed(packed: tuple[Any, ...]) -> tuple[Any, ...]:
    """:func:`_run_remote` with its arguments in one tuple, as they travel."""
    return _run_remote(*packed)


def _run_remote(payload: bytes, token: str, topic: str, log_topic: str = "", artifacts: str = "",
                marker: str = "", reply_topic: str = "") -> tuple[Any, ...]:
    """Run one call on a Dask worker and say how it ended, never raising.

    Returns ``(status, body, started, ended, pid, hostname, log_bytes, files, worker)``: status
    "ok" with the value pickled, "unpicklable" with the reason, or "error" with what the process
    executor's worker sends for an exception. A request with a ``log_path`` logs to a temporary
    file here, whose bytes come back (this machine may not see the host's logs folder). Its
    artifacts (an executed notebook, its report) go to the host's ``artifacts`` folder when this
    machine sees it (its ``marker`` file is there), else to a temporary folder whose files come
    back as ``files`` (path under the folder -> bytes). ``worker`` is the Dask worker's address.
    A reply of at most REPLY_INLINE bytes is also sent to the host as an event on ``reply_topic``.
    """
    if topic:
        try:
            from distributed import get_worker

            get_worker().log_event(topic, token)
        except Exception:  # not on a worker (a test calling it directly): nobody to tell
            pass
    started = time.time()
    temp = None
    try:
        fn, args, memory_limit = pickle.loads(payload)
    except BaseException as exc:  # a module the call needs is missing here
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        body = (None, _type_name(exc), f"the call did not unpickle on the Dask worker: {exc}", text)
        return ("error", body, started, time.time(), os.getpid(), socket.gethostname(), b"", {}, _worker_address(), None)
    if len(args) == 1 and isinstance(getattr(args[0], "upstream", None), dict):
        _read_kept_inputs(args[0])
    if len(args) == 1 and dataclasses.is_dataclass(args[0]) and hasattr(args[0], "log_path"):
        temp = _try_log_path(token)
        args = (dataclasses.replace(args[0], log_path=temp),)  # type: ignore[type-var]
    end_stream = _stream_log(temp, token, log_topic) if temp is not None and log_topic else None
    scratch = None
    where = contextlib.nullcontext()
    if temp is not None and artifacts:
        from nbflow.paths import using_artifacts_folder

        if not (marker and os.path.exists(os.path.join(artifacts, marker))):
            scratch = tempfile.mkdtemp(prefix=f"nbflow-artifacts-{token}-")
        where = using_artifacts_folder(scratch or artifacts)
    peak: list[int | None] = [None]
    pid = os.getpid()
    try:
        with where:
            if memory_limit:
                value, pid = _run_limited(fn, args, memory_limit, peak)
            else:
                value = fn(*args)
            value = _keep_large_output(value, token)
    except BaseException as exc:  # SystemExit from a task is the task's failure, not the worker's
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        try:
            pickled: bytes | None = cloudpickle.dumps(exc, protocol=5)
            pickle.loads(pickled)
        except Exception:
            pickled = None
        reply: tuple[Any, Any] = ("error", (pickled, _type_name(exc), str(exc), text))
    else:
        try:
            reply = ("ok", cloudpickle.dumps(value, protocol=5))
        except Exception as exc:
            reply = ("unpicklable", (_type_name(value), f"{type(exc).__name__}: {exc}"))
    ended = time.time()
    if end_stream is not None:
        end_stream()
    logged = b""
    if temp is not None:
        try:
            with open(temp, "rb") as handle:
                logged = handle.read()
            os.unlink(temp)
        except FileNotFoundError:  # the task wrote nothing: a silent try leaves no log file
            pass
    files: dict[str, bytes] = {}
    if scratch is not None:
        files = _collect(scratch)
    whole = (*reply, started, ended, pid, socket.gethostname(), logged, files, _worker_address(), peak[0])
    if reply_topic and _reply_size(reply[1]) + len(logged) + sum(map(len, files.values())) <= REPLY_INLINE:
        try:
            from distributed import get_worker

            get_worker().log_event(reply_topic, [token, whole])
        except Exception:  # not on a worker, or the event could not go: the host fetches the reply
            pass
    return whole


def _reply_size(body: Any) -> int:
    """Bytes of a reply's body: its pickled value, or the pieces of an error."""
    if isinstance(body, bytes):
        return len(body)
    return sum(len(part) for part in body if isinstance(part, (bytes, str)))


def _keep_large_output(value: Any, token: str) -> Any:
    """A try's result whose output is over its request's ``keep_outputs_over`` (the runner marks it
    ``keep``), with that output published on the cluster from this worker and only its preview,
    size and dataset name left to send back."""
    output = getattr(value, "output", None)
    if not getattr(output, "keep", False) or not dataclasses.is_dataclass(value):
        return value
    from distributed import get_client, get_worker

    name = f"nbflow-output-{token}"
    client = get_client()
    # a list of one: scatter would send each item of a bare tuple as a future of its own
    (future,) = client.scatter([(output.kind, output.data)], workers=[get_worker().address], hash=False)
    client.publish_dataset(future, name=name)
    return dataclasses.replace(value, output=kept_on_cluster(output, name))  # type: ignore[type-var]


def _read_kept_inputs(request: Any) -> None:
    """Put the values of upstream outputs kept on the cluster into the request, from their datasets
    (moved to this worker by Dask). One that is gone stays as it was: the runner says which."""
    names = [name for pair in request.upstream.values() for name in cluster_names(pair)]
    if not names:
        return
    from distributed import get_client

    client = get_client()
    found: dict[str, tuple[str, Any]] = {}
    for name in names:
        try:
            kind, data = client.get_dataset(name).result()
        except Exception as exc:  # unpublished (its run ended) or lost with a worker
            log.debug("dask executor: dataset %s not read: %s", name, exc)
            continue
        found[name] = (kind, data)

    def swap(pair: tuple[str, Any]) -> tuple[str, Any]:
        kind, data = pair
        if kind == CLUSTER:
            return found.get(str(data), pair)
        if kind == "mapped":
            return kind, [swap(item) for item in data]
        return pair

    request.upstream = {tid: swap(pair) for tid, pair in request.upstream.items()}


_limited_lock = threading.Lock()
_limited: dict[str, Any] = {}


def _run_limited(fn: Callable[..., Any], args: tuple[Any, ...], limit: int,
                 peak: list[int | None]) -> tuple[Any, int | None]:
    """Run one call with a memory limit on this worker: in a worker process of a process executor
    of this Dask worker's own (as many processes as it has threads), whose memory watcher holds the
    call's process tree to ``limit`` as on any host. Threads of one process cannot be told apart;
    processes can. Returns the value and the pid of the process that ran it, raises its error."""
    from nbflow.executors.process import ProcessExecutor

    done = threading.Event()
    box: dict[str, Outcome] = {}
    with _limited_lock:
        pool = _limited.get("pool")
        if pool is None:
            try:
                from distributed import get_worker

                threads = int(get_worker().state.nthreads)
            except Exception:  # not on a worker (called directly)
                threads = 1
            pool = ProcessExecutor(max(1, threads))
            pool.start(lambda outcome: _limited.pop(("wait", outcome.key))(outcome))
            _limited["pool"] = pool
        key = uuid.uuid4().hex

        def deliver(outcome: Outcome) -> None:
            box["outcome"] = outcome
            done.set()

        _limited[("wait", key)] = deliver  # type: ignore[index]
    pool.submit(key, fn, args, memory_limit=limit)
    done.wait()
    outcome = box["outcome"]
    peak[0] = outcome.peak_rss
    if not outcome.ok:
        raise outcome.error if outcome.error is not None else RuntimeError(outcome.traceback)
    return outcome.value, outcome.pid


def _collect(folder: str) -> dict[str, bytes]:
    """The files under ``folder`` (relative path -> bytes), then the folder is removed."""
    import shutil

    files: dict[str, bytes] = {}
    try:
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as handle:
                    files[os.path.relpath(path, folder)] = handle.read()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return files


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # not on a worker
        return ""


_log_folder: list[str] = []


def _try_log_path(token: str) -> str:
    """Where a try on this worker logs: a path in a folder of this process's own, not a file yet,
    since a try that prints nothing writes no log (a temporary file made for every try cost its
    creation, reading and removal on every one)."""
    with _streamed_lock:
        if not _log_folder:
            _log_folder.append(tempfile.mkdtemp(prefix="nbflow-try-logs-"))
        return os.path.join(_log_folder[0], f"{token}.log")


#: the logs of the calls running in this worker process, sent in pieces by one thread
#: (a thread per call cost its start and join on every try): token -> [path, topic, offset]
_streamed: dict[str, list[Any]] = {}
_streamed_lock = threading.Lock()
_streamer: list[threading.Thread] = []


def _stream_log(path: str, token: str, topic: str) -> Callable[[], None] | None:
    """Send the log at ``path`` to the host in pieces while the call runs, so that following a
    try's log works as with the other executors; returns what stops it."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except Exception:  # not on a worker: the log comes with the result
        return None
    entry = [path, topic, 0]
    with _streamed_lock:
        _streamed[token] = entry
        if not _streamer or not _streamer[0].is_alive():
            _streamer[:] = [threading.Thread(target=_send_pieces, args=(worker,), name="nbflow-log-pieces", daemon=True)]
            _streamer[0].start()

    def end() -> None:
        with _streamed_lock:  # the thread sends no piece of it after this: the rest goes with the result
            _streamed.pop(token, None)
            entry[2] = -1

    return end


def _send_pieces(worker: Any) -> None:
    """Every LOG_INTERVAL, the new whole lines of each running call's log, as a Dask event."""
    while True:
        time.sleep(LOG_INTERVAL)
        with _streamed_lock:
            running = list(_streamed.items())
        for token, entry in running:
            path, topic, offset = entry
            try:
                with open(path, "rb") as handle:
                    piece = os.pread(handle.fileno(), LOG_CHUNK, offset)
            except OSError:
                continue
            if len(piece) < LOG_CHUNK:  # whole lines only, so the host can rewrite paths in them
                piece = piece[:piece.rfind(b"\n") + 1]
            if not piece:
                continue
            with _streamed_lock:
                if entry[2] != offset:  # the call ended meanwhile: its result brings the rest
                    continue
                worker.log_event(topic, [token, offset, piece])
                entry[2] = offset + len(piece)


def _type_name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    module = getattr(cls, "__module__", "")
    return cls.__qualname__ if module in ("builtins", "", None) else f"{module}.{cls.__qualname__}"


# -- back on the host -------------------------------------------------------------------------------


def _decode(call: _Call, reply: Any) -> Outcome:
    """Turn a worker's reply into an Outcome, writing the log it brought at the call's log_path."""
    try:
        status, body, started, ended, pid, hostname, logged, files, worker, peak_rss = reply
    except Exception:
        detail = f"its reply could not be read ({type(reply).__name__}: {reply})"
        error = reply if isinstance(reply, WorkerLostError) else WorkerLostError(None, detail)
        return Outcome(call.key, ok=False, error=error, traceback=format_error(error), hostname=HOSTNAME)
    if len(logged) > call.log_written:  # what the pieces sent while it ran did not bring
        _write_log(call, logged[call.log_written:])
    if files:
        _write_artifacts(call, call.artifacts, files)
    outcome = Outcome(call.key, ok=False, started_at=started, ended_at=ended, pid=pid, hostname=hostname,
                      worker=worker, peak_rss=peak_rss)
    error: BaseException
    if status == "ok":
        try:
            outcome.value, outcome.ok = pickle.loads(body), True
            return outcome
        except Exception as exc:
            error = OutputNotSerializableError(  # type: ignore[arg-type]
                None, None, "?", f"it was pickled on the Dask worker but does not unpickle here ({type(exc).__name__}: {exc})")
    elif status == "unpicklable":
        type_name, reason = body
        error = OutputNotSerializableError(  # type: ignore[arg-type]
            None, None, type_name, f"it must be pickled to leave the Dask worker, and it does not pickle: {reason}")
    else:
        pickled, type_name, message, text = body
        try:
            found = pickle.loads(pickled) if pickled is not None else None
        except Exception:
            found = None
        outcome.error = found if isinstance(found, BaseException) else RemoteTaskError(type_name, message, text)
        outcome.traceback = text
        return outcome
    outcome.error, outcome.traceback = error, format_error(error)
    return outcome


def _write_artifacts(call: _Call, folder: str, files: dict[str, bytes]) -> None:
    """Write the artifacts a worker sent back under the host's artifacts folder, at the paths they
    had under the worker's temporary one."""
    root = os.path.realpath(folder)
    for name, data in files.items():
        path = os.path.realpath(os.path.join(root, name))
        if not path.startswith(root + os.sep):
            log.warning("dask executor: %r sent an artifact outside the artifacts folder: %s", call.key, name)
            continue
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            log.warning("dask executor: could not write the artifact %s of %r: %s", path, call.key, exc)


def _write_log(call: _Call, data: bytes) -> None:
    """Append the log a worker sent back at the request's own log_path, as a local try would."""
    path = getattr(call.args[0], "log_path", None) if call.args else None
    if not path:
        return
    if call.artifacts:  # the log names artifacts a worker sent back where the host has them
        data = re.sub(rb"\S*nbflow-artifacts-" + re.escape(call.token.encode()) + rb"-[^/\s]*",
                      call.artifacts.encode().replace(b"\\", b"\\\\"), data)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab") as handle:
            handle.write(data)
    except OSError as exc:
        log.warning("dask executor: could not write the log of %r at %s: %s", call.key, path, exc)


def _failed_future(call: _Call, future: Any, address: str) -> Outcome:
    """The outcome of a future that did not finish: its worker died, or the cluster went away."""
    where = f"the Dask cluster at {address}" if address else "the local Dask cluster"
    try:
        exc = future.exception(timeout=1) if future.status == "error" else None
    except Exception as err:
        exc = err
    if exc is None:
        detail = f"{where} dropped it ({future.status}): the cluster went away or the call was cancelled there"
    elif type(exc).__name__ == "KilledWorker":
        detail = f"the Dask worker running it died ({exc})"
    else:
        # raised before the call could start: it did not unpickle on the worker (a module there is
        # missing) or the worker broke; the task's own errors come back in the reply
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        error = RemoteTaskError(_type_name(exc), f"on the Dask worker, before the call started: {exc}", text)
        return Outcome(call.key, ok=False, error=error, traceback=text, started_at=call.started_at,
                       ended_at=time.time(), hostname=HOSTNAME)
    return _lost(call, detail)


def _lost(call: _Call, detail: str) -> Outcome:
    error = WorkerLostError(None, detail)
    return Outcome(call.key, ok=False, error=error, traceback=format_error(error), started_at=call.started_at,
                   ended_at=time.time() if call.started_at else None, hostname=HOSTNAME)


def _resources_refused(call: _Call, reason: str) -> Outcome:
    from nbflow.errors import InvalidOptionError

    error = InvalidOptionError("resources", call.resources, reason)
    return Outcome(call.key, ok=False, error=error, traceback=format_error(error), hostname=HOSTNAME)


def _unpicklable_call(call: _Call, exc: BaseException) -> Outcome:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    error = RemoteTaskError(_type_name(exc), f"the call could not be pickled to go to a Dask worker: {exc}", text)
    return Outcome(call.key, ok=False, error=error, traceback=text, hostname=HOSTNAME)


def _name_of(fn: Any) -> str:
    return str(getattr(fn, "__name__", "call")).replace("<", "").replace(">", "") or "call"


def _cancel(future: Any) -> None:
    if future is not None:
        _quietly(future.cancel)


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception as exc:  # closing a cluster that already went away
        log.debug("dask executor: %s failed: %s", getattr(action, "__qualname__", action), exc)

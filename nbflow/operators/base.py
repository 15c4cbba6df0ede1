"""``BaseOperator``: what every task is, and how tasks are wired together.

Subclass it and implement ``execute(context)`` to make your own operator; list the attribute names
that hold Jinja templates in ``template_fields``. Options left unset fall back to the DAG's
``default_args`` and then to nbflow's defaults, as in Airflow.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Sequence

from nbflow.context import current_dag, current_group
from nbflow.helpers import Arrows
from nbflow.edgemodifier import Label
from nbflow.errors import (
    DagDefinitionError,
    DependencyError,
    InvalidOptionError,
    TaskOutsideDagError,
    UnknownArgumentError,
)
from nbflow.refs import OutputRef, find_refs
from nbflow.states import TriggerRule

if TYPE_CHECKING:
    from nbflow.dag import DAG
    from nbflow.taskgroup import TaskGroup


class _Unset:
    """Marks an option the user did not give, so DAG defaults can fill it."""

    _instance: ClassVar[_Unset | None] = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

#: Options every operator takes, with nbflow's defaults. These are also the keys allowed in a DAG's
#: ``default_args`` (with ``start_date`` and ``end_date``).
TASK_DEFAULTS: dict[str, Any] = {
    "owner": "nbflow",
    "retries": 0,
    "retry_delay": timedelta(seconds=300),
    "retry_exponential_backoff": False,
    "max_retry_delay": None,
    "execution_timeout": None,
    "trigger_rule": TriggerRule.ALL_SUCCESS,
    "pool": "default_pool",
    "pool_slots": 1,
    "priority_weight": 1,
    "queue": "default",
    "on_success_callback": None,
    "on_failure_callback": None,
    "on_retry_callback": None,
    "on_execute_callback": None,
    "depends_on_past": False,
    "wait_for_downstream": False,
    "email": None,
    "email_on_failure": True,   # Airflow's defaults: they send nothing without an address in email
    "email_on_retry": True,
    "executor_config": None,
    "doc_md": None,
    "memory_limit": None,       # bytes its processes may hold; None: the task_memory_limit setting
    "outlets": None,            # assets this task produces: each success records one event per asset
    "resources": None,          # Dask worker resources a try needs ({"GPU": 1}); executor="dask" only
    "executor": None,           # where its tries run: None for the DAG's executor, else the host's
}
DEFAULT_ARGS_KEYS = frozenset(TASK_DEFAULTS) | {"start_date", "end_date", "params", "timeout"}


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


#: the largest whole number the store's integer columns (retries, pool slots, priority) can hold
INT_MAX = 2**31 - 1
_NO = object()


def whole_number(value: Any) -> Any:
    """``value`` as an int if it is a whole number (an ``int`` or anything with ``__index__``, never
    a bool or a float), else a marker that fails every range check."""
    if isinstance(value, bool):
        return _NO
    try:
        return operator.index(value)
    except TypeError:
        return _NO


def duration_seconds(value: Any) -> float | None:
    """Seconds of a ``timedelta`` or a real number, or None when ``value`` is neither or is not
    finite: a NaN or infinite duration would make a timeout never fire or a retry never come."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        return None
    return seconds if math.isfinite(seconds) else None


def _count(low: int, high: int = INT_MAX) -> tuple[Any, str]:
    def check(value: Any) -> Any:
        number = whole_number(value)
        return number if number is not _NO and low <= number <= high else _NO

    return check, f"give a whole number from {low} to {high:,}"


def _seconds_rule(positive: bool, none_means: str) -> tuple[Any, str]:
    def check(value: Any) -> Any:
        if value is None:
            return None
        seconds = duration_seconds(value)
        if seconds is None or seconds < 0 or (positive and seconds == 0):
            return _NO
        return value

    bound = "more than 0" if positive else "0 or more"
    return check, f"give {bound} seconds (a finite number or a datetime.timedelta), or None for {none_means}"


def _priority(value: Any) -> Any:
    number = whole_number(value)
    return number if number is not _NO and -INT_MAX <= number <= INT_MAX else _NO


def _pool(value: Any) -> Any:
    return value if isinstance(value, str) and value.strip() else _NO


def _flag(value: Any) -> Any:
    return value if isinstance(value, bool) else _NO


def _queue(value: Any) -> Any:
    return "default" if value is None or value == "default" else _NO


def _no_executor_config(value: Any) -> Any:
    return None if value is None or (isinstance(value, dict) and not value) else _NO


def _callbacks(value: Any) -> Any:
    if value is None or callable(value):
        return value
    if isinstance(value, (list, tuple)) and all(callable(item) for item in value):
        return list(value)
    return _NO


def _memory(value: Any) -> Any:
    from nbflow.memory import parse_size

    if value is None:
        return None
    size = parse_size(value)
    return _NO if size is None else size


def _executor(value: Any) -> Any:
    from nbflow.settings import EXECUTORS

    return value if value is None or value in EXECUTORS else _NO


def _resources(value: Any) -> Any:
    if value is None or (isinstance(value, dict) and not value):
        return None
    if not isinstance(value, dict):
        return _NO
    for name, amount in value.items():
        if not isinstance(name, str) or not name.strip() or isinstance(amount, bool) \
                or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount <= 0:
            return _NO
    return dict(value)


#: what each checked task option accepts: option -> (normalise or return _NO, what is allowed).
#: Checked for every task, and for a DAG's default_args when the DAG is built.
OPTION_RULES: dict[str, tuple[Any, str]] = {
    "retries": _count(0, INT_MAX - 1),  # the store keeps retries + 1 tries
    "retry_delay": _seconds_rule(positive=False, none_means="no delay"),
    "max_retry_delay": _seconds_rule(positive=False, none_means="no cap"),
    "execution_timeout": _seconds_rule(positive=True, none_means="no limit"),
    "timeout": _seconds_rule(positive=True, none_means="no limit"),
    "pool_slots": _count(1),
    "memory_limit": (_memory, "give a number of bytes (an int) or text such as \"2GiB\", \"300MB\" or \"512MiB\", "
                              "or None for the task_memory_limit setting"),
    "priority_weight": (_priority, f"give a whole number from {-INT_MAX:,} to {INT_MAX:,}"),
    "resources": (_resources, "give a dict of the Dask worker resources one try needs, names to amounts over 0, "
                              "e.g. {\"GPU\": 1, \"memory\": 4e9} (used by the dask executor), or None"),
    "executor": (_executor, "give one of inline, thread, process or dask, or None for the DAG's executor "
                            "(else the host's)"),
    "pool": (_pool, "give the pool's name, a non-empty string (or None for default_pool)"),
    "depends_on_past": (_flag, "give True or False"),
    "wait_for_downstream": (_flag, "give True or False (True implies depends_on_past=True)"),
    "email_on_failure": (_flag, "give True or False"),
    "email_on_retry": (_flag, "give True or False"),
    "on_execute_callback": (_callbacks, "give a function of the context, a list of them, or None"),
    # Refused rather than accepted and ignored: nbflow has no queues routed to workers, and no
    # per-try executor settings. Their Airflow defaults change nothing, so they pass.
    "queue": (_queue, "nbflow has no worker queues: leave queue out (only 'default' is accepted); "
                      "use pool and pool_slots to limit where work runs at once"),
    "executor_config": (_no_executor_config, "nbflow has no per-task executor settings: leave "
                        "executor_config out (only None or {} is accepted); choose where the task runs "
                        "with executor=, e.g. executor='dask'"),
}

#: the task options whose callbacks may be Notifiers, checked where the task (or default_args) is written
NOTIFYING_CALLBACKS = ("on_success_callback", "on_failure_callback", "on_retry_callback")


def check_email(
    options: dict[str, Any], *, dag_id: str | None = None, task_id: str | None = None, via: str = "",
) -> None:
    """Check ``email``: the addresses that ``email_on_failure`` and ``email_on_retry`` (both True
    unless given, as in Airflow) mail through the SMTP settings. One that is not an address is
    refused here rather than bounced at the first failure."""
    email = options.get("email")
    if email is None:
        return
    from nbflow.mail import addresses  # smtplib and ssl cost 20 ms: only for tasks that mail

    found = addresses(email)
    if not found:
        raise InvalidOptionError("email", email, "give an e-mail address, several separated by commas, or a list "
                                 "of them (mailed through the smtp_* settings on failure and retry)",
                                 dag_id, task_id, via)


def check_notifiers(
    name: str, value: Any, *, dag_id: str | None = None, task_id: str | None = None, via: str = "",
) -> None:
    """Check the targets of each ``Notifier`` among the callbacks of option ``name``."""
    from nbflow.notifications import Notifier

    for callback in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(callback, Notifier):
            callback.check(name, dag_id, task_id, via)


def check_option(
    name: str, value: Any, *, dag_id: str | None = None, task_id: str | None = None, via: str = "",
) -> Any:
    """The value of option ``name`` as tasks use it (a whole number as an ``int``), or
    :class:`~nbflow.errors.InvalidOptionError` naming the DAG, the task, the option and what is
    allowed. Options without a rule pass unchanged."""
    if name in NOTIFYING_CALLBACKS and value is not None:
        check_notifiers(name, value, dag_id=dag_id, task_id=task_id, via=via)
    rule = OPTION_RULES.get(name)
    if rule is None:
        return value
    check, allowed = rule
    if value is None and name in ("retries", "pool"):  # as in Airflow: no retries, the default pool
        return TASK_DEFAULTS[name]
    checked = check(value)
    if checked is _NO:
        raise InvalidOptionError(name, value, allowed, dag_id, task_id, via)
    return checked


class BaseOperator(Arrows):
    """One task of a DAG. Subclasses implement :meth:`execute`."""

    #: attribute names rendered with Jinja before ``execute``
    template_fields: ClassVar[Sequence[str]] = ()
    #: a short word for views: python, bash, empty, branch, notebook, sensor, ...
    kind: ClassVar[str] = "custom"
    #: what a mapped task maps over (``nbflow.mapping.ExpandInput``); None for a task run once per run
    expand_input: Any = None
    #: the mapped task group this task is mapped by (its instance i reads instance i of the group's
    #: earlier tasks); None outside one
    map_group: str | None = None
    #: the options every task has (retries, pool, ...), as opposed to an operator's own arguments
    task_options: ClassVar[frozenset[str]] = frozenset(TASK_DEFAULTS)

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """The arguments every instance of a mapped task shares; ``.expand(name=[...])`` or
        ``.expand_kwargs([...])`` on the result makes the task, one instance per item."""
        from nbflow.mapping import OperatorPartial

        return OperatorPartial(cls, kwargs)

    @property
    def is_mapped(self) -> bool:
        return self.expand_input is not None

    def __init__(
        self,
        *,
        task_id: str,
        dag: DAG | None = None,
        task_group: TaskGroup | None = None,
        params: dict[str, Any] | None = None,
        timeout: Any = UNSET,
        start_date: Any = None,
        end_date: Any = None,
        task_display_name: str | None = None,
        **options: Any,
    ) -> None:
        dag = dag if dag is not None else current_dag()
        group = task_group if task_group is not None else current_group()
        if group is not None and dag is None:
            dag = group.dag
        unknown = [key for key in options if key not in TASK_DEFAULTS]
        if unknown:
            raise UnknownArgumentError(
                unknown[0], sorted(TASK_DEFAULTS) + ["task_id", "dag", "params", "timeout", "task_group",
                                                     "task_display_name"],
                where=f"{type(self).__name__} argument", dag_id=getattr(dag, "dag_id", None), task_id=task_id,
            )
        if not isinstance(task_id, str) or not task_id:
            raise UnknownArgumentError("task_id", ["task_id"], where="empty or non-string", task_id=str(task_id))
        self._task_id = task_id
        self.group_id = group.group_id if group is not None else None
        if group is not None and group.prefix_group_id:
            task_id = f"{group.group_id}.{task_id}"
        self.task_id: str = task_id
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self.dag: DAG | None = None
        defaults = dict(dag.default_args) if dag is not None else {}
        if group is not None:  # a task group's defaults (its parents' included) come before the DAG's
            defaults.update(group.default_args)
        dag_id = getattr(dag, "dag_id", None)
        if timeout is not UNSET:
            if options.get("execution_timeout", UNSET) is not UNSET:
                raise DagDefinitionError(
                    "give either timeout or execution_timeout, not both (timeout is the short name of "
                    "execution_timeout)", dag_id, task_id,
                )
            options["execution_timeout"] = check_option("timeout", timeout, dag_id=dag_id, task_id=task_id)
        elif "timeout" in defaults:
            defaults.setdefault("execution_timeout", defaults["timeout"])
        for key, default in TASK_DEFAULTS.items():
            value, via = options.get(key, UNSET), ""
            if value is UNSET:
                value, via = defaults.get(key, default), "default_args" if key in defaults else ""
            object.__setattr__(self, key, check_option(key, value, dag_id=dag_id, task_id=task_id, via=via))
        email_via = "" if any(options.get(k, UNSET) is not UNSET for k in ("email", "email_on_failure",
                                                                           "email_on_retry")) else "default_args"
        check_email(self.__dict__, dag_id=dag_id, task_id=task_id, via=email_via)
        if self.outlets is not None:
            from nbflow.assets import check_outlets

            self.outlets = check_outlets(self.outlets, dag_id, task_id)
        if self.wait_for_downstream:  # as in Airflow: waiting for the past run's downstream implies its own
            self.depends_on_past = True
        self.trigger_rule = TriggerRule.parse(self.trigger_rule, dag_id, task_id)
        # a teardown's rule is its own; one given here is refused by as_teardown, not overwritten
        self._trigger_rule_given = options.get("trigger_rule", UNSET) is not UNSET
        self.params = {**(defaults.get("params") or {}), **(params or {})}
        if dag is None:
            raise TaskOutsideDagError(task_id)
        #: what views show for the task; its id stays what commands, logs and the store use
        self.task_display_name = display_name("task_display_name", task_display_name, dag_id, task_id) or self._task_id
        from nbflow.timetables import parse_date

        # aware, in the DAG's zone: depends_on_past compares the previous run's date with it
        self.start_date = parse_date(start_date, dag.timezone, field="start_date", dag_id=dag_id,
                                     task_id=task_id) if start_date is not None else None
        self.end_date = parse_date(end_date, dag.timezone, field="end_date", dag_id=dag_id,
                                   task_id=task_id) if end_date is not None else None
        dag.add_task(self)
        if group is not None:
            group.add(self)
        for ref in self.__dict__.pop("_pending_refs", []):
            self._depend_on(ref)

    # -- templated fields and data dependencies -------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in type(self).template_fields or name in ("op_args", "op_kwargs"):
            for ref in find_refs(value):
                if self.__dict__.get("dag") is None:
                    self.__dict__.setdefault("_pending_refs", []).append(ref)
                else:
                    self._depend_on(ref)

    def _depend_on(self, ref: OutputRef) -> None:
        if ref.operator is not self:
            ref.operator.set_downstream(self)

    def output_refs(self) -> list[OutputRef]:
        """Every reference to an upstream output held in this task's arguments."""
        found: list[OutputRef] = []
        for name in dict.fromkeys([*type(self).template_fields, "op_args", "op_kwargs"]):
            find_refs(self.__dict__.get(name), found)
        if self.expand_input is not None:
            found.extend(self.expand_input.refs())
        return found

    # -- identity ---------------------------------------------------------------------------------

    @property
    def dag_id(self) -> str | None:
        # in a worker process the task travels without its DAG, but keeps its id (paths, messages)
        return self.dag.dag_id if self.dag is not None else self.__dict__.get("_shipped_dag_id")

    @property
    def output(self) -> OutputRef:
        """This task's output, to pass to another task: ``summarise(nb.output)``."""
        return OutputRef(self)

    @property
    def runs_with(self) -> str | None:
        """The executor its tries ask for: its own ``executor`` option, else its DAG's; None leaves
        the choice to the host running it."""
        return self.executor or (self.dag.executor if self.dag is not None else None)

    @property
    def execution_timeout_seconds(self) -> float | None:
        return _seconds(self.execution_timeout)

    @property
    def upstream_list(self) -> list[BaseOperator]:
        assert self.dag is not None
        return [self.dag.task_dict[t] for t in sorted(self.upstream_task_ids)]

    @property
    def downstream_list(self) -> list[BaseOperator]:
        assert self.dag is not None
        return [self.dag.task_dict[t] for t in sorted(self.downstream_task_ids)]

    def retry_delay_for(self, try_number: int) -> float:
        """Seconds to wait before try ``try_number + 1``, after try ``try_number`` failed."""
        base = _seconds(self.retry_delay) or 0.0
        if self.retry_exponential_backoff:
            base = base * (2 ** max(0, try_number - 1))
        cap = _seconds(self.max_retry_delay)
        return min(base, cap) if cap is not None else base

    # -- setup and teardown -----------------------------------------------------------------------

    #: this task makes a resource its teardown releases (a cluster, a temporary table)
    is_setup: bool = False
    #: this task releases what its setups made; it runs once its upstream is done, whatever happened
    is_teardown: bool = False
    #: a teardown's failure fails its run (by default a teardown's state does not count)
    on_failure_fail_dagrun: bool = False

    def as_setup(self) -> BaseOperator:
        """Make this task a setup, as in Airflow: a teardown it is upstream of runs once everything
        before it is done, provided a setup of it succeeded. Returns the task, to chain on."""
        if self.is_teardown:
            raise DagDefinitionError("a task cannot be both a setup and a teardown; it is already a "
                                     "teardown, so make another task the setup", self.dag_id, self.task_id)
        self.is_setup = True
        return self

    def as_teardown(self, *, setups: Any = None, on_failure_fail_dagrun: bool | None = None) -> BaseOperator:
        """Make this task a teardown, as in Airflow: it runs when all its upstream tasks are done,
        whatever their states, unless none of its setups succeeded (trigger rule
        ``all_done_setup_success``). Its own failure fails the run only with
        ``on_failure_fail_dagrun=True`` (left out, it stays as it was). ``setups`` (tasks, outputs
        of ``@task`` calls, or a list) become setups upstream of this task. Returns the task, so
        ``setup >> work >> teardown.as_teardown(setups=setup)`` reads as the graph."""
        where = (self.dag_id, self.task_id)
        if self.is_setup:
            raise DagDefinitionError("a task cannot be both a setup and a teardown; it is already a "
                                     "setup, so make another task the teardown", *where)
        if on_failure_fail_dagrun is not None and not isinstance(on_failure_fail_dagrun, bool):
            raise InvalidOptionError("on_failure_fail_dagrun", on_failure_fail_dagrun, "True or False", *where)
        if getattr(self, "_trigger_rule_given", False) and self.trigger_rule is not TriggerRule.ALL_DONE_SETUP_SUCCESS:
            raise InvalidOptionError("trigger_rule", self.trigger_rule.value, "a teardown's trigger rule is "
                                     "all_done_setup_success; leave trigger_rule out of a teardown", *where)
        found: list[BaseOperator] = []
        given = [] if setups is None else setups if isinstance(setups, (list, tuple, set, frozenset)) else [setups]
        for item in given:
            if isinstance(item, OutputRef):
                item = item.operator
            if not isinstance(item, BaseOperator):
                raise DependencyError(f"as_teardown(setups={item!r}): a setup must be a task or the result of "
                                      "a @task call (or a list of these)", *where)
            if item is self:
                raise DependencyError("a teardown cannot be its own setup", *where)
            if item.is_teardown:
                raise DagDefinitionError(f"as_teardown(setups=...): task '{item.task_id}' is a teardown and "
                                         "cannot also be a setup", *where)
            found.append(item)
        self.is_teardown = True
        if on_failure_fail_dagrun is not None:  # left out: as it was (a second call keeps the first's)
            self.on_failure_fail_dagrun = on_failure_fail_dagrun
        self.trigger_rule = TriggerRule.ALL_DONE_SETUP_SUCCESS
        for item in found:
            item.as_setup()
            item.set_downstream(self)
        return self

    def __enter__(self) -> BaseOperator:
        """``with create >> delete:`` (a teardown, after its setups): the tasks made in the block run
        between them, as in Airflow; those with no upstream in the block come after the setups,
        those with no downstream in it before the teardown."""
        if not self.is_teardown or self.dag is None:
            raise DagDefinitionError(
                f"`with {self.task_id}:` needs a teardown (with its setups: `with setup >> teardown:`); make it one "
                "with @teardown or .as_teardown(setups=...)", self.dag_id, self.task_id)
        self.__dict__.setdefault("_blocks", []).append(set(self.dag.task_dict))
        return self

    def __exit__(self, *exc: object) -> None:
        before = self.__dict__["_blocks"].pop()
        if exc[0] is not None or self.dag is None:
            return
        made = [t for tid, t in self.dag.task_dict.items() if tid not in before and t is not self]
        inside = {t.task_id for t in made}
        setups = [self.dag.task_dict[t] for t in sorted(self.upstream_task_ids) if self.dag.task_dict[t].is_setup]
        for task in made:
            if not task.upstream_task_ids & inside:
                for setup in setups:
                    if setup.task_id not in task.upstream_task_ids:
                        setup.set_downstream(task)
            if not task.downstream_task_ids & inside and self.task_id not in task.downstream_task_ids:
                task.set_downstream(self)

    # -- running ----------------------------------------------------------------------------------

    def execute(self, context: dict[str, Any]) -> Any:
        """Do the work of the task; the return value is the task's output."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute(context)")

    def followed_task_ids(self, output: Any) -> set[str] | None:
        """For branching operators: which direct downstream tasks to run, given this task's output.
        ``None`` means "all of them" (no branching)."""
        return None

    @property
    def is_branching(self) -> bool:
        """Whether this task's output decides which of its downstream tasks run (it overrides
        :meth:`followed_task_ids`): the scheduler host must read that output itself."""
        return type(self).followed_task_ids is not BaseOperator.followed_task_ids

    #: when a branch skips, skip every descendant instead of only the direct downstream
    skip_all_descendants: ClassVar[bool] = False

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for the store and the views."""
        return {
            "task_id": self.task_id,
            "display_name": self.task_display_name,
            "kind": self.kind,
            "operator": type(self).__name__,
            "group": self.group_id,
            "trigger_rule": self.trigger_rule.value,
            "retries": self.retries,
            "is_setup": self.is_setup,
            "is_teardown": self.is_teardown,
            "on_failure_fail_dagrun": self.on_failure_fail_dagrun,
            "upstream": sorted(self.upstream_task_ids),
            "doc": (self.doc_md or "")[:2000] or None,
            "outlets": [asset.uri for asset in self.outlets or ()],
            "mapped": self.expand_input is not None,
            "executor": self.runs_with,
        }

    # -- wiring -----------------------------------------------------------------------------------

    def _relate(self, others: Any, downstream: bool, edge_modifier: Label | None = None) -> None:
        if edge_modifier is not None and not isinstance(edge_modifier, Label):
            raise DependencyError(f"edge_modifier={edge_modifier!r} is not a Label; give Label(\"words\") or "
                                  "leave it out", self.dag_id, self.task_id)
        for other in _as_tasks(others, downstream):
            if isinstance(other, Label):  # a >> Label("x"): the label links a when its other side comes
                if downstream:
                    other._add_upstream(self)
                else:
                    other.set_downstream(self)
                continue
            if other is self:
                raise DependencyError("a task cannot depend on itself", self.dag_id, self.task_id)
            if other.dag is not self.dag:
                raise DependencyError(
                    f"cannot link to task '{other.task_id}' of DAG '{other.dag_id}': tasks can depend "
                    "only on tasks of the same DAG (use ExternalTaskSensor across DAGs)",
                    self.dag_id, self.task_id,
                )
            up, down = (self, other) if downstream else (other, self)
            up.downstream_task_ids.add(down.task_id)
            down.upstream_task_ids.add(up.task_id)
            if self.dag is not None:
                self.dag._edges_changed()
                if edge_modifier is not None:
                    self.dag.set_edge_info(up.task_id, down.task_id, {"label": edge_modifier.label})

    def set_downstream(self, others: Any, edge_modifier: Label | None = None) -> None:
        """``others`` run after this task; ``edge_modifier=Label("why")`` puts words on those edges."""
        self._relate(others, downstream=True, edge_modifier=edge_modifier)

    def set_upstream(self, others: Any, edge_modifier: Label | None = None) -> None:
        """``others`` run before this task; ``edge_modifier=Label("why")`` puts words on those edges."""
        self._relate(others, downstream=False, edge_modifier=edge_modifier)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task_id!r}>"

    def __getstate__(self) -> dict[str, Any]:
        # A task shipped to a worker process travels without its DAG, which may hold thousands of
        # tasks; the runner gives the worker what it needs of the DAG separately.
        state = dict(self.__dict__)
        state["_shipped_dag_id"] = self.dag_id
        state["dag"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _as_tasks(value: Any, downstream: bool = True) -> Iterable[BaseOperator]:
    """The tasks meant by ``value`` on one side of an edge: a group downstream means its roots,
    upstream its leaves."""
    from nbflow.taskgroup import TaskGroup

    if isinstance(value, (BaseOperator, Label)):
        yield value
    elif isinstance(value, OutputRef):
        yield value.operator
    elif isinstance(value, TaskGroup):
        yield from value.roots if downstream else value.leaves
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _as_tasks(item, downstream)
    else:
        raise DependencyError(
            f"cannot make a dependency on {value!r} ({type(value).__name__}); use a task, the result "
            "of a @task call, a TaskGroup, or a list of these"
        )


def display_name(option: str, value: Any, dag_id: str | None, task_id: str | None = None) -> str | None:
    """A name for views: any text (spaces, accents, emoji), one line, at most 200 characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or "\n" in value or len(value) > 200:
        raise InvalidOptionError(option, value, "one line of text, at most 200 characters", dag_id, task_id)
    return value


def context_arguments(fn: Callable[..., Any], context: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """The context values a function asks for by parameter name, or all of them for ``**kwargs``."""
    try:
        names = _named_parameters(fn)
    except TypeError:  # a callable object that cannot be hashed: read its signature every time
        names = _named_parameters.__wrapped__(fn)
    if names is None:
        return {k: v for k, v in context.items() if k not in given}
    return {name: context[name] for name in names if name in context and name not in given}


@functools.lru_cache(maxsize=1024)
def _named_parameters(fn: Callable[..., Any]) -> tuple[str, ...] | None:
    """The parameters ``fn`` takes by name, or None when it takes ``**kwargs``. Cached: reading a
    signature took a fifth of a trivial task's run, and every try of a task asks again."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return ()
    names: list[str] = []
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(name)
    return tuple(names)

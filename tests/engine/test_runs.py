"""Running DAGs end to end: one contract suite on every executor and every database."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from nbflow import DAG, SkipTask, dag, get_current_context, task
from nbflow.errors import NoTaskContextError
from nbflow.operators import BashOperator, EmptyOperator, PythonOperator
from nbflow.engine.runs import load_run, run_dag
from nbflow.settings import load_settings
from nbflow.store import Store


@pytest.fixture(params=["inline", "thread", "process"])
def executor(request: pytest.FixtureRequest) -> str:
    return request.param


def _run(d: DAG, settings, executor: str = "thread", **kwargs):
    return run_dag(d, settings=settings, executor=executor, **kwargs)


def _etl():
    @dag(start_date="2024-01-01", default_args={"retries": 1}, timezone="UTC")
    def etl():
        @task
        def extract():
            return [3, 1, 2]

        @task
        def clean(rows):
            return sorted(rows)

        @task.branch
        def enough(rows):
            return "load" if len(rows) > 2 else "skip"

        rows = clean(extract())
        enough(rows) >> [BashOperator(task_id="load", bash_command="echo {{ ds }}"), EmptyOperator(task_id="skip")]

    return etl()


def test_issue_example_runs_on_every_executor_and_database(settings, executor) -> None:
    run = _run(_etl(), settings, executor, logical_date="2024-03-05")
    assert run.state == "success"
    assert run.outputs["clean"] == [1, 2, 3]
    assert run.task_states == {"extract": "success", "clean": "success", "enough": "success",
                               "load": "success", "skip": "skipped"}
    assert run.outputs["load"] == "2024-03-05"
    assert run.tries["extract"] == 1 and run.durations["clean"] >= 0
    with Store(settings.database_url) as store:
        stored = store.get_run(run.dag_id, run.run_id)
        assert stored["state"] == "success"
        tis = {ti["task_id"]: ti for ti in store.get_task_instances(stored["id"])}
        assert tis["load"]["hostname"] and tis["load"]["pid"]
        assert Path(tis["load"]["log_path"]).read_text().count("2024-03-05") >= 1


def test_dag_test_refuses_a_conf_json_cannot_carry_before_storing_anything(settings) -> None:
    from nbflow.errors import InvalidConfError

    d = _etl()
    with pytest.raises(InvalidConfError, match=r"^DAG 'etl': the run's conf has nan at conf\['limit'\]"):
        d.test(conf={"limit": float("nan")})
    with pytest.raises(InvalidConfError, match=r"^DAG 'etl': the run's conf is a list"):
        _run(d, settings, conf=[("limit", 1)])
    with Store.open(settings) as store:
        assert store.list_runs("etl") == [] and store.get_dag("etl") is None
    assert d.test(conf={"limit": 2.5}).conf == {"limit": 2.5}


def test_retries_then_success_keeps_every_try(settings, executor, tmp_path: Path) -> None:
    marker = tmp_path / "tries"

    with DAG("flaky", timezone="UTC", default_args={"retries": 2, "retry_delay": timedelta(milliseconds=50)}) as d:
        def sometimes(path=str(marker)):
            count = int(Path(path).read_text()) + 1 if Path(path).exists() else 1
            Path(path).write_text(str(count))
            if count < 3:
                raise RuntimeError(f"attempt {count} failed")
            return count

        PythonOperator(task_id="flaky", python_callable=sometimes)
    run = _run(d, settings, executor)
    assert run.state == "success" and run.outputs["flaky"] == 3 and run.tries["flaky"] == 3
    with Store(settings.database_url) as store:
        tries = store.get_tries(store.get_run("flaky", run.run_id)["id"], "flaky")
    assert [t["state"] for t in sorted(tries, key=lambda t: t["try_number"])] == ["up_for_retry", "up_for_retry", "success"]
    assert "attempt 1 failed" in Path(sorted(tries, key=lambda t: t["try_number"])[0]["log_path"]).read_text()


def test_failure_without_retries_fails_the_run_and_downstream(settings, executor) -> None:
    with DAG("failing", timezone="UTC") as d:
        @task
        def boom():
            raise ValueError("bad data in row 7")

        @task
        def after(x):
            return x

        @task(trigger_rule="all_failed")
        def cleanup():
            return "cleaned"

        ref = boom()
        after(ref)
        ref >> cleanup()
    run = _run(d, settings, executor)
    assert run.state == "failed"
    assert run.task_states == {"boom": "failed", "after": "upstream_failed", "cleanup": "success"}
    assert "ValueError: bad data in row 7" in run.errors["boom"]
    assert "Traceback" in run.errors["boom"]


def test_execution_timeout_fails_the_task(settings, executor) -> None:
    with DAG("slow", timezone="UTC") as d:
        @task(execution_timeout=timedelta(seconds=0.3))
        def sleepy():
            time.sleep(1.5)
            return "late"

        sleepy()
    run = _run(d, settings, executor)
    took = run.durations["sleepy"]
    # thread and process executors stop waiting at the deadline; inline cannot interrupt its own
    # thread, so it reports the timeout when the call returns, and drops the late value all the same
    # (the task's own duration, not the wall time: starting a process worker is not the task's)
    assert took is not None and (took < 1.2 if executor != "inline" else took >= 1.5), took
    assert run.task_states["sleepy"] == "failed"
    assert "execution_timeout of 0.3 s" in run.errors["sleepy"]
    assert "sleepy" not in run.outputs


def test_bash_timeout_kills_the_process_group(settings, tmp_path: Path) -> None:
    witness = tmp_path / "survived"
    with DAG("bash_slow", timezone="UTC") as d:
        BashOperator(task_id="sleep", bash_command=f"(sleep 2; touch {witness}) & sleep 3; touch {witness}",
                     execution_timeout=timedelta(seconds=0.5))
    run = _run(d, settings, "thread")
    assert run.task_states["sleep"] == "failed"
    time.sleep(2.5)
    assert not witness.exists(), "a child of the bash task outlived the timeout"


def test_bash_operator_env_cwd_exit_codes_and_last_line(settings, tmp_path: Path) -> None:
    with DAG("bash", timezone="UTC", params={"who": "world"}) as d:
        BashOperator(task_id="hello", bash_command="echo first; echo 'hello {{ params.who }} on {{ ds }}'")
        BashOperator(task_id="env", bash_command="echo $GREETING; pwd", env={"GREETING": "hi"}, cwd=str(tmp_path))
        BashOperator(task_id="skip", bash_command="exit 99")
        BashOperator(task_id="fail", bash_command="echo oops >&2; exit 3")
    run = _run(d, settings, logical_date="2024-02-29")
    assert run.outputs["hello"] == "hello world on 2024-02-29"
    assert run.outputs["env"] == str(tmp_path)
    assert run.task_states["skip"] == "skipped"
    assert run.task_states["fail"] == "failed" and "exited with code 3" in run.errors["fail"]
    log = Path(run.log_paths["fail"]).read_text()
    assert "oops" in log
    assert "hi" in Path(run.log_paths["env"]).read_text()


def test_context_values_by_parameter_name_kwargs_and_get_current_context(settings, executor) -> None:
    with DAG("ctx", timezone="Asia/Seoul", params={"limit": 5}) as d:
        @task
        def named(ds, logical_date, params, ti, run_id):
            return {"ds": ds, "hour": logical_date.hour, "limit": params["limit"], "try": ti.try_number,
                    "run_id": run_id, "tz": str(logical_date.tzinfo)}

        @task
        def everything(**context):
            return sorted(k for k in ("ds", "ds_nodash", "data_interval_start", "conf", "dag", "task") if k in context)

        @task
        def current():
            return get_current_context()["ds_nodash"]

        named(), everything(), current()
    run = _run(d, settings, executor, logical_date="2024-05-01T09:30", conf={"x": 1})
    assert run.outputs["named"] == {"ds": "2024-05-01", "hour": 9, "limit": 5, "try": 1,
                                    "run_id": run.run_id, "tz": "Asia/Seoul"}
    assert run.outputs["everything"] == ["conf", "dag", "data_interval_start", "ds", "ds_nodash", "task"]
    assert run.outputs["current"] == "20240501"
    assert run.logical_date.isoformat() == "2024-05-01T09:30:00+09:00"


def test_get_current_context_outside_a_task() -> None:
    with pytest.raises(NoTaskContextError, match="outside a running task"):
        get_current_context()


def test_undefined_template_variable_names_it(settings) -> None:
    with DAG("tmpl", timezone="UTC") as d:
        BashOperator(task_id="echo", bash_command="echo {{ not_a_variable }}")
    run = _run(d, settings)
    assert run.task_states["echo"] == "failed"
    assert "not_a_variable" in run.errors["echo"] and "template field 'bash_command'" in run.errors["echo"]


def test_outputs_json_pickle_artifact_and_errors(settings, executor) -> None:
    with DAG("outputs", timezone="UTC") as d:
        @task
        def small():
            return {"a": [1, 2, 3]}

        @task
        def tuple_value():
            return (1, "two")

        @task
        def big():
            return "x" * 200_000

        @task
        def unpicklable():
            return threading.Lock()

        @task
        def use(s, t, b):
            return [s["a"][0], list(t), len(b)]

        use(small(), tuple_value(), big())
        unpicklable()
    run = _run(d, settings, executor)
    assert run.outputs["small"] == {"a": [1, 2, 3]}
    assert run.outputs["tuple_value"] == (1, "two")
    assert run.outputs["use"] == [1, [1, "two"], 200_000]
    assert run.task_states["unpicklable"] == "failed"
    assert "lock" in run.errors["unpicklable"].lower()
    with Store(settings.database_url) as store:
        outs = store.get_outputs(store.get_run("outputs", run.run_id)["id"])
    assert outs["small"]["value_json"] == json.dumps({"a": [1, 2, 3]}, separators=(",", ":"))
    assert outs["big"]["value_json"] is None and Path(outs["big"]["artifact_path"]).exists()
    assert outs["tuple_value"]["artifact_path"].endswith(".pickle")


def test_output_size_cap(settings, monkeypatch) -> None:
    monkeypatch.setenv("NBFLOW_MAX_OUTPUT_BYTES", "1000")
    capped = load_settings()
    with DAG("capped", timezone="UTC") as d:
        @task
        def huge():
            return "y" * 5000

        huge()
    run = _run(d, capped)
    assert run.task_states["huge"] == "failed"
    assert "over the limit of 1,000 bytes" in run.errors["huge"] and "NBFLOW_MAX_OUTPUT_BYTES" in run.errors["huge"]


def test_callbacks_run_with_context_and_a_failing_callback_breaks_nothing(settings) -> None:
    seen: list[tuple[str, str]] = []

    def record(kind):
        return lambda context: seen.append((kind, context["task"].task_id))

    def broken(context):
        raise RuntimeError("callback bug")

    with DAG("callbacks", timezone="UTC", default_args={"retry_delay": timedelta(0)},
             on_failure_callback=lambda c: seen.append(("dag_failed", c["run_id"]))) as d:
        @task(on_success_callback=[record("success"), broken])
        def good():
            return 1

        @task(retries=1, on_retry_callback=record("retry"), on_failure_callback=record("failure"))
        def bad():
            raise RuntimeError("no")

        good(), bad()
    run = _run(d, settings)
    assert ("success", "good") in seen and ("retry", "bad") in seen and ("failure", "bad") in seen
    assert ("dag_failed", run.run_id) in seen
    assert run.task_states["good"] == "success"
    assert "callback bug" in Path(run.log_paths["good"]).read_text()


def test_skip_task_and_short_circuit(settings, executor) -> None:
    with DAG("skips", timezone="UTC") as d:
        @task
        def skipper():
            raise SkipTask("nothing new today")

        @task.short_circuit
        def gate():
            return False

        @task
        def after_gate():
            return 1

        @task(trigger_rule="all_done")
        def final():
            return 2

        skipper()
        gate() >> after_gate() >> final()
    run = _run(d, settings, executor)
    assert run.task_states == {"skipper": "skipped", "gate": "success", "after_gate": "skipped", "final": "skipped"}
    assert run.state == "success"


def test_bad_branch_choice_fails_with_the_choices(settings) -> None:
    with DAG("badbranch", timezone="UTC") as d:
        @task.branch
        def pick():
            return "nowhere"

        pick() >> [EmptyOperator(task_id="left"), EmptyOperator(task_id="right")]
    run = _run(d, settings)
    assert run.task_states["pick"] == "failed"
    assert "left, right" in run.errors["pick"]


def test_thread_tasks_logs_never_mix(settings) -> None:
    barrier = threading.Barrier(4, timeout=10)
    log = logging.getLogger("nbflow.tests.mix")

    with DAG("mixing", timezone="UTC", max_active_tasks=4) as d:
        def talk(name):
            barrier.wait()
            for i in range(50):
                print(f"{name} line {i}")
                log.warning("%s logged %d", name, i)
            return name

        for name in ("t0", "t1", "t2", "t3"):
            PythonOperator(task_id=name, python_callable=talk, op_args=[name])
    run = _run(d, settings, "thread")
    assert run.state == "success"
    for name in ("t0", "t1", "t2", "t3"):
        text = Path(run.log_paths[name]).read_text()
        assert text.count(f"{name} line") == 50 and text.count(f"{name} logged") == 50
        others = [o for o in ("t0", "t1", "t2", "t3") if o != name]
        assert not any(f"{o} line" in text for o in others)


def test_parallel_tasks_overlap_on_thread_and_process(settings, tmp_path) -> None:
    with DAG("parallel", timezone="UTC") as d:
        def stamp(i):
            start = time.time()
            time.sleep(0.4)
            return [start, time.time()]

        for i in range(2):
            PythonOperator(task_id=f"p{i}", python_callable=stamp, op_args=[i])
    for kind in ("thread", "process"):
        run = _run(d, settings, kind)
        (a0, a1), (b0, b1) = run.outputs["p0"], run.outputs["p1"]
        assert a0 < b1 and b0 < a1, f"{kind}: tasks did not overlap"


def test_max_active_tasks_limits_concurrency(settings, tmp_path) -> None:
    with DAG("limited", timezone="UTC", max_active_tasks=1) as d:
        def stamp():
            start = time.time()
            time.sleep(0.1)
            return [start, time.time()]

        for i in range(3):
            PythonOperator(task_id=f"p{i}", python_callable=stamp)
    run = _run(d, settings, "thread")
    spans = sorted(run.outputs.values())
    assert all(spans[i][1] <= spans[i + 1][0] + 1e-3 for i in range(2))


def test_runs_are_recorded_and_reloadable(settings) -> None:
    first = _run(_etl(), settings, logical_date="2024-01-02")
    second = _run(_etl(), settings, logical_date="2024-01-02")
    assert first.run_id != second.run_id
    with Store(settings.database_url) as store:
        again = load_run(store, "etl", first.run_id)
        runs = store.list_runs("etl")
    assert again.outputs == first.outputs and again.task_states == first.task_states
    assert {r["run_id"] for r in runs} == {first.run_id, second.run_id}
    assert "etl" in repr(again) and "<table>" in again._repr_html_()
    assert "clean" in again.summary()


def test_a_silent_successful_try_leaves_no_log_file_but_a_noisy_one_does(settings) -> None:
    with DAG("quiet", timezone="UTC") as d:
        @task
        def silent():
            return 1

        @task
        def chatty():
            print("rows loaded: 12")
            return 2

        silent(), chatty()
    run = _run(d, settings)
    assert "silent" not in run.log_paths
    assert "rows loaded: 12" in Path(run.log_paths["chatty"]).read_text()
    assert not (Path(settings.logs_folder) / "quiet" / run.run_id.replace(":", "_") / "silent").exists()


def test_a_pool_limits_how_many_of_its_tasks_run_at_once(settings) -> None:
    with Store.open(settings) as store:
        store.set_pool("warehouse", 1, "one connection")
    with DAG("pooled", timezone="UTC", max_active_tasks=8) as d:
        def stamp():
            start = time.time()
            time.sleep(0.15)
            return [start, time.time()]

        for i in range(3):
            PythonOperator(task_id=f"w{i}", python_callable=stamp, pool="warehouse")
        PythonOperator(task_id="free", python_callable=stamp)
    run = _run(d, settings, "thread")
    spans = sorted(run.outputs[f"w{i}"] for i in range(3))
    assert all(spans[i][1] <= spans[i + 1][0] + 1e-3 for i in range(2)), "pool tasks overlapped"
    free = run.outputs["free"]
    assert free[0] < spans[0][1], "a task outside the pool should not wait for it"


def test_priority_weight_orders_ready_tasks(settings) -> None:
    order: list[str] = []
    with DAG("prio", timezone="UTC", max_active_tasks=1) as d:
        for name, weight in (("low", 1), ("high", 10), ("mid", 5)):
            PythonOperator(task_id=name, python_callable=order.append, op_args=[name], priority_weight=weight)
    _run(d, settings, "thread")
    assert order == ["high", "mid", "low"]


def test_a_task_outside_its_start_and_end_date_is_skipped_in_that_run(nbflow_home) -> None:
    from datetime import UTC, datetime

    from nbflow import DAG, task

    with DAG("windowed", timezone="UTC", schedule="@daily", start_date="2024-01-01") as dag:
        @task(end_date="2024-01-10")
        def old_source() -> int:
            return 1

        @task(start_date="2024-01-05")
        def new_source() -> int:
            return 2

        @task
        def after_old(x: int) -> int:
            return x

        @task(trigger_rule="all_done")
        def report() -> str:
            return "done"

        done = report()
        after_old(old_source()) >> done
        new_source() >> done
    early = dag.test(logical_date=datetime(2024, 1, 3, tzinfo=UTC))
    assert early.task_states == {"old_source": "success", "new_source": "skipped", "after_old": "success",
                                 "report": "success"}
    late = dag.test(logical_date=datetime(2024, 2, 1, tzinfo=UTC))
    assert late.task_states == {"old_source": "skipped", "new_source": "success", "after_old": "skipped",
                                "report": "success"}
    assert "does not hold this run's logical date" in late.task_instances["old_source"].error


def test_fail_task_fails_at_once_whatever_retries_are_left(nbflow_home) -> None:
    from nbflow import DAG, FailTask, task

    with DAG("fail_for_good", timezone="UTC", default_args={"retries": 3, "retry_delay": 0}) as dag:
        @task
        def check() -> None:
            raise FailTask("the input file is corrupt; fix it and clear the task")

        check()
    run = dag.test()
    ti = run.task_instances["check"]
    assert ti.state == "failed" and ti.try_number == 1
    assert "the input file is corrupt" in ti.error

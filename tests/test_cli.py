"""The ``nbflow`` command, run as a user runs it: a real process, a real NBFLOW_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli.conftest import nbflow

ETL = '''
from nbflow import dag, task
from nbflow.operators import BashOperator, EmptyOperator

@dag(start_date="2024-01-01", default_args={"retries": 1}, timezone="UTC")
def etl():
    @task
    def extract(): return [3, 1, 2]
    @task
    def clean(rows): return sorted(rows)
    @task.branch
    def enough(rows): return "load" if len(rows) > 2 else "skip"
    rows = clean(extract())
    enough(rows) >> [BashOperator(task_id="load", bash_command="echo loaded {{ ds }}"), EmptyOperator(task_id="skip")]

etl()
'''

BROKEN = '''
from nbflow import DAG
def oops(:
'''

FAILING = '''
from nbflow import dag, task

@dag(timezone="UTC")
def failing():
    @task
    def explode(): raise RuntimeError("the source file is empty")
    explode()

failing()
'''


@pytest.fixture
def home(nbflow_home: Path) -> Path:
    dags = nbflow_home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "etl.py").write_text(textwrap.dedent(ETL))
    (dags / "broken.py").write_text(textwrap.dedent(BROKEN))
    (dags / "failing.py").write_text(textwrap.dedent(FAILING))
    return nbflow_home


def test_dags_list_shows_dags_and_import_errors(home: Path) -> None:
    listed = nbflow("dags", "list", home=home)
    assert "etl" in listed.stdout and "failing" in listed.stdout
    assert listed.stderr == "1 DAG file failed to load: nbflow dags list-import-errors\n"
    errors = nbflow("dags", "list-import-errors", home=home, check=1).stdout
    assert "broken.py" in errors and "Traceback" in errors


def test_a_bad_option_and_a_link_loop_in_dags_folder_are_import_errors_and_the_rest_loads(home: Path) -> None:
    dags = home / "dags"
    (dags / "eager.py").write_text(
        "from nbflow import DAG\nfrom nbflow.operators import EmptyOperator\n"
        "with DAG('eager', default_args={'retries': 1}):\n    EmptyOperator(task_id='fetch', execution_timeout=-5)\n")
    (dags / "loop").symlink_to("loop")
    (dags / "nested").mkdir()
    (dags / "nested" / "up").symlink_to("..")
    listed = nbflow("dags", "list", home=home).stdout
    rows = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert "etl" in rows and "eager" not in rows
    errors = nbflow("dags", "list-import-errors", home=home, check=1).stdout
    assert ("InvalidOptionError: DAG 'eager', task 'fetch': execution_timeout=-5 is not allowed: give more than 0 "
            "seconds") in errors
    assert f"== {dags / 'loop'}\nsymbolic link loop: the link leads back to itself" in errors
    assert f"== {dags / 'nested' / 'up'}\nsymbolic link loop: the link leads back to {dags.resolve()}" in errors


def test_dags_test_prints_a_summary_and_where_things_are(home: Path) -> None:
    out = nbflow("dags", "test", "etl", "--logical-date", "2024-06-01", home=home).stdout
    assert "SUCCESS" in out
    assert "load" in out and "skipped" in out
    assert f"logs:      {home / 'logs' / 'etl'}" in out


def test_failed_run_exits_1_and_logs_show_the_error(home: Path) -> None:
    out = nbflow("dags", "test", "failing", home=home, check=1).stdout
    assert "FAILED" in out and "the source file is empty" in out
    logs = nbflow("tasks", "logs", "failing", "explode", home=home).stdout
    assert "RuntimeError: the source file is empty" in logs and "Traceback" in logs


def test_trigger_runs_and_dags_runs_lists(home: Path) -> None:
    nbflow("dags", "trigger", "etl", "--conf", '{"x": 1}', home=home)
    out = nbflow("dags", "runs", "etl", home=home).stdout
    assert "manual__" in out and "success" in out


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_a_conf_json_cannot_carry_is_one_line_and_nothing_is_stored(
        home: Path, backend: str, request: pytest.FixtureRequest) -> None:
    from nbflow.settings import load_settings
    from nbflow.store import Store

    env = {"NBFLOW_DATABASE_URL": request.getfixturevalue(f"{backend}_url")} if backend != "sqlite" else {}
    cases = [
        (["dags", "test", "etl"], '{"x": NaN}', "has nan at conf['x']"),
        (["dags", "trigger", "etl", "--queue"], '{"x": [1, -Infinity]}', "has -inf at conf['x'][1]"),
        (["dags", "trigger", "etl", "--wait"], '{"x": 1e999}', "has inf at conf['x']"),
        (["dags", "trigger", "etl"], "[1, 2]", "is a list, not a JSON object"),
        (["tasks", "test", "etl", "extract"], '{"x": NaN}', "has nan at conf['x']"),
    ]
    for command, conf, problem in cases:
        result = nbflow(*command, "--conf", conf, home=home, check=1, env=env)
        assert result.stderr.startswith(f"nbflow: error: DAG 'etl': the run's conf {problem}"), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "No run was made." in result.stderr
    with Store.open(load_settings(env={"NBFLOW_HOME": str(home), **env})) as store:
        assert store.list_runs("etl") == []
    nbflow("dags", "test", "etl", "--conf", '{"x": 1.5, "day": "2024-06-01"}', home=home, env=env)
    with Store.open(load_settings(env={"NBFLOW_HOME": str(home), **env})) as store:
        assert [run["conf"] for run in store.list_runs("etl")] == [{"x": 1.5, "day": "2024-06-01"}]


def test_a_conf_over_max_conf_bytes_is_refused_naming_the_setting(home: Path) -> None:
    conf = '{"rows": "' + "x" * 100 + '"}'
    env = {"NBFLOW_MAX_CONF_BYTES": "100"}
    big = nbflow("dags", "trigger", "etl", "--queue", "--conf", conf, home=home, check=1, env=env)
    assert "the run's conf takes 111 bytes as JSON, over the limit of 100 bytes (setting max_conf_bytes)" in big.stderr
    assert "NBFLOW_MAX_CONF_BYTES" in big.stderr and big.stderr.count("\n") == 1
    nbflow("dags", "trigger", "etl", "--queue", "--conf", conf, home=home, env={"NBFLOW_MAX_CONF_BYTES": "111"})


def test_tasks_list_show_and_test(home: Path) -> None:
    assert nbflow("tasks", "list", "etl", home=home).stdout.split() == ["extract", "clean", "enough", "load", "skip"]
    show = nbflow("dags", "show", "etl", home=home).stdout
    assert "clean" in show and "<- extract" in show
    nbflow("dags", "test", "etl", home=home)
    out = nbflow("tasks", "test", "etl", "clean", home=home).stdout
    assert "output: [1, 2, 3]" in out


def test_unknown_dag_and_bad_conf_are_clear(home: Path) -> None:
    missing = nbflow("dags", "test", "nope", home=home, check=1)
    assert "no DAG with id 'nope'" in missing.stderr and "etl" in missing.stderr
    bad = nbflow("dags", "test", "etl", "--conf", "{not json", home=home, check=2)
    assert "--conf is not valid JSON" in bad.stderr


def test_db_commands_and_config(home: Path) -> None:
    nbflow("db", "init", home=home)
    assert "schema is current" in nbflow("db", "check", home=home).stdout
    assert nbflow("db", "reset", home=home, check=2).returncode == 2
    nbflow("db", "reset", "--yes", home=home)
    config = nbflow("config", "show", home=home).stdout
    assert f"dags_folder = {home / 'dags'}" in config
    other = nbflow("config", "show", home=home)
    assert other.stdout == config


def test_db_check_on_an_empty_database_says_to_init(home: Path, tmp_path: Path) -> None:
    env_home = tmp_path / "other"
    env_home.mkdir()
    (env_home / "nbflow.toml").write_text(f'database_url = "sqlite:///{tmp_path / "empty.db"}"\n')
    result = nbflow("db", "check", home=env_home, check=1)
    assert "nbflow db init" in result.stderr


def test_console_script_and_version(home: Path) -> None:
    script = Path(sys.executable).parent / "nbflow"
    out = subprocess.run([str(script), "version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("nbflow ")


def test_demo_runs_the_shipped_pipeline(home: Path) -> None:
    out = nbflow("demo", home=home).stdout
    assert "demo_pipeline" in out and "SUCCESS" in out
    rate = [line.split() for line in out.splitlines() if line.startswith("fetch_exchange_rate")][0]
    assert rate[1:3] == ["success", "2"], "the flaky task should succeed on its second try"
    report_line = [line for line in out.splitlines() if line.startswith("report:")][0]
    report = Path(report_line.split(":", 1)[1].strip())
    assert report.exists() and "Total:" in report.read_text()


def test_first_use_creates_the_dags_folder(nbflow_home: Path) -> None:
    listed = nbflow("dags", "list", home=nbflow_home)
    assert (nbflow_home / "dags").is_dir()
    assert "failed to load" not in listed.stdout + listed.stderr
    assert f"no DAGs in {nbflow_home / 'dags'}" in listed.stdout


# -- scheduling controls ----------------------------------------------------------------------------

DAILY = '''
import os
from pathlib import Path
from nbflow import dag, get_current_context, task

@dag(schedule="@daily", start_date="2024-01-01", timezone="UTC", default_args={"retries": 0})
def daily():
    @task
    def load():
        ds = get_current_context()["ds"]
        flag = Path(os.environ["NBFLOW_HOME"]) / "fail_on"
        if flag.exists() and flag.read_text().strip() == ds:
            raise RuntimeError(f"no data for {ds}")
        return ds
    @task
    def report(day): return f"report {day}"
    report(load())

daily()
'''

NEW_YORK = '''
from nbflow import dag, task

@dag(schedule="0 2 * * *", start_date="2024-01-01", timezone="America/New_York")
def ny():
    @task
    def hello(): return 1
    hello()

ny()
'''


@pytest.fixture
def cal_home(home: Path) -> Path:
    (home / "dags" / "daily.py").write_text(textwrap.dedent(DAILY))
    (home / "dags" / "ny.py").write_text(textwrap.dedent(NEW_YORK))
    return home


def _store():
    from nbflow.settings import load_settings
    from nbflow.store import Store

    return Store.open(load_settings())


def _tries(dag_id: str, run_id: str, task_id: str) -> int:
    with _store() as store:
        return store.get_task_instance(dag_id, run_id, task_id)["try_number"]


def _run_state(dag_id: str, run_id: str) -> str:
    with _store() as store:
        return store.get_run(dag_id, run_id)["state"]


def test_dags_next_shows_three_zones_and_marks_the_dst_change(cal_home: Path) -> None:
    out = nbflow("dags", "next", "ny", "--after", "2024-03-08", "-n", "3", home=cal_home,
                 env={"TZ": "Europe/Berlin"}).stdout.splitlines()
    header = next(line for line in out if line.startswith("America/New_York"))
    assert header.split() == ["America/New_York", "UTC", "local", "(Europe/Berlin)"]
    rows = [line for line in out if line.startswith("2024-")]
    assert [row.split()[:3] for row in rows] == [
        ["2024-03-08", "02:00", "EST"], ["2024-03-09", "02:00", "EST"], ["2024-03-10", "03:00", "EDT"]]
    assert "2024-03-10 07:00 UTC" in rows[2] and "2024-03-10 08:00 CET" in rows[2]
    assert rows[2].endswith("DST +1:00") and not any("DST" in row for row in rows[:2])
    fall = nbflow("dags", "next", "ny", "--after", "2024-11-02T12:00", "-n", "2", home=cal_home,
                  env={"TZ": "UTC"}).stdout
    assert next(line for line in fall.splitlines() if line.startswith("2024-11-03")).endswith("DST -1:00")
    manual = nbflow("dags", "next", "etl", home=cal_home).stdout
    assert "runs only when triggered" in manual


@pytest.mark.parametrize("count", ["0", "-3", "1001", "100000000"])
def test_dags_next_refuses_a_count_outside_1_to_1000(cal_home: Path, count: str) -> None:
    result = nbflow("dags", "next", "ny", "-n", count, home=cal_home, check=1)
    assert result.stderr == (f"nbflow: error: DAG 'ny': -n={int(count)}: ask for a whole number of scheduled "
                             "times from 1 to 1000\n")
    assert result.stdout == ""


def test_dags_next_lists_up_to_1000_and_refuses_a_bad_after(cal_home: Path) -> None:
    out = nbflow("dags", "next", "ny", "-n", "1000", "--after", "2024-01-01", home=cal_home).stdout
    assert len([line for line in out.splitlines() if line.startswith(("2024-", "2025-", "2026-", "2027-"))]) == 1000
    bad = nbflow("dags", "next", "ny", "--after", "next tuesday", home=cal_home, check=1)
    assert bad.stderr.startswith("nbflow: error: DAG 'ny': --after='next tuesday' is not a date. Use an ISO date")
    assert bad.stderr.count("\n") == 1


def _last_frame(stderr: str) -> str:
    """The last state of a tqdm bar: it redraws after a carriage return."""
    return [f for f in stderr.replace("\n", "\r").split("\r") if f.strip()][-1]


def test_backfill_draws_progress_and_resumes_without_redoing(cal_home: Path) -> None:
    first = nbflow("dags", "backfill", "daily", "--start", "2024-01-01", "--end", "2024-01-02", "-e", "inline", home=cal_home)
    assert _last_frame(first.stderr).startswith("daily backfill: 100%") and "2/2" in _last_frame(first.stderr)
    ids = ["backfill__2024-01-01T00:00:00+00:00", "backfill__2024-01-02T00:00:00+00:00"]
    assert all(f"{rid} success" in " ".join(first.stdout.split()) for rid in ids)

    again = nbflow("dags", "backfill", "daily", "--start", "2024-01-01", "--end", "2024-01-04", "-e", "inline", home=cal_home)
    frames = [f for f in again.stderr.replace("\n", "\r").split("\r") if f.strip()]
    assert " 2/4 " in frames[0], "the two finished runs count as done at once"
    assert "4/4" in frames[-1]
    assert "4 runs: 4 succeeded, 0 failed" in again.stdout
    with _store() as store:
        assert sorted(r["run_id"] for r in store.list_runs("daily", limit=None)) == ids + [
            "backfill__2024-01-03T00:00:00+00:00", "backfill__2024-01-04T00:00:00+00:00"]
    assert [_tries("daily", rid, "load") for rid in ids] == [1, 1]


def test_backfill_reprocess_failed_reruns_only_the_failed_run(cal_home: Path) -> None:
    (cal_home / "fail_on").write_text("2024-01-02")
    args = ("dags", "backfill", "daily", "--start", "2024-01-01", "--end", "2024-01-03", "-e", "inline")
    failed = nbflow(*args, home=cal_home, check=1).stdout
    assert "backfill__2024-01-02T00:00:00+00:00 failed" in " ".join(failed.split())
    (cal_home / "fail_on").unlink()
    kept = nbflow(*args, home=cal_home, check=1).stdout
    assert "1 failed" in kept, "without --reprocess a failed run stays failed"
    nbflow(*args, "--reprocess", "failed", home=cal_home)
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert [_tries("daily", f"backfill__{d}T00:00:00+00:00", "load") for d in days] == [1, 2, 1]
    assert _run_state("daily", "backfill__2024-01-02T00:00:00+00:00") == "success"


def test_backfill_bar_is_tqdms_and_redraws_in_place_on_a_terminal() -> None:
    import io

    from nbflow.engine.progress import backfill_bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = backfill_bar("daily", file=stream)
    bar(1, 4, "a")
    bar(4, 4, "b")
    bar.close()
    frames = stream.getvalue().split("\r")
    assert any(f.startswith("daily backfill:  25%") and "1/4" in f for f in frames)
    assert "daily backfill: 100%" in frames[-1] and "4/4" in frames[-1] and frames[-1].endswith("\n")


def test_backfill_bad_inputs(cal_home: Path) -> None:
    bad = nbflow("dags", "backfill", "daily", "--start", "2024-01-01", "--end", "2024-01-02", "--reprocess", "sometimes",
                 home=cal_home, check=2)
    assert "invalid choice: 'sometimes'" in bad.stderr
    backwards = nbflow("dags", "backfill", "daily", "--start", "2024-02-01", "--end", "2024-01-01", home=cal_home, check=1)
    assert "before it starts" in backwards.stderr
    missing = nbflow("dags", "backfill", "nope", "--start", "2024-01-01", "--end", "2024-01-02", home=cal_home, check=1)
    assert "no DAG with id 'nope'" in missing.stderr


def _paused_column(home: Path, dag_id: str) -> str:
    out = nbflow("dags", "list", home=home).stdout
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [dag_id])[4]


def test_pause_and_unpause_show_in_dags_list(home: Path) -> None:
    assert _paused_column(home, "etl") == "no"
    assert "paused etl" in nbflow("dags", "pause", "etl", home=home).stdout
    assert _paused_column(home, "etl") == "yes"
    nbflow("dags", "unpause", "etl", home=home)
    assert _paused_column(home, "etl") == "no"
    assert "no DAG with id 'nope'" in nbflow("dags", "pause", "nope", home=home, check=1).stderr


def test_tasks_clear_lists_first_then_clears_and_a_scheduler_reruns(home: Path) -> None:
    nbflow("dags", "trigger", "etl", "--wait", "-d", "2024-06-01", home=home)
    run_id = "manual__2024-06-01T00:00:00+00:00"
    args = ("tasks", "clear", "etl", "-t", "clean", "--downstream", "--start", "2024-06-01", "--end", "2024-06-01")
    preview = nbflow(*args, home=home, check=2).stdout
    assert "would clear 4 task instances in 1 run:" in preview
    assert f"{run_id}: clean, enough, load, skip" in preview and "add --yes to clear these" in preview
    assert _run_state("etl", run_id) == "success"
    assert "cleared 4 task instances in 1 run;" in nbflow(*args, "--yes", home=home).stdout
    assert _run_state("etl", run_id) == "queued"
    nbflow("scheduler", "--exit-when-idle", "-e", "inline", home=home)
    assert _run_state("etl", run_id) == "success"
    assert [_tries("etl", run_id, t) for t in ("extract", "clean", "load")] == [1, 2, 2]
    assert "nothing to clear" in nbflow("tasks", "clear", "etl", "--only-failed", home=home).stdout


def test_tasks_mark_changes_the_run_state(home: Path) -> None:
    nbflow("dags", "test", "failing", home=home, check=1)
    with _store() as store:
        run_id = store.list_runs("failing")[0]["run_id"]
    out = nbflow("tasks", "mark", "failing", "explode", "--run-id", run_id, "--state", "success", home=home).stdout
    assert "marked explode success" in out and f"run {run_id} is now success" in out
    assert _run_state("failing", run_id) == "success"
    nbflow("tasks", "mark", "failing", "explode", "--run-id", run_id, "--state", "failed", home=home)
    assert _run_state("failing", run_id) == "failed"
    bad = nbflow("tasks", "mark", "failing", "explode", "--run-id", run_id, "--state", "done", home=home, check=2)
    assert "invalid choice: 'done'" in bad.stderr
    assert "has no run 'nope'" in nbflow("tasks", "mark", "failing", "explode", "--run-id", "nope", "--state", "failed",
                                         home=home, check=1).stderr
    assert "has no task 'zz'" in nbflow("tasks", "mark", "failing", "zz", "--run-id", run_id, "--state", "failed",
                                        home=home, check=1).stderr


def test_trigger_queue_leaves_the_run_to_a_scheduler_and_wait_runs_it(home: Path) -> None:
    out = nbflow("dags", "trigger", "etl", "--queue", home=home).stdout
    run_id = out.split()[1]
    assert out.startswith("queued manual__") and "no scheduler is running" in out
    assert _run_state("etl", run_id) == "queued"
    nbflow("scheduler", "--exit-when-idle", "-e", "inline", home=home)
    assert _run_state("etl", run_id) == "success"
    waited = nbflow("dags", "trigger", "etl", "--wait", home=home).stdout
    assert "SUCCESS" in waited
    both = nbflow("dags", "trigger", "etl", "--queue", "--wait", home=home, check=2)
    assert "not allowed with" in both.stderr


def test_trigger_queues_when_a_scheduler_is_alive(home: Path) -> None:
    import socket

    with _store() as store:
        store.register_host("daemon-test", hostname=socket.gethostname(), pid=os.getpid(), kind="daemon")
    out = nbflow("dags", "trigger", "etl", home=home).stdout
    assert out.startswith("queued manual__") and "daemon scheduler daemon-test" in out
    assert _run_state("etl", out.split()[1]) == "queued"
    with _store() as store:
        store.stop_host("daemon-test")
    ran = nbflow("dags", "trigger", "etl", home=home)
    assert "SUCCESS" in ran.stdout and "no scheduler is running" in ran.stderr


def test_pools_set_list_delete(home: Path) -> None:
    assert "no pools" in nbflow("pools", "list", home=home).stdout
    nbflow("pools", "set", "warehouse", "2", "--description", "the shared database", home=home)
    row = next(line for line in nbflow("pools", "list", home=home).stdout.splitlines() if line.startswith("warehouse"))
    assert row.split() == ["warehouse", "2", "0", "the", "shared", "database"]
    assert "no pool named 'nope'" in nbflow("pools", "delete", "nope", home=home, check=1).stderr
    assert "at least 0" in nbflow("pools", "set", "warehouse", "-1", home=home, check=1).stderr
    nbflow("pools", "delete", "warehouse", home=home)
    assert "no pools" in nbflow("pools", "list", home=home).stdout


# -- nbflow schedule / nbflow reports -----------------------------------------------------------------

REPORT_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "report.ipynb"


@pytest.mark.parametrize("text, expected", [
    ("n=3", ("n", 3)),
    ("x=2.5", ("x", 2.5)),
    ("flag=true", ("flag", True)),
    ("flag=False", ("flag", False)),
    ("nothing=None", ("nothing", None)),
    ("rows=[1, 2]", ("rows", [1, 2])),
    ('opts={"a": 1}', ("opts", {"a": 1})),
    ("day={{ ds }}", ("day", "{{ ds }}")),
    ("title=Daily sales", ("title", "Daily sales")),
    ("code=007", ("code", "007")),
    ("empty=", ("empty", "")),
    ("eq=a=b", ("eq", "a=b")),
])
def test_schedule_parameters_parse_as_json_else_text(text: str, expected: tuple[str, object]) -> None:
    from nbflow.cli import parse_param

    assert parse_param(text) == expected


@pytest.mark.parametrize("text", ["novalue", "1x=2", "=3"])
def test_schedule_parameter_needs_a_name(text: str) -> None:
    from nbflow.cli import parse_param

    with pytest.raises(SystemExit, match="key=value"):
        parse_param(text)


def test_schedule_writes_a_dag_file_and_says_when_it_runs(nbflow_home: Path) -> None:
    out = nbflow("schedule", str(REPORT_NOTEBOOK), "--cron", "0 7 * * *", "--timezone", "Europe/Paris",
                 "-p", "rows=[1, 2, 3]", "-p", "factor=2", "-p", "title=Morning numbers", "-p", "day={{ ds }}",
                 home=nbflow_home).stdout
    dag_file = nbflow_home / "dags" / "report_report.py"
    text = dag_file.read_text()
    assert "from nbflow.operators.notebook import NotebookOperator" in text
    assert "schedule='0 7 * * *'" in text and "timezone='Europe/Paris'" in text
    assert f"notebook=literal({str(REPORT_NOTEBOOK)!r})" in text and "report='html'" in text
    assert "{'rows': [1, 2, 3], 'factor': 2, 'title': 'Morning numbers', 'day': '{{ ds }}'}" in text
    assert "scheduled report_report" in out and str(dag_file) in out
    next_times = [line for line in out.splitlines() if line.strip().startswith("20") and "07:00 CE" in line]
    assert len(next_times) == 3
    assert "nbflow dags trigger report_report --wait" in out
    show = nbflow("dags", "show", "report_report", home=nbflow_home).stdout
    assert "0 7 * * * (Europe/Paris)" in show and "report" in show and "catchup: False" in show
    listed = nbflow("dags", "list", home=nbflow_home)
    assert "report_report" in listed.stdout and "failed to load" not in listed.stdout + listed.stderr
    # Scheduling again with another cron rewrites the generated file.
    nbflow("schedule", str(REPORT_NOTEBOOK), "--cron", "@hourly", "--timezone", "UTC", "--report", "none",
           home=nbflow_home)
    text = dag_file.read_text()
    assert "schedule='@hourly'" in text and "report=None" in text and "parameters={}" in text


def test_schedule_refuses_bad_input_and_writes_nothing(nbflow_home: Path, tmp_path: Path) -> None:
    bad_cron = nbflow("schedule", str(REPORT_NOTEBOOK), "--cron", "0 25 * * *", home=nbflow_home, check=1)
    assert "hour" in bad_cron.stderr
    bad_zone = nbflow("schedule", str(REPORT_NOTEBOOK), "--cron", "@daily", "--timezone", "Mars/Base", home=nbflow_home,
                      check=1)
    assert "Mars/Base" in bad_zone.stderr
    missing = nbflow("schedule", str(tmp_path / "nope.ipynb"), "--cron", "@daily", home=nbflow_home, check=1)
    assert "nope.ipynb does not exist" in missing.stderr
    (tmp_path / "notes.txt").write_text("not a notebook")
    not_notebook = nbflow("schedule", str(tmp_path / "notes.txt"), "--cron", "@daily", home=nbflow_home, check=1)
    assert "notes.txt is not a notebook file (.ipynb)" in not_notebook.stderr
    hidden = nbflow("schedule", str(REPORT_NOTEBOOK), "--cron", "@daily", "--dag-id", "_hidden", home=nbflow_home,
                    check=1)
    assert "DAG id '_hidden' starts with '_'" in hidden.stderr
    nan = nbflow("schedule", str(REPORT_NOTEBOOK), "--cron", "@daily", "-p", "x=NaN", home=nbflow_home, check=1)
    assert "parameter 'x' is nan" in nan.stderr and "Traceback" not in nan.stderr
    folder = nbflow_home / "dags"
    assert not folder.exists() or not list(folder.glob("*.py"))
    folder.mkdir(parents=True, exist_ok=True)
    mine = folder / "report_report.py"
    mine.write_text("# my own file\n")
    kept = nbflow("schedule", str(REPORT_NOTEBOOK), "--cron", "@daily", home=nbflow_home, check=2)
    assert "was not written by `nbflow schedule`" in kept.stderr and mine.read_text() == "# my own file\n"
    (folder / "other.py").write_text("from nbflow import DAG\nwith DAG('taken'):\n    pass\n")
    clash = nbflow("schedule", str(REPORT_NOTEBOOK), "--cron", "@daily", "--dag-id", "taken", home=nbflow_home, check=2)
    assert "'taken' is already defined in" in clash.stderr and "other.py" in clash.stderr
    assert not (folder / "taken.py").exists()


def test_reports_of_unknown_and_unrun_dags(home: Path) -> None:
    unknown = nbflow("reports", "nope", home=home, check=1)
    assert "no DAG with id 'nope'" in unknown.stderr
    nbflow("dags", "list", home=home)
    assert "has no runs yet" in nbflow("reports", "etl", home=home).stdout


def test_schedule_then_trigger_produces_a_listed_report(nbflow_home: Path) -> None:
    nbflow("schedule", str(REPORT_NOTEBOOK), "--cron", "0 7 * * *", "--timezone", "UTC", "--dag-id", "sales_report",
           "-p", "rows=[4, 5]", "-p", "title=Sales", "-p", "day={{ ds }}", home=nbflow_home)
    nbflow("dags", "trigger", "sales_report", "--wait", "--logical-date", "2024-06-03T07:00", home=nbflow_home)
    out = nbflow("reports", "sales_report", home=nbflow_home).stdout
    assert "success" in out and "2024-06-03 07:00:00" in out
    paths = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in out.splitlines()
             if line.strip().startswith(("notebook:", "report:"))}
    output_notebook, report = Path(paths["notebook"]), Path(paths["report"])
    assert output_notebook.suffix == ".ipynb" and report.suffix == ".html"
    assert output_notebook.is_file() and report.is_file()
    assert str(nbflow_home / "artifacts" / "sales_report") in str(output_notebook)
    assert "Sales for 2024-06-03: 9" in output_notebook.read_text()
    assert "Sales for 2024-06-03: 9" in report.read_text()

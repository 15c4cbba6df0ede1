"""DAG files are parsed in a separate process: whatever a file does at import (exit, hang, crash,
raise KeyboardInterrupt, start threads, build what cannot be pickled) is that file's import error,
and the commands, the daemon and the REST API go on serving the other DAGs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from waiting import wait_for

from jupyter_api import *  # noqa: F403 (the test server's fixtures)
from jupyter_api import Api
from nbflow.engine.dagparsing import DagFileParser
from nbflow.engine.discovery import collect
from nbflow.errors import ConfigError
from nbflow.engine.scheduler import Scheduler
from nbflow.settings import load_settings
from nbflow.store import Store

#: a DAG file doing something a DAG file must not do -> the words its import error must contain
BAD_FILES: dict[str, tuple[str, str]] = {
    "exits.py": ("import os\nfrom nbflow import DAG\nos._exit(0)\n", "exited with status 0 while loading"),
    "sys_exit.py": ("import sys\nfrom nbflow import DAG\nsys.exit()\n", "called sys.exit(None) while loading"),
    "hangs.py": ("from nbflow import DAG\nwhile True:\n    pass\n", "did not finish loading within 1 s (dag_file_timeout)"),
    "interrupts.py": ("from nbflow import DAG\nraise KeyboardInterrupt\n", "KeyboardInterrupt raised while loading"),
    "threads.py": (
        "import threading, time\nfrom nbflow import DAG\n"
        "threading.Thread(target=time.sleep, args=(3600,), name='left-behind').start()\n"
        "with DAG('threaded', timezone='UTC'):\n    pass\n",
        "left 1 thread(s) running after loading ('left-behind')",
    ),
    "segfaults.py": ("import ctypes\nfrom nbflow import DAG\nctypes.string_at(0)\n", "crashed the parser (SIGSEGV)"),
    "unpicklable.py": (
        "import threading\nfrom nbflow import DAG\nfrom nbflow.operators import PythonOperator\nlock = threading.Lock()\n"
        "with DAG('unpicklable', timezone='UTC'):\n    PythonOperator(task_id='a', python_callable=lambda: lock)\n",
        "DAG 'unpicklable' cannot be sent back from the parse process",
    ),
    "owner.py": ("from nbflow import DAG\nwith DAG('bad_owner', owner=123, timezone='UTC'):\n    pass\n",
                 "owner=123 is not allowed"),
}


def _canary(marks: Path, schedule: str = "None") -> str:
    return textwrap.dedent(f"""
        from datetime import timedelta
        from pathlib import Path
        from nbflow import DAG, task

        with DAG("canary", schedule={schedule}, start_date="2024-01-01", timezone="UTC", catchup=False) as d:
            @task
            def sing(run_id):
                with open({str(marks)!r}, "a") as out:
                    out.write(run_id + "\\n")

            sing()
    """)


def _write_bad_files(folder: Path, name: str | None = None, suffix: str = "") -> None:
    """The bad files (or one of them), each first noting its process id in ``pids`` beside ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    note = (f"import os as _os\n_pids = open({str(folder.parent / 'pids')!r}, 'a')\n"
            "_pids.write(f'{_os.getpid()}\\n')\n_pids.close()\n")
    for each, (source, _) in BAD_FILES.items():
        if name is None or each == name:
            (folder / each).write_text(note + source + suffix)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    env.update(NBFLOW_HOME=str(home), NBFLOW_DAG_FILE_TIMEOUT="1", **extra)
    return env


def _nbflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nbflow", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)




def _leftovers(folder: Path) -> list[int]:
    """The processes that loaded a bad file of ``folder`` and still run (zombies have ended)."""
    pids = folder.parent / "pids"
    alive = []
    for pid in {int(line) for line in pids.read_text().split()} if pids.exists() else ():
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def test_commands_answer_and_name_what_each_bad_file_did(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dags = home / "dags"
    _write_bad_files(dags)
    (dags / "canary.py").write_text(_canary(tmp_path / "marks"))
    env = _env(home)

    started = time.monotonic()
    errors = _nbflow("dags", "list-import-errors", env=env)
    assert errors.returncode == 1, errors.stdout + errors.stderr
    assert "Traceback" not in errors.stderr
    for name, (_, words) in BAD_FILES.items():
        block = errors.stdout.split(f"== {dags / name}\n", 1)[1]
        assert block.splitlines()[0].find(words) >= 0, (name, block[:500])
    # the files are parsed two at a time, and only the endless loop waits for its limit
    assert time.monotonic() - started < 30

    listed = _nbflow("dags", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "canary" in listed.stdout and "threaded" not in listed.stdout
    assert f"{len(BAD_FILES)} DAG files failed to load" in listed.stderr

    queued = _nbflow("dags", "trigger", "canary", "--queue", env=env)
    assert queued.returncode == 0, queued.stdout + queued.stderr
    with Store(f"sqlite:///{home / 'nbflow.db'}") as store:
        (run,) = store.list_runs("canary", limit=None)
        assert run["state"] == "queued"
        recorded = {Path(e["fileloc"]).name for e in store.list_import_errors()}
    assert recorded == set(BAD_FILES)
    assert not _leftovers(dags), "a parse process outlived its command"


def test_a_file_is_parsed_again_only_when_it_or_its_helper_changed(tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    log = tmp_path / "imports.log"
    (folder / "_helper.py").write_text("VALUE = 1\n")
    (folder / "counted.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(folder)!r})
        import _helper
        from nbflow import DAG
        with open({str(log)!r}, "a") as out:
            out.write("imported\\n")
        with DAG("counted", timezone="UTC", params={{"value": _helper.VALUE}}) as d:
            pass
    """))
    parse = DagFileParser(timeout=10)
    first = collect([folder], load=parse).dags["counted"]
    again = collect([folder], load=parse).dags["counted"]
    assert again is first and log.read_text().count("imported") == 1
    (folder / "_helper.py").write_text("VALUE = 22\n")
    changed = collect([folder], load=parse).dags["counted"]
    assert changed.params["value"] == 22 and log.read_text().count("imported") == 2
    # the DAG came back whole: its module's functions by value, its tasks linked to it
    assert changed.fileloc == str((folder / "counted.py").resolve())


def test_a_command_prepares_while_its_dag_files_load(tmp_path: Path) -> None:
    """A command's own work (its imports) overlaps the loading of its DAG files: the file below can
    only finish once ``meanwhile`` opened the other end of its pipe, so both ran at once."""
    folder = tmp_path / "dags"
    folder.mkdir()
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    (folder / "waits.py").write_text(textwrap.dedent(f"""
        from nbflow import DAG
        with open({str(pipe)!r}) as other_end:  # blocks until the command opens the pipe to write
            word = other_end.read()
        with DAG("waited", timezone="UTC", params={{"word": word}}):
            pass
    """))
    script = textwrap.dedent(f"""
        import threading
        from nbflow.engine.dagparsing import DagFileParser
        from nbflow.engine.discovery import collect

        assert threading.active_count() == 1  # a command: DAG files are loaded in forked children
        calls = []

        def meanwhile():
            calls.append(1)
            with open({str(pipe)!r}, "w") as end:
                end.write("ready")

        bag = collect([{str(folder)!r}], load=DagFileParser(timeout=20, meanwhile=meanwhile))
        print(bag.dags["waited"].params["word"], len(calls), sorted(f.fileloc for f in bag.failures))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ready", "1", "[]"]


def test_the_daemon_keeps_the_canary_on_schedule_beside_bad_files(tmp_path: Path, store_url: str) -> None:
    home = tmp_path / "home"
    dags = home / "dags"
    _write_bad_files(dags)
    marks = tmp_path / "marks"
    (dags / "canary.py").write_text(_canary(marks, schedule="timedelta(seconds=1)"))
    env = _env(home, NBFLOW_HEARTBEAT_INTERVAL="0.2", NBFLOW_POLL_INTERVAL="0.2", NBFLOW_DAG_RELOAD_INTERVAL="0.2",
               NBFLOW_DATABASE_URL=store_url)
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen([sys.executable, "-m", "nbflow", "scheduler"], env=env, stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        if store_url.startswith("sqlite"):
            db = Path(store_url.removeprefix("sqlite:///"))
            wait_for(lambda: db.exists(), 60, "the store")
        with Store(store_url, busy_timeout=10) as store:
            # the file exists a moment before the daemon has written its schema into it
            wait_for(lambda: store.schema_version() is not None, 60, "the store's schema")
            def errors() -> dict[str, str]:
                return {Path(e["fileloc"]).name: e["summary"] for e in store.list_import_errors()}

            found = wait_for(lambda: len(errors()) == len(BAD_FILES) and errors(), 60, "every import error")
            for name, (_, words) in BAD_FILES.items():
                assert words in found[name], (name, found[name])

            def sung() -> int:
                return len(marks.read_text().splitlines()) if marks.exists() else 0

            wait_for(lambda: sung() >= 2, 60, "two scheduled runs of the canary")
            # each edit of the file that starts a thread makes the daemon parse it again: the threads
            # it starts end with its parse process, never pile up in the daemon
            threads = psutil.Process(daemon.pid).num_threads()
            for n in range(5):
                _write_bad_files(dags, "threads.py", f"# edit {n}\n")
                before = sung()
                wait_for(lambda: sung() > before, 30, "the next canary run")  # reloads happen meanwhile
            assert daemon.poll() is None, "the daemon died"
            assert psutil.Process(daemon.pid).num_threads() <= threads + 2  # a worker's reader, say

            # the endless loop, deleted, leaves nothing behind and its error goes
            (dags / "hangs.py").unlink()
            wait_for(lambda: "hangs.py" not in errors(), 30, "the deleted file's error to clear")
            wait_for(lambda: not _leftovers(dags), 10, "every parse process to end")
            runs = store.list_runs("canary", limit=None)
            assert sum(r["state"] == "success" for r in runs) >= 5
            assert daemon.poll() is None
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()


@pytest.fixture
def bad_dags(server_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NBFLOW_DAG_FILE_TIMEOUT", "1")
    folder = server_env / "dags"
    _write_bad_files(folder)
    (folder / "canary.py").write_text(_canary(server_env / "marks"))
    return folder


def test_the_rest_api_lists_dags_beside_bad_files(bad_dags: Path, api: Api) -> None:
    body = api.get("dags")
    assert [d["dag_id"] for d in body["dags"]] == ["canary"]
    found = {Path(e["fileloc"]).name: e["summary"] for e in body["import_errors"]}
    assert set(found) == set(BAD_FILES)
    for name, (_, words) in BAD_FILES.items():
        assert words in found[name], (name, found[name])
    run = api.post("dags", "canary", "runs", body={"conf": {}}, expect=201)["run"]
    done = wait_for(lambda: (r := api.get("dags", "canary", "runs", run["run_id"]))["state"] in ("success", "failed")
                     and r, 60, "the canary's run")
    assert done["state"] == "success"
    assert (bad_dags.parent / "marks").read_text().split() == [run["run_id"]]
    wait_for(lambda: not _leftovers(bad_dags), 10, "every parse process to end")


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_dag_file_timeout_must_be_more_than_zero(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="dag_file_timeout") as caught:
        load_settings(home=tmp_path, env={"NBFLOW_DAG_FILE_TIMEOUT": value})
    assert "NBFLOW_DAG_FILE_TIMEOUT" in str(caught.value)
    assert load_settings(home=tmp_path, env={"NBFLOW_DAG_FILE_TIMEOUT": "2.5"}).dag_file_timeout == 2.5


def test_a_slow_file_does_not_hold_up_the_scheduler_loop(tmp_path: Path, nbflow_home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the first load is waited for: later, a file still loading leaves the loop running with
    the DAGs it has, and its DAGs (or its error) are taken in by a later pass."""
    monkeypatch.setenv("NBFLOW_DAG_FILE_TIMEOUT", "60")
    monkeypatch.setenv("NBFLOW_DAG_RELOAD_INTERVAL", "0")
    monkeypatch.setenv("NBFLOW_POLL_INTERVAL", "0")
    dags = nbflow_home / "dags"
    dags.mkdir()
    (dags / "canary.py").write_text(_canary(tmp_path / "marks"))
    gate = tmp_path / "gate"
    settings = load_settings()
    scheduler = Scheduler(settings=settings, executor="inline")
    try:
        scheduler.tick()
        assert set(scheduler.dags) == {"canary"}
        (dags / "slow.py").write_text(textwrap.dedent(f"""
            import os, time
            from nbflow import DAG
            while not os.path.exists({str(gate)!r}):
                time.sleep(0.01)
            with DAG("slow", timezone="UTC"):
                pass
        """))
        started = time.monotonic()
        for _ in range(5):
            scheduler.tick()
        assert time.monotonic() - started < 30, "a pass waited for the slow file"
        assert set(scheduler.dags) == {"canary"}
        gate.write_text("go")
        wait_for(lambda: scheduler.tick() is not None and "slow" in scheduler.dags, 60, "the slow file's DAG")
        assert set(scheduler.dags) == {"canary", "slow"}
    finally:
        gate.write_text("go")
        scheduler.close()

"""Task logs are capped at max_log_bytes: the head as it was written, one line saying how much was
cut, the tail; memory stays bounded while a task prints without end, and every executor and the
BashOperator go through the same cap."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import pytest

from nbflow import DAG, task
from nbflow.errors import ConfigError
from nbflow.engine.logcapture import TaskLog, capture
from nbflow.operators import BashOperator
from nbflow.engine.runs import run_dag
from nbflow.settings import load_settings

CAP = 10 * 1024
CUT_LINE = re.compile(r"^\[[^\]]+\] nbflow: ([\d,]+) bytes of this log were cut here: it reached max_log_bytes "
                      r"\(10,240\); its first and last parts are kept$", re.MULTILINE)


def split_capped(data: bytes) -> tuple[str, int, str]:
    """(head, bytes cut, tail) of a capped log; fails unless there is exactly one cut line."""
    text = data.decode("utf-8")  # strict: a cut never splits a character
    found = list(CUT_LINE.finditer(text))
    assert len(found) == 1, text[:500]
    line = found[0]
    return text[: line.start()], int(line.group(1).replace(",", "")), text[line.end() + 1:]


def test_a_log_over_the_cap_keeps_head_and_tail_and_says_how_much_was_cut(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "1.log"
    lines = ["preamble\n"] + [f"line {i} é\n" for i in range(50_000)]
    log = TaskLog(str(path), lines[0], CAP)
    for line in lines[1:]:
        log.write(line)
    log.close()
    written = "".join(lines).encode()
    data = path.read_bytes()
    assert CAP <= len(data) <= CAP + 200
    head, cut, tail = split_capped(data)
    assert head.startswith("preamble\nline 0 é\nline 1 é\n") and head.endswith("\n")
    assert tail.endswith("line 49998 é\nline 49999 é\n") and tail.startswith("line ")  # whole lines
    assert len(head.encode()) + cut + len(tail.encode()) == len(written)  # the count is exact
    assert written.startswith(head.encode()) and written.endswith(tail.encode())


def test_a_log_under_the_cap_is_kept_whole(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    log = TaskLog(str(path), "", CAP)
    text = "".join(f"{i}\n" for i in range(2000))  # 8,890 bytes: over the head, under the cap
    log.write(text)
    log.close()
    assert path.read_text() == text


def test_one_huge_line_is_cut_at_characters_and_memory_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    tracemalloc.start()
    try:
        log = TaskLog(str(path), "", CAP)
        for _ in range(2000):  # 20 MB of one line, no newline in it
            log.write("é" * 5000)
        log.write("\nthe end\n")
        _, peak = tracemalloc.get_traced_memory()
        log.close()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, f"{peak:,} bytes held while writing a 20 MB log"
    head, cut, tail = split_capped(path.read_bytes())
    assert set(head) == {"é"} | {"\n"} and head.endswith("é\n")  # a newline was added before the cut line
    assert tail.endswith("é\nthe end\n") and len(head.encode()) - 1 + cut + len(tail.encode()) == 2000 * 10_000 + 9


def test_appending_to_a_log_counts_what_is_there(tmp_path: Path) -> None:
    """A rescheduled sensor's next poke appends to the same log: the head has less room."""
    path = tmp_path / "1.log"
    path.write_text("x" * 3000 + "\n")
    with capture(str(path), "", CAP) as log:
        log.write("".join(f"poke {i}\n" for i in range(2000)))
    head, _cut, tail = split_capped(path.read_bytes())
    assert head.startswith("x" * 3000 + "\npoke 0\n") and CAP // 2 - 12 < len(head.encode()) <= CAP // 2
    assert tail.endswith("poke 1999\n")


def test_max_log_bytes_is_a_setting_with_a_floor(tmp_path: Path) -> None:
    assert load_settings(tmp_path, env={}).max_log_bytes == 64 * 1024 * 1024
    assert load_settings(tmp_path, env={"NBFLOW_MAX_LOG_BYTES": "10240"}).max_log_bytes == CAP
    with pytest.raises(ConfigError, match="max_log_bytes.*at least 1024"):
        load_settings(tmp_path, env={"NBFLOW_MAX_LOG_BYTES": "100"})


def chatty_dag() -> DAG:
    with DAG("chatty", timezone="UTC") as d:
        @task
        def talk() -> int:
            for i in range(100_000):  # about 1 MB
                print(f"python line {i}")
            return 1

        talk() >> BashOperator(task_id="bash", bash_command="for i in $(seq 0 99999); do echo bash line $i; done")
    return d


@pytest.mark.parametrize("executor", ["inline", "thread", "process"])
def test_every_executor_and_bash_keep_a_capped_log(nbflow_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                    executor: str) -> None:
    monkeypatch.setenv("NBFLOW_MAX_LOG_BYTES", str(CAP))
    run = run_dag(chatty_dag(), executor=executor)
    assert run.state == "success", run.errors
    for task_id, prefix in [("talk", "python"), ("bash", "bash")]:
        data = Path(run.log_paths[task_id]).read_bytes()
        assert CAP <= len(data) <= CAP + 400, (task_id, len(data))
        head, cut, tail = split_capped(data)
        assert f"\n{prefix} line 0\n{prefix} line 1\n" in head and cut > 1_000_000 - 2 * CAP
        assert f"{prefix} line 99999\n" in tail and "nbflow: success after" in tail.splitlines()[-1]


def test_a_bash_command_printing_one_endless_line_is_relayed_in_pieces(nbflow_home: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Its log is capped like any other; as the task's output the line is refused by size, as a
    returned value over max_output_bytes is, instead of being held whole."""
    monkeypatch.setenv("NBFLOW_MAX_LOG_BYTES", str(CAP))
    monkeypatch.setenv("NBFLOW_MAX_OUTPUT_BYTES", "1000000")
    with DAG("endless", timezone="UTC") as d:
        BashOperator(task_id="line", bash_command="head -c 3000000 /dev/zero | tr '\\0' x")
        BashOperator(task_id="ends", bash_command="head -c 3000000 /dev/zero | tr '\\0' x; printf '\\nlast é'")
    run = run_dag(d, executor="inline")
    assert run.task_states == {"line": "failed", "ends": "success"}
    assert "OutputTooLargeError" in run.errors["line"] and "3,000,000 bytes" in run.errors["line"]
    assert run.outputs["ends"] == "last é"
    for task_id in ("line", "ends"):
        head, cut, _tail = split_capped(Path(run.log_paths[task_id]).read_bytes())
        assert "x" * 4000 in head and cut > 3_000_000 - 2 * CAP

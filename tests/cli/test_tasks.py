"""``nbflow tasks ...``: an unknown DAG, task, run or try is an error that says which, exit 1."""

from __future__ import annotations

from pathlib import Path

from cli.conftest import nbflow, one_line


def test_logs_of_unknown_things_are_errors_that_say_which(home: Path) -> None:
    assert one_line(nbflow("tasks", "logs", "nope", "x", home=home, check=1)) == (
        "nbflow: error: no DAG with id 'nope'. Known DAGs: etl.")
    assert one_line(nbflow("tasks", "logs", "etl", "load", home=home, check=1)) == (
        "nbflow: error: DAG 'etl' has no runs yet, so task 'load' has no log; start one with `nbflow dags trigger etl`")
    assert one_line(nbflow("tasks", "logs", "etl", "nosuchtask", home=home, check=1)) == (
        "nbflow: error: DAG 'etl' has no task 'nosuchtask'. Its tasks: extract, load.")
    nbflow("dags", "test", "etl", "2024-02-01", home=home)
    run_id = "test__2024-02-01T00:00:00+00:00"
    assert one_line(nbflow("tasks", "logs", "etl", "nosuchtask", home=home, check=1)) == (
        "nbflow: error: DAG 'etl' has no task 'nosuchtask'. Its tasks: extract, load.")
    assert one_line(nbflow("tasks", "logs", "etl", "load", "--try", "2", home=home, check=1)) == (
        f"nbflow: error: DAG 'etl', task 'load': try 2 in run {run_id} has not run; tries: 1. Leave out --try to see "
        "every try.")
    assert one_line(nbflow("tasks", "logs", "etl", "load", "--try", "0", home=home, check=1)) == (
        "nbflow: error: DAG 'etl': --try takes a try number from 1, not 0")
    assert "has no run 'nope'" in one_line(nbflow("tasks", "logs", "etl", "load", "-r", "nope", home=home, check=1))
    shown = nbflow("tasks", "logs", "etl", "load", "--try", "1", home=home).stdout
    assert shown.startswith("==> try 1: success")


def test_tasks_test_takes_airflows_positional_logical_date(home: Path) -> None:
    out = nbflow("tasks", "test", "etl", "extract", "2024-03-01", home=home).stdout
    assert "output: [3, 1, 2]" in out
    both = nbflow("tasks", "test", "etl", "extract", "2024-03-01", "-d", "2024-03-02", home=home, check=2)
    assert "the logical date is given twice" in both.stderr
    bad = one_line(nbflow("tasks", "test", "etl", "extract", "someday", home=home, check=1))
    assert "logical_date='someday' is not a date" in bad

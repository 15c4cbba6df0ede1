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
    assert shown.startswith("==> load try 1: success")


def test_tasks_test_takes_airflows_positional_logical_date(home: Path) -> None:
    out = nbflow("tasks", "test", "etl", "extract", "2024-03-01", home=home).stdout
    assert "output: [3, 1, 2]" in out
    both = nbflow("tasks", "test", "etl", "extract", "2024-03-01", "-d", "2024-03-02", home=home, check=2)
    assert "the logical date is given twice" in both.stderr
    bad = one_line(nbflow("tasks", "test", "etl", "extract", "someday", home=home, check=1))
    assert "logical_date='someday' is not a date" in bad


MAPPED = """
from nbflow import dag, task

@dag(timezone="UTC")
def fan():
    @task
    def numbers(): return [1, 2, 3]
    @task
    def double(x):
        print(f"doubling {x}")
        return 2 * x
    double.expand(x=numbers())

fan()
"""


def test_mapped_instances_have_their_states_logs_and_clears(home: Path) -> None:
    (home / "dags" / "fan.py").write_text(MAPPED)
    nbflow("dags", "test", "fan", "2024-02-01", home=home)
    states = nbflow("tasks", "states", "fan", home=home).stdout.splitlines()
    assert states[0] == "run test__2024-02-01T00:00:00+00:00 (success)"
    double = next(line for line in states if line.startswith("double "))
    assert "success" in double and "(3 success)" in double
    instances = [line.split() for line in states if line.startswith(" ")]
    assert [(row[0], row[1]) for row in instances] == [("0", "success"), ("1", "success"), ("2", "success")]
    one = nbflow("tasks", "logs", "fan", "double", "--map-index", "1", home=home).stdout
    assert one.startswith("==> double[1] try 1: success") and "doubling 2" in one and "doubling 1" not in one
    every = nbflow("tasks", "logs", "fan", "double", home=home).stdout
    assert [line.split(" try")[0] for line in every.splitlines() if line.startswith("==>")] == [
        "==> double[0]", "==> double[1]", "==> double[2]"]
    assert "double[7]" in one_line(nbflow("tasks", "logs", "fan", "double", "--map-index", "7", home=home, check=1))
    listed = nbflow("tasks", "clear", "fan", "-t", "double[1]", "-r", "test__2024-02-01T00:00:00+00:00",
                    home=home, check=2).stdout
    assert "double[1]" in listed and "double[0]" not in listed
    refused = one_line(nbflow("tasks", "clear", "fan", "-t", "numbers[0]", home=home, check=1))
    assert "task 'numbers' is not mapped" in refused

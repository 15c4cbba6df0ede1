"""The argument parser built for one command is the full parser's, for that command."""

from __future__ import annotations

import argparse

import pytest

from nbflow.cli.parser import COMMANDS, build_parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _shape(parser: argparse.ArgumentParser) -> list[tuple[object, ...]]:
    """Every option and sub-command of ``parser``, recursively, as comparable tuples."""
    shape: list[tuple[object, ...]] = []
    for action in parser._actions:
        shape.append((type(action).__name__, tuple(action.option_strings), action.dest, action.default,
                      tuple(action.choices) if action.choices is not None and not isinstance(action.choices, dict)
                      else None, action.required))
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                shape.append((name, tuple(_shape(child))))
    return shape


def test_the_table_names_every_command_the_full_parser_has() -> None:
    assert set(_commands(build_parser())) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_parser_built_for_one_command_parses_it_as_the_full_one_does(command: str) -> None:
    full, narrow = _commands(build_parser())[command], _commands(build_parser(command))
    assert command in narrow
    assert _shape(narrow[command]) == _shape(full)
    assert len(narrow) <= 2  # only that command (and the one its function adds with it)


def test_a_command_line_parses_the_same_with_either_parser() -> None:
    argv = ["dags", "test", "etl", "2024-01-01", "-e", "inline", "-c", '{"a": 1}']
    assert vars(build_parser("dags").parse_args(argv)) == vars(build_parser().parse_args(argv))


def test_an_unknown_first_word_gets_every_command_in_its_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("dag").parse_args(["dag"])
    err = capsys.readouterr().err
    assert "invalid choice: 'dag'" in err and "'dags'" in err and "'assets'" in err

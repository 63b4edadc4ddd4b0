"""Every flag of the four command lines (fits, planner, verifier, api) says what it is for."""

from __future__ import annotations

import argparse

import pytest

from api.cli import _parser as api_parser
from fits.cli import build_parser as fits_parser
from planner.cli import build_parser as planner_parser
from verifier.cli import build_parser as verifier_parser


def _walk(parser: argparse.ArgumentParser, path: str):
    """(command path, action) for every action of ``parser`` and of every subcommand below it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        else:
            yield path, action


@pytest.mark.parametrize(
    ("name", "build"),
    [("fits", fits_parser), ("planner", planner_parser), ("verifier", verifier_parser), ("api", api_parser)],
)
def test_every_flag_has_help_text(name, build):
    actions = list(_walk(build(), name))
    assert len(actions) > 3
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in actions if not (a.help or "").strip()]
    assert not missing, f"flags without help: {missing}"
    for parser_path, parser in _parsers(build(), name):
        for text in (parser.description or "", parser.epilog or ""):
            assert "%%" not in text, f"{parser_path}: descriptions are not %-formatted, so '%%' prints as is"


def _parsers(parser: argparse.ArgumentParser, path: str):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")

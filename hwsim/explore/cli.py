"""``hwsim sweep`` and ``hwsim report``."""

from __future__ import annotations

import argparse

from hwsim.errors import InputError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("sweep", help="run an Optuna study over a design space")
    s.add_argument("study", help="study spec (explore/*.toml)")
    s.set_defaults(func=run_sweep)
    s = sub.add_parser("report", help="rebuild a study's tables, figures and report")
    s.add_argument("dir", nargs="?")
    s.set_defaults(func=run_report)


def run_sweep(args: argparse.Namespace) -> int:
    raise InputError("hwsim sweep is not available yet")


def run_report(args: argparse.Namespace) -> int:
    raise InputError("hwsim report is not available yet")

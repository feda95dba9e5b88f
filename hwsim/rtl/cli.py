"""``hwsim rtl``."""

from __future__ import annotations

import argparse

from hwsim.errors import InputError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("rtl", help="generate Verilog for an accelerator dataflow")
    s.add_argument("generator")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise InputError("hwsim rtl is not available yet")

"""``python -m hwsim.a3fusion``: one design point's metrics and its per-layer table.

The same as ``hwsim simulate a3fusion`` (options, output and exit codes): the metrics, then the
``layers`` table (per layer its branch, operator and shape, GEMM form, array, compute cycles,
the cycles SCALE-Sim would report for it, DMA tiles, loop order, DRAM bytes, time, stall and
flag); ``--json`` carries it as ``layers``::

    python -m hwsim.a3fusion --json --set accel.rows=16 --set accel.cols=16
    python -m hwsim.a3fusion --spec network=fusion-seg-tiny --fidelity des --trace t.json
"""

from __future__ import annotations

from collections.abc import Sequence


def run(argv: Sequence[str] | None = None) -> int:
    """The command; returns its exit status."""
    import sys

    from hwsim.cli import main

    return main(["simulate", "a3fusion", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(run())

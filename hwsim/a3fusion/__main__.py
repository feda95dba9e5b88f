"""``python -m hwsim.a3fusion``: one design point's metrics and its per-layer figures.

``hwsim simulate a3fusion`` prints the flat metrics every system reports; this command prints
the same object (``--json``: the one ``hwsim simulate --json`` prints) with a ``layers`` table
beside the metrics: per layer its branch, operator and shape, GEMM form, array, compute cycles,
the cycles SCALE-Sim would report for it, DMA tiles, loop order, DRAM bytes, time and stall::

    python -m hwsim.a3fusion --json --set accel.rows=16 --set accel.cols=16
    python -m hwsim.a3fusion --spec network=fusion-seg-tiny --fidelity des --trace t.json

Options and exit codes as ``hwsim simulate`` (2: bad input, one ``error:`` line).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from hwsim import specs
from hwsim.errors import HwsimError, InfeasibleDesign

log = logging.getLogger("hwsim.a3fusion")

COLUMNS = ("layer", "branch", "shape", "array", "compute_cycles", "scalesim_cycles", "tiles",
           "loop_order", "dram_bytes", "time_us", "stall_cycles", "flag")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return str(v)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [list(header)] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(argv: Sequence[str] | None = None) -> int:
    """The command; returns its exit status."""
    from hwsim.a3fusion.evaluate import SYSTEM

    p = argparse.ArgumentParser(prog="python -m hwsim.a3fusion", description=__doc__.split(
        "\n")[0])
    p.add_argument("--spec", action="append", default=[], metavar="[ROLE=]FILE|NAME")
    p.add_argument("--set", action="append", default=[], metavar="ROLE.KEY=VALUE")
    p.add_argument("--fidelity", default="analytical", choices=["analytical", "des"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace (DES)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        inputs = SYSTEM.resolve(args.spec, args.set)
        trace = None
        if args.trace:
            if args.fidelity != "des":
                raise HwsimError("--trace needs --fidelity des")
            from hwsim.des.trace import TraceRecorder

            trace = TraceRecorder()
        try:
            metrics, tables = SYSTEM.evaluate_tables(inputs, args.fidelity, seed=args.seed,
                                                     trace=trace)
            status, reason, layers = "ok", "", tables["layers"]
        except InfeasibleDesign as exc:
            metrics, status, reason, layers = {}, "infeasible", str(exc), []
        if trace is not None:
            trace.write(args.trace)
            log.info("wrote trace %s (open in https://ui.perfetto.dev)", args.trace)
    except HwsimError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    if args.json:
        out: dict[str, Any] = {
            "system": SYSTEM.name, "fidelity": args.fidelity, "status": status,
            "inputs": {role: specs.to_dict(spec) for role, spec in inputs.items()},
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()},
            "layers": layers,
        }
        if reason:
            out["reason"] = reason
        print(json.dumps(out, indent=2, default=str))
        return 0
    names = ", ".join(f"{role}={getattr(s, 'name', '?')}" for role, s in inputs.items())
    print(f"# {SYSTEM.name} ({args.fidelity}) {names}")
    if status != "ok":
        print(f"infeasible: {reason}")
        return 0
    print(_table([[k, v] for k, v in metrics.items()], ["metric", "value"]))
    print()
    print(_table([[r[c] for c in COLUMNS] for r in layers], COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())

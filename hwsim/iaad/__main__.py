"""``python -m hwsim.iaad``: one scenario's metrics, its per-segment table and a figure along
the road.

``hwsim simulate iaad`` prints the flat metrics every system reports; this command prints the
same object (``--json``: the one ``hwsim simulate --json`` prints) with a ``segments`` table
beside the metrics (DES only): per road segment of ``segment_m`` its units, frames, every
method's miss ratio and displacement error, the adaptive policy's age of information, the
intra-frame messages' p99 latency, the mean rate and a ``flag`` naming the methods that miss
more than ``flag_miss_ratio`` there. ``--figure PATH`` writes PATH.png and PATH.svg: the miss
ratio of each method and the intra-frame p99 latency along the road, the units marked::

    python -m hwsim.iaad --json
    python -m hwsim.iaad --spec link=lte-congested --spec scenario=degraded --figure out/road

Options and exit codes as ``hwsim simulate`` (2: bad input, one ``error:`` line). The per-segment
table needs the DES, so ``--fidelity`` defaults to ``des`` here.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwsim import specs
from hwsim.errors import HwsimError, InfeasibleDesign, InputError

log = logging.getLogger("hwsim.iaad")

COLUMNS = ("segment", "start_m", "end_m", "units_m", "frames", "miss_ratio_intra",
           "miss_ratio_inter", "miss_ratio_planning", "miss_ratio_adaptive", "aoi_p99_ms",
           "latency_p99_ms", "displacement_error_intra_m", "displacement_error_adaptive_m",
           "radio_rate_Mbps", "flag")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else "-"
    return str(v)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    from hwsim.cli import _table as table

    return table([[_fmt(c) for c in r] for r in rows], header, wrap=False)


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def figure(rows: list[dict[str, Any]], units, path: str | Path, title: str = "") -> list[Path]:
    """Miss ratio per method and the intra-frame p99 latency along the road (PNG and SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mid = [(r["start_m"] + r["end_m"]) / 2 for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for m, style in (("intra", "-"), ("inter", "--"), ("planning", ":"), ("adaptive", "-")):
        ax1.plot(mid, [r[f"miss_ratio_{m}"] for r in rows], style, marker=".", label=m,
                 linewidth=2.0 if m == "adaptive" else 1.2)
    ax1.set_ylabel("fusion miss ratio (frames)")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(loc="upper right", ncol=4, fontsize=8)
    ax2.plot(mid, [r["latency_p99_ms"] for r in rows], marker=".", color="tab:purple",
             label="intra-frame messages, p99")
    ax2.set_ylabel("capture-to-arrival latency p99 (ms)")
    ax2.set_xlabel("position along the road (m)")
    ax2.legend(loc="upper right", fontsize=8)
    for ax in (ax1, ax2):
        for i, u in enumerate(units):
            ax.axvline(u, color="grey", linewidth=0.8, alpha=0.6,
                       label="road-side unit" if (ax is ax2 and i == 0) else None)
        ax.grid(alpha=0.3)
    ax2.legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "svg"):
        p = base.with_suffix(f".{ext}") if base.suffix in ("", ".png", ".svg") else Path(
            f"{base}.{ext}")
        fig.savefig(p, dpi=120)
        out.append(p)
    plt.close(fig)
    return out


def run(argv: Sequence[str] | None = None) -> int:
    """The command; returns its exit status."""
    from hwsim.iaad.evaluate import SYSTEM

    p = argparse.ArgumentParser(prog="python -m hwsim.iaad",
                                description=__doc__.split("\n")[0])
    p.add_argument("--spec", action="append", default=[], metavar="[ROLE=]FILE|NAME")
    p.add_argument("--set", action="append", default=[], metavar="ROLE.KEY=VALUE")
    p.add_argument("--fidelity", default="des", choices=["analytical", "des"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--figure", metavar="PATH", help="write PATH.png and PATH.svg (DES)")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace (DES)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows: list[dict[str, Any]] = []
    try:
        inputs = SYSTEM.resolve(args.spec, args.set)
        if args.fidelity != "des" and (args.figure or args.trace):
            raise InputError("--figure and --trace need --fidelity des")
        trace = None
        if args.trace:
            from hwsim.des.trace import TraceRecorder

            trace = TraceRecorder()
        try:
            metrics, tables = SYSTEM.evaluate_tables(inputs, args.fidelity, seed=args.seed,
                                                     trace=trace)
            rows = tables.get("segments", [])
            status, reason = "ok", ""
        except InfeasibleDesign as exc:
            metrics, status, reason = {}, "infeasible", str(exc)
        if trace is not None:
            trace.write(args.trace)
            log.info("wrote trace %s (open in https://ui.perfetto.dev)", args.trace)
        if args.figure and rows:
            for f in figure(rows, inputs["scenario"].units(), args.figure,
                            f"{inputs['link'].name} / {inputs['scenario'].name}, seed "
                            f"{args.seed}"):
                log.info("wrote %s", f)
    except HwsimError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    if args.json:
        out: dict[str, Any] = {
            "system": SYSTEM.name, "fidelity": args.fidelity, "status": status,
            "inputs": {role: specs.to_dict(spec) for role, spec in inputs.items()},
            "metrics": {k: _clean(v) for k, v in metrics.items()},
            "segments": [{k: _clean(v) for k, v in r.items()} for r in rows],
        }
        if args.fidelity == "des":
            out["seed"] = args.seed
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
    if rows:
        print()
        print(_table([[r[c] for c in COLUMNS] for r in rows], COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())

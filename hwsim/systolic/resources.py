"""FPGA resources of the systolic array from measured synthesis, for the explorer.

Synthesising an array takes seconds to minutes, far too slow for a sweep of thousands of points, so
the statistics are measured once on a grid of configurations (Yosys ``synth_xilinx`` per FPGA
family; :func:`measure`) and committed as a table per family, ``hwsim/systolic/data/
systolic_<family>.csv`` (``xc7``: 7-series, DSP48E1; ``xcup``: UltraScale+, DSP48E2), keyed by
the parameters that shape the hardware (dataflow, rows, cols, operand and accumulator widths).
The families differ: Yosys 0.23 packs a PE's multiply and accumulate into one DSP48E1 on
7-series, but on UltraScale+ it maps only the multiply to the DSP48E2 and builds the
accumulator's adder and registers in the fabric (an 8 x 8 ws array of 8-bit operands: 82 LUTs
and 1,618 FFs on xc7, 1,514 LUTs and 3,546 FFs on xcup), so a board is costed with its own
family's table. :func:`estimate` answers any configuration:

- a configuration in the table: the measured numbers;
- otherwise, per (dataflow, operand_width, acc_width) in the table, a least-squares fit of each
  resource over the measured sizes: LUTs and DSPs on ``[rows * cols, rows, cols, 1]`` (per PE,
  per row, per column, fixed control), flip-flops on ``[rows * cols, rows (rows - 1) / 2,
  cols (cols - 1) / 2, rows + cols]`` (per PE, the skew and de-skew register triangles, the
  edges). ``python -m hwsim.systolic.resources --check`` prints the leave-one-out errors
  (arrays from 4 x 4 to 12 x 12: LUTs within 2 %, FFs within 10 %, DSPs exact). An operand width
  between two measured widths interpolates linearly between their fits. Widths outside the
  table are an InputError.

Regenerate the table with ``python -m hwsim.systolic.resources --measure`` (needs Yosys).
"""

from __future__ import annotations

import argparse
import csv
import functools
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.errors import InputError

log = logging.getLogger(__name__)

DATA = Path(__file__).with_name("data")
#: the measured table of each FPGA family
TABLES = {"xc7": DATA / "systolic_xc7.csv", "xcup": DATA / "systolic_xcup.csv"}
TABLE = TABLES["xc7"]
#: ``dsp``: DSP slices of the family (DSP48E1 on xc7, DSP48E2 on xcup)
RESOURCES = ("lut", "ff", "dsp", "bram36")
KEYS = ("dataflow", "rows", "cols", "operand_width", "acc_width")
COLUMNS = (*KEYS, *RESOURCES, "carry4", "tool")

#: the grid :func:`measure` synthesises by default
GRID_SIZES = ((2, 2), (2, 8), (8, 2), (4, 4), (4, 8), (8, 4), (6, 6), (8, 8), (12, 12), (8, 16),
              (16, 8), (16, 16))
GRID_WIDTHS = ((8, 32), (16, 32))
GRID_DATAFLOWS = ("ws", "os")


def _synth_one(dataflow: str, rows: int, cols: int, width: int, acc: int,
               family: str = "xc7") -> dict[str, Any]:
    from hwsim.rtl.generate import (
        FAMILY_DSP,
        FAMILY_SCRIPT,
        _stat,
        emit_verilog,
        find_yosys,
        yosys_version,
    )
    from hwsim.systolic.array import SystolicArray
    from hwsim.systolic.spec import SystolicSpec

    binary = find_yosys()
    if binary is None:
        raise InputError("measuring resources needs yosys on PATH (or HWSIM_YOSYS)")
    spec = SystolicSpec(rows=rows, cols=cols, operand_width=width, acc_width=acc,
                        dataflow=dataflow)
    text = emit_verilog(SystolicArray(spec), "systolic")
    with tempfile.TemporaryDirectory(prefix="hwsim-res-") as tmp:
        v = Path(tmp) / "systolic.v"
        v.write_text(text)
        stat = _stat(binary, v, "systolic", FAMILY_SCRIPT.format(top="systolic", family=family),
                     Path(tmp))
    cells = {k: int(n) for k, n in stat.get("num_cells_by_type", {}).items()}
    row = {"dataflow": dataflow, "rows": rows, "cols": cols, "operand_width": width,
           "acc_width": acc,
           "lut": sum(n for k, n in cells.items() if k[:3] == "LUT" and k[3:].isdigit()),
           "ff": sum(cells.get(k, 0) for k in ("FDRE", "FDSE", "FDCE", "FDPE")),
           "dsp": cells.get(FAMILY_DSP[family], 0),
           "bram36": sum(cells.get(f"RAMB36E{i}", 0) + 0.5 * cells.get(f"RAMB18E{i}", 0)
                         for i in (1, 2)),
           "carry4": cells.get("CARRY4", 0),
           "tool": f"yosys {yosys_version(binary)}"}
    log.info("measured %s", row)
    return row


def measure(
    points: Iterable[tuple[str, int, int, int, int]] | None = None,
    *,
    jobs: int = 2,
    family: str = "xc7",
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """Synthesise ``points`` (dataflow, rows, cols, operand_width, acc_width) for ``family``;
    write its table."""
    out = TABLES[family] if out is None else out
    if points is None:
        points = [(df, r, c, w, a) for df in GRID_DATAFLOWS for w, a in GRID_WIDTHS
                  for r, c in GRID_SIZES]
    points = list(points)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = list(pool.map(lambda p: _synth_one(*p, family=family), points))
    if out.is_file():  # keep measured rows that were not measured again
        measured = {tuple(r[k] for k in KEYS) for r in rows}
        rows += [r for r in table(out) if tuple(r[k] for k in KEYS) not in measured]
    write_table(rows, out, family)
    return rows


FAMILY_NAMES = {"xc7": "Xilinx 7-series (DSP48E1)", "xcup": "Xilinx UltraScale+ (DSP48E2)"}


def write_table(rows: Iterable[dict[str, Any]], out: Path = TABLE, family: str = "xc7") -> None:
    """Write measured rows (sorted by their parameters) as the CSV table."""
    rows = sorted(rows, key=lambda r: tuple(r[k] for k in KEYS))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        fh.write(f"# {FAMILY_NAMES[family]} resources of hwsim.systolic.array, measured with "
                 f"Yosys synth_xilinx -family {family} -flatten -noiopad -noclkbuf\n")
        fh.write(f"# regenerate: python -m hwsim.systolic.resources --measure --family {family}\n")
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({**r, **{k: int(r[k]) for k in ("lut", "ff", "dsp", "carry4")},
                        "bram36": float(r["bram36"])})
    _load.cache_clear()


@functools.lru_cache(maxsize=4)
def _load(path: str = str(TABLE)) -> tuple[dict[str, Any], ...]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"resource table not found: {p} (python -m hwsim.systolic.resources "
                         "--measure writes it)")
    with p.open() as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    out = []
    for r in csv.DictReader(lines):
        out.append({**{k: (r[k] if k == "dataflow" else int(r[k])) for k in KEYS},
                    **{k: float(r[k]) for k in (*RESOURCES, "carry4")}, "tool": r["tool"]})
    return tuple(out)


def table(path: str | os.PathLike[str] = TABLE) -> list[dict[str, Any]]:
    """The measured rows."""
    return list(_load(str(path)))


def _linear_terms(rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
    # per PE, per row, per column, fixed
    return [rows * cols, rows, cols, np.ones_like(rows)]


def _register_terms(rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
    # per PE, the triangles of skew (rows) and de-skew (cols) registers, per edge element
    return [rows * cols, rows * (rows - 1) / 2, cols * (cols - 1) / 2, rows + cols]


#: the terms each resource is fitted on (chosen by leave-one-out error over the table)
TERMS = {"lut": _linear_terms, "ff": _register_terms, "dsp": _linear_terms,
         "bram36": _linear_terms}


def _features(res: str, rows: Any, cols: Any) -> np.ndarray:
    r, c = np.broadcast_arrays(np.asarray(rows, dtype=float), np.asarray(cols, dtype=float))
    return np.stack(TERMS[res](r, c), axis=-1)


def _lstsq(res: str, members: Sequence[dict[str, Any]]) -> np.ndarray:
    x = _features(res, [m["rows"] for m in members], [m["cols"] for m in members])
    return np.linalg.lstsq(x, np.array([m[res] for m in members], dtype=float), rcond=None)[0]


@functools.lru_cache(maxsize=64)
def _fit(dataflow: str, width: int, acc: int, path: str) -> dict[str, np.ndarray]:
    rows = [r for r in _load(path)
            if (r["dataflow"], r["operand_width"], r["acc_width"]) == (dataflow, width, acc)]
    return {res: _lstsq(res, rows) for res in RESOURCES}


def estimate(
    dataflow: str,
    rows: Any,
    cols: Any,
    operand_width: Any,
    acc_width: int,
    *,
    family: str = "xc7",
    path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """LUT, FF, DSP slices and BRAM36 of an array (numpy arrays broadcast), from the table of
    ``family`` (or the table at ``path``).

    An input-stationary array is the weight-stationary structure (:mod:`hwsim.systolic.array`
    elaborates ``is`` as ``ws``, the operands' roles swapped), so it takes the ``ws`` rows.
    """
    if dataflow == "is":
        dataflow = "ws"
    if path is None:
        if family not in TABLES:
            raise InputError(f"no measured arrays for FPGA family {family!r} (measured: "
                             f"{', '.join(TABLES)})")
        path = TABLES[family]
    path = str(path)
    data = _load(path)
    widths = sorted({r["operand_width"] for r in data
                     if r["dataflow"] == dataflow and r["acc_width"] == acc_width})
    if not widths:
        accs = sorted({r["acc_width"] for r in data if r["dataflow"] == dataflow})
        raise InputError(f"no measured {dataflow} arrays with acc_width {acc_width}; the table "
                         f"has acc_width {accs} (extend it: python -m "
                         "hwsim.systolic.resources)")
    rows_a, cols_a, w_a = np.broadcast_arrays(np.asarray(rows), np.asarray(cols),
                                              np.asarray(operand_width))
    if (w_a < widths[0]).any() or (w_a > widths[-1]).any():
        raise InputError(f"operand_width outside the measured range {widths[0]}..{widths[-1]} "
                         f"for {dataflow} arrays with acc_width {acc_width}")
    out = {res: np.zeros(rows_a.shape) for res in RESOURCES}
    for lo, hi in zip(widths[:-1] or widths, widths[1:] or widths, strict=True):
        sel = (w_a >= lo) & (w_a <= hi)
        if not sel.any():
            continue
        f_lo, f_hi = _fit(dataflow, lo, acc_width, path), _fit(dataflow, hi, acc_width, path)
        frac = np.where(hi > lo, (w_a - lo) / max(hi - lo, 1), 0.0)
        for res in RESOURCES:
            feats = _features(res, rows_a, cols_a)
            v = (1 - frac) * (feats @ f_lo[res]) + frac * (feats @ f_hi[res])
            out[res] = np.where(sel, np.maximum(v, 0.0), out[res])
    exact = {tuple(r[k] for k in KEYS): r for r in data}
    if rows_a.ndim == 0:
        hit = exact.get((dataflow, int(rows_a), int(cols_a), int(w_a), acc_width))
        if hit:
            return {res: float(hit[res]) for res in RESOURCES}
        return {res: float(np.round(v)) for res, v in out.items()}
    for idx in np.ndindex(rows_a.shape):
        hit = exact.get((dataflow, int(rows_a[idx]), int(cols_a[idx]), int(w_a[idx]), acc_width))
        if hit:
            for res in RESOURCES:
                out[res][idx] = hit[res]
    return {res: np.round(v) for res, v in out.items()}


def check(path: str | os.PathLike[str] = TABLE) -> list[dict[str, Any]]:
    """Leave-one-out check of the fit: each measured row predicted from the others' fit."""
    rows = table(path)
    report = []
    groups = {(r["dataflow"], r["operand_width"], r["acc_width"]) for r in rows}
    for g in sorted(groups):
        members = [r for r in rows if (r["dataflow"], r["operand_width"], r["acc_width"]) == g]
        for r in members:
            others = [o for o in members if o is not r]
            if len(others) < 6:
                continue
            entry = {k: r[k] for k in KEYS}
            for res in ("lut", "ff", "dsp"):
                pred = float(_features(res, r["rows"], r["cols"]) @ _lstsq(res, others))
                entry[f"{res}_err"] = (pred - r[res]) / r[res] if r[res] else pred
            report.append(entry)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwsim.systolic.resources [--measure] [--check]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--measure", action="store_true", help="synthesise the grid, write the table")
    p.add_argument("--missing", action="store_true",
                   help="with --measure: only grid points not in the table yet")
    p.add_argument("--check", action="store_true", help="leave-one-out errors of the fit")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--family", choices=sorted(TABLES), default="xc7",
                   help="the FPGA family's table (xc7: 7-series, xcup: UltraScale+)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.measure:
        points = [(df, r, c, w, a) for df in GRID_DATAFLOWS for w, a in GRID_WIDTHS
                  for r, c in GRID_SIZES]
        if args.missing and TABLES[args.family].is_file():
            have = {tuple(r[k] for k in KEYS) for r in table(TABLES[args.family])}
            points = [p for p in points if p not in have]
        measure(points, jobs=args.jobs, family=args.family)
    if args.check:
        for e in check(TABLES[args.family]):
            log.info("%s", " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in e.items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

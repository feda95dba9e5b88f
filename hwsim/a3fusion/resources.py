"""FPGA resources of an A3Fusion design, and whether it fits its board.

- **The PE array**: :func:`hwsim.systolic.resources.estimate`, the Yosys ``synth_xilinx``
  measurements of the shared :class:`hwsim.systolic.array.SystolicArray` for the board's
  family, fitted over array sizes. Measured: one DSP slice per PE for 8- and 16-bit operands
  (DSP48E2 on UltraScale+: a 27 x 18 multiplier where the DSP48E1 has 25 x 18, Xilinx UG579
  and UG479); the two-int8-MACs-per-DSP48E2 packing of Xilinx WP486 (which needs a shared
  operand) is not modelled. The input-stationary array is costed as the weight-stationary one
  (the same structure: a stationary operand per PE, the other skewed in from the left, partial
  sums down the columns). A partitioned array is two arrays of ``rows x camera_cols`` and
  ``rows x (cols - camera_cols)``.
- **Buffers** (ifmap, filter, ofmap; double-buffered): 36 Kb block RAMs (UG573: 4K x 9 bits
  per port at 8 bits, 512 x 72 in simple dual port; counted as 4 KiB of data and a 64-bit data
  port each), ``max(ceil(bytes / 4 KiB), 2 * ceil(port_bits / 64))`` blocks, the port as wide as
  the array edge it feeds (ifmap ``rows x operand``, filter ``cols x operand`` (``rows`` for
  ``is``), ofmap ``cols x acc``); on a board with UltraRAM (UG573: 288 Kb, 4K x 72) a buffer of
  64 KiB or more goes to URAM instead, 32 KiB of data and 64 bits per block.
- **The vector / fusion unit** (:class:`hwsim.rtl.fusion.FusionUnit`): LUTs and flip-flops
  measured by Yosys ``synth_xilinx`` for 4 to 32 lanes (``data/fusion_unit_xc7.csv``,
  ``python -m hwsim.a3fusion.resources --measure``), linear in the lanes between them; one unit,
  two when the array is partitioned (each branch streams its own vector layers).

- **Control and buffer logic** (the tile sequencer's address generators, the buffers' ports
  and accumulate adders, the column-split chain): the generated datapath
  (:class:`hwsim.a3fusion.rtl.A3FusionCore`) synthesised on a grid of ten designs per family
  (``data/a3fusion_core_<family>.csv``, :func:`measure_core`), less the array and fusion-unit
  estimates, fitted on ``[partitions, cols x acc_width, rows x operand_width x partitions]``
  (:func:`control`); leave-one-out on UltraScale+ the whole estimate is within 4 % on LUTs and
  7 % on FFs (``python -m hwsim.a3fusion.resources --check-core``). A family with no core table
  (7-series) counts none.

Every LUT and FF count is the family's own: a board's
:attr:`hwsim.hw.fpga.FpgaBoardSpec.family` picks the array table (on UltraScale+ Yosys builds
each PE's accumulator in the fabric, see :mod:`hwsim.systolic.resources`) and the core fit. The
fusion unit's table is the 7-series one on both (no DSPs; a 6-input LUT in each family).

Not counted: the DMA engine and the AXI interconnect (a design at 100 % of a resource does not
fit in practice).
"""

from __future__ import annotations

import argparse
import csv
import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.errors import InputError
from hwsim.systolic import resources as array_resources

log = logging.getLogger(__name__)

FUSION_TABLE = Path(__file__).with_name("data") / "fusion_unit_xc7.csv"
FUSION_LANES = (4, 8, 16, 32)
BRAM_DATA_BYTES = 4096          # 36 Kb block: 32 Kb of data (the parity bits are not used)
URAM_DATA_BYTES = 32768         # 288 Kb block: 4K x 72, 64 data bits of each word
PORT_DATA_BITS = 64             # one block's data port (72-bit SDP / URAM, 64 data bits)
URAM_MIN_BYTES = 64 * 1024      # buffers this large go to URAM where the board has it


def measure(lanes: Sequence[int] = FUSION_LANES, out: Path = FUSION_TABLE) -> list[dict]:
    """Synthesise the fusion unit (add mode, the default spec otherwise) for each lane count."""
    from hwsim.rtl.fusion import FusionUnit
    from hwsim.rtl.generate import emit_verilog, synthesize
    from hwsim.rtl.spec import FusionUnitSpec

    rows = []
    for n in lanes:
        spec = FusionUnitSpec(lanes=n)
        stat = synthesize(emit_verilog(FusionUnit(spec), "fusion_unit"), "fusion_unit")
        x = stat["xilinx7"]
        rows.append({"lanes": n, "in_width": spec.in_width, "out_width": spec.out_width,
                     "mode": spec.mode, "fifo_depth": spec.fifo_depth, "lut": x["lut"],
                     "ff": x["ff"], "dsp48e1": x["dsp48e1"], "bram36": x["bram36"],
                     "tool": stat["tool"]})
        log.info("measured %s", rows[-1])
    with out.open("w", newline="") as fh:
        fh.write("# Xilinx 7-series resources of hwsim.rtl.fusion.FusionUnit, measured with Yosys "
                 "synth_xilinx -flatten -noiopad -noclkbuf\n")
        fh.write("# regenerate: python -m hwsim.a3fusion.resources --measure\n")
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    _fusion_fit.cache_clear()
    return rows


@functools.lru_cache(maxsize=2)
def _fusion_fit(path: str = str(FUSION_TABLE)) -> dict[str, np.ndarray]:
    lines = [ln for ln in Path(path).read_text().splitlines() if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    lanes = np.array([float(r["lanes"]) for r in rows])
    x = np.stack([lanes, np.ones_like(lanes)], axis=1)
    return {res: np.linalg.lstsq(x, np.array([float(r[res]) for r in rows]), rcond=None)[0]
            for res in ("lut", "ff")}


def fusion_unit(lanes: Any) -> dict[str, Any]:
    """LUTs and flip-flops of one fusion unit of ``lanes`` lanes (fitted, linear in lanes)."""
    fit = _fusion_fit()
    lanes = np.asarray(lanes, dtype=float)
    return {res: np.round(np.maximum(fit[res][0] * lanes + fit[res][1], 0.0))
            for res in ("lut", "ff")}


def _blocks(nbytes: Any, port_bits: Any, data_bytes: int) -> Any:
    return np.maximum(np.ceil(np.asarray(nbytes, dtype=float) / data_bytes),
                      2 * np.ceil(np.asarray(port_bits, dtype=float) / PORT_DATA_BITS))


def buffers(dataflow: str, rows: Any, cols: Any, width: Any, acc: int,
            sizes_KiB: Mapping[str, Any], has_uram: Any, partitioned: bool) -> dict[str, Any]:
    """BRAM36 and URAM blocks of the three buffers (see the module docstring)."""
    rows, cols = np.asarray(rows, dtype=float), np.asarray(cols, dtype=float)
    width = np.asarray(width, dtype=float)
    edges = 2.0 if partitioned else 1.0  # two sub-arrays each read a full column of inputs
    ports = {"ifmap": edges * rows * width,
             "filter": (rows if dataflow == "is" else cols) * width * (edges if dataflow == "is"
                                                                         else 1.0),
             "ofmap": cols * acc}
    bram = np.zeros(np.broadcast(rows, cols, width).shape)
    uram = np.zeros_like(bram)
    for name, port in ports.items():
        nbytes = np.asarray(sizes_KiB[name], dtype=float) * 1024
        to_uram = np.asarray(has_uram, dtype=bool) & (nbytes >= URAM_MIN_BYTES)
        bram = bram + np.where(to_uram, 0.0, _blocks(nbytes, port, BRAM_DATA_BYTES))
        uram = uram + np.where(to_uram, _blocks(nbytes, port, URAM_DATA_BYTES), 0.0)
    return {"bram": bram, "uram": uram}


def estimate(dataflow: str, rows: Any, cols: Any, camera_cols: Any, width: Any, acc: int,
             lanes: Any, sizes_KiB: Mapping[str, Any], has_uram: Any,
             partitioned: bool, family: str = "xc7") -> dict[str, Any]:
    """DSP, LUT, FF, BRAM36 and URAM of a design (numpy arrays broadcast) on a device of
    ``family`` (the board's, :attr:`hwsim.hw.fpga.FpgaBoardSpec.family`)."""
    arr = _arrays(dataflow, rows, cols, camera_cols, width, acc, family, partitioned)
    fu = fusion_unit(lanes)
    units = 2.0 if partitioned else 1.0
    buf = buffers(dataflow, rows, cols, width, acc, sizes_KiB, has_uram, partitioned)
    ctl = control(family, rows, cols, width, acc, partitioned)
    return {"dsp": arr["dsp"], "lut": arr["lut"] + units * fu["lut"] + ctl["lut"],
            "ff": arr["ff"] + units * fu["ff"] + ctl["ff"], "bram": arr["bram36"] + buf["bram"],
            "uram": buf["uram"]}


# ----------------------------------------------------------------------------------------------
# the datapath's control and buffer logic, measured on the generated core

#: designs :func:`measure_core` synthesises per family: (rows, cols, camera_cols, dataflow)
CORE_GRID = ((8, 8, 0, "ws"), (16, 8, 0, "ws"), (8, 16, 0, "ws"), (16, 16, 0, "ws"),
             (32, 8, 0, "ws"), (8, 8, 0, "os"), (16, 16, 0, "os"), (16, 16, 8, "ws"),
             (16, 8, 4, "ws"), (8, 16, 8, "os"))
CORE_COLUMNS = ("family", "rows", "cols", "camera_cols", "dataflow", "operand_width",
                "acc_width", "lanes", "lut", "ff", "array_lut", "array_ff", "fusion_lut",
                "fusion_ff", "tool")


def core_table_path(family: str) -> Path:
    """The measured core table of ``family``."""
    return Path(__file__).with_name("data") / f"a3fusion_core_{family}.csv"


def measure_core(family: str, grid: Sequence[tuple[int, int, int, str]] = CORE_GRID,
                 out: Path | None = None) -> list[dict[str, Any]]:
    """Synthesise the generated datapath (:class:`hwsim.a3fusion.rtl.A3FusionCore`) of each
    grid design for ``family``, and write its LUTs and FFs beside the array and fusion-unit
    estimates (the rest is the tile sequencer, the buffers' ports and accumulate adders and the
    column-split chain, which :func:`control` fits)."""
    from hwsim.a3fusion.rtl import A3FusionCore, A3FusionDesign
    from hwsim.a3fusion.rtlcheck import measured
    from hwsim.rtl.generate import emit_verilog, synthesize_family

    rows_out = []
    for r, c, cam, df in grid:
        d = A3FusionDesign(rows=r, cols=c, camera_cols=cam, dataflow=df, family=family)
        stats = synthesize_family(emit_verilog(A3FusionCore(d), "a3fusion"), "a3fusion", family)
        m = measured(stats)
        arr = _arrays(df, r, c, cam, d.operand_width, d.acc_width, family, bool(cam))
        units = 2.0 if cam else 1.0
        fu = fusion_unit(d.vector_lanes)
        rows_out.append({"family": family, "rows": r, "cols": c, "camera_cols": cam,
                         "dataflow": df, "operand_width": d.operand_width,
                         "acc_width": d.acc_width, "lanes": d.vector_lanes,
                         "lut": int(m["lut"]), "ff": int(m["ff"]),
                         "array_lut": int(arr["lut"]), "array_ff": int(arr["ff"]),
                         "fusion_lut": int(units * fu["lut"]), "fusion_ff": int(units * fu["ff"]),
                         "tool": stats["tool"]})
        log.info("measured %s", rows_out[-1])
    out = core_table_path(family) if out is None else out
    with out.open("w", newline="") as fh:
        fh.write(f"# LUTs and FFs of hwsim.a3fusion.rtl.A3FusionCore, Yosys synth_xilinx -family "
                 f"{family} -flatten -noiopad -noclkbuf (default buffers and lanes); array_* and "
                 "fusion_* are the estimates of those blocks\n")
        fh.write(f"# regenerate: python -m hwsim.a3fusion.resources --measure-core --family "
                 f"{family}\n")
        w = csv.DictWriter(fh, fieldnames=CORE_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows_out)
    _control_fit.cache_clear()
    return rows_out


def _control_features(rows: Any, cols: Any, width: Any, acc: Any, partitions: Any) -> Any:
    """Per partition (its sequencer's address generators and handshakes), accumulator bits of
    a row of outputs (the read-modify-write adders and the output registers: ``cols x acc``),
    operand bits of the streamed edge (``rows x width``: the a-buffer port and, partitioned,
    the column-split chain)."""
    r, c, w, a, p = np.broadcast_arrays(*(np.asarray(x, dtype=float)
                                          for x in (rows, cols, width, acc, partitions)))
    return np.stack([p, c * a, r * w * p], axis=-1)


def _core_table(family: str) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The measured cores of ``family``: the control features of each and, per resource, the
    residual the control term must explain (measured less the array and fusion estimates)."""
    path = core_table_path(family)
    if not path.is_file():
        return None
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    f = {k: np.array([float(r[k]) for r in rows])
         for k in ("rows", "cols", "camera_cols", "operand_width", "acc_width", "lut", "ff",
                   "array_lut", "array_ff", "fusion_lut", "fusion_ff")}
    x = _control_features(f["rows"], f["cols"], f["operand_width"], f["acc_width"],
                          np.where(f["camera_cols"] > 0, 2.0, 1.0))
    return x, {res: f[res] - f[f"array_{res}"] - f[f"fusion_{res}"] for res in ("lut", "ff")}


@functools.lru_cache(maxsize=4)
def _control_fit(family: str) -> dict[str, np.ndarray] | None:
    table = _core_table(family)
    if table is None:
        return None
    x, resid = table
    return {res: np.linalg.lstsq(x, y, rcond=None)[0] for res, y in resid.items()}


def control(family: str, rows: Any, cols: Any, width: Any, acc: Any,
            partitioned: bool) -> dict[str, Any]:
    """LUTs and FFs of the control and buffer logic (:func:`measure_core`'s residual, fitted
    per family); zeros for a family with no measured core table."""
    fit = _control_fit(family)
    feats = _control_features(rows, cols, width, acc, 2.0 if partitioned else 1.0)
    if fit is None:
        return {res: np.zeros(feats.shape[:-1]) for res in ("lut", "ff")}
    return {res: np.round(np.maximum(feats @ fit[res], 0.0)) for res in ("lut", "ff")}


def check_control(family: str) -> list[dict[str, Any]]:
    """Leave-one-out errors of the whole estimate (array + fusion + control) on the core
    table: each design predicted with the control fit of the others."""
    path = core_table_path(family)
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    table = _core_table(family)
    assert table is not None
    x, resid = table
    out = []
    for i, r in enumerate(rows):
        rest = np.arange(len(rows)) != i
        entry: dict[str, Any] = {k: r[k] for k in ("rows", "cols", "camera_cols", "dataflow")}
        for res, y in resid.items():
            coef = np.linalg.lstsq(x[rest], y[rest], rcond=None)[0]
            measured = float(r[res])
            # the estimate = measured - residual + the control term (never negative)
            pred = measured - float(y[i]) + max(float(x[i] @ coef), 0.0)
            entry[f"{res}_err"] = (pred - measured) / measured
        out.append(entry)
    return out


def _arrays(dataflow: str, rows: Any, cols: Any, camera_cols: Any, width: Any, acc: int,
            family: str, partitioned: bool) -> dict[str, Any]:
    """The PE array(s) of a design: one, or the two partitions."""
    fit_df = "ws" if dataflow == "is" else dataflow
    try:
        if partitioned:
            cam = np.maximum(np.asarray(camera_cols), 1)
            a = array_resources.estimate(fit_df, rows, cam, width, acc, family=family)
            b = array_resources.estimate(fit_df, rows, np.maximum(np.asarray(cols) - cam, 1),
                                         width, acc, family=family)
            return {k: np.asarray(a[k]) + np.asarray(b[k]) for k in a}
        return {k: np.asarray(v) for k, v in
                array_resources.estimate(fit_df, rows, cols, width, acc,
                                         family=family).items()}
    except InputError as exc:
        raise InputError(f"no measured arrays for this configuration: {exc.message}",
                         key="accel.acc_width", value=acc, has_value=True) from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwsim.a3fusion.resources [--measure] [--measure-core --family F]
    [--check-core --family F]``: synthesise the fusion-unit or core tables, check the fit."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--measure", action="store_true", help="synthesise the fusion-unit table")
    p.add_argument("--measure-core", action="store_true",
                   help="synthesise the generated datapath on CORE_GRID, write its table")
    p.add_argument("--check-core", action="store_true",
                   help="leave-one-out errors of the estimate on the core table")
    p.add_argument("--family", choices=("xc7", "xcup"), default="xcup",
                   help="FPGA family of --measure-core / --check-core")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.measure:
        measure()
    if args.measure_core:
        measure_core(args.family)
    if args.check_core:
        for e in check_control(args.family):
            log.info("%s", " ".join(f"{k}={v:+.1%}" if k.endswith("_err") else f"{k}={v}"
                                    for k, v in e.items()))
    for lanes in FUSION_LANES:
        log.info("lanes %d: %s", lanes, {k: float(v) for k, v in fusion_unit(lanes).items()})
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

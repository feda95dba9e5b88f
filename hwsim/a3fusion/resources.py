"""FPGA resources of an A3Fusion design, and whether it fits its board.

- **The PE array**: :func:`hwsim.systolic.resources.estimate`, the Yosys ``synth_xilinx``
  (7-series) measurements of the shared :class:`hwsim.systolic.array.SystolicArray`, fitted
  over array sizes. Measured: one DSP48E1 per PE for 8- and 16-bit operands. On UltraScale+
  boards (DSP48E2: a 27 x 18 multiplier where the DSP48E1 has 25 x 18, Xilinx UG579 and UG479)
  an operand of up to 18 bits also takes one slice, so the count carries over unchanged; the
  two-int8-MACs-per-DSP48E2 packing of Xilinx WP486 (which needs a shared operand) is not
  modelled. LUTs and flip-flops are the 7-series counts (a 6-input LUT and its flip-flops in
  both families); this is an assumption, not a measurement on UltraScale+. The input-stationary
  array is costed as the weight-stationary one (the same structure: a stationary operand per
  PE, the other skewed in from the left, partial sums down the columns). A partitioned array is
  two arrays of ``rows x camera_cols`` and ``rows x (cols - camera_cols)``.
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

Not counted: the DMA engine, the AXI interconnect, the control and address generators (a lower
bound: a design at 100 % of a resource does not fit in practice).
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
             partitioned: bool) -> dict[str, Any]:
    """DSP, LUT, FF, BRAM36 and URAM of a design (numpy arrays broadcast)."""
    fit_df = "ws" if dataflow == "is" else dataflow
    try:
        if partitioned:
            cam = np.maximum(np.asarray(camera_cols), 1)
            a = array_resources.estimate(fit_df, rows, cam, width, acc)
            b = array_resources.estimate(fit_df, rows, np.maximum(np.asarray(cols) - cam, 1),
                                         width, acc)
            arr = {k: np.asarray(a[k]) + np.asarray(b[k]) for k in a}
        else:
            arr = {k: np.asarray(v) for k, v in
                   array_resources.estimate(fit_df, rows, cols, width, acc).items()}
    except InputError as exc:
        raise InputError(f"no measured arrays for this configuration: {exc.message}",
                         key="accel.acc_width", value=acc, has_value=True) from None
    fu = fusion_unit(lanes)
    units = 2.0 if partitioned else 1.0
    buf = buffers(dataflow, rows, cols, width, acc, sizes_KiB, has_uram, partitioned)
    return {"dsp": arr["dsp48e1"], "lut": arr["lut"] + units * fu["lut"],
            "ff": arr["ff"] + units * fu["ff"], "bram": arr["bram36"] + buf["bram"],
            "uram": buf["uram"]}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwsim.a3fusion.resources --measure``: synthesise the fusion-unit table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--measure", action="store_true", help="synthesise, write the table")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.measure:
        measure()
    for lanes in FUSION_LANES:
        log.info("lanes %d: %s", lanes, {k: float(v) for k, v in fusion_unit(lanes).items()})
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

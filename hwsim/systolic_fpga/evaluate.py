"""``systolic-fpga``: a systolic GEMM accelerator on a Xilinx 7-series FPGA, for the explorer.

Inputs: ``array`` (kind ``systolic``: rows, cols, widths, dataflow, clock), ``workload``
(kind ``gemm``) and ``board`` (kind ``fpga-board``: the device's resources and its DRAM).

- Resources (``dsp``, ``lut``, ``ff``, ``bram36``) come from synthesis of the generated Verilog,
  measured on a grid and fitted (:mod:`hwsim.systolic.resources`). A design that does not
  fit the board's device is infeasible.
- Compute time comes from the systolic timing model (:mod:`hwsim.systolic.timing`,
  SCALE-Sim's compute cycles), which the generated RTL is tested against cycle for cycle.
- Memory: every fold reads its operand tiles from DRAM and writes its results back
  (:func:`hwsim.systolic.timing.fold_traffic_bytes`), double-buffered against compute.
  Reads and writes share the board's DRAM bandwidth.

Two evaluators over the same inputs:

- ``analytical``: folds are identical, so with double buffering the workload takes
  ``t_in + t_c + t_out + (F - 1) * max(t_c, t_in + t_out)`` (first load, then one fold per
  slowest stage, then the last store; the link carries a fold's reads and writes in series);
- ``des``: the same three stages as a :class:`hwsim.des.Pipeline` over one shared
  :class:`hwsim.des.Link` (loads and stores fair-share it), one event per fold. When compute is
  the bottleneck the two agree exactly; when the DRAM is, the DES also charges the fair sharing
  at the start and end of the run (a test bounds the difference).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.batch import REASON, BatchModel
from hwsim.errors import InputError
from hwsim.hw.fpga import FpgaBoardSpec
from hwsim.system import Inputs, Metric, Metrics, Role, System, register_system
from hwsim.systolic import resources, timing
from hwsim.systolic.spec import SystolicSpec
from hwsim.systolic_fpga.spec import GemmSpec

__all__ = ["SYSTEM", "block", "simulate"]

#: folds one DES run may simulate (three pipeline stages, a few events each)
MAX_DES_FOLDS = 2_000_000


def _metrics(dataflow: str, rows: Any, cols: Any, width: Any, acc: int, clock_mhz: Any,
             m: Any, n: Any, k: Any, count: Any, board: Mapping[str, Any],
             family: str = "xc7") -> dict[str, Any]:
    """All metrics; every argument but ``dataflow``, ``acc`` and ``family`` (the board's FPGA
    family, whose measured resource table is used) may be a numpy array."""
    res = resources.estimate(dataflow, rows, cols, width, acc, family=family)
    rows, cols = np.asarray(rows), np.asarray(cols)
    clock_hz = np.asarray(clock_mhz, dtype=float) * 1e6
    s_r, s_c, t = timing.mapping(dataflow, m, n, k)
    n_folds = timing.folds(rows, cols, s_r, s_c)
    cycles = timing.compute_cycles(dataflow, rows, cols, m, n, k) * count
    t_c = timing.fold_cycles(rows, cols, t) / clock_hz
    b_in, b_out = timing.fold_traffic_bytes(dataflow, rows, cols, t, width, acc)
    bw = np.asarray(board["dram_bandwidth_GBps"], dtype=float) * 1e9
    t_in, t_out = b_in / bw, b_out / bw
    seconds = (t_in + t_c + t_out + (n_folds - 1) * np.maximum(t_c, t_in + t_out)) * count
    ops = 2.0 * np.asarray(m) * n * k * count
    gops = ops / seconds / 1e9
    peak = 2.0 * rows * cols * clock_hz * 1e-9
    out = {
        "dsp": res["dsp"],
        "lut": res["lut"],
        "ff": res["ff"],
        "bram36": res["bram36"],
        "dsp_utilization": res["dsp"] / board["dsp"],
        "lut_utilization": res["lut"] / board["lut"],
        "pes": rows * cols,
        "compute_cycles": cycles,
        "compute_s": np.asarray(cycles, dtype=float) / clock_hz,
        "latency_s": seconds,
        "dram_traffic_GB": n_folds * (b_in + b_out) * count / 1e9,
        "memory_bound": (t_in + t_out > t_c).astype(float),
        "throughput_gemm_per_s": np.asarray(count, dtype=float) / seconds,
        "throughput_gops": gops,
        "peak_gops": peak,
        "utilization": timing.utilization(dataflow, rows, cols, m, n, k) * (
            np.asarray(cycles, dtype=float) / clock_hz / seconds),
        "gops_per_dsp": gops / np.maximum(res["dsp"], 1.0),
    }
    fits = ((res["dsp"] <= board["dsp"]) & (res["lut"] <= board["lut"])
            & (res["ff"] <= board["ff"]))
    out["fits"] = fits
    return out


def _board(b: FpgaBoardSpec) -> dict[str, Any]:
    return {"dsp": b.dsp, "lut": b.lut, "ff": b.ff, "dram_bandwidth_GBps": b.dram_bandwidth_GBps}


#: keys the block evaluates as arrays; the dataflow and the accumulator width shape the
#: resource fit, so they (and every other key) are grouped by the core
VECTOR_KEYS: frozenset[str] = frozenset(
    [f"array.{k}" for k in ("rows", "cols", "operand_width", "clock_MHz")]
    + [f"workload.{k}" for k in ("m", "n", "k", "count")]
    + [f"board.{k}" for k in ("dsp", "lut", "ff", "dram_bandwidth_GBps")])


def block(inputs: Inputs, arrays: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every metric of ``n`` design points (the :class:`hwsim.batch.BatchModel` block); a point
    whose array does not fit the board's device is infeasible."""
    a: SystolicSpec = inputs["array"]
    w: GemmSpec = inputs["workload"]
    b: FpgaBoardSpec = inputs["board"]

    def get(key: str, default: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(arrays.get(key, default)), (n,))

    board = {k: get(f"board.{k}", v) for k, v in _board(b).items()}
    out = _metrics(a.dataflow, get("array.rows", a.rows), get("array.cols", a.cols),
                   get("array.operand_width", a.operand_width), a.acc_width,
                   get("array.clock_MHz", a.clock_MHz), get("workload.m", w.m),
                   get("workload.n", w.n), get("workload.k", w.k),
                   get("workload.count", w.count), board, family=b.family)
    fits = np.asarray(out.pop("fits"))
    res: dict[str, Any] = {k: np.where(fits, np.asarray(v, dtype=float), np.nan)
                           for k, v in out.items()}
    reason = np.full(n, "", dtype=object)
    reason[~fits] = f"the array needs more DSPs, LUTs or flip-flops than {b.device} has"
    res[REASON] = reason
    return res


def explain(inputs: Inputs, short: str = "") -> str:
    """Why one design point does not fit its board, with the numbers."""
    a: SystolicSpec = inputs["array"]
    w: GemmSpec = inputs["workload"]
    b: FpgaBoardSpec = inputs["board"]
    out = _metrics(a.dataflow, a.rows, a.cols, a.operand_width, a.acc_width, a.clock_MHz,
                   w.m, w.n, w.k, w.count, _board(b), family=b.family)
    return (f"{a.rows}x{a.cols} {a.dataflow} array needs {float(out['dsp']):.0f} DSP, "
            f"{float(out['lut']):.0f} LUT, {float(out['ff']):.0f} FF; {b.device} has {b.dsp}, "
            f"{b.lut}, {b.ff}")


# ----------------------------------------------------------------------------------------------
# discrete-event evaluator


def simulate(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> Metrics:
    """The load / compute / store pipeline of the folds, on the shared DES kernel."""
    import simpy

    from hwsim.des import Link, Pipeline, Stage

    a: SystolicSpec = inputs["array"]
    w: GemmSpec = inputs["workload"]
    b: FpgaBoardSpec = inputs["board"]
    base = SYSTEM.analytical(inputs)  # resources, feasibility and the compute-only figures
    s_r, s_c, t = timing.mapping(a.dataflow, w.m, w.n, w.k)
    n_folds = int(timing.folds(a.rows, a.cols, s_r, s_c)) * w.count
    if n_folds > MAX_DES_FOLDS:
        raise InputError(f"{n_folds:,} folds (count {w.count} x {n_folds // w.count:,} per GEMM) "
                         f"is more than the DES's {MAX_DES_FOLDS:,}: it runs events per fold; "
                         "use --fidelity analytical", key="workload.count", value=w.count,
                         has_value=True)
    t_c = timing.fold_cycles(a.rows, a.cols, t) / (a.clock_MHz * 1e6)
    b_in, b_out = timing.fold_traffic_bytes(a.dataflow, a.rows, a.cols, t, a.operand_width,
                                            a.acc_width)
    env = simpy.Environment()
    dram = Link(env, b.dram_bandwidth_GBps * 1e9, name="dram", recorder=trace)
    pipe = Pipeline(env, [
        Stage("load", lambda _f: dram.transfer(float(b_in), label="load")),
        Stage("compute", t_c),
        Stage("store", lambda _f: dram.transfer(float(b_out), label="store")),
    ], name="systolic", recorder=trace)
    env.run(pipe.run(range(n_folds)))
    seconds = env.now
    out = {k: v for k, v in base.items() if k != "memory_bound"}
    ops = 2.0 * w.m * w.n * w.k * w.count
    out.update({
        "latency_s": seconds,
        "throughput_gemm_per_s": w.count / seconds,
        "throughput_gops": ops / seconds / 1e9,
        "utilization": base["utilization"] * base["latency_s"] / seconds,
        "gops_per_dsp": ops / seconds / 1e9 / max(base["dsp"], 1.0),
        "compute_busy_ratio": pipe.busy_s["compute"] / seconds,
    })
    return out


# ----------------------------------------------------------------------------------------------
# validation: compute cycles against SCALE-Sim itself

_SCALESIM_TABLE = Path(timing.__file__).with_name("data") / "scalesim_3_compute_cycles.csv"
_SCALESIM_CASES = (  # (dataflow, (rows, cols, m, n, k))
    ("ws", (32, 32, 256, 256, 256)),
    ("ws", (16, 16, 8, 3072, 768)),
    ("ws", (8, 16, 64, 48, 40)),
    ("os", (32, 32, 256, 256, 256)),
    ("os", (8, 16, 64, 48, 40)),
)


def _cases() -> list[Any]:
    """SCALE-Sim 3.0.0's reported compute cycles against the timing model's prediction of them
    (:func:`hwsim.systolic.timing.scalesim_cycles`); held-out: nothing was fitted."""
    from hwsim.validation import Case

    lines = [ln for ln in _SCALESIM_TABLE.read_text().splitlines() if not ln.startswith("#")]
    ref = {(r["dataflow"], *(int(r[k]) for k in ("rows", "cols", "m", "n", "k"))):
           int(r["scalesim_cycles"]) for r in csv.DictReader(lines)}

    def predict(df: str, rows: int, cols: int, m: int, n: int, k: int) -> float:
        # The timing model itself: these are array sizes SCALE-Sim was run on, some of which
        # (32x32 = 1024 DSPs) do not fit the default board, which is a resource question.
        return float(timing.scalesim_cycles(df, rows, cols, m, n, k))

    note = {"ws": "hwsim counts working cycles, SCALE-Sim reports the last cycle's index: "
                  "hwsim's compute_cycles = reported + 1",
            "os": "SCALE-Sim overlaps each fold's drain with the next fill: hwsim's "
                  "compute_cycles = reported + 1 + R cycles per fold"}
    return [
        Case(system="systolic-fpga", case=f"{df} {r}x{c}, GEMM {m}x{n}x{k}",
             metric="scalesim_compute_cycles", reference=float(ref[(df, r, c, m, n, k)]),
             tolerance=0.0, group="compute cycles vs SCALE-Sim", role="held-out",
             source="SCALE-Sim 3.0.0 (pip), COMPUTE_REPORT Total Cycles of a run without "
                    "stalls (hwsim/systolic/data/scalesim_reference.py)",
             conditions=f"{r}x{c} array, M={m} N={n} K={k}, no memory stalls; {note[df]}",
             predict=lambda df=df, r=r, c=c, m=m, n=n, k=k: predict(df, r, c, m, n, k))
        for df, (r, c, m, n, k) in _SCALESIM_CASES
    ]


_A = ("analytical",)
SYSTEM = register_system(System(
    name="systolic-fpga",
    summary="systolic GEMM array on a Xilinx FPGA: resources measured per family, SCALE-Sim timing",
    roles=(
        Role("array", "systolic", "default", "the systolic array (hwsim rtl systolic)"),
        Role("workload", "gemm", "gpt2-ffn1-b8", "the GEMM it runs"),
        Role("board", "fpga-board", "zc706", "the FPGA device and its DRAM"),
    ),
    metrics=(
        Metric("dsp", "DSP slices of the board's family (Yosys synth_xilinx, measured and fitted)"),
        Metric("lut", "LUTs (Yosys synth_xilinx, measured and fitted)"),
        Metric("ff", "flip-flops (Yosys synth_xilinx, measured and fitted)"),
        Metric("bram36", "block RAMs in 36 Kb units"),
        Metric("dsp_utilization", "DSPs used / DSPs of the device"),
        Metric("lut_utilization", "LUTs used / LUTs of the device"),
        Metric("pes", "processing elements, rows x cols"),
        Metric("compute_cycles", "compute cycles of the workload (SCALE-Sim's model, "
               "hwsim.systolic.timing)"),
        Metric("compute_s", "compute time at clock_MHz, no memory stalls"),
        Metric("latency_s", "time for the workload, DRAM traffic double-buffered"),
        Metric("dram_traffic_GB", "bytes read and written by all folds"),
        Metric("memory_bound", "1 when a fold's DRAM traffic outlasts its compute", _A),
        Metric("throughput_gemm_per_s", "workloads per second"),
        Metric("throughput_gops", "achieved GOP/s (2 ops per MAC)"),
        Metric("peak_gops", "peak GOP/s of the array"),
        Metric("utilization", "useful MACs / (PEs x elapsed cycles)"),
        Metric("gops_per_dsp", "achieved GOP/s per DSP48E1"),
        Metric("compute_busy_ratio", "share of the run the array computes", ("des",)),
    ),
    batch=BatchModel(VECTOR_KEYS, block, explain=explain),
    des=simulate,
    validation=_cases,
))

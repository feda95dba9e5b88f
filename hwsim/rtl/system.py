"""``systolic-fpga``: a systolic GEMM accelerator on a Xilinx 7-series FPGA, for the explorer.

Inputs: ``array`` (kind ``systolic``: rows, cols, widths, dataflow, clock), ``workload``
(kind ``gemm``) and ``board`` (kind ``fpga-board``: the device's resources and its DRAM).

- Resources (``dsp``, ``lut``, ``ff``, ``bram36``) come from synthesis of the generated Verilog,
  measured on a grid and fitted (:mod:`hwsim.rtl.resources`). A design that does not fit the
  board's device is infeasible.
- Compute time comes from the shared systolic model (:mod:`hwsim.systolic`, SCALE-Sim's compute
  cycles), which the generated RTL is tested against cycle for cycle.
- Memory: every fold reads its operand tiles from DRAM and writes its results back
  (:func:`hwsim.systolic.fold_traffic_bytes`), double-buffered against compute. Reads and
  writes share the board's DRAM bandwidth.

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

from hwsim import systolic as timing
from hwsim.errors import InfeasibleDesign
from hwsim.rtl import resources
from hwsim.rtl.spec import FpgaBoardSpec, SystolicSpec
from hwsim.system import Inputs, Metric, Metrics, Role, System, register_system
from hwsim.systolic import GemmSpec

__all__ = ["SYSTEM", "GemmSpec", "SystolicSpec", "evaluate", "evaluate_batch", "simulate"]

_FIT = ("dsp", "lut", "ff")


def _metrics(dataflow: str, rows: Any, cols: Any, width: Any, acc: int, clock_mhz: Any,
             m: Any, n: Any, k: Any, count: Any, board: Mapping[str, Any]) -> dict[str, Any]:
    """All metrics; every argument but ``dataflow`` and ``acc`` may be a numpy array."""
    res = resources.estimate(dataflow, rows, cols, width, acc)
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
        "dsp": res["dsp48e1"],
        "lut": res["lut"],
        "ff": res["ff"],
        "bram36": res["bram36"],
        "dsp_utilization": res["dsp48e1"] / board["dsp"],
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
        "gops_per_dsp": gops / np.maximum(res["dsp48e1"], 1.0),
    }
    fits = ((res["dsp48e1"] <= board["dsp"]) & (res["lut"] <= board["lut"])
            & (res["ff"] <= board["ff"]))
    out["fits"] = fits
    return out


def _board(b: FpgaBoardSpec) -> dict[str, Any]:
    return {"dsp": b.dsp, "lut": b.lut, "ff": b.ff, "dram_bandwidth_GBps": b.dram_bandwidth_GBps}


def evaluate(inputs: Inputs) -> Metrics:
    """Resources, compute and memory time of one design point (closed form)."""
    a: SystolicSpec = inputs["array"]
    w: GemmSpec = inputs["workload"]
    b: FpgaBoardSpec = inputs["board"]
    out = _metrics(a.dataflow, a.rows, a.cols, a.operand_width, a.acc_width, a.clock_MHz,
                   w.m, w.n, w.k, w.count, _board(b))
    if not bool(out.pop("fits")):
        raise InfeasibleDesign(
            f"{a.rows}x{a.cols} {a.dataflow} array needs {out['dsp']:.0f} DSP, "
            f"{out['lut']:.0f} LUT, {out['ff']:.0f} FF; {b.device} has {b.dsp}, {b.lut}, {b.ff}")
    return {k: float(v) for k, v in out.items()}


def evaluate_batch(inputs: Inputs, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Many design points at once: ``arrays`` maps ``role.key`` to values (numpy broadcast).

    Points that do not fit the device get NaN in every metric.
    """
    a: SystolicSpec = inputs["array"]
    n = max((np.size(v) for v in arrays.values()), default=1)
    groups = {key: np.broadcast_to(np.asarray(arrays[key], dtype=object), (n,))
              for key in ("array.dataflow", "array.acc_width") if key in arrays}
    if groups:  # the resource fit is per dataflow and accumulator width: split the points
        keys = list(zip(*(g.tolist() for g in groups.values()), strict=True))
        out: dict[str, np.ndarray] = {}
        for value in sorted(set(keys), key=str):
            sel = np.array([kk == value for kk in keys])
            sub = {k: (np.broadcast_to(np.asarray(v), (n,))[sel] if np.ndim(v) else v)
                   for k, v in arrays.items() if k not in groups}
            fixed = dict(zip(groups, value, strict=True))
            part = _batch(inputs, sub, str(fixed.get("array.dataflow", a.dataflow)),
                          int(fixed.get("array.acc_width", a.acc_width)))
            for k, v in part.items():
                out.setdefault(k, np.full(n, np.nan))[sel] = v
        return out
    return _batch(inputs, arrays, a.dataflow, a.acc_width)


def _batch(inputs: Inputs, arrays: Mapping[str, Any], dataflow: str, acc: int,
           ) -> dict[str, np.ndarray]:
    a: SystolicSpec = inputs["array"]
    w: GemmSpec = inputs["workload"]
    b: FpgaBoardSpec = inputs["board"]

    def get(key: str, default: Any) -> np.ndarray:
        return np.asarray(arrays.get(key, default))

    board = {k: get(f"board.{k}", v) for k, v in _board(b).items()}
    out = _metrics(dataflow, get("array.rows", a.rows), get("array.cols", a.cols),
                   get("array.operand_width", a.operand_width), acc,
                   get("array.clock_MHz", a.clock_MHz), get("workload.m", w.m),
                   get("workload.n", w.n), get("workload.k", w.k),
                   get("workload.count", w.count), board)
    fits = np.asarray(out.pop("fits"))
    return {k: np.where(fits, np.asarray(v, dtype=float), np.nan) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------
# discrete-event evaluator


def simulate(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> Metrics:
    """The load / compute / store pipeline of the folds, on the shared DES kernel."""
    import simpy

    from hwsim.des import Link, Pipeline, Stage

    a: SystolicSpec = inputs["array"]
    w: GemmSpec = inputs["workload"]
    b: FpgaBoardSpec = inputs["board"]
    base = evaluate(inputs)  # resources, feasibility and the compute-only figures
    s_r, s_c, t = timing.mapping(a.dataflow, w.m, w.n, w.k)
    n_folds = int(timing.folds(a.rows, a.cols, s_r, s_c)) * w.count
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

_SCALESIM_TABLE = Path(__file__).with_name("data") / "scalesim_3_compute_cycles.csv"
_SCALESIM_CASES = (  # (rows, cols, m, n, k), weight-stationary
    (32, 32, 256, 256, 256),
    (16, 16, 8, 3072, 768),
    (8, 16, 64, 48, 40),
)


def _cases() -> list[Any]:
    """Compute cycles against SCALE-Sim 3.0.0's own compute model (no stalls)."""
    from hwsim.validation import Case

    lines = [ln for ln in _SCALESIM_TABLE.read_text().splitlines() if not ln.startswith("#")]
    ref = {(r["dataflow"], *(int(r[k]) for k in ("rows", "cols", "m", "n", "k"))):
           int(r["compute_cycles"]) for r in csv.DictReader(lines)}

    def predict(rows: int, cols: int, m: int, n: int, k: int) -> float:
        # The timing model itself: these are array sizes SCALE-Sim was run on, some of which
        # (32x32 = 1024 DSPs) do not fit the default board, which is a resource question.
        return float(timing.compute_cycles("ws", rows, cols, m, n, k))

    return [
        Case(system="systolic-fpga", case=f"ws {r}x{c}, GEMM {m}x{n}x{k}",
             metric="compute_cycles", reference=float(ref[("ws", r, c, m, n, k)]),
             tolerance=1e-9,
             source="SCALE-Sim 3.0.0 (pip), systolic_compute_ws.py demand matrices "
                    "(hwsim/rtl/data/scalesim_reference.py)",
             conditions=f"{r}x{c} array, M={m} N={n} K={k}, no memory stalls",
             predict=lambda r=r, c=c, m=m, n=n, k=k: predict(r, c, m, n, k))
        for r, c, m, n, k in _SCALESIM_CASES
    ]


_A = ("analytical",)
SYSTEM = register_system(System(
    name="systolic-fpga",
    summary="systolic GEMM array on a Xilinx 7-series FPGA: measured resources, SCALE-Sim timing",
    roles=(
        Role("array", "systolic", "default", "the systolic array (hwsim rtl systolic)"),
        Role("workload", "gemm", "gpt2-ffn1-b8", "the GEMM it runs"),
        Role("board", "fpga-board", "zc706", "the FPGA device and its DRAM"),
    ),
    metrics=(
        Metric("dsp", "DSP48E1 slices (Yosys synth_xilinx, measured and fitted)"),
        Metric("lut", "LUTs (Yosys synth_xilinx, measured and fitted)"),
        Metric("ff", "flip-flops (Yosys synth_xilinx, measured and fitted)"),
        Metric("bram36", "block RAMs in 36 Kb units"),
        Metric("dsp_utilization", "DSPs used / DSPs of the device"),
        Metric("lut_utilization", "LUTs used / LUTs of the device"),
        Metric("pes", "processing elements, rows x cols"),
        Metric("compute_cycles", "compute cycles of the workload (hwsim.systolic, SCALE-Sim)"),
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
    analytical=evaluate,
    des=simulate,
    analytical_batch=evaluate_batch,
    validation=_cases,
))

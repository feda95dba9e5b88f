"""``systolic-fpga``: a systolic GEMM accelerator on a Xilinx 7-series FPGA, for the explorer.

Inputs: ``array`` (kind ``systolic``: rows, cols, widths, dataflow, clock) and ``workload``
(kind ``gemm``). Metrics:

- resources (``dsp``, ``lut``, ``ff``, ``bram36``) from synthesis of the generated Verilog,
  measured on a grid and fitted (:mod:`hwsim.rtl.resources`);
- timing from the shared systolic model (:mod:`hwsim.systolic`, SCALE-Sim's compute cycles),
  which the RTL's tests hold the generated array to, cycle for cycle.

The analytical evaluator is all there is: the array has no contention to simulate, and the
cycle-level check is the RTL simulation itself.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwsim import systolic as timing
from hwsim.rtl import resources
from hwsim.rtl.spec import SystolicSpec
from hwsim.system import Inputs, Metric, Metrics, Role, System, register_system
from hwsim.systolic import GemmSpec

__all__ = ["SYSTEM", "GemmSpec", "SystolicSpec", "evaluate", "evaluate_batch"]


def _metrics(dataflow: str, rows: Any, cols: Any, width: Any, acc: int, clock_mhz: Any,
             m: Any, n: Any, k: Any, count: Any) -> dict[str, Any]:
    """All metrics; every argument but ``dataflow`` and ``acc`` may be a numpy array."""
    res = resources.estimate(dataflow, rows, cols, width, acc)
    cycles = timing.compute_cycles(dataflow, rows, cols, m, n, k) * count
    seconds = np.asarray(cycles, dtype=float) / (np.asarray(clock_mhz, dtype=float) * 1e6)
    ops = 2.0 * m * n * k * count
    util = timing.utilization(dataflow, rows, cols, m, n, k)
    gops = ops / seconds / 1e9
    return {
        "dsp": res["dsp48e1"],
        "lut": res["lut"],
        "ff": res["ff"],
        "bram36": res["bram36"],
        "pes": np.asarray(rows) * np.asarray(cols),
        "compute_cycles": cycles,
        "latency_s": seconds,
        "throughput_gemm_per_s": count / seconds,
        "throughput_gops": gops,
        "peak_gops": 2.0 * np.asarray(rows) * cols * np.asarray(clock_mhz) * 1e-3,
        "utilization": util,
        "gops_per_dsp": gops / np.maximum(res["dsp48e1"], 1.0),
    }


def evaluate(inputs: Inputs) -> Metrics:
    """Resources and GEMM throughput of one design point."""
    a: SystolicSpec = inputs["array"]
    w: GemmSpec = inputs["workload"]
    out = _metrics(a.dataflow, a.rows, a.cols, a.operand_width, a.acc_width, a.clock_MHz,
                   w.m, w.n, w.k, w.count)
    return {k: float(v) for k, v in out.items()}


def evaluate_batch(inputs: Inputs, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Many design points at once: ``arrays`` maps ``role.key`` to values (numpy broadcast)."""
    a: SystolicSpec = inputs["array"]
    w: GemmSpec = inputs["workload"]

    def get(role: str, key: str, default: Any) -> np.ndarray:
        return np.asarray(arrays.get(f"{role}.{key}", default))

    dataflows = arrays.get("array.dataflow")
    if dataflows is not None and len(set(np.asarray(dataflows).ravel().tolist())) > 1:
        # the resource fit is per dataflow: evaluate each dataflow's points separately
        df = np.asarray(dataflows)
        out: dict[str, np.ndarray] = {}
        for value in sorted(set(df.ravel().tolist())):
            sel = df == value
            sub = {k: (np.asarray(v)[sel] if np.ndim(v) else v) for k, v in arrays.items()
                   if k != "array.dataflow"}
            part = evaluate_batch({**inputs, "array": _with_dataflow(a, value)}, sub)
            for k, v in part.items():
                out.setdefault(k, np.zeros(df.shape))[sel] = v
        return out
    dataflow = str(np.asarray(dataflows).ravel()[0]) if dataflows is not None else a.dataflow
    return _metrics(
        dataflow, get("array", "rows", a.rows), get("array", "cols", a.cols),
        get("array", "operand_width", a.operand_width), a.acc_width,
        get("array", "clock_MHz", a.clock_MHz), get("workload", "m", w.m),
        get("workload", "n", w.n), get("workload", "k", w.k), get("workload", "count", w.count),
    )


def _with_dataflow(spec: SystolicSpec, dataflow: str) -> SystolicSpec:
    from hwsim import specs

    return specs.with_overrides(spec, {"dataflow": dataflow})


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
        inputs = SYSTEM.resolve([], {"array.rows": rows, "array.cols": cols,
                                     "array.dataflow": "ws", "workload.m": m,
                                     "workload.n": n, "workload.k": k})
        return SYSTEM.evaluate(inputs)["compute_cycles"]

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


SYSTEM = register_system(System(
    name="systolic-fpga",
    summary="systolic GEMM array on a Xilinx 7-series FPGA: measured resources, SCALE-Sim timing",
    roles=(
        Role("array", "systolic", "default", "the systolic array (hwsim rtl systolic)"),
        Role("workload", "gemm", "gpt2-ffn1-b8", "the GEMM it runs"),
    ),
    metrics=(
        Metric("dsp", "DSP48E1 slices (Yosys synth_xilinx, fitted over measured sizes)",
               fidelities=("analytical",)),
        Metric("lut", "LUTs (Yosys synth_xilinx, fitted)", fidelities=("analytical",)),
        Metric("ff", "flip-flops (Yosys synth_xilinx, fitted)", fidelities=("analytical",)),
        Metric("bram36", "block RAMs in 36 Kb units", fidelities=("analytical",)),
        Metric("pes", "processing elements, rows x cols", fidelities=("analytical",)),
        Metric("compute_cycles", "cycles of the workload (hwsim.systolic, SCALE-Sim)",
               fidelities=("analytical",)),
        Metric("latency_s", "time for the workload at clock_MHz", fidelities=("analytical",)),
        Metric("throughput_gemm_per_s", "workloads per second", fidelities=("analytical",)),
        Metric("throughput_gops", "achieved GOP/s (2 ops per MAC)", fidelities=("analytical",)),
        Metric("peak_gops", "peak GOP/s of the array", fidelities=("analytical",)),
        Metric("utilization", "useful MACs / (PEs x cycles)", fidelities=("analytical",)),
        Metric("gops_per_dsp", "achieved GOP/s per DSP48E1", fidelities=("analytical",)),
    ),
    analytical=evaluate,
    analytical_batch=evaluate_batch,
    validation=_cases,
))

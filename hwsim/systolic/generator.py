"""The ``systolic`` RTL generator: registered with :mod:`hwsim.rtl.registry` by this package.

The component is :class:`hwsim.systolic.array.SystolicArray` (imported when first built);
its timing description quotes :mod:`hwsim.systolic.timing`, the model it is tested against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hwsim.rtl.registry import Generator, check_demo, operand_range, register_generator
from hwsim.systolic import timing
from hwsim.systolic.spec import SystolicSpec


def component(spec: SystolicSpec) -> Any:
    from hwsim.systolic.array import SystolicArray

    return SystolicArray(spec)


def describe_timing(spec: SystolicSpec) -> dict[str, Any]:
    """Latency, initiation interval and fold cycles of the array (for its JSON description)."""
    t_ref = 64
    return {
        "model": "hwsim.systolic.timing (SCALE-Sim, Samajdar et al. ISPASS 2020, eq. 1)",
        "fold_cycles": "2*rows + cols + T - 2",
        "T": "K (reduction) for os, M (rows of A) for ws, N (columns of B) for is",
        "fold_cycles_at_T64": timing.fold_cycles(spec.rows, spec.cols, t_ref),
        "latency_cycles": (spec.rows + spec.cols - 2 if spec.dataflow != "os"
                           else spec.rows + spec.cols - 1),
        "latency_note": ("ws/is: a streamed row's outputs leave rows + cols - 2 cycles after "
                         "it enters"
                         if spec.dataflow != "os" else
                         "os: first result row leaves rows + cols - 1 cycles after the last step"),
        "initiation_interval_cycles": 1,
        "ii_note": "one A (and B) vector per cycle within a fold; folds back to back",
        "macs_per_cycle_peak": spec.rows * spec.cols,
    }


def demo(spec: SystolicSpec, vcd: Path) -> None:
    """One random GEMM through the array, checked against numpy, written as a waveform."""
    from hwsim.systolic.array import gemm_reference, simulate_gemm

    rng = np.random.default_rng(0)
    lo, hi = operand_range(spec.operand_width, spec.signed)
    a = rng.integers(lo, hi, (spec.rows, spec.rows), endpoint=True)
    b = rng.integers(lo, hi, (spec.rows, spec.cols), endpoint=True)
    c, _ = simulate_gemm(spec, a, b, vcd=vcd)
    check_demo(bool((c == gemm_reference(a, b, spec)).all()), "systolic demo")


GENERATOR = register_generator(Generator(
    "systolic", "systolic", "systolic MAC array (weight-, output- or input-stationary)",
    component, describe_timing, demo))

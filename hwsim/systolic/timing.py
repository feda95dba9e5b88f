"""Timing model of a systolic MAC array running a GEMM: the one every simulator shares.

A GEMM ``C[M, N] = A[M, K] @ B[K, N]`` (SCALE-Sim's convention: input M x K, weights K x N,
K the reduction) is mapped onto an ``R x C`` array by a dataflow, which decides which two GEMM
dimensions are spatial (``S_R`` along the rows, ``S_C`` along the columns) and which one is
temporal (``T``, streamed one step per cycle):

============  =====  =====  =====
dataflow       S_R    S_C     T
============  =====  =====  =====
``os``          M      N      K      output-stationary: each PE owns one output
``ws``          K      N      M      weight-stationary: each PE holds one weight
``is``          K      M      N      input-stationary: each PE holds one input
============  =====  =====  =====

Compute cycles follow SCALE-Sim's analytical model (Samajdar et al., "A Systematic Methodology
for Characterizing Scalability of DNN Accelerators using SCALE-Sim", ISPASS 2020, eq. 1 and 2;
arXiv:1811.02883): a fold (one ``R x C`` piece of the ``S_R x S_C`` spatial extent) takes

    fold_cycles = 2 R + C + T - 2

- ``R`` cycles to preload the stationary operand (``ws``/``is``) or to drain the stationary
  results (``os``), ``R + C - 2`` cycles of skew to fill and empty the array, ``T`` steps,

and the ``ceil(S_R / R) * ceil(S_C / C)`` folds run back to back, each paying its own fill and
drain (no overlap between folds; partial folds cost as much as full ones):

    compute_cycles = ceil(S_R / R) * ceil(S_C / C) * (2 R + C + T - 2)

This counts compute only (SCALE-Sim's compute cycles with no memory stalls, i.e. its CALC
bandwidth mode with enough SRAM), as the number of cycles in which the array works. For ``ws``
and ``is`` that is the length of SCALE-Sim's demand matrices (v2 and 3.0.0,
``systolic_compute_ws.py``/``_is.py``); SCALE-Sim *reports* one less, the index of the last
cycle. SCALE-Sim's ``systolic_compute_os.py`` also overlaps the output drain with the fill and
counts ``T + R + C - 2`` per fold, ``R`` fewer than this model, whose ``os`` array drains its
accumulators after each fold as the paper's equation does. :func:`scalesim_cycles` predicts the
number SCALE-Sim reports, and is checked against SCALE-Sim 3.0.0's own output in
``hwsim/systolic/data/scalesim_3_compute_cycles.csv``. The RTL generator
(:mod:`hwsim.systolic.array`) implements exactly this model's schedule and its tests check
the cycle count.
Partial sums of ``ws``/``is`` row folds (the reduction split over several folds) are added
outside the array, as in SCALE-Sim.

All functions accept numpy arrays (broadcast) as well as integers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.errors import InputError

DATAFLOWS = ("os", "ws", "is")

__all__ = [
    "DATAFLOWS",
    "compute_cycles",
    "fold_cycles",
    "fold_traffic_bytes",
    "folds",
    "mapping",
    "scalesim_cycles",
    "utilization",
]


def mapping(dataflow: str, m: Any, n: Any, k: Any) -> tuple[Any, Any, Any]:
    """``(S_R, S_C, T)`` of a GEMM ``M x K @ K x N`` under ``dataflow`` (see the module table)."""
    if dataflow == "os":
        return m, n, k
    if dataflow == "ws":
        return k, n, m
    if dataflow == "is":
        return k, m, n
    raise InputError(f"unknown dataflow {dataflow!r}; expected one of {', '.join(DATAFLOWS)}")


def fold_cycles(rows: Any, cols: Any, t: Any) -> Any:
    """Cycles of one fold with ``t`` temporal steps: ``2 rows + cols + t - 2``."""
    return 2 * rows + cols + t - 2


def folds(rows: Any, cols: Any, s_r: Any, s_c: Any) -> Any:
    """Number of folds ``ceil(S_R / rows) * ceil(S_C / cols)``."""
    return -(-np.asarray(s_r) // rows) * -(-np.asarray(s_c) // cols)


def compute_cycles(dataflow: str, rows: Any, cols: Any, m: Any, n: Any, k: Any) -> Any:
    """Compute cycles of the GEMM on a ``rows x cols`` array (folds back to back)."""
    s_r, s_c, t = mapping(dataflow, m, n, k)
    out = folds(rows, cols, s_r, s_c) * fold_cycles(rows, cols, t)
    return int(out) if np.ndim(out) == 0 else out


def scalesim_cycles(dataflow: str, rows: Any, cols: Any, m: Any, n: Any, k: Any) -> Any:
    """The compute cycles SCALE-Sim 3.0.0 *reports* for a GEMM with no stalls (cross-checks).

    SCALE-Sim prints "Total Cycles" as the index of the last cycle (the largest serviced cycle
    number, counted from 0), one less than the cycles in which the array works, which is what
    :func:`compute_cycles` counts. For ``os`` its ``systolic_compute_os.py`` also overlaps the
    output drain with the next fold's fill and counts ``T + R + C - 2`` per fold, ``R`` fewer
    than this model. ``hwsim/systolic/data/scalesim_3_compute_cycles.csv`` holds SCALE-Sim's
    own numbers.
    """
    if dataflow == "os":
        s_r, s_c, t = mapping(dataflow, m, n, k)
        working = folds(rows, cols, s_r, s_c) * (t + rows + cols - 2)
    else:
        working = compute_cycles(dataflow, rows, cols, m, n, k)
    out = working - 1
    return int(out) if np.ndim(out) == 0 else out


def fold_traffic_bytes(dataflow: str, rows: Any, cols: Any, t: Any, operand_width: Any,
                       acc_width: Any) -> tuple[Any, Any]:
    """Bytes one fold reads and writes: ``(operands in, results out)``.

    ``os``: an ``R x T`` A tile and a ``T x C`` B tile in, ``R x C`` results out; ``ws``/``is``:
    the ``R x C`` stationary tile and a ``T x R`` streamed tile in, ``T x C`` results (partial
    sums) out. Tiles are whole (partial folds are zero-padded, as the array streams them);
    operands are ``operand_width`` bits, results ``acc_width`` bits.
    """
    w = np.asarray(operand_width) / 8.0
    a = np.asarray(acc_width) / 8.0
    if dataflow == "os":
        return (rows * t + t * cols) * w, rows * cols * a
    if dataflow in ("ws", "is"):
        return (rows * cols + t * rows) * w, t * cols * a
    raise InputError(f"unknown dataflow {dataflow!r}; expected one of {', '.join(DATAFLOWS)}")


def utilization(dataflow: str, rows: Any, cols: Any, m: Any, n: Any, k: Any) -> Any:
    """Fraction of PE-cycles doing useful MACs: ``M N K / (rows cols compute_cycles)``."""
    macs = np.asarray(m, dtype=float) * n * k
    out = macs / (np.asarray(rows, dtype=float) * cols
                  * compute_cycles(dataflow, rows, cols, m, n, k))
    return float(out) if np.ndim(out) == 0 else out

"""Spec kinds of ``systolic-fpga``: ``systolic`` (the array) and ``gemm`` (the workload).

The board is the shared ``fpga-board`` kind (:mod:`hwsim.hw.fpga`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("systolic")
@dataclass(frozen=True, kw_only=True)
class SystolicSpec:
    """A ``rows x cols`` systolic MAC array (see hwsim.systolic_fpga.timing for its timing)."""

    name: str = param("systolic", help="identifier")
    rows: int = param(8, ge=2, le=128, help="PE rows (S_R: M for os, K for ws)")
    cols: int = param(8, ge=2, le=128, help="PE columns (S_C: N)")
    operand_width: int = param(8, unit="bit", ge=2, le=32, help="width of A and B elements")
    acc_width: int = param(32, unit="bit", ge=4, le=64,
                           help="accumulator width; sums wrap modulo 2**acc_width")
    signed: bool = param(True, help="two's-complement operands and accumulators")
    dataflow: str = param("ws", choices=("ws", "os"),
                          help="weight-stationary or output-stationary")
    clock_MHz: float = param(200.0, unit="MHz", gt=0, help="clock for throughput figures")

    def __post_init__(self) -> None:
        if self.acc_width < 2 * self.operand_width:
            raise ValueError(
                f"acc_width = {self.acc_width} must be at least 2 * operand_width "
                f"= {2 * self.operand_width} (a product must fit the accumulator)"
            )


@spec_kind("gemm")
@dataclass(frozen=True, kw_only=True)
class GemmSpec:
    """A GEMM workload ``C[M, N] = A[M, K] @ B[K, N]`` (SCALE-Sim's M, N, K convention)."""

    name: str = param(help="identifier")
    # bounds: 2^20 is 100 times the GEMMs of published layers; the DES runs an event per fold
    m: int = param(ge=1, le=1_048_576, help="rows of A and C (e.g. tokens x batch, or output "
                   "pixels; <= 2^20)")
    n: int = param(ge=1, le=1_048_576, help="columns of B and C (e.g. output features or "
                   "filters; <= 2^20)")
    k: int = param(ge=1, le=1_048_576, help="reduction dimension (columns of A, rows of B; "
                   "<= 2^20)")
    count: int = param(1, ge=1, le=1_000_000, help="how many times the GEMM runs per workload "
                       "item (<= 1e6: the DES runs its folds this many times)")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one GEMM."""
        return self.m * self.n * self.k

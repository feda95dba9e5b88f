"""Spec kind of ``systolic-fpga``'s workload: ``gemm``.

The array is the shared ``systolic`` kind (:mod:`hwsim.systolic.spec`), the board the shared
``fpga-board`` kind (:mod:`hwsim.hw.fpga`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


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

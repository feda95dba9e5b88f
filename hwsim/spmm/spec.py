"""Spec kinds of the SpMM system: ``spmm`` (the workload), ``spmm-kernel`` (the kernel) and
``spmm-calibration`` (the kernel model's fitted constants for a kernel on a device).

``spmm`` is one skinny sparse x dense product ``C[M,N] = A[M,K] @ B[K,N]`` with an unstructured
sparse weight matrix ``A``. ``spmm-kernel`` names the kernel that runs it (Flash-LLM or a
baseline) with its tiling, as its code states. Tiling defaults follow Flash-LLM's
``csrc/TilingConfig.h`` and ``csrc/SpMM_API.cu`` (repository commit 1d2828a). The device is the
shared ``gpu`` kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.sparse.spec import (  # noqa: F401  (shared kinds, re-exported)
    DTYPE_BYTES,
    FLASH_LLM_SPLIT_K,
    KERNELS,
    SpmmCalibrationSpec,
    SpmmKernelSpec,
)
from hwsim.specs import param, spec_kind


@spec_kind("spmm")
@dataclass(frozen=True, kw_only=True)
class SpmmSpec:
    """``C[M,N] = A[M,K] @ B[K,N]``, ``A`` unstructured sparse with the given sparsity."""

    name: str = param(help="identifier")
    m: int = param(ge=1, le=1 << 20, help="rows of the sparse weight matrix A (output features)")
    k: int = param(ge=1, le=1 << 20, help="columns of A = rows of B (input features)")
    n: int = param(ge=1, le=1 << 16, help="columns of B (batch x tokens)")
    sparsity: float = param(ge=0, lt=1, help="share of zero weights in A (0.8 = 80%)")
    dtype: str = param("fp16", choices=tuple(DTYPE_BYTES), help="element type of A, B and C")
    seed: int = param(-1, ge=-1, le=2**32 - 1, help="seed of a uniform random mask (each weight "
                      "kept with probability 1 - sparsity, drawn per format tile); -1 = expected "
                      "counts (<= 2^32 - 1)")

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity

    @property
    def dense_flops(self) -> float:
        """Dense-equivalent FLOPs ``2 M N K`` (what Flash-LLM's TFLOPS count)."""
        return 2.0 * self.m * self.n * self.k


@spec_kind("sparse-decoder")
@dataclass(frozen=True, kw_only=True)
class SparseDecoderSpec:
    """A Tiled-CSL tile decoder: (value, in-tile position) records in, dense rows out."""

    name: str = param("sparse-decoder", help="identifier")
    tile_rows: int = param(8, ge=1, le=256, help="rows of a format tile (Flash-LLM: 128)")
    tile_cols: int = param(16, ge=2, le=256, help="columns of a format tile (Flash-LLM: 64)")
    value_width: int = param(16, unit="bit", ge=1, le=32,
                             help="bits of a value (FP16 bit patterns: 16)")
    lanes: int = param(4, ge=1, le=16,
                       help="records accepted per cycle (Flash-LLM: 4 per 128-bit vector)")
    swizzle: bool = param(False, help="positions use Flash-LLM's col ^ ((row % 8) << 3)")

    def __post_init__(self) -> None:
        if self.swizzle and self.tile_cols % 64:
            raise ValueError(
                f"swizzle needs tile_cols a multiple of 64 (got {self.tile_cols}): the XOR "
                "pattern (row % 8) << 3 reaches column 63"
            )

    @property
    def pos_width(self) -> int:
        """Bits of an in-tile position (row * tile_cols + col)."""
        return max(1, (self.tile_rows * self.tile_cols - 1).bit_length())

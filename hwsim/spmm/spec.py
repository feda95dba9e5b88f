"""Spec kinds of the SpMM system: ``spmm`` (the workload) and ``spmm-kernel`` (the kernel).

``spmm`` is one skinny sparse x dense product ``C[M,N] = A[M,K] @ B[K,N]`` with an unstructured
sparse weight matrix ``A``. ``spmm-kernel`` names the kernel that runs it (Flash-LLM or a
baseline) with its tiling and the efficiencies the model applies. Tiling defaults follow
Flash-LLM's ``csrc/TilingConfig.h`` as summarised in ``shared/papers/flash_llm_spmm_msrep.md``
sec. 1.3.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind

KERNELS = ("flash-llm", "cublas", "cusparse", "sputnik", "sparta")
DTYPE_BYTES: dict[str, int] = {"fp16": 2, "bf16": 2}

#: Flash-LLM's hand-tuned SplitK, keyed on M (flash_llm_spmm_msrep.md sec. 1.5, from the
#: end-to-end converter of the Flash-LLM repository)
FLASH_LLM_SPLIT_K: dict[int, int] = {
    21504: 5, 7168: 7, 28672: 7, 27648: 2, 9216: 6, 36864: 3, 12288: 9, 49152: 9,
    10752: 5, 14336: 7, 13824: 4, 18432: 3, 24576: 9, 5376: 10, 6912: 8,
}


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
    seed: int = param(-1, ge=-1, help="seed of a uniform random mask (each weight kept with "
                      "probability 1 - sparsity, drawn per format tile); -1 = expected counts")

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity

    @property
    def dense_flops(self) -> float:
        """Dense-equivalent FLOPs ``2 M N K`` (what Flash-LLM's TFLOPS count)."""
        return 2.0 * self.m * self.n * self.k


@spec_kind("spmm-kernel")
@dataclass(frozen=True, kw_only=True)
class SpmmKernelSpec:
    """A GPU SpMM kernel, its tiling and the efficiencies the analytical model applies."""

    name: str = param(help="identifier")
    kernel: str = param("flash-llm", choices=KERNELS, help="which kernel runs the product")
    tile_m: int = param(0, ge=0, le=4096, help="rows of A per thread block; 0 = Flash-LLM's "
                        "TilingConfig for N (256 for N <= 32, else 128)")
    tile_n: int = param(0, ge=0, le=4096, help="columns of B per thread block; 0 = Flash-LLM's "
                        "TilingConfig for N (16, 32, 64, 128)")
    tile_k: int = param(64, ge=16, le=1024, help="K per pipeline stage (Flash-LLM: 64)")
    stages: int = param(2, ge=1, le=8, help="shared-memory buffers per operand (2 = double "
                        "buffering)")
    threads_per_cta: int = param(128, ge=32, le=1024, help="threads per thread block (4 warps)")
    max_threads_per_sm: int = param(2048, ge=32, help="resident threads per SM (Ampere/Hopper)")
    split_k: int = param(0, ge=0, le=64, help="K slices reduced by a second kernel; 0 = "
                         "Flash-LLM's table by M, else 1")
    hbm_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak HBM bandwidth")
    smem_efficiency: float = param(1.0, gt=0, le=1,
                                   help="achieved / peak shared-memory bandwidth (extraction)")
    tensor_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak tensor-core rate")
    cuda_core_efficiency: float = param(1.0, gt=0, le=1,
                                        help="achieved / peak FP32 CUDA-core rate (CSR kernels)")
    launch_overhead_us: float = param(0.0, unit="us", ge=0,
                                      help="fixed time per kernel launch (launch, prologue, "
                                      "epilogue, tail)")
    max_tile_density: float = param(1.0, gt=0, le=1,
                                     help="largest nonzero share of one format tile the kernel "
                                     "handles correctly (Flash-LLM: 0.5, register budget)")
    source: str = param("", help="where the figures come from")

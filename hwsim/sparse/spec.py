"""Spec kinds of the sparse-kernel models both ``spmm`` and ``gpu-serving`` use: ``spmm-kernel``
(a kernel and its tiling, as its code says) and ``spmm-calibration`` (the kernel model's fitted
constants for a kernel on a device). Tiling defaults follow Flash-LLM's ``csrc/TilingConfig.h``
and ``csrc/SpMM_API.cu`` (repository commit 1d2828a).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind

KERNELS = ("flash-llm", "cublas", "cusparse", "sputnik", "sparta")
DTYPE_BYTES: dict[str, int] = {"fp16": 2, "bf16": 2}

#: Flash-LLM's hand-tuned SplitK, keyed on M (the end-to-end converter of the Flash-LLM
#: repository, end2end_inference/ft_tools/huggingface_opt_convert_Phase2.py)
FLASH_LLM_SPLIT_K: dict[int, int] = {
    21504: 5, 7168: 7, 28672: 7, 27648: 2, 9216: 6, 36864: 3, 12288: 9, 49152: 9,
    10752: 5, 14336: 7, 13824: 4, 18432: 3, 24576: 9, 5376: 10, 6912: 8,
}


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
    max_threads_per_sm: int = param(2048, ge=32, le=65_536, help="resident threads per SM "
                                    "(Ampere/Hopper; <= 65,536)")
    split_k: int = param(0, ge=0, le=64, help="K slices reduced by a second kernel; 0 = "
                         "Flash-LLM's table by M, else 1")
    max_tile_density: float = param(1.0, gt=0, le=1,
                                     help="largest nonzero share of one format tile the kernel "
                                     "handles correctly (Flash-LLM: 0.5, register budget)")
    source: str = param("", help="where the figures come from")


@spec_kind("spmm-calibration", folder="calibration")
@dataclass(frozen=True, kw_only=True)
class SpmmCalibrationSpec:
    """The kernel model's constants for one kernel on one device, and the data they came from.

    The ``spmm-kernel`` file holds what the kernel's code says (tiling, stages, limits); this
    holds what a measurement says (achieved shares of the peaks, fixed time per launch). Files
    are named ``spmm-<kernel>-<device>``, the default of the spmm system's ``calibration``
    input.
    """

    name: str = param(help="identifier: spmm-<kernel>-<device>")
    kernel: str = param(help="the spmm-kernel spec (its name) these constants are for; "
                        "empty = any kernel")
    device: str = param(help="the gpu spec (its name) these constants are for; empty = any")
    fitted_on: str = param(help="the data the constants were fitted on, or where an assumed "
                           "value comes from")
    hbm_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak HBM bandwidth")
    smem_efficiency: float = param(1.0, gt=0, le=1,
                                   help="achieved / peak shared-memory bandwidth (extraction)")
    tensor_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak tensor-core rate")
    cuda_core_efficiency: float = param(1.0, gt=0, le=1,
                                        help="achieved / peak FP32 CUDA-core rate (CSR kernels)")
    issue_efficiency: float = param(1.0, gt=0, le=1,
                                    help="achieved / peak warp-instruction issue rate (the "
                                    "CUDA-core kernels Sputnik and cuSPARSE)")
    launch_overhead_us: float = param(0.0, unit="us", ge=0,
                                      help="fixed time per kernel launch (launch, prologue, "
                                      "epilogue, tail)")

    load_latency_us: float = param(0.0, unit="us", ge=0, le=100,
                                   help="time from a thread block's global load of a sparse "
                                   "tile to its data in registers, before the transfer "
                                   "(Flash-LLM: exposed once per K-step)")

    #: the fields the kernel model reads
    CONSTANTS = ("hbm_efficiency", "smem_efficiency", "tensor_efficiency",
                 "cuda_core_efficiency", "issue_efficiency", "launch_overhead_us",
                 "load_latency_us")

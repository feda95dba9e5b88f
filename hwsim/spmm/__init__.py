"""GPU tensor-core SpMM after Flash-LLM (Load-as-Sparse, Compute-as-Dense, Tiled-CSL), against
cuBLAS, cuSPARSE, Sputnik and SparTA.

System ``spmm``: inputs ``workload`` (kind ``spmm``), ``kernel`` (``spmm-kernel``), ``device``
(``gpu``) and ``calibration`` (``spmm-calibration``, the constants of that kernel on that
device). Analytical model in :mod:`hwsim.spmm.analytical`, DES in :mod:`hwsim.spmm.des`,
format in :mod:`hwsim.sparse.format`, validation in :mod:`hwsim.spmm.calibration`.
"""

from __future__ import annotations

from hwsim.batch import BatchModel
from hwsim.spmm import analytical as _model
from hwsim.spmm import generator as _generator  # noqa: F401  (registers "sparse-decoder")
from hwsim.spmm.spec import SpmmCalibrationSpec, SpmmKernelSpec, SpmmSpec
from hwsim.system import Metric, Role, System, register_system

__all__ = ["SYSTEM", "SpmmCalibrationSpec", "SpmmKernelSpec", "SpmmSpec"]


def _des(inputs, *, seed: int = 0, trace=None):
    from hwsim.spmm.des import evaluate

    return evaluate(inputs, seed=seed, trace=trace)


def _cases():
    from hwsim.spmm.calibration import validation_cases

    return validation_cases()


SYSTEM = register_system(System(
    name="spmm",
    summary="skinny SpMM on GPU tensor cores (Flash-LLM) vs cuBLAS, cuSPARSE, Sputnik, SparTA",
    roles=(
        Role("workload", "spmm", "opt30b-qkv-n16-s80", "shape, sparsity, data type"),
        Role("kernel", "spmm-kernel", "flash-llm", "kernel, tiling (as its code says)"),
        Role("device", "gpu", "a100-sxm-80gb", "the GPU (datasheet)"),
        Role("calibration", "spmm-calibration", "spmm-{kernel}-{device}",
             "the kernel model's fitted constants for this kernel on this device",
             fallback="spmm-uncalibrated", matches=("kernel", "device")),
    ),
    metrics=(
        Metric("latency_us", "kernel time (split-K reduction and launches included)"),
        Metric("tflops", "dense-equivalent 2MNK / latency, in TFLOPS"),
        Metric("speedup_vs_cublas", "cuBLAS (models/spmm-kernel/cublas) latency / this one"),
        Metric("hbm_bytes", "HBM traffic: A in the kernel's format, B, C, split-K workspace"),
        Metric("arithmetic_intensity_flop_per_byte", "2MNK / hbm_bytes"),
        Metric("bound", "what limits the steady state: 0 HBM, 1 shared memory, 2 compute",
               fidelities=("analytical",)),
        Metric("memory_bound", "HBM", fidelities=("analytical",)),
        Metric("hbm_utilization", "bytes moved / (latency x peak HBM bandwidth)",
               fidelities=("des",)),
        Metric("memory_bytes", "storage of A in the kernel's format"),
        Metric("compression_vs_dense", "dense FP16 bytes of A / memory_bytes"),
        Metric("ctas", "thread blocks launched (Flash-LLM; NaN otherwise)"),
        Metric("waves", "thread blocks / resident slots (Flash-LLM; NaN otherwise)"),
    ),
    batch=BatchModel(_model.VECTOR_KEYS, _model.block),
    des=_des,
    validation=_cases,
))

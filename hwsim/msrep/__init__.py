"""Multi-GPU SpMV and SpMM after MSREP (Chen et al., arXiv 2209.07552): row-block,
nonzero-balanced and task-pool partitions of CSR, CSC and COO across the GPUs of one node, with
host-to-device and GPU-to-GPU transfers and the merge of split rows.

System ``msrep``: inputs ``workload`` (kind ``sparse-matrix``: a Matrix Market file or a
generated R-MAT, banded or uniform matrix), ``node`` (``multi-gpu-node``), ``mapping``
(``msrep-mapping``) and ``calibration`` (``msrep-calibration``). Matrices in
:mod:`hwsim.msrep.matrix`, partitions in :mod:`hwsim.msrep.partition`, the analytical model in
:mod:`hwsim.msrep.analytical`, the DES in :mod:`hwsim.msrep.des`, validation in
:mod:`hwsim.msrep.validation`.
"""

from __future__ import annotations

from hwsim.batch import BatchModel
from hwsim.msrep import analytical as _model
from hwsim.msrep.spec import (
    MsrepCalibrationSpec,
    MsrepMappingSpec,
    MultiGpuNodeSpec,
    SparseMatrixSpec,
)
from hwsim.system import Metric, Role, System, register_system

__all__ = ["SYSTEM", "MsrepCalibrationSpec", "MsrepMappingSpec", "MultiGpuNodeSpec",
           "SparseMatrixSpec"]


def _des(inputs, *, seed: int = 0, trace=None):
    from hwsim.msrep.des import evaluate

    return evaluate(inputs, seed=seed, trace=trace)


def _cases():
    from hwsim.msrep.validation import validation_cases

    return validation_cases()


SYSTEM = register_system(System(
    name="msrep",
    summary="multi-GPU SpMV/SpMM: CSR/CSC/COO partitions, PCIe/NVLink transfers, merge (MSREP)",
    roles=(
        Role("workload", "sparse-matrix", "rmat-s18", "the matrix (file or generator) and "
             "the product"),
        Role("node", "multi-gpu-node", "dgx1-v100", "GPUs, HBM, PCIe switches, NVLink, host"),
        Role("mapping", "msrep-mapping", "nnz-balanced", "format, partition, GPUs, merge"),
        Role("calibration", "msrep-calibration", "msrep-{node}",
             "the model's fitted constants on this node", fallback="msrep-uncalibrated",
             matches=("node",)),
    ),
    metrics=(
        Metric("latency_s", "every product, host-to-device copies and merges included"),
        Metric("h2d_s", "the slowest GPU's host-to-device copies (first product)"),
        Metric("kernel_s", "the slowest GPU's kernel time per product"),
        Metric("merge_s", "first product: from the last kernel's end to the merged result"),
        Metric("transfer_share", "1 - iterations x kernel_s / latency_s: the share of the time "
               "not covered by the slowest GPU's kernels (copies, merges, waiting)"),
        Metric("imbalance", "load imbalance: max over GPUs of nonzeros / (nnz / GPUs)"),
        Metric("kernel_imbalance", "max / mean kernel time over the GPUs"),
        Metric("split_rows", "rows whose partial results on several GPUs the merge adds "
               "(CSC: every row)"),
        Metric("h2d_bytes", "bytes copied host to GPUs, all products"),
        Metric("merge_bytes", "bytes of partial results moved to merge them, all products"),
        Metric("compute_speedup", "one GPU's kernel time (same format) / kernel_s"),
        Metric("gflops", "2 nnz x vectors x iterations / latency_s, in GFLOP/s"),
        Metric("gpus", "GPUs used"),
        Metric("nnz", "stored nonzeros of the matrix"),
    ),
    batch=BatchModel(_model.VECTOR_KEYS, _model.block),
    des=_des,
    validation=_cases,
))

"""HEAT: collaborative-filtering training (SimpleX / MF with the cosine contrastive loss) on a
many-core CPU, against PyTorch-style baselines on the CPU and on a GPU: epoch time, where each
embedding row is served (L1/L2/L3/DRAM) under uniform or tiled negative sampling, thread
scaling under a shared memory system, and the cloud cost of an epoch.

See docs/heat.md.
"""

from __future__ import annotations

from hwsim.batch import BatchModel
from hwsim.heat.analytical import VECTOR_KEYS, block, explain
from hwsim.heat.spec import (
    HeatCalibrationSpec,
    HeatDatasetSpec,
    HeatGpuCalibrationSpec,
    HeatTrainingSpec,
)
from hwsim.system import Metric, Role, System, register_system

__all__ = ["SYSTEM", "HeatCalibrationSpec", "HeatDatasetSpec", "HeatGpuCalibrationSpec",
           "HeatTrainingSpec"]

A = ("analytical",)
D = ("des",)


def _des(inputs, *, seed: int = 0, trace=None):
    from hwsim.heat.des import evaluate

    return evaluate(inputs, seed=seed, trace=trace)


def _tables(inputs, fidelity, *, seed: int = 0, trace=None):
    from hwsim.heat.analytical import check_inputs
    from hwsim.heat.des import evaluate

    check_inputs(inputs)
    if fidelity == "des":
        return evaluate(inputs, seed=seed, trace=trace), {}
    return SYSTEM.evaluate(inputs, fidelity), {}


def _cases():
    from hwsim.heat.validation import cases

    return cases()


SYSTEM = register_system(System(
    name="heat",
    summary="CPU training of a collaborative-filtering model (HEAT: SimpleX/MF, cosine "
            "contrastive loss, tiled negative sampling) against PyTorch-style CPU and GPU "
            "baselines: epoch time, thread scaling, cloud cost per epoch",
    roles=(
        Role("dataset", "heat-dataset", "amazon-books", "users, items, training interactions"),
        Role("training", "heat-training", "simplex-k128-n64",
             "K, negatives, similarity, aggregation, sampler and tile, threads, baseline batch"),
        Role("cpu", "cpu", "epyc-7742-2s", "the CPU node (datasheet)"),
        Role("calibration", "heat-calibration", "heat-{cpu}",
             "HEAT's fitted kernel constants for the CPU", matches=("cpu",),
             fallback="heat-uncalibrated"),
        Role("gpu", "gpu", "v100-sxm2-32gb", "the GPU of the PyTorch-style baseline"),
        Role("gpu_calibration", "heat-gpu-calibration", "heat-baseline-{gpu}",
             "the GPU baseline's constants", matches=("gpu",),
             fallback="heat-baseline-uncalibrated"),
    ),
    metrics=(
        Metric("epoch_time_s", "one pass over the training interactions on the CPU with "
               "HEAT. Analytical: per-sample time x interactions / threads; DES: threads as "
               "processes sharing the memory system, mean of the simulated chunks scaled to "
               "the epoch"),
        Metric("samples_per_s", "training samples (positives) per second of all threads"),
        Metric("memory_utilization", "busy share of the memory system's bandwidth (DRAM or "
               "HBM) by row misses and write-backs"),
        Metric("die_link_utilization", "busy share of the busiest compute die's fabric link "
               "(read or write, whichever is higher; compact placement fills a die first); 0 "
               "where the CPU has no per-die link", fidelities=A),
        Metric("time_per_sample_us", "one sample on one thread (us)", fidelities=A),
        Metric("clock_GHz", "core clock of the busiest socket (power-limited, compact "
               "placement)", fidelities=A),
        Metric("flops_per_sample", "floating-point operations of one sample (2 per "
               "multiply-add)", fidelities=A),
        Metric("bytes_per_sample", "embedding bytes read and written by one sample",
               fidelities=A),
        Metric("arithmetic_intensity_flop_per_B", "flops_per_sample / bytes_per_sample",
               fidelities=A),
        Metric("dram_rows_per_sample", "embedding rows per sample served by main memory",
               fidelities=A),
        Metric("llc_hit_fraction_uniform", "share of uniformly drawn rows found in the "
               "last-level cache", fidelities=A),
        Metric("negative_read_ns", "mean time to read one negative's row (ns), queueing "
               "included", fidelities=A),
        Metric("negative_read_speedup", "uniform sampler's negative read time / this "
               "sampler's (the read-time speed-up of the paper's Algorithm 1)", fidelities=A),
        Metric("read_share", "share of the sample time spent reading rows", fidelities=A),
        Metric("forward_read_share", "reads / (reads + forward vector arithmetic): the "
               "item-read share of the forward pass", fidelities=A),
        Metric("memory_bandwidth_GBps", "main-memory traffic of all threads (GB/s)",
               fidelities=A),
        Metric("uniform_epoch_time_s", "epoch time with the uniform sampler, all else equal",
               fidelities=A),
        Metric("tiling_speedup", "uniform_epoch_time_s / epoch_time_s (1 with the uniform "
               "sampler)", fidelities=A),
        Metric("negative_space_ratio", "recall proxy: items the tiles expose over an epoch, "
               "(M n / N2) x N1 / items, M n the epoch's negative draws (inf for the uniform "
               "sampler); Algorithm 1 keeps it >= 1", fidelities=A),
        Metric("negative_coverage", "recall proxy: expected share of items that are ever in "
               "a tile during an epoch, 1 - (1 - N1/items)^(M n / N2)", fidelities=A),
        Metric("negative_distinct_share", "recall proxy: expected distinct items among one "
               "sample's n negatives over n (drawn with replacement from the tile, or from all "
               "items); small tiles repeat negatives", fidelities=A),
        Metric("pytorch_cpu_epoch_time_s", "PyTorch-style baseline (dense gradients, batched "
               "matmuls, copies, normalisation) on the CPU", fidelities=A),
        Metric("speedup_vs_pytorch_cpu", "pytorch_cpu_epoch_time_s / epoch_time_s",
               fidelities=A),
        Metric("gpu_epoch_time_s", "PyTorch-style baseline on the GPU; NaN when the "
               "tables' training memory does not fit it", fidelities=A),
        Metric("speedup_vs_gpu", "gpu_epoch_time_s / epoch_time_s", fidelities=A),
        Metric("gpu_memory_GB", "the GPU baseline's memory (embedding rows x memory per row)",
               fidelities=A),
        Metric("cloud_gpus", "rented GPUs the GPU baseline needs to hold its memory",
               fidelities=A),
        Metric("cpu_usd_per_epoch", "renting the CPU node for one epoch; NaN when the node "
               "has no price", fidelities=A),
        Metric("gpu_usd_per_epoch", "renting cloud_gpus GPUs for one GPU-baseline epoch",
               fidelities=A),
        Metric("gpu_to_cpu_cost_ratio", "gpu_usd_per_epoch / cpu_usd_per_epoch",
               fidelities=A),
        Metric("epoch_time_ci95_s", "95% confidence half-width of the DES epoch time (batch "
               "means over chunks)", fidelities=D),
    ),
    batch=BatchModel(VECTOR_KEYS, block, block_points=65536, explain=explain),
    des=_des,
    validation=_cases,
    tables=_tables,
))

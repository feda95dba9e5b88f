"""(shape, sparsity, kernel) points per second of the vectorised SpMM kernel model.

The issue's target is at least 100,000 points per second. One run draws ``points`` random
(M, K, N, sparsity) points for each of the five kernels (Flash-LLM, cuBLAS, Sputnik, SparTA,
cuSPARSE) and evaluates them through ``System.analytical_batch`` (the path a sweep takes: input
checks, grouping by kernel, calibration re-derived per kernel) and through the model's array
function alone. Prints the rate of each and its ratio to the target.

Run: ``python benchmarks/bench_spmm_kernels.py [points_per_kernel]``.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from hwsim.spmm import analytical, calibration
from hwsim.system import get_system

log = logging.getLogger("bench_spmm_kernels")
TARGET = 100_000
KERNELS = ("flash-llm", "cublas", "sputnik", "sparta", "cusparse")


def main(points: int = 100_000) -> None:
    system = get_system("spmm")
    rng = np.random.default_rng(0)
    n_all = points * len(KERNELS)
    sweep = {
        "kernel": np.repeat(np.array(KERNELS), points),
        "workload.m": rng.choice([7168, 9216, 12288, 21504, 28672, 36864, 49152], n_all),
        "workload.k": rng.choice([7168, 9216, 12288, 28672, 36864, 49152], n_all),
        "workload.n": rng.choice([8, 16, 32, 64, 128], n_all),
        "workload.sparsity": rng.uniform(0.5, 0.95, n_all),
    }
    inputs = system.resolve()
    system.analytical_batch(inputs, {k: v[::points] for k, v in sweep.items()})  # warm-up
    t0 = time.perf_counter()
    out = system.analytical_batch(inputs, sweep)
    dt = time.perf_counter() - t0
    ok = int(np.isfinite(out["latency_us"]).sum())
    rate = n_all / dt
    log.info("analytical_batch: %d points (%d kernels) in %.3f s = %s points/s, %.1fx the "
             "%s target (%d feasible)", n_all, len(KERNELS), dt, f"{rate:,.0f}",
             rate / TARGET, f"{TARGET:,}", ok)
    gpu = calibration.load_gpu()
    dev = analytical.device_of(gpu)
    base = analytical.cublas_baseline(gpu.name)
    fields = {k: analytical.kernel_fields(calibration.load_kernel(k),
                                          calibration.load_calibration(k)) for k in KERNELS}
    w = {key.split(".")[1]: sweep[key][:points] for key in sweep if key.startswith("workload")}
    w["dtype"] = "fp16"
    t0 = time.perf_counter()
    for k in KERNELS:
        analytical.evaluate_arrays(w, fields[k], dev, base)
    dt = time.perf_counter() - t0
    rate = n_all / dt
    log.info("evaluate_arrays (the model alone): %s points/s, %.1fx the target",
             f"{rate:,.0f}", rate / TARGET)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)

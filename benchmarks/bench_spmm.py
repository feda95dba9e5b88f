"""Design points per second of the spmm analytical evaluator (batch and scalar).

Run: ``python benchmarks/bench_spmm.py [points]``. Prints one line per evaluator.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from hwsim.system import get_system


def main(points: int = 200_000) -> None:
    system = get_system("spmm")
    inputs = system.resolve()
    rng = np.random.default_rng(0)
    sweep = {
        "workload.m": rng.choice([7168, 9216, 12288, 21504, 28672, 36864, 49152], points),
        "workload.k": rng.choice([7168, 9216, 12288, 28672, 36864, 49152], points),
        "workload.n": rng.choice([8, 16, 32, 64, 128], points),
        "workload.sparsity": rng.uniform(0.5, 0.95, points),
    }
    system.analytical_batch(inputs, {k: v[:10] for k, v in sweep.items()})  # warm-up
    t0 = time.perf_counter()
    out = system.analytical_batch(inputs, sweep)
    dt = time.perf_counter() - t0
    ok = np.isfinite(out["latency_us"]).sum()
    print(f"analytical_batch: {points} points in {dt:.3f} s = {points / dt:,.0f} points/s "
          f"({ok} feasible)")
    n_scalar = 300
    t0 = time.perf_counter()
    for i in range(n_scalar):
        over = {"workload.n": int(sweep["workload.n"][i]),
                "workload.sparsity": float(sweep["workload.sparsity"][i])}
        system.evaluate(system.resolve([], over))
    dt = time.perf_counter() - t0
    print(f"analytical (scalar, spec resolution included): {n_scalar / dt:,.0f} points/s")
    t0 = time.perf_counter()
    system.evaluate(inputs, "des")
    print(f"des (OPT-30B QKV, N=16, 420 CTAs x 23 steps): {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)

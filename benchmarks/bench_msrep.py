"""Design points per second of the msrep analytical model, vectorised over the node's figures.

One matrix (R-MAT 2^18 rows, 4.2 M nonzeros) and mapping (CSR, nonzero-balanced, 8 GPUs): the
partition is computed once per group, the timing (processor-sharing copies on the PCIe
switches, kernels, merge) for every point at once. Also one DES run for scale.

Run: ``python benchmarks/bench_msrep.py [points]``.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from hwsim.system import get_system

log = logging.getLogger("bench_msrep")


def main(points: int = 100_000) -> None:
    system = get_system("msrep")
    inputs = system.resolve()
    rng = np.random.default_rng(0)
    sweep = {"node.pcie_bandwidth_GBps": rng.uniform(8, 64, points),
             "node.hbm_bandwidth_GBps": rng.uniform(500, 3500, points),
             "node.nvlink_bandwidth_GBps": rng.uniform(25, 450, points)}
    system.analytical_batch(inputs, {k: v[:10] for k, v in sweep.items()})  # warm-up
    t0 = time.perf_counter()
    out = system.analytical_batch(inputs, sweep)
    dt = time.perf_counter() - t0
    log.info("analytical_batch: %d points in %.3f s = %s points/s (%d feasible)", points, dt,
             f"{points / dt:,.0f}", int(np.isfinite(out["latency_s"]).sum()))
    t0 = time.perf_counter()
    system.evaluate(inputs, "des")
    log.info("des (rmat-s18, 8 GPUs): %.3f s", time.perf_counter() - t0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)

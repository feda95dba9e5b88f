"""Speed of the serving DES: simulated requests (and pipeline steps) per second of wall time.

Runs gpu-serving's DES (Llama-3 70B on 8 x A100, the roofline step model) on Poisson traffic at
about 80% of capacity with continuous batching, for 1 and 4 pipeline stages, and prints one line
per configuration.

    python benchmarks/bench_serving_des.py [--requests N] [--repeat R]
"""

from __future__ import annotations

import argparse
import time

from hwsim.gpu_serving.analytical import build
from hwsim.serving import make_requests, serve
from hwsim.system import get_system

CONFIGS = (
    # (pipeline stages, batch, arrival rate per s): about 80% of each replica's capacity
    (1, 64, 6.0),
    (4, 64, 2.0),
)


def bench(pp: int, batch: int, rate: float, n: int, repeat: int) -> tuple[float, float, float]:
    """Best-of-``repeat`` wall time; returns (requests/s, steps/s, stage events/s)."""
    system = get_system("gpu-serving")
    inputs = system.resolve(["llm=llama3-70b", "traffic=poisson-chat"], {
        "mapping.tensor_parallel": 8 // pp, "mapping.pipeline_parallel": pp,
        "mapping.batch": batch, "traffic.requests": n, "traffic.warmup_requests": 0,
        "traffic.arrival_rate_per_s": rate,
    })
    model = build(inputs)
    traffic = inputs["traffic"]
    req = make_requests(traffic, seed=0)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = serve(model, traffic, batch=batch, seed=0, requests=req)
        best = min(best, time.perf_counter() - t0)
    return n / best, r.steps / best, r.steps * (2 * pp - 1) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"serving DES, {args.requests} Poisson requests (512 in / 256 out, uniform), "
          "continuous batching, best of", args.repeat)
    for pp, batch, rate in CONFIGS:
        rps, sps, eps = bench(pp, batch, rate, args.requests, args.repeat)
        print(f"  pp={pp} batch={batch} {rate:g} req/s offered: {rps:,.0f} requests/s  "
              f"{sps:,.0f} steps/s  "
              f"{eps:,.0f} stage+link jobs/s")


if __name__ == "__main__":
    main()

"""Speed of Chiplet Cloud's analytical evaluator and two-phase search on the paper's v1 space.

Measures, on one core (numpy, no threads):

1. ``analytical_batch`` over explicit design points of the v1 space: every (die area, chips per
   lane, MAC ratio) x batch x pipeline depth dividing GPT-3's 96 layers, micro-batch 1, the
   fewest chips per stage: design points per second (target: >= 100,000);
2. the same evaluator where each point also searches its TCO-best pipeline depth and
   micro-batch (``mapping.pp = 0``, ``mapping.micro_batch = 0``);
3. the two-phase search (phase 1 servers, phase 2 mappings) for GPT-3 and PaLM;
4. the DES: simulated requests per second (Llama-3 8B, Poisson chat traffic).

    python benchmarks/bench_chiplet_cloud.py [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from _timing import best_of  # benchmarks/_timing.py, beside this script

from hwsim import specs
from hwsim.chiplet_cloud import search
from hwsim.chiplet_cloud.thermal import _lane_tables, heatsink
from hwsim.system import get_system


def v1_points(pp_values) -> dict[str, np.ndarray]:
    """The v1 hardware grid x batch sizes x the given pipeline depths, flattened."""
    grids = np.meshgrid(np.asarray(search.V1_DIE_AREAS_MM2), np.asarray(search.V1_MAC_AREA_RATIOS),
                        np.asarray(search.V1_CHIPS_PER_LANE), np.asarray(search.V1_BATCHES),
                        np.asarray(pp_values, float), indexing="ij")
    keys = ("chip.die_area_mm2", "chip.mac_area_ratio", "server.chips_per_lane",
            "mapping.batch", "mapping.pp")
    return {k: g.ravel() for k, g in zip(keys, grids, strict=True)}



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    system = get_system("chiplet-cloud")

    inputs = system.resolve(["mapping=v1"], {"mapping.tp": 0, "mapping.micro_batch": 1})
    pts = v1_points([float(d) for d in range(1, 97) if 96 % d == 0])
    n = len(pts["mapping.pp"])
    system.analytical_batch(inputs, {k: v[:1000] for k, v in pts.items()})  # warm caches
    dt = best_of(lambda: system.analytical_batch(inputs, pts), args.repeat)
    out = system.analytical_batch(inputs, pts)
    print(f"analytical_batch, explicit mappings: {n:,} design points in {dt:.2f} s = "
          f"{n / dt:,.0f} points/s ({int(out.feasible.sum()):,} feasible)")

    auto = system.resolve(["mapping=v1"], {"mapping.tp": 0, "mapping.pp": 0,
                                           "mapping.micro_batch": 0})
    pts_auto = {k: v for k, v in v1_points([0.0]).items() if k != "mapping.pp"}
    n_auto = len(pts_auto["mapping.batch"])
    dt = best_of(lambda: system.analytical_batch(auto, pts_auto), args.repeat)
    print(f"analytical_batch, each point searching pp and micro-batch: {n_auto:,} points in "
          f"{dt:.2f} s = {n_auto / dt:,.0f} points/s")

    one = system.resolve()
    dt = best_of(lambda: [system.analytical(one) for _ in range(200)], 1) / 200
    print(f"analytical, one point: {dt * 1e3:.2f} ms = {1 / dt:,.0f} points/s")

    asic, srv = inputs["chip"], inputs["server"]
    tco = inputs["tco"]
    heatsink.cache_clear()  # time phase 1 cold, thermal model included
    _lane_tables.cache_clear()
    t0 = time.perf_counter()
    servers = search.phase1(asic, srv)
    print(f"two-phase search, phase 1: {servers.evaluated:,} server designs, {len(servers):,} "
          f"valid, in {time.perf_counter() - t0:.2f} s (lane thermal model included)")
    for name in ("gpt3-175b", "palm-540b"):
        llm = specs.load_spec(specs.find_spec_file("llm", name), "llm")
        res = search.phase2(llm, servers, asic, srv, tco)
        dt = best_of(lambda llm=llm: search.phase2(llm, servers, asic, srv, tco), args.repeat)
        print(f"two-phase search, phase 2 {name}: {res.mappings_evaluated:,} mappings in "
              f"{dt:.2f} s = {res.mappings_evaluated / dt:,.0f} mappings/s; optimum "
              f"${res.best['decode_tco_usd_per_1k_tokens']:.3g}/1K tokens on "
              f"{res.best['die_area_mm2']:g} mm2 dies")


    des_in = system.resolve(["llm=llama3-8b", "traffic=poisson-chat"],
                            {"mapping.batch": 16, "traffic.requests": 200,
                             "traffic.warmup_requests": 0, "traffic.arrival_rate_per_s": 50.0})
    t0 = time.perf_counter()
    d = system.evaluate(des_in, "des")
    dt = time.perf_counter() - t0
    print(f"DES, Llama-3 8B on {d['chips']:g} chips ({d['pp']:g} stages), Poisson 50/s: "
          f"{d['requests']:g} requests of 512 + 256 tokens in {dt:.2f} s = "
          f"{d['requests'] / dt:,.1f} requests/s ({d['requests'] * 256 * d['pp'] / dt:,.0f} "
          "token-stage steps/s)")


if __name__ == "__main__":
    main()

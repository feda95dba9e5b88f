"""Speed of the iaad evaluators: the vectorised twin against the DES, in one run.

Measures, on one core (numpy, no threads):

1. ``analytical_batch`` over a deployment grid (unit spacing x compression ratio x road-side
   frame rate, the space of ``explore/iaad_deployment.toml``): design points per second;
2. the DES on the default LTE highway (one drive): seconds per drive and simulated frames per
   second;
3. the ratio: how many twin points cost one DES drive.

    python benchmarks/bench_iaad.py [--repeat R]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from _timing import best_of  # benchmarks/_timing.py, beside this script

from hwsim.system import get_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    system = get_system("iaad")
    inputs = system.resolve([])
    spacing, comp, rate = np.meshgrid(np.linspace(100.0, 1500.0, 57), np.linspace(1.0, 16.0, 16),
                                      np.array([5.0, 10.0, 20.0]), indexing="ij")
    pts = {"scenario.unit_spacing_m": spacing.ravel(), "scenario.compression_ratio": comp.ravel(),
           "scenario.rsu_frame_rate_hz": rate.ravel()}
    n = spacing.size
    system.analytical_batch(inputs, {k: v[:64] for k, v in pts.items()})  # warm caches
    dt = best_of(lambda: system.analytical_batch(inputs, pts), args.repeat)
    print(f"analytical_batch: {n:,} design points in {dt:.2f} s = {n / dt:,.0f} points/s")

    one = system.resolve([], ["scenario.drives=1"])
    des_s = best_of(lambda: system.evaluate(one, "des", seed=0), args.repeat)
    frames = system.evaluate(one, "des", seed=0)["frames"]
    print(f"DES: one drive ({frames:.0f} frames per method) in {des_s:.2f} s = "
          f"{frames / des_s:,.0f} frames/s")
    print(f"ratio: one DES drive costs as much as {des_s / (dt / n):,.0f} twin design points")


if __name__ == "__main__":
    main()

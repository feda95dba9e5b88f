"""Speed of ``hwsim.explore.exhaustive.pareto_mask`` on a million points.

An exhaustive search of 10^6 designs ends with one Pareto filter over all of them, so the filter
must not cost more than the evaluation (the vectorised batch evaluators take a few seconds for
10^6 points). Cases, each the best of ``--repeat`` runs:

- 2 objectives, uniform random (a small front) and anti-correlated (a front of thousands);
- 3 objectives, uniform random and anti-correlated;
- 3 objectives, every point on the front (points on a simplex: the worst case, O(n * front)
  comparisons), at a smaller size.

Each is also reported against one ``np.lexsort`` of the same array (the least any sort-based
filter must do), a ratio that does not depend on the machine. Exits 1 when a case with two
objectives takes more than ``--max-ratio`` lexsorts (default 10; about a second for a million
points here) or one with three more than ``--max-ratio-3d`` (default 30).

    python benchmarks/bench_pareto.py [--points 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _timing import best_of

from hwsim.explore.exhaustive import pareto_mask


def cases(n: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    u2 = rng.random((n, 2))
    x = rng.random(n)
    anti2 = np.column_stack([x, 1 - x + 0.05 * rng.random(n)])
    u3 = rng.random((n, 3))
    s = rng.dirichlet(np.ones(3), size=n)
    anti3 = s + 0.02 * rng.random((n, 3))
    simplex = rng.dirichlet(np.ones(3), size=min(n, 20_000))
    return [("2 objectives, uniform", u2), ("2 objectives, anti-correlated", anti2),
            ("3 objectives, uniform", u3), ("3 objectives, anti-correlated", anti3),
            ("3 objectives, all on the front", simplex)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-ratio", type=float, default=10.0)
    ap.add_argument("--max-ratio-3d", type=float, default=30.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'case':32s} {'points':>9s} {'front':>7s} {'time [s]':>9s} {'lexsorts':>9s}")
    worst = {2: 0.0, 3: 0.0}
    for name, v in cases(args.points, rng):
        dirs = ["minimize"] * v.shape[1]
        secs = best_of(lambda v=v, dirs=dirs: pareto_mask(v, dirs), args.repeat)
        sort = best_of(lambda v=v: np.lexsort(v.T[::-1]), args.repeat)
        front = int(pareto_mask(v, dirs).sum())
        ratio = secs / sort
        print(f"{name:32s} {len(v):9d} {front:7d} {secs:9.3f} {ratio:9.1f}")
        worst[v.shape[1]] = max(worst[v.shape[1]], ratio)
    ok = True
    for d, limit in ((2, args.max_ratio), (3, args.max_ratio_3d)):
        ok &= worst[d] <= limit
        print(f"{d} objectives: at most {worst[d]:.1f} lexsorts of the same points (limit "
              f"{limit:g}) -> " + ("ok" if worst[d] <= limit else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

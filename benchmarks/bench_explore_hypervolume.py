"""How close does a 300-trial sampler get to the exact Pareto front?

The queue-pooling study (``explore/queue_pooling.toml``: a G/G/c station, 16 server counts x 80
service times x 3 service distributions = 3840 designs, two objectives, two constraints) is small
enough to enumerate with the queue's vectorised ``analytical_batch``. This script runs the study
with several samplers and seeds for 300 trials each and prints the hypervolume each reached as a
fraction of the exact front's (objectives normalised by the exact front's ideal and nadir, the
reference point of ``hwsim.explore.exhaustive``). It fails (exit 1) when TPE, the default
sampler, reaches less than 95 % on any seed.

    python benchmarks/bench_explore_hypervolume.py [--trials 300] [--seeds 1 2 3]
        [--samplers tpe nsga2 random]

Not a timed test: it takes about ten seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hwsim.explore import exhaustive as exh
from hwsim.explore import runner
from hwsim.explore.results import trials_frame
from hwsim.explore.study import load_study

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD = 0.95


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "explore" / "queue_pooling.toml"))
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--samplers", nargs="+", default=["tpe", "nsga2", "random"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    base = dataclasses.replace(load_study(args.study, trials=args.trials), refine=None)
    t0 = time.perf_counter()
    exact = exh.run_exhaustive(base)
    print(f"{base.name}: {len(exact.table)} designs enumerated in {exact.seconds:.3f} s "
          f"({exact.method}); exact front {len(exact.front)} designs")
    rows = []
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for sampler in args.samplers:
            ratios = []
            for seed in args.seeds:
                study = dataclasses.replace(base, sampler=sampler, seed=seed,
                                            sampler_options={})
                opts = runner.SweepOptions(out_dir=Path(tmp) / f"{sampler}-{seed}",
                                           progress=False)
                t1 = time.perf_counter()
                runner.sweep(study, opts)
                secs = time.perf_counter() - t1
                df = trials_frame(study, runner.open_study(study, opts))
                done = df[df["state"] == "COMPLETE"]
                cmp = exh.compare(study, exact,
                                  done[study.objective_metrics].to_numpy(dtype=float),
                                  done["feasible"].to_numpy(dtype=bool))
                ratio = cmp["hypervolume_ratio"]
                ratios.append(ratio)
                rows.append((sampler, seed, ratio, secs, args.trials / secs))
                if sampler == "tpe" and ratio < THRESHOLD:
                    failed = True
            print(f"  {sampler:7s} hypervolume ratio: median {statistics.median(ratios):.3f}, "
                  f"min {min(ratios):.3f} over seeds {args.seeds}")
    print()
    print(f"{'sampler':8s} {'seed':>4s} {'HV ratio':>9s} {'time [s]':>9s} {'trials/s':>9s}")
    for sampler, seed, ratio, secs, rate in rows:
        print(f"{sampler:8s} {seed:4d} {ratio:9.3f} {secs:9.2f} {rate:9.1f}")
    print(f"\ntotal {time.perf_counter() - t0:.1f} s; threshold for tpe: {THRESHOLD:.0%} -> "
          + ("FAIL" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

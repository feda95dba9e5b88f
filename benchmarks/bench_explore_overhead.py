"""hwsim's per-trial cost against a plain Optuna loop on the same journal storage.

Both sides run the same NSGA-II sampler (seeded), the same three-parameter space (an int, a
continuous float, a categorical) and a trivial objective: hwsim through ``runner.sweep`` (budget
check, progress callback, dead-worker recovery, constraints, recorded metrics, duplicate-design
reuse) on a benchmark-only system whose evaluator is two multiplications; the plain loop through
``study.optimize`` with the same values returned. Storage: a journal file in a temporary folder on
each side (Optuna's own ``JournalFileBackend`` for the plain loop, hwsim's default for hwsim).

Reported, best of ``--repeat`` runs of ``--trials`` trials each:

- the per-trial cost at 100 and at ``--trials`` trials: the time between the completions of the
  50 trials before that trial count (from the trials' own timestamps), hwsim / plain;
- the whole run, hwsim / plain;
- disk syncs (``os.fsync`` calls) per trial on each side.

The plain loop also runs on the journal backend hwsim opens (``plain*``: the file synced when a
trial finishes, not after every record); the difference to it is hwsim's own per-trial work
(mostly its four trial attributes, about 0.1 ms each), which must not grow with the study.
Exits 1 when the per-trial ratio to the plain loop on Optuna's backend at ``--trials`` exceeds
``--max-ratio`` (default 1.15).

    python benchmarks/bench_explore_overhead.py [--trials 1000] [--repeat 3] [--sampler nsga2]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from hwsim.explore import runner
from hwsim.explore.study import study_from_dict
from hwsim.system import Metric, Role, System, get_system, register_system

SYSTEM = "bench-trivial"
WINDOW = 50


def _trivial(inputs: Any) -> dict[str, float]:
    q = inputs["queue"]
    return {"cost": q.servers * q.mean_service_s, "speed": q.servers / q.mean_service_s}


def _register() -> None:
    get_system("queue")  # the built-in systems first
    with contextlib.suppress(ValueError):
        register_system(System(
            name=SYSTEM, summary="benchmark only: two multiplications",
            roles=(Role("queue", "queue", "mm1"),),
            metrics=(Metric("cost", "benchmark only"), Metric("speed", "benchmark only")),
            analytical=_trivial))


def _study(trials: int, sampler: str) -> Any:
    return study_from_dict({
        "name": "overhead", "system": SYSTEM, "trials": trials, "seed": 1,
        "sampler": {"name": sampler}, "specs": {"queue": "mm1"},
        "space": {"queue.servers": {"low": 1, "high": 64},
                  "queue.mean_service_s": {"low": 0.01, "high": 1.0},
                  "queue.service_distribution": {"choices": ["exponential", "deterministic"]}},
        "objectives": [{"metric": "cost", "direction": "minimize"},
                       {"metric": "speed", "direction": "maximize"}],
        "exhaustive": False,
    }, "<bench>", validate=False)


@contextlib.contextmanager
def _count_fsync() -> Iterator[list[int]]:
    real = os.fsync
    n = [0]

    def counting(fd: int) -> None:
        n[0] += 1
        real(fd)

    os.fsync = counting
    try:
        yield n
    finally:
        os.fsync = real


def _sampler(name: str) -> Any:
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=1)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=1, multivariate=True,
                                          warn_independent_sampling=False)
    return optuna.samplers.RandomSampler(seed=1)


def run_plain(tmp: Path, trials: int, sampler: str, *, hwsim_storage: bool = False
              ) -> tuple[float, list[Any], int]:
    """A plain Optuna loop: same space, same sampler, same values, a journal file (Optuna's
    backend, or with ``hwsim_storage`` the one hwsim opens, which syncs less often)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from hwsim.explore.storage import open_storage

    path = str(tmp / "plain.journal")
    storage = (open_storage(path) if hwsim_storage
               else JournalStorage(JournalFileBackend(path)))
    study = optuna.create_study(directions=["minimize", "maximize"], storage=storage,
                                sampler=_sampler(sampler), study_name="overhead")

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        servers = trial.suggest_int("queue.servers", 1, 64)
        svc = trial.suggest_float("queue.mean_service_s", 0.01, 1.0)
        trial.suggest_categorical("queue.service_distribution", ["exponential", "deterministic"])
        return servers * svc, servers / svc

    with _count_fsync() as n:
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=trials)
        secs = time.perf_counter() - t0
    return secs, study.get_trials(deepcopy=False), n[0]


def run_hwsim(tmp: Path, trials: int, sampler: str) -> tuple[float, list[Any], int]:
    study = _study(trials, sampler)
    opts = runner.SweepOptions(out_dir=tmp / "hwsim", progress=False)
    with _count_fsync() as n:
        t0 = time.perf_counter()
        runner.sweep(study, opts)
        secs = time.perf_counter() - t0
    return secs, runner.open_study(study, opts).get_trials(deepcopy=False), n[0]


def per_trial_at(trials: list[Any], n: int) -> float:
    """Seconds per trial over the ``WINDOW`` trials that end at trial count ``n``."""
    done = sorted(t.datetime_complete for t in trials if t.datetime_complete is not None)
    a, b = done[n - 1 - WINDOW], done[n - 1]
    return (b - a).total_seconds() / WINDOW


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sampler", default="nsga2", choices=["nsga2", "tpe", "random"])
    ap.add_argument("--max-ratio", type=float, default=1.15)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _register()
    points = sorted({100, args.trials})
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):
        sides = (("plain", run_plain), ("hwsim", run_hwsim),
                 ("plain2", lambda *a: run_plain(*a, hwsim_storage=True)))
        for side, fn in sides:
            with tempfile.TemporaryDirectory() as tmp:
                secs, trials, syncs = fn(Path(tmp), args.trials, args.sampler)
            assert len(trials) == args.trials, (side, len(trials))
            row = {"total": secs, "syncs": syncs / args.trials}
            row.update({f"at{n}": per_trial_at(trials, n) for n in points})
            b = best.setdefault(side, row)
            for k, v in row.items():
                b[k] = min(b[k], v)
    p, h, q = best["plain"], best["hwsim"], best["plain2"]
    print(f"{args.sampler}, {args.trials} trials, best of {args.repeat}; per-trial cost from "
          f"the completion times of the {WINDOW} trials before each count")
    print("plain: Optuna's journal backend; plain*: the same loop on hwsim's journal backend "
          "(isolates hwsim's own work)")
    print(f"{'':24s} {'plain':>9s} {'plain*':>9s} {'hwsim':>9s} {'/plain':>7s} {'/plain*':>8s}")
    for n in points:
        k = f"at{n}"
        print(f"{'ms/trial at ' + str(n):24s} {p[k] * 1e3:9.3f} {q[k] * 1e3:9.3f} "
              f"{h[k] * 1e3:9.3f} {h[k] / p[k]:7.2f} {h[k] / q[k]:8.2f}")
    print(f"{'whole run [s]':24s} {p['total']:9.2f} {q['total']:9.2f} {h['total']:9.2f} "
          f"{h['total'] / p['total']:7.2f} {h['total'] / q['total']:8.2f}")
    print(f"{'disk syncs per trial':24s} {p['syncs']:9.2f} {q['syncs']:9.2f} {h['syncs']:9.2f}")
    ratio = h[f"at{args.trials}"] / p[f"at{args.trials}"]
    extra = (h[f"at{args.trials}"] - q[f"at{args.trials}"]) * 1e3
    print(f"hwsim's own work at {args.trials} trials: {extra:.2f} ms per trial "
          f"({h[f'at{args.trials}'] / q[f'at{args.trials}']:.2f} x plain*)")
    ok = ratio <= args.max_ratio
    print(f"per-trial ratio to plain at {args.trials} trials: {ratio:.2f} "
          f"(target <= {args.max_ratio}) -> " + ("ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

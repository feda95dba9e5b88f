"""Speed of the hwsim.des kernel against plain SimPy on the same models, in the same run.

Covers:
- an M/M/1 queue at utilisation 0.9: ``ComputeUnit.run`` + ``Stats`` against the usual
  process-per-customer loop around ``simpy.Resource`` that appends each wait to a list;
- a three-stage pipeline: ``Pipeline`` against hand-written stage processes joined by
  ``simpy.Store`` buffers of one item;
- for information, transfers per second over a processor-shared ``Link`` at load 0.8 (plain
  SimPy has no fair-share primitive to compare with).

Both sides draw the same inputs and must produce the same waits / completion times. Reported:
CPU time of this process (best of ``--repeat``; CPU rather than wall time so other load on
the machine does not skew the ratio), customers (items) per second, scheduler events per second
(events counted in a separate, untimed run) and the cost ratio kernel / plain per simulated
customer. Exits 1 if any ratio exceeds ``--max-ratio`` (default 1.5).

    python benchmarks/bench_des.py [--customers 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import simpy
from simpy.events import NORMAL

from hwsim.des import ComputeUnit, Link, Pipeline, Stage, Stats

RANDOM_SEED = 42
RHO = 0.9


class CountingEnvironment(simpy.Environment):
    """An environment that counts scheduled events (used only in the untimed run)."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled = 0

    def schedule(self, event, priority=NORMAL, delay=0):
        self.scheduled += 1
        super().schedule(event, priority, delay)


# -- M/M/1 ---------------------------------------------------------------------------------------
def mm1_kernel(env: simpy.Environment, ia: list[float], svc: list[float]) -> np.ndarray:
    stats = Stats(env)
    unit = ComputeUnit(env, 1.0, name="server", stats=stats)

    def arrivals():
        for a, s in zip(ia, svc, strict=True):
            yield env.timeout(a)
            unit.run(s)

    env.process(arrivals())
    env.run()
    return stats.array("server.wait_s")


def mm1_plain(env: simpy.Environment, ia: list[float], svc: list[float]) -> np.ndarray:
    server = simpy.Resource(env, capacity=1)
    waits: list[float] = []

    def customer(s):
        t0 = env.now
        with server.request() as req:
            yield req
            waits.append(env.now - t0)
            yield env.timeout(s)

    def arrivals():
        for a, s in zip(ia, svc, strict=True):
            yield env.timeout(a)
            env.process(customer(s))

    env.process(arrivals())
    env.run()
    return np.asarray(waits)


# -- pipeline ------------------------------------------------------------------------------------
STAGE_TIMES = (1.0, 3.0, 2.0)


def pipe_kernel(env: simpy.Environment, n: int) -> np.ndarray:
    pipe = Pipeline(env, [Stage(f"s{i}", t) for i, t in enumerate(STAGE_TIMES)])
    pipe.run(range(n))
    env.run()
    return np.asarray(pipe.completed)


def pipe_plain(env: simpy.Environment, n: int) -> np.ndarray:
    stores = [simpy.Store(env, capacity=1) for _ in STAGE_TIMES[1:]]
    done: list[float] = []
    end = object()

    def stage(i, source):
        last = i == len(STAGE_TIMES) - 1
        while True:
            item = next(source, end) if source is not None else (yield stores[i - 1].get())
            if item is end:
                if not last:
                    yield stores[i].put(end)
                return
            yield env.timeout(STAGE_TIMES[i])
            if last:
                done.append(env.now)
            else:
                yield stores[i].put(item)

    for i in range(len(STAGE_TIMES)):
        env.process(stage(i, iter(range(n)) if i == 0 else None))
    env.run()
    return np.asarray(done)


# -- shared link (no plain-SimPy equivalent: reported, not compared) ----------------------------
def link_kernel(env: simpy.Environment, ia: list[float], size: list[float]) -> np.ndarray:
    link = Link(env, 1e9, 1e-6)
    done: list[float] = []

    def arrivals():
        for a, s in zip(ia, size, strict=True):
            yield env.timeout(a)
            link.transfer(s).callbacks.append(lambda _: done.append(env.now))

    env.process(arrivals())
    env.run()
    return np.asarray(done)


def timed(fn, *args, repeat: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeat):
        env = simpy.Environment()
        t0 = time.process_time()
        out = fn(env, *args)
        best = min(best, time.process_time() - t0)
    return best, out  # type: ignore[return-value]


def events(fn, *args) -> int:
    env = CountingEnvironment()
    fn(env, *args)
    return env.scheduled


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-ratio", type=float, default=1.5)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(RANDOM_SEED)
    ia = rng.exponential(1.0 / RHO, args.customers).tolist()
    svc = rng.exponential(1.0, args.customers).tolist()
    rows = []
    for model, kernel, plain, fargs, units in (
        ("M/M/1 rho=0.9", mm1_kernel, mm1_plain, (ia, svc), args.customers),
        ("3-stage pipeline", pipe_kernel, pipe_plain, (args.items,), args.items),
    ):
        tk, out_k = timed(kernel, *fargs, repeat=args.repeat)
        tp, out_p = timed(plain, *fargs, repeat=args.repeat)
        if out_k.shape != out_p.shape or not np.allclose(out_k, out_p, rtol=1e-12, atol=1e-9):
            print(f"{model}: kernel and plain SimPy disagree", file=sys.stderr)
            return 2
        ek, ep = events(kernel, *fargs), events(plain, *fargs)
        rows.append((model, units, tk, tp, ek, ep))

    # processor-shared link at load 0.8: 800 B mean transfers every 1 us on 1 GB/s
    lia = rng.exponential(1e-6, args.items).tolist()
    lsz = rng.exponential(800.0, args.items).tolist()
    tl, _ = timed(link_kernel, lia, lsz, repeat=args.repeat)
    el = events(link_kernel, lia, lsz)

    print(f"simpy {simpy.__version__}, best of {args.repeat}")
    print(f"{'model':18s} {'side':7s} {'cpu s':>8s} {'units/s':>10s} {'events':>10s} "
          f"{'events/s':>10s}")
    worst = 0.0
    for model, units, tk, tp, ek, ep in rows:
        for side, t, e in (("kernel", tk, ek), ("simpy", tp, ep)):
            print(f"{model:18s} {side:7s} {t:8.3f} {units / t:10.0f} {e:10d} {e / t:10.0f}")
        ratio = tk / tp
        worst = max(worst, ratio)
        print(f"{model:18s} cost ratio kernel/simpy per unit of work: {ratio:.2f}x")
    print(f"{'shared link':18s} {'kernel':7s} {tl:8.3f} {args.items / tl:10.0f} {el:10d} "
          f"{el / tl:10.0f}  (transfers; no plain-SimPy equivalent)")
    if worst > args.max_ratio:
        print(f"FAIL: kernel costs {worst:.2f}x plain SimPy (limit {args.max_ratio}x)",
              file=sys.stderr)
        return 1
    print(f"ok: worst ratio {worst:.2f}x <= {args.max_ratio}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

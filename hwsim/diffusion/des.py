"""A queue of image requests on one GPU (SimPy, on hwsim.des): Poisson arrivals, one server
that takes up to ``max_batch`` waiting requests at once and serves them as one pipeline batch
in the analytical model's time for that batch. Latency is measured per request (queueing
included), with a 95% confidence interval by batch means."""

from __future__ import annotations

from typing import Any

import numpy as np
import simpy

from hwsim.batch import REASON
from hwsim.des.stats import batch_means
from hwsim.diffusion.analytical import block
from hwsim.errors import InfeasibleDesign
from hwsim.system import Inputs


def service_times(inputs: Inputs, max_batch: int) -> np.ndarray:
    """Pipeline time of a batch of 1 .. ``max_batch`` images (analytical model)."""
    b = np.arange(1, max_batch + 1, dtype=float)
    out = block(inputs, {"pipeline.batch": b}, b.size)
    t = np.asarray(out["image_latency_s"], dtype=float)
    if np.isnan(t[0]):
        raise InfeasibleDesign(str(out[REASON][0]))
    # a batch that does not fit runs as smaller batches back to back
    for i in range(1, t.size):
        if np.isnan(t[i]):
            t[i] = t[i - 1] + t[0]
    return t


def evaluate(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> dict[str, float]:
    """Simulate ``pipeline.requests`` requests after ``pipeline.warmup_requests``."""
    p = inputs["pipeline"]
    svc = service_times(inputs, p.max_batch)
    total = p.requests + p.warmup_requests
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / p.arrival_rate_per_s, total))
    env = simpy.Environment()
    queue: list[tuple[int, float]] = []
    wake = [env.event()]
    done = np.full(total, np.nan)
    batches: list[int] = []
    busy = [0.0]

    def source():
        for i, t in enumerate(arrivals):
            yield env.timeout(t - env.now)
            queue.append((i, env.now))
            if not wake[0].triggered:
                wake[0].succeed()

    def server():
        while True:
            if not queue:
                wake[0] = env.event()
                yield wake[0]
            take = queue[: p.max_batch]
            del queue[: len(take)]
            dur = float(svc[len(take) - 1])
            yield env.timeout(dur)
            busy[0] += dur
            batches.append(len(take))
            for i, _ in take:
                done[i] = env.now

    env.process(source())
    env.process(server())
    env.run()
    lat = (done - arrivals)[p.warmup_requests:]
    mean, half = batch_means(lat, 20)
    span = float(done.max() - arrivals[0])
    return {
        "image_latency_s": mean,
        "latency_ci95_s": half,
        "p99_latency_s": float(np.percentile(lat, 99)),
        "served_images_per_s": total / span,
        "mean_batch": float(np.mean(batches)),
        "gpu_busy_fraction": busy[0] / span,
    }

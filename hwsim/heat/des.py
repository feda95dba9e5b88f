"""HEAT's threads as SimPy processes sharing one memory system (hwsim.des.Memory).

Each thread takes chunks of ``des_chunk_samples`` samples (the released engine's dynamic
schedule) until the epoch's chunks run out. A chunk is two events: the thread's own time
(vector work and the row reads' latencies, from the analytical model's per-sample figures
without its queueing term) and the bytes its DRAM-served rows move (reads plus write-backs),
which go through the shared memory's fair-share bandwidth, so ``k`` threads moving bytes at
once each get 1/k of it. The number of DRAM rows of a chunk is drawn (Poisson around the
analytical mean, seeded), so chunks differ and the epoch time carries a confidence interval
(batch means over chunk durations). Per event work is O(1): no per-sample or per-row events.
``--trace`` records each chunk on its thread's track and the memory's transfers.

When few threads contend, the DES and the analytical model agree (a test says so); with many,
the fair-share memory and the analytical M/M/1 queue differ, and the DES is the check of the
closed form.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import simpy

from hwsim.des import rng as make_rng
from hwsim.des.memory import Memory
from hwsim.des.stats import batch_means
from hwsim.heat.analytical import check_inputs, sample_model
from hwsim.metrics import Measured
from hwsim.system import Inputs


def evaluate(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> dict[str, float]:
    """Simulate the epoch's chunks (at most ``des_max_chunks``, the rest scaled)."""
    check_inputs(inputs)
    ds, tr = inputs["dataset"], inputs["training"]

    def get(key: str) -> np.ndarray:
        return np.asarray([float(getattr(tr, key))])

    m = sample_model(inputs, get, 1, tr.sampler)
    own_s = float(m["t"][0] - m["wait"][0])          # per sample, without queueing
    dram_rows = float(m["dram_rows"][0])
    row_B = float(np.ravel(m["row_B"])[0])
    bw = float(m["bw"][0])
    chunk = tr.des_chunk_samples
    total = math.ceil(ds.train_interactions / chunk)
    chunks = min(total, tr.des_max_chunks)
    threads = tr.threads
    gen = make_rng(seed)
    rows = gen.poisson(dram_rows * chunk, size=chunks).astype(float)
    env = simpy.Environment()
    mem = Memory(env, capacity_bytes=1e18, bandwidth_Bps=bw, name="dram", recorder=trace)
    durations = np.zeros(chunks)
    moved = [0.0]
    nxt = [0]

    def worker(k: int):
        while nxt[0] < chunks:
            i = nxt[0]
            nxt[0] += 1
            t0 = env.now
            yield env.timeout(own_s * chunk)
            nbytes = 2.0 * row_B * rows[i]
            yield mem.read(nbytes)
            moved[0] += nbytes
            durations[i] = env.now - t0
            if trace is not None:
                trace.complete(f"chunk {i}", t0, durations[i], thread=f"thread {k}",
                               process="heat", args={"dram_rows": rows[i]})

    for k in range(threads):
        env.process(worker(k))
    env.run()
    span = env.now
    scale = total / chunks
    epoch = span * scale
    if chunks >= 4:
        mean, half = batch_means(durations, min(20, chunks // 2))
        rel = half / mean if mean > 0 else 0.0
    else:                       # too few chunks for an interval
        rel = math.nan
    return Measured({"epoch_time_s": epoch, "samples_per_s": chunks * chunk / span,
                     "memory_utilization": moved[0] / bw / span,
                     "epoch_time_ci95_s": epoch * rel},
                    ci95={"epoch_time_s": epoch * rel},
                    ci_method="batch means over chunk durations")

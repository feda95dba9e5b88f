"""A DES of one step-3 epoch (SimPy): iterations as events, each a generation phase, a scoring
phase and a training phase.

Generation: the ZeRO-3 all-gather of the actor's weights on the data-parallel link (a
:class:`hwsim.des.Link` at the per-GPU collective bandwidth), the re-slice into inference
weights, then one process per tensor-parallel group of ``inference_tp`` GPUs (the Hybrid
Engine's groups generate independently on a :class:`hwsim.des.ComputeUnit` with one unit per
group) running its prefill and decode; the phase ends when every group is done (the next phase
starts with a collective). Scoring and training follow as one event per pass. Every phase has a
fixed duration from the analytical model's parts, so the DES reproduces its iteration time (a
test holds it); it adds the timeline (``--trace``) and the event count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import simpy

from hwsim.des import ComputeUnit, Link
from hwsim.errors import InfeasibleDesign
from hwsim.llm.model import params
from hwsim.rlhf.analytical import HOUR, solve, step3_times
from hwsim.system import Inputs

#: events simulated at most per run: longer epochs repeat the simulated iterations' mean
MAX_ITERATIONS = 2000


def evaluate(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> dict[str, float]:
    """Simulate the step-3 iterations of the chosen configuration (up to MAX_ITERATIONS; the
    epoch is their mean time the remaining iterations)."""
    del seed  # deterministic: every phase has a fixed duration
    sol = solve(inputs, {}, 1)
    if not sol["feasible"][0]:
        from hwsim.batch import evaluate_one
        from hwsim.system import get_system

        evaluate_one(get_system("rlhf"), inputs)  # raises InfeasibleDesign with the reason
        raise InfeasibleDesign("does not fit")
    actor, critic, run = inputs["actor"], inputs["critic"], inputs["run"]
    c = sol["cluster"]
    tp, b = sol["tp"], sol["batch"]
    t = {k: float(v[0]) for k, v in step3_times(actor, critic, run, c, tp, b).items()}
    gpus = int(c.gpus[0])
    groups = max(1, gpus // int(tp[0]))
    iters = int(np.ceil(run.pairs / (gpus * float(b[0]))))
    n_sim = min(iters, MAX_ITERATIONS)

    za = float(c.za[0])
    gather_B = (gpus - 1) / gpus * 2.0 * params(actor) if za >= 3 and gpus > 1 else 0.0
    link_Bps = float(c.dp_link[0])
    reslice_s = t["gather"] - gather_B / link_Bps

    env = simpy.Environment()
    link = Link(env, link_Bps, name="zero3-link", recorder=trace)
    # one unit per tensor-parallel group, at 1 op/s: an operation count is then seconds
    gpu = ComputeUnit(env, 1.0, name="generation", n=groups, recorder=trace)
    events = [0]
    gen_time = [0.0]

    def group():
        yield gpu.run(t["prefill"] + t["decode"], label="prefill + decode")
        events[0] += 1

    def generation():
        if gather_B > 0:
            yield link.transfer(gather_B, label="zero-3 gather")
            events[0] += 1
        if reslice_s > 0:
            yield env.timeout(reslice_s)
            events[0] += 1
        yield simpy.AllOf(env, [env.process(group()) for _ in range(groups)])

    def passes(name: str, seconds: float):
        start = env.now
        yield env.timeout(seconds)
        events[0] += 1
        if trace is not None:
            trace.complete(name, start, seconds, thread="phases")

    def epoch():
        for _ in range(n_sim):
            start = env.now
            yield env.process(generation())
            gen_time[0] += env.now - start
            if trace is not None:
                trace.complete("generation", start, env.now - start, thread="phases")
            yield from passes("scoring", t["scoring"])
            yield from passes("actor training", t["actor_training"])
            yield from passes("critic training", t["critic_training"])

    env.process(epoch())
    env.run()
    per_iter = env.now / n_sim
    hours = per_iter * iters / HOUR
    price = run.usd_per_gpu_hour
    return {
        "step3_hours": hours,
        "step3_gpu_hours": hours * gpus,
        "step3_cost_usd": hours * gpus * price,
        "iteration_s": per_iter,
        "generation_s": gen_time[0] / n_sim,
        "scoring_s": t["scoring"],
        "training_s": t["training"],
        "generation_share": gen_time[0] / env.now,
        "iterations": float(iters),
        "per_device_batch": float(b[0]),
        "inference_tp": float(tp[0]),
        "events": float(events[0]),
    }

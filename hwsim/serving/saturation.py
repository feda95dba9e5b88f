"""Closed forms of a saturated LLM-serving replica, over any :class:`~hwsim.serving.step.
StepModel`: the analytical counterpart of :func:`hwsim.serving.des.serve`.

With every lane (micro-batch) full, one *round* (each lane advances one step) lasts as long as
the busiest resource or the slowest lane's trip through the pipeline, whichever is longer:
``max(max_k sum_lanes stage_k, max_k sum_lanes link_k, max_lanes sum_k (stage_k + link_k +
latency_k))`` (a link is busy for bytes / bandwidth; its latency is in flight)
(the DeepSpeed-Inference schedule, Aminabadi et al. SC'22, with links as resources of their
own). A batch of requests of ``P`` prompt and ``O`` output tokens takes the pipeline fill of its
prefills (the flow-shop recurrence, GPipe's ``(stages + lanes - 1)`` stage times) and ``O - 1``
decode rounds; the decode rounds are evaluated at the mean cached context
``P + (O - 2) / 2``, exact where the step time is linear in the context.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.serving import load
from hwsim.serving.des import lane_sizes
from hwsim.serving.step import StepModel, transfer_s


def _link_s(model: StepModel, stage: int, tokens: int) -> tuple[float, float]:
    """(time the link is busy, latency after it) of one transfer: the latency is in flight,
    it does not hold the link (as :class:`hwsim.des.Link`)."""
    nbytes = model.transfer_bytes(stage, tokens)
    if nbytes <= 0:
        return 0.0, 0.0
    bw, lat = model.link(stage)
    return nbytes / bw, lat


def round_s(model: StepModel, lanes: list[int], kind: str, tokens: float) -> float:
    """One round: every lane runs one ``kind`` step (prefill: ``tokens`` = mean prompt;
    decode: ``tokens`` = mean cached context)."""
    return mixed_round_s(model, [(1.0, m) for m in lanes], kind, tokens)


def mixed_round_s(model: StepModel, lanes: list[tuple[float, float]], kind: str,
                  tokens: float) -> float:
    """A round of lanes given as ``(count, sequences)`` pairs; a count may be fractional (a
    mean occupancy: :mod:`hwsim.serving.load`), and so may a lane's sequences."""
    n = model.stages
    stage_busy = [0.0] * n
    link_busy = [0.0] * max(n - 1, 0)
    trip = 0.0
    for count, m in lanes:
        if count <= 0:
            continue
        rows = m * tokens if kind == "prefill" else m
        t_lane = 0.0
        for k in range(n):
            s = model.prefill_s(k, m, tokens) if kind == "prefill" else model.decode_s(k, m, tokens)
            stage_busy[k] += count * s
            t_lane += s
            if k < n - 1:
                busy, lat = _link_s(model, k, rows)
                link_busy[k] += count * busy
                t_lane += busy + lat
        trip = max(trip, t_lane)
    return max(max(stage_busy), max(link_busy, default=0.0), trip)


def pipeline_fill_s(model: StepModel, lanes: list[int], prompt: float) -> float:
    """Prefill of every lane through the pipeline, one lane after another: a flow shop whose
    machines are the stages and the links, ``C[i, j] = max(C[i-1, j], C[i, j-1]) + t[i, j]``
    (GPipe's fill, ``(stages + lanes - 1) x stage`` for equal stages and free links)."""
    n = model.stages
    stage_done = [0.0] * n  # when stage k finished the previous lane
    link_done = [0.0] * max(n - 1, 0)
    for m in lanes:
        ready = 0.0
        for k in range(n):
            stage_done[k] = max(stage_done[k], ready) + model.prefill_s(k, m, prompt)
            ready = stage_done[k]
            if k < n - 1:
                busy, lat = _link_s(model, k, int(m * prompt))
                if busy + lat > 0:
                    link_done[k] = max(link_done[k], ready) + busy
                    ready = link_done[k] + lat
    return stage_done[-1]


def first_token_s(model: StepModel, micro_batch: float, prompt: float) -> float:
    """Time to first token of one micro-batch on an idle replica."""
    t = 0.0
    for k in range(model.stages):
        t += model.prefill_s(k, micro_batch, prompt)
        if k < model.stages - 1:
            t += transfer_s(model, k, int(micro_batch * prompt))
    return t


def saturated(model: StepModel, batch: int, micro_batch: int, prompt: float,
              output: float) -> dict[str, float]:
    """TPOT, TTFT and output-token throughput of a saturated replica (seconds, tokens/s)."""
    lanes = lane_sizes(batch, micro_batch)
    pre = pipeline_fill_s(model, lanes, prompt)
    kv_mean = prompt + (output - 2) / 2.0
    dec = round_s(model, lanes, "decode", kv_mean) if output > 1 else 0.0
    t_batch = pre + (output - 1) * dec
    return {
        "tpot_s": dec,
        "ttft_s": first_token_s(model, lanes[0], prompt),
        "batch_s": t_batch,
        "fill_s": pre,
        "throughput_tokens_per_s": batch * output / t_batch,
        "decode_throughput_tokens_per_s": batch / dec if dec > 0 else math.nan,
    }


def open_loop(model: StepModel, batch: int, micro_batch: int, prompt: float, output: float,
              rate_per_s: float) -> dict[str, float]:
    """TPOT, TTFT and throughput of a replica under open arrivals at ``rate_per_s`` requests/s
    with continuous batching (:mod:`hwsim.serving.load`), and whether it keeps up."""
    lanes = len(lane_sizes(batch, micro_batch))
    kv_mean = prompt + (output - 2) / 2.0
    ttft = first_token_s(model, 1, prompt)
    stretch = float(load.interference(rate_per_s, ttft))

    def round_at(s: np.ndarray) -> np.ndarray:
        active, size = load.spread(s, lanes)
        r = mixed_round_s(model, [(float(active), float(size))], "decode", kv_mean)
        return load.per_token_s(r, rate_per_s, ttft, output)

    sat = saturated(model, batch, micro_batch, prompt, output)
    occ = float(load.occupancy(rate_per_s, output, batch, round_at))
    active, size = load.spread(occ, lanes)
    step = mixed_round_s(model, [(float(active), float(size))], "decode", kv_mean)
    return {
        "tpot_s": float(round_at(np.asarray(occ))) if output > 1 else 0.0,
        "ttft_s": float(load.first_token_s(ttft, rate_per_s, step, output)),
        "throughput_tokens_per_s": rate_per_s * output,
        "stable": rate_per_s * output < sat["throughput_tokens_per_s"] and math.isfinite(stretch),
        "occupancy": occ,
    }

"""LMDeploy v0.1's static benchmark as it ran: closed-loop clients on TurboMind's persistent
batch, one event per engine iteration (or per run of identical decode iterations).

What the benchmark did (``benchmark/profile_generation.py`` of the v0.1.0a1 era, the script
whose output table ``docs/en/benchmark/a100_fp16.md`` at InternLM/lmdeploy@3e391df reports):
``concurrency`` client threads each send ``test_round`` (10 by default) requests of fixed
lengths one after another, the next when the previous one has streamed its last token; the
first-token latency of a request is taken from the moment its client sends it to its first
streamed token; the per-token latencies are the gaps between streamed tokens (rounded to 1 ms),
their median over every token after the first of every request is the table's "50%" (taken
here unrounded: the rounding is the validation cases' ``reference_error``); the
output throughput is every generated token over the wall time of all rounds.

What the engine does (TurboMind v0.1.0, ``src/turbomind/models/llama/SequenceManager.cc``,
``Materialize``): before every iteration the sequences in the batch (at most
``max_batch_size``, 128 in the benchmark's config: every client's request) are taken in
priority order (the order their requests arrived: ``LlamaBatch::ProcessInferRequests`` numbers
them) and each is given the KV blocks its context needs for the next token, from the free
blocks or else by preempting sequences of lower priority (their blocks are released and, when
taken, lost: the sequence later recomputes its whole context); a sequence that cannot get its
blocks waits (keeping what it holds). The iteration prefills the context of every newly
admitted (or recomputed) sequence (all but the last prompt token: ``last_prompt_token_decoded``)
and then runs one decode step of every admitted sequence, which streams each one token.
``LlamaBatch::InternalThreadEntry`` takes the queued requests at the start of each iteration
and blocks on the queue only when its batch is empty: a request a client sends when its
previous one streamed its last token is seen from the next iteration (the engine has started
it), and an idle engine wakes on the first request to arrive, alone (``admission_lag``).

Step times come from the same :class:`~hwsim.gpu_serving.roofline.RooflineStepModel` the
analytical evaluator and the DES use; a run of decode iterations with the same sequences is
summed in closed form (the step is linear in the context, :meth:`RooflineStepModel.
decode_s`), so the events are per admission, completion and KV-block shortage, never per
token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving.roofline import RooflineStepModel

#: the benchmark's requests per client (profile_generation.py's ``--test-round`` default)
TEST_ROUNDS = 10

_WAITING, _ACTIVE, _DONE = 0, 1, 2


@dataclass(frozen=True)
class BenchmarkResult:
    """What profile_generation.py reports for one (batch, prompt, output) point."""

    throughput_tokens_per_s: float
    ttft_mean_s: float
    ttft_min_s: float
    ttft_max_s: float
    token_latency_p50_s: float
    elapsed_s: float
    requests: int
    preemptions: int
    iterations: int
    #: the most KV blocks held at once (never above the cache's)
    max_blocks_held: int

    def metric(self, name: str) -> float:
        """The gpu-serving metric ``name`` (throughput_tokens_per_s, ttft_ms,
        latency_ms_per_token)."""
        return {"throughput_tokens_per_s": self.throughput_tokens_per_s,
                "ttft_ms": self.ttft_mean_s * 1e3,
                "latency_ms_per_token": self.token_latency_p50_s * 1e3}[name]


def kv_blocks(model: RooflineStepModel) -> int:
    """KV blocks of ``mapping.kv_block_tokens`` tokens the replica holds (the tightest stage's
    room beside its weights in the usable HBM)."""
    plan = model.kv_plan(1.0, 1.0, 1.0)
    return math.floor(float(plan.tokens) / model.mapping.kv_block_tokens)


def _weighted_median(values: list[float], weights: list[float]) -> float:
    if not values:
        return math.nan
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    order = np.argsort(v, kind="stable")
    c = np.cumsum(w[order])
    return float(v[order][np.searchsorted(c, 0.5 * c[-1], side="right")])


def run(model: RooflineStepModel, *, clients: int, prompt: int, output: int,
        rounds: int = TEST_ROUNDS, blocks: int | None = None,
        admission_lag: bool = True) -> BenchmarkResult:
    """Simulate ``clients`` closed-loop clients sending ``rounds`` requests each of ``prompt``
    + ``output`` tokens to one TurboMind replica (one pipeline stage) with ``blocks`` KV blocks
    of ``mapping.kv_block_tokens`` (default: what the usable HBM holds beside the weights)."""
    if model.stages != 1:
        raise InfeasibleDesign("the TurboMind benchmark is modelled for one pipeline stage")
    bt = int(model.mapping.kv_block_tokens)
    total = kv_blocks(model) if blocks is None else int(blocks)
    if math.ceil((prompt + output) / bt) > total:
        raise InfeasibleDesign(f"one sequence of {prompt} + {output} tokens needs more than "
                               f"the {total} KV blocks of {bt} tokens that fit")
    n = clients
    layers = model.stage_layers[0]
    kern = model.kernels
    state = np.full(n, _WAITING)
    prio = np.arange(n, dtype=np.int64)
    gen = np.zeros(n, dtype=np.int64)  # tokens streamed so far
    held = np.zeros(n, dtype=np.int64)  # KV blocks held
    submit = np.zeros(n)
    last = np.zeros(n)  # time of the last streamed token
    done_rounds = np.zeros(n, dtype=np.int64)
    # a request is seen by the engine from the iteration after the one running when it was
    # sent (``admission_lag``); all are sent at t = 0
    eligible = np.full(n, not admission_lag)
    counter = n
    t = 0.0
    ttft: list[float] = []
    gaps: list[float] = []
    weights: list[float] = []
    preemptions = iterations = max_held = 0
    prefill_memo: dict[tuple[int, float], float] = {}

    def prefill_layer(k: int, q: float) -> float:
        key = (k, q)
        v = prefill_memo.get(key)
        if v is None:
            v = prefill_memo[key] = float(kern.step_layer_s(0.0, 0.0, float(k), q, 0.0))
        return v

    while True:
        live = np.flatnonzero(state != _DONE)
        if live.size == 0:
            break
        cand = live[eligible[live] | (held[live] > 0)]
        if cand.size == 0:
            # an idle engine blocks on its queue and wakes on the first request to arrive,
            # taking it alone: the others, sent at the same moment, join the next iteration
            first = live[np.argmin(prio[live])]
            cand = np.asarray([first])
        order = cand[np.argsort(prio[cand], kind="stable")]
        ctx = prompt + gen - 1  # context each holds once prefilled (the last token pending)
        free = total - int(held.sum())
        run_mask = np.zeros(n, dtype=bool)
        for pos, i in enumerate(order):
            need = max(0, -(-(int(ctx[i]) + 1) // bt) - int(held[i]))
            if need > free:
                lower = [j for j in order[pos + 1:][::-1] if held[j] > 0]
                if free + sum(int(held[j]) for j in lower) >= need:
                    for j in lower:  # preempt from the lowest priority up
                        free += int(held[j])
                        held[j] = 0
                        if state[j] == _ACTIVE:
                            state[j] = _WAITING
                            preemptions += 1
                        if free >= need:
                            break
            if need <= free:
                free -= need
                held[i] += need
                run_mask[i] = True
        running = np.flatnonzero(run_mask)
        if running.size == 0:
            raise InfeasibleDesign("no sequence can get its KV blocks")
        new = running[state[running] == _WAITING]
        n_run = running.size
        if new.size:
            # one iteration: prefill the new contexts, then one decode step of all
            q = float(np.mean(ctx[new]))
            dt = layers * prefill_layer(int(new.size), q) if q > 0 else 0.0
            dt += model.decode_s(0, n_run, float(np.mean(ctx[running])))
            steps = 1
        else:
            # a run of decode iterations until a sequence finishes or the blocks run out
            steps = int(np.min(output - gen[running]))
            c = ctx[running]
            first_new = held[running] * bt - c + 1  # the step that first needs another block
            marks = [s for f0 in first_new for s in range(int(f0), steps + 1, bt)]
            if len(marks) > free:  # the step whose blocks run out is the next event
                steps = max(1, sorted(marks)[free] - 1)
            fixed, attn, head = model._decode_parts(n_run)
            kv0 = float(np.mean(c))
            dt = steps * (layers * (fixed + attn * (kv0 + 1.0)) + head) \
                + layers * attn * steps * (steps - 1) / 2.0
        t_end = t + dt
        step_dur = dt / steps
        iterations += steps
        for i in running:
            if gen[i] == 0:
                ttft.append(t_end - submit[i] if steps == 1 else t + step_dur - submit[i])
                if steps > 1:
                    gaps.append(step_dur)
                    weights.append(float(steps - 1))
            else:
                gaps.append(t + step_dur - last[i])
                weights.append(1.0)
                if steps > 1:
                    gaps.append(step_dur)
                    weights.append(float(steps - 1))
        gen[running] += steps
        ctx_after = prompt + gen[running] - 1
        held[running] = np.maximum(held[running], -(-ctx_after // bt))
        max_held = max(max_held, int(held.sum()))
        if max_held > total:  # the schedule above never over-commits
            raise AssertionError("KV blocks over-committed")
        state[running] = _ACTIVE
        last[running] = t_end
        eligible[:] = True
        t = t_end
        for i in running[gen[running] >= output]:
            held[i] = 0
            done_rounds[i] += 1
            if done_rounds[i] >= rounds:
                state[i] = _DONE
            else:
                state[i], gen[i], submit[i], prio[i] = _WAITING, 0, t, counter
                eligible[i] = not admission_lag
                counter += 1
    requests = n * rounds
    ttft_arr = np.asarray(ttft)
    # (the benchmark rounds each gap to 1 ms first: the cases' reference_error)
    p50 = _weighted_median(gaps, weights)
    return BenchmarkResult(
        throughput_tokens_per_s=requests * output / t, ttft_mean_s=float(ttft_arr.mean()),
        ttft_min_s=float(ttft_arr.min()), ttft_max_s=float(ttft_arr.max()),
        token_latency_p50_s=p50, elapsed_s=t, requests=requests, preemptions=preemptions,
        iterations=iterations, max_blocks_held=max_held)

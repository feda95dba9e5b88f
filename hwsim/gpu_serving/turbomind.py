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
``Materialize``; ``BlockManager.cc``): before every iteration the sequences in the batch (at
most ``max_batch_size``, 128 in the benchmark's config: every client's request) are taken in
priority order (the order their requests arrived: ``LlamaBatch::ProcessInferRequests`` numbers
them) and each is given the KV blocks its context needs for the iteration plus
``step_length`` (1) tokens more (the context ``h_context_length`` counts the token just
generated, one beyond the cache: :data:`STEP_LENGTH`), from the free blocks or else by
preempting sequences of lower priority, the lowest first; a transaction commits only when it
gathers all its blocks, and a preemption puts the victim and every sequence below it out of
this iteration (the scheduling loop's bound drops to the victim). A victim's blocks go to the
cache, of which only the blocks needed are evicted, oldest stamp first, and
``BlockManager::Touch`` stamps a sequence's blocks last to first: the victim loses its tail,
keeps the prefix nobody took (``Verify`` keeps the valid leading blocks) and later recomputes
only what it lost (``keep_prefix``). A sequence that cannot get its blocks waits, keeping what
it holds. The iteration prefills the context of every newly admitted (or recomputed) sequence
(all but the last prompt token: ``last_prompt_token_decoded``) and then runs one decode step of
every admitted sequence, which streams each one token.
``LlamaBatch::InternalThreadEntry`` takes the queued requests at the start of each iteration
and blocks on the queue only when its batch is empty: a request a client sends when its
previous one streamed its last token is seen from the next iteration (the engine has started
it), and an idle engine wakes on the first request to arrive, alone (``admission_lag``).

These are read in the v0.1-era sources stored for InternLM/lmdeploy (the block reservation
``context_length + step_length``, the eviction by oldest stamp, the reverse stamping, the
prefix verification and the loop bound ``j = v`` are the same in every version read, up to
the current ``SequenceManager.cc``); the exact files of the v0.1.0a1 tag were not available.

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

#: decode steps per engine iteration (``step_length`` of TurboMind's config, 1): Materialize
#: reserves blocks for the context plus this many tokens, the context counting the token just
#: generated (``h_context_length`` = cached tokens + 1), so a sequence holds the blocks of one
#: token more than its cache will after the iteration
STEP_LENGTH = 1

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


def _take(pool: list[int], held: np.ndarray, short: int) -> int:
    """Evict up to ``short`` blocks from the pass's victims in ``pool`` (the first released
    first, each from its tail: BlockManager::Touch stamps a sequence's blocks last to first and
    Evict takes the oldest stamps), so a victim keeps the prefix nobody needed; the blocks
    still missing."""
    while short > 0 and pool:
        j = pool[0]
        take = min(short, int(held[j]))
        held[j] -= take
        short -= take
        if held[j] == 0:
            pool.pop(0)
    return short


def _take_all(pool: list[int], held: np.ndarray, short: int) -> int:
    """As :func:`_take`, but a victim's blocks are all lost (the whole context recomputed)."""
    for j in pool:
        short -= int(held[j])
        held[j] = 0
    pool.clear()
    return max(0, short)


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
        admission_lag: bool = True, reserve_ahead: int = STEP_LENGTH,
        keep_prefix: bool = True) -> BenchmarkResult:
    """Simulate ``clients`` closed-loop clients sending ``rounds`` requests each of ``prompt``
    + ``output`` tokens to one TurboMind replica (one pipeline stage) with ``blocks`` KV blocks
    of ``mapping.kv_block_tokens`` (default: what the usable HBM holds beside the weights).

    ``reserve_ahead``: the tokens beyond this iteration's a sequence's blocks must cover
    (TurboMind's ``step_length``, 1); ``keep_prefix``: a preempted sequence loses only the
    blocks taken from it, tail first, and recomputes only those (TurboMind's eviction order),
    else it loses them all."""
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
    prefill_memo: dict[tuple[int, float, float], float] = {}
    cached = np.zeros(n, dtype=np.int64)  # tokens each has in the KV cache

    def prefill_layer(k: int, q: float, kv: float) -> float:
        key = (k, q, kv)
        v = prefill_memo.get(key)
        if v is None:
            v = prefill_memo[key] = float(kern.step_layer_s(0.0, 0.0, float(k), q, kv))
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
        # victims of this pass whose released blocks are not all taken yet, in the order the
        # cache evicts them (first released first, each from its tail)
        pool: list[int] = []
        limit = order.size  # sequences from here on were preempted in this pass
        pos = 0
        while pos < limit:
            i = order[pos]
            need = max(0, -(-(int(ctx[i]) + 1 + reserve_ahead) // bt) - int(held[i]))
            short = need - min(need, free)
            lower = [j for j in order[pos + 1:limit][::-1] if held[j] > 0 and j not in pool]
            # a transaction commits only when it gathers all its blocks
            if short <= sum(int(held[j]) for j in pool) + sum(int(held[j]) for j in lower):
                short = _take(pool, held, short)
                for j in lower:  # preempt from the lowest priority up
                    if short == 0:
                        break
                    if state[j] == _ACTIVE:
                        preemptions += 1
                    state[j] = _WAITING
                    pool.append(int(j))
                    limit = int(np.flatnonzero(order == j)[0])
                    short = _take(pool, held, short) if keep_prefix else \
                        _take_all(pool, held, short)
                held[i] += need
                free = total - int(held.sum())
                run_mask[i] = True
            pos += 1
        skipped = any(held[j] == 0 and j not in pool for j in order[limit:])
        np.minimum(cached, held * bt, out=cached)
        running = np.flatnonzero(run_mask)
        if running.size == 0:
            raise InfeasibleDesign("no sequence can get its KV blocks")
        new = running[state[running] == _WAITING]
        n_run = running.size
        if new.size:
            # one iteration: prefill the new contexts (a recomputed one from what its kept
            # blocks still hold), then one decode step of all
            miss = ctx[new] - cached[new]
            pre = new[miss > 0]
            dt = 0.0
            if pre.size:
                dt = layers * prefill_layer(int(pre.size), float(np.mean(miss[miss > 0])),
                                            float(np.mean(cached[pre])))
            dt += model.decode_s(0, n_run, float(np.mean(ctx[running])))
            steps = 1
        else:
            # a run of decode iterations until a sequence finishes or the blocks run out
            steps = int(np.min(output - gen[running]))
            if skipped or np.any(~eligible[live] & (held[live] == 0)):
                # a request sent during the last iteration joins the next one, as does one a
                # preemption in this pass put out of its reach: one iteration only
                steps = 1
            c = ctx[running]
            # the step that first needs another block
            first_new = held[running] * bt - c + 1 - reserve_ahead
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
        held[running] = np.maximum(held[running], -(-(ctx_after + reserve_ahead) // bt))
        cached[running] = ctx_after
        max_held = max(max_held, int(held.sum()))
        if max_held > total:  # the schedule above never over-commits
            raise AssertionError("KV blocks over-committed")
        state[running] = _ACTIVE
        last[running] = t_end
        eligible[:] = True
        t = t_end
        for i in running[gen[running] >= output]:
            held[i] = cached[i] = 0
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

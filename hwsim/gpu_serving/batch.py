"""The ``gpu-serving`` analytical evaluator over many design points at once (numpy).

:func:`block` takes the fixed inputs and ``{"role.key": array}`` and returns ``{metric:
array}``, NaN in every metric of an infeasible point (the model does not fit, more devices than
heads or stages than layers, ``micro_batch > batch``) and a reason. The scalar evaluator is
this on one point (:func:`hwsim.batch.evaluate_one`).

The step model is :class:`hwsim.gpu_serving.roofline.Kernels`, the one the DES's per-stage
:class:`~hwsim.gpu_serving.roofline.RooflineStepModel` uses. The saturated-replica closed forms
are those of :mod:`hwsim.serving.saturation`, specialised to this step model: stages differ only
in their layer count (the first ``layers % pp`` hold one more) and the LM head on the last one,
lanes only in the last one's size (``batch % micro_batch``), so each maximum over stages and
lanes has a few candidates, and the pipeline fill (a flow shop of identical lanes but the last)
has the closed form ``max_a [prefix(a) + (lanes - 2) max_{j <= a} t_j + suffix'(a)]`` over
machines ``a`` (stages and links), plus the links' latencies. Tests check the two paths agree
point by point.

Keys vectorised directly: :data:`VECTOR_KEYS`. Any other key (a data type, the pricing, a spec
file chosen by name with a bare role) is grouped by the core (:mod:`hwsim.batch`), which
re-resolves the inputs of each group.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from hwsim.batch import REASON, reasons
from hwsim.gpu_serving.cost import costs
from hwsim.gpu_serving.roofline import (
    Kernels,
    crosses_servers,
    kv_charge_tokens,
    kv_plan,
    stage_link_Bps,
)
from hwsim.serving import load
from hwsim.serving.des import lengths, longest_context
from hwsim.system import Inputs

log = logging.getLogger(__name__)

#: keys evaluated as arrays (anything else is grouped by the core, :mod:`hwsim.batch`)
VECTOR_KEYS: frozenset[str] = frozenset(
    [f"mapping.{k}" for k in ("tensor_parallel", "pipeline_parallel", "batch", "micro_batch",
                              "hbm_usable_fraction", "kv_block_tokens", "max_batch_tokens",
                              "replicas", "prefill_replicas")]
    + [f"traffic.{k}" for k in ("prompt_tokens", "output_tokens", "arrival_rate_per_s")]
    + [f"calibration.{k}" for k in ("bandwidth_efficiency", "compute_efficiency",
                                    "interconnect_efficiency", "interconnect_latency_us",
                                    "layer_overhead_us")]
    + [f"device.{k}" for k in ("hbm_bandwidth_GBps", "hbm_capacity_GB",
                               "interconnect_bandwidth_GBps", "network_bandwidth_GBps",
                               "peak_16bit_TFLOPS", "peak_8bit_TFLOPS",
                               "rental_usd_per_device_hour")])

#: design points per block (bounds the (points x machines) temporaries)
BLOCK = 65536


def block(inputs: Inputs, vec: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Metrics of ``n`` design points (the :class:`hwsim.batch.BatchModel` block): the fixed
    ``inputs`` with ``vec`` (:data:`VECTOR_KEYS` -> arrays) applied; NaN in every metric of an
    infeasible point, with a reason."""
    return _evaluate(inputs, vec, n)


def _view(spec: Any, vec: Mapping[str, np.ndarray], role: str) -> Any:
    """``spec`` with its vectorised keys replaced by arrays (a look-alike, not validated)."""
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    for k, v in vec.items():
        r, _, rest = k.partition(".")
        if r == role:
            fields[rest] = v
    return SimpleNamespace(**fields)


def _evaluate(inputs: Inputs, vec: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The closed forms of :mod:`hwsim.serving.saturation` on :class:`Kernels`, per point."""
    llm, mp_spec, traffic = inputs["llm"], inputs["mapping"], inputs["traffic"]
    gpu_spec = inputs["device"]
    gpu, mp = _view(gpu_spec, vec, "device"), _view(mp_spec, vec, "mapping")
    cal = _view(inputs["calibration"], vec, "calibration")

    def arr(x: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, dtype=float), (n,))

    tp, pp, b = arr(mp.tensor_parallel), arr(mp.pipeline_parallel), arr(mp.batch)
    replicas = arr(mp.replicas)
    micro = arr(mp.micro_batch)
    m = np.where(micro > 0, micro, np.ceil(b / pp))
    if traffic.arrival == "trace":
        ln = lengths(traffic)
        prompt, output, longest = arr(ln.mean_prompt), arr(ln.mean_output), arr(
            ln.longest_context)
    else:  # as hwsim.serving.des.lengths, per point
        prompt = arr(vec.get("traffic.prompt_tokens", traffic.prompt_tokens))
        output = arr(vec.get("traffic.output_tokens", traffic.output_tokens))
        longest = longest_context(prompt, output, traffic.length_distribution)

    heads_ok = (tp <= llm.heads) | (mp.attention_sharding == "batch")
    ep_ok = ~(bool(mp.expert_parallel and llm.is_moe) & (np.mod(llm.experts, tp) != 0))
    ok = (m <= b) & (pp <= llm.layers) & heads_ok & ep_ok
    pp = np.where(ok, pp, 1.0)  # keep the arithmetic of rejected points harmless
    m = np.where(ok, m, 1.0)
    k = Kernels.build(gpu, cal, llm, SimpleNamespace(**{**vars(mp), "tensor_parallel": tp}))
    ev = _Distinct(k, n)  # the step model on the distinct points
    dev = k.device
    per = gpu.devices_per_server

    # stages: the first `extra` hold one layer more; the last adds the LM head
    base, extra = np.floor(llm.layers / pp), np.mod(llm.layers, pp)
    n_first = base + (extra > 0)

    # capacity: stage 0 (embeddings, most layers) and the last stage (LM head) are the largest
    charge = kv_charge_tokens(mp, prompt, output, longest)
    plan = kv_plan(k, gpu, mp, b, charge,
                   [(n_first, True, pp == 1), (np.where(pp == 1, n_first, base), pp == 1, True)],
                   pp)
    queue = mp.kv_overflow == "queue"
    chunk = arr(mp.max_batch_tokens)
    chunked = chunk > 0
    if queue:  # as many sequences run as fit; the rest of the batch waits
        b_req = b
        b = np.where(plan.weights_fit, np.minimum(b, np.maximum(plan.sequences, 1.0)), b)
        m = np.where(micro > 0, np.minimum(micro, b), np.ceil(b / pp))
        m = np.where(ok, m, 1.0)
        fits = plan.weights_fit & (plan.sequences >= 1)
        why = "not one sequence's KV cache fits beside the weights in the usable HBM"
    else:
        b_req = b
        fits = plan.batch_fits
        why = "weights and KV cache exceed the usable HBM of a device"
    reason = reasons(n, [
        (~(m <= b), "micro_batch exceeds batch"),
        (~(pp <= llm.layers), f"more pipeline stages than the {llm.layers} layers"),
        (~heads_ok, f"tensor_parallel exceeds the {llm.heads} heads (attention_sharding = "
                    "'batch' lifts this)"),
        (~ep_ok, f"expert_parallel: the {llm.experts} experts do not split evenly over "
                 "tensor_parallel"),
        (~plan.weights_fit, "the weights exceed the usable HBM of a device"),
        (~fits, why),
        (chunked & (pp > 1), "chunked prefill (max_batch_tokens) is modelled for one "
                             "pipeline stage"),
        (chunked & (chunk < 2) & (output > 1), "max_batch_tokens must leave room for a "
                                               "prefill chunk beside the decodes"),
    ])
    ok &= fits & ~(chunked & (pp > 1)) & ~(chunked & (chunk < 2) & (output > 1))

    # lanes: `full` of m sequences, then one of `rest` (if any)
    full, rest = np.floor(b / m), np.mod(b, m)
    lanes = full + (rest > 0)
    last = np.where(rest > 0, rest, m)

    # links: how many of the pp - 1 leave the server; bytes per token-row
    n_links = pp - 1
    groups = np.maximum(np.floor(per / tp), 1.0)
    n_cross = np.where(tp > per, n_links, np.floor(n_links / groups))
    n_local = n_links - n_cross
    bw_net = stage_link_Bps(gpu, cal, True, tp)
    bw_local = stage_link_Bps(gpu, cal, False, tp)
    lat = arr(cal.interconnect_latency_us) * 1e-6
    row_bytes = float(llm.d_model * k.act_bytes)

    def links_s(rows: np.ndarray) -> np.ndarray:
        return n_cross * (rows * row_bytes / bw_net) + n_local * (rows * row_bytes / bw_local)

    # decode rounds at the mean cached context
    kv = prompt + (output - 2) / 2.0

    def decode_round(n_a: np.ndarray, a: np.ndarray, n_c: np.ndarray,
                     c: np.ndarray) -> np.ndarray:
        """A round of ``n_a`` lanes of ``a`` sequences and ``n_c`` of ``c`` (counts may be
        fractional: a mean occupancy): the busiest stage or link, or the slowest trip."""
        d_a, h_a = ev("layer_s", a, 1.0, kv), ev("head_s", a)
        d_c, h_c = ev("layer_s", c, 1.0, kv), ev("head_s", c)
        d_sum, h_sum = n_a * d_a + n_c * d_c, n_a * h_a + n_c * h_c
        stage_busy = np.maximum(n_first * d_sum + (pp == 1) * h_sum, base * d_sum + h_sum)
        seqs = n_a * a + n_c * c
        link_busy = np.maximum(np.where(n_cross > 0, seqs * row_bytes / bw_net, 0.0),
                               np.where(n_local > 0, seqs * row_bytes / bw_local, 0.0))
        trip = np.maximum(np.where(n_a > 0, llm.layers * d_a + h_a + links_s(a), 0.0),
                          np.where(n_c > 0, llm.layers * d_c + h_c + links_s(c), 0.0))
        return np.maximum(np.maximum(stage_busy, link_busy), trip + n_links * lat)

    # saturation (closed traffic): every lane full, a static batch prefilled then decoded
    full_round = np.where(output > 1, decode_round(full, m, (rest > 0) * 1.0, last), 0.0)
    fill = _pipeline_fill(ev, per, tp, pp, base, extra, m, last, lanes, prompt,
                          row_bytes / bw_net, row_bytes / bw_local) + n_links * lat
    capacity = b * output / (fill + (output - 1) * full_round)

    def first_token(seqs: np.ndarray) -> np.ndarray:
        """One micro-batch of ``seqs`` requests prefilled through every stage, idle replica."""
        return (ev("layer_s", seqs, prompt, 0.0) * llm.layers + ev("head_s", seqs)
                + links_s(np.floor(seqs * prompt)) + n_links * lat)

    rate = load.arrival_rate(traffic)
    plain_round = full_round  # the decode steady state alone (decode_throughput)
    n_pre = arr(mp.prefill_replicas)
    disagg = n_pre > 0
    if np.any(chunked):  # chunked prefill: the saturated steady state of mixed steps
        c_thr, c_step, c_ttft, _ = _chunked(ev, llm.layers, b, chunk, prompt, output)
        capacity = np.where(chunked, c_thr, capacity)
        full_round = np.where(chunked, c_step, full_round)
        fill = np.where(chunked, c_ttft, fill)
    if rate is None or not np.isfinite(rate):
        thr, round_s, ttft = capacity, full_round, first_token(m)
        if np.any(chunked):
            ttft = np.where(chunked, c_ttft, ttft)
        if queue:  # a batch larger than what fits runs in waves: later ones wait
            waves = np.ceil(b_req / b)
            behind = np.where(waves > 1, (waves - 1) * (b_req - (waves) * b / 2.0) / b_req,
                              0.0)
            wave_s = np.where(chunked, 0.0, fill + (output - 1) * full_round)
            ttft = ttft + behind * wave_s
    else:  # open arrivals: the occupancy Little's law gives (hwsim.serving.load)
        # the router spreads the arrivals evenly: each replica sees 1 / replicas of them
        lam = arr(vec.get("traffic.arrival_rate_per_s", rate)) / replicas
        ttft = first_token(np.ones(n))  # the request's own prefill; its wait is added below
        stretch = load.interference(lam, ttft)

        def round_at(s: np.ndarray) -> np.ndarray:
            active, size = load.spread(s, lanes)
            return load.per_token_s(decode_round(active, size, np.zeros(n), size), lam, ttft,
                                    output)

        occ = load.occupancy(lam, output, b, round_at)
        round_s = np.where(output > 1, round_at(occ), 0.0)
        active, size = load.spread(occ, lanes)
        ttft = load.first_token_s(ttft, lam, decode_round(active, size, np.zeros(n), size),
                                  output)
        thr = lam * output
        stable = (lam * output < capacity) & np.isfinite(stretch)
        if traffic.arrival == "trace":  # a finite burst faster than the replica: saturated
            thr = np.where(stable, thr, capacity)
            round_s = np.where(stable, round_s, full_round)
            ttft = np.where(stable, ttft, first_token(m))
        else:  # an endless stream faster than the replica: the queue grows forever
            reason = np.where((reason == "") & ~stable & ~disagg, "arrivals outpace the "
                              "replica: the offered output rate is at or above its saturated "
                              "capacity", reason)
            ok &= stable | disagg  # disaggregation: its own pools' stability (below)

        reason = np.where((reason == "") & chunked, "chunked prefill (max_batch_tokens) is "
                          "modelled for closed traffic (saturation)", reason)
        ok &= ~chunked

    # the deployment: replicas x one replica's devices and throughput
    thr = thr * replicas
    dec_thr = replicas * b / np.where(plain_round > 0, plain_round, np.nan)
    if np.any(disagg):  # prefill/decode disaggregation (one stage)
        lam = None if rate is None or not np.isfinite(rate) else arr(
            vec.get("traffic.arrival_rate_per_s", rate))
        d_thr, d_tpot, d_ttft, d_fill, d_ok, d_why = _disaggregated(
            k, llm.layers, b, replicas, n_pre, prompt, output, lam,
            arr(gpu.network_bandwidth_GBps) * 1e9 * arr(cal.interconnect_efficiency), lat,
            first_token(np.ones(n)))
        thr = np.where(disagg, d_thr, thr)
        round_s = np.where(disagg, d_tpot, round_s)
        ttft = np.where(disagg, d_ttft, ttft)
        fill = np.where(disagg, d_fill, fill)
        bad = disagg & (pp > 1)
        reason = np.where((reason == "") & bad, "prefill/decode disaggregation is modelled "
                          "for one pipeline stage", reason)
        bad |= disagg & chunked
        reason = np.where((reason == "") & bad, "prefill/decode disaggregation with chunked "
                          "prefill is not modelled", reason)
        reason = np.where((reason == "") & disagg & ~d_ok, d_why, reason)
        ok &= ~bad & (~disagg | d_ok)
    out = costs(gpu_spec, llm, mp_spec.pricing, tp * pp * (replicas + n_pre), dev.peak_flops, thr,
                inputs.get("tco"), rental_rate=gpu.rental_usd_per_device_hour,
                processed_per_output=(prompt + output) / output,
                decode_throughput=np.where(output > 1, replicas * b / np.where(
                    plain_round > 0, plain_round, 1.0), np.nan))
    out.update({"latency_ms_per_token": round_s * 1e3, "ttft_ms": ttft * 1e3,
                "throughput_tokens_per_s": thr, "batch_prefill_ms": fill * 1e3,
                "decode_throughput_tokens_per_s": dec_thr})
    # the batch's weights (encoded) and KV cache fit in the usable HBM of every device
    out["fits_in_memory"] = plan.batch_fits.astype(float)
    res = {key: np.where(ok, arr(v), np.nan) for key, v in out.items()}
    res[REASON] = reason.astype(object)
    return res


def _disaggregated(k: Kernels, layers: int, b: np.ndarray, decoders: np.ndarray,
                   prefillers: np.ndarray, prompt: np.ndarray, output: np.ndarray,
                   lam: np.ndarray | None, net_Bps: np.ndarray, lat: np.ndarray,
                   t_p1: np.ndarray) -> tuple[np.ndarray, ...]:
    """Prefill/decode disaggregation, one stage: ``prefillers`` replicas prefill one request at
    a time (``t_p1``) and send its KV cache over the network (each device its shard, at the
    device's network bandwidth: ``kv_s``); ``decoders`` replicas decode up to ``b`` sequences
    each, never stalled by a prefill. Closed traffic: the slower pool sets the request rate
    (no queueing in the first token, as the colocated closed form); open arrivals at ``lam``:
    each prefill replica an M/D/1 queue of ``lam / prefillers``, each decode replica the
    occupancy of ``lam / decoders``. The KV transfer delays the second token: TPOT is the
    decode round plus ``kv_s / (O - 1)``. Returns (deployment output tokens/s, TPOT, TTFT,
    prefill time, feasible, reason)."""
    o1 = np.maximum(output - 1.0, 0.0)
    kv = prompt + (output - 2.0) / 2.0
    kv_s = k.kv_bytes(float(layers), 1.0, prompt) / net_Bps + lat

    def round_at(s: np.ndarray) -> np.ndarray:
        return layers * k.layer_s(s, 1.0, kv) + k.head_s(s)

    dec_cap = np.where(o1 > 0, decoders * b / np.where(o1 > 0, o1 * round_at(b), 1.0), np.inf)
    pre_cap = prefillers / t_p1
    if lam is None:
        req = np.minimum(pre_cap, dec_cap)
        ttft, ok = t_p1, np.ones(np.shape(req), dtype=bool)
        why = np.full(np.shape(req), "", dtype=object)
    else:
        req = lam
        rho = lam * t_p1 / prefillers
        ttft = t_p1 + np.where(rho < 1, rho * t_p1 / (2.0 * np.maximum(1.0 - rho, 1e-12)),
                               np.inf)
        ok = (rho < 1) & (lam < dec_cap)
        why = np.where(rho >= 1, "arrivals outpace the prefill replicas", np.where(
            lam >= dec_cap, "arrivals outpace the decode replicas", ""))
    occ = load.occupancy(req / decoders, output, b, round_at)
    tpot = np.where(o1 > 0, round_at(occ) + kv_s / np.maximum(o1, 1.0), 0.0)
    return req * output, tpot, ttft, t_p1, ok, why


def _chunked(ev: _Distinct, layers: int, flight: np.ndarray, budget: np.ndarray,
             prompt: np.ndarray, output: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Saturated continuous batching with chunked prefill (one stage): every step decodes
    ``n`` sequences and prefills ``x`` prompt tokens within the token budget. In the steady
    state a request enters for every one that leaves, so ``x / P = n / (O - 1)``; ``n`` is what
    the budget allows (``n + x <= budget``) or the sequences in flight (``flight``, of which
    ``(O - 1) / O`` are decoding). Returns (output tokens/s, step time, time to first token:
    the oldest waiting prompt gets what the decodes leave of the budget, so ``P / (budget -
    n)`` steps, at least one; decoding sequences)."""
    o1 = np.maximum(output - 1.0, 0.0)
    share = np.where(output > 0, o1 / output, 0.0)
    n_budget = np.where(o1 > 0, budget / (1.0 + prompt / np.where(o1 > 0, o1, 1.0)), 0.0)
    n_dec = np.minimum(flight * share, n_budget)
    x = np.where(o1 > 0, n_dec * prompt / np.where(o1 > 0, o1, 1.0),
                 np.minimum(budget, flight * prompt))
    pre_seqs = x / prompt
    kv = prompt + (output - 2.0) / 2.0
    step = (layers * ev("step_layer_s", n_dec, kv, pre_seqs, prompt, 0.0)
            + ev("head_s", n_dec + pre_seqs))
    tokens = n_dec + pre_seqs  # one per decode, the first one of each prompt completed
    thr = tokens / step
    ttft = np.maximum(prompt / np.maximum(budget - n_dec, 1e-30), 1.0) * step
    return thr, step, ttft, n_dec


def _pipeline_fill(ev: _Distinct, per: int, tp: np.ndarray, pp: np.ndarray, base: np.ndarray,
                   extra: np.ndarray, m: np.ndarray, last: np.ndarray, lanes: np.ndarray,
                   prompt: np.ndarray, row_s_net: np.ndarray, row_s_local: np.ndarray
                   ) -> np.ndarray:
    """Makespan of the prefill flow shop without the links' latencies (every path from the
    first lane's first stage to the last lane's last stage crosses each link once, so they add
    ``(pp - 1) x latency``): lanes ``1 .. N-1`` of ``m`` sequences, lane ``N`` of ``last``;
    ``row_s_*``: seconds per activation row on a link leaving the server or staying in it."""
    pmax = int(pp.max())
    stage = np.arange(pmax)[None, :]
    pcol = pp[:, None]
    # per stage: its layers and whether it is the last (0 and False past the last stage); per
    # link: the seconds of one row (0 past the last link)
    layers = np.where(stage < pcol, base[:, None] + (stage < extra[:, None]), 0.0)
    is_last = (stage == pcol - 1).astype(float)
    row_s = np.where(stage < pcol - 1,
                     np.where(crosses_servers(stage, tp[:, None], per), row_s_net[:, None],
                              row_s_local[:, None]), 0.0)

    def machines(size: np.ndarray) -> np.ndarray:
        t = np.empty((len(size), 2 * pmax))
        s, link = t[:, 0::2], t[:, 1::2]
        np.multiply(layers, ev("layer_s", size, prompt, 0.0)[:, None], out=s)
        s += is_last * ev("head_s", size)[:, None]
        np.multiply(np.floor(size * prompt)[:, None], row_s, out=link)
        return t

    t, t_last = machines(m), machines(last)
    prefix = np.cumsum(t, axis=1)
    suffix = np.cumsum(t_last[:, ::-1], axis=1)[:, ::-1]
    many = np.max(prefix + (lanes[:, None] - 2) * np.maximum.accumulate(t, axis=1) + suffix,
                  axis=1)
    return np.where(lanes > 1, many, t_last.sum(axis=1))


# --------------------------------------------------------------------------------------------
# the step model on the distinct points only


def _take(x: Any, idx: np.ndarray, n: int) -> Any:
    """``x[idx]`` for a per-point array (shape ``(n,)``), a dataclass or namespace with such
    fields taken field by field; anything else (a scalar, a spec table) as it is."""
    if isinstance(x, np.ndarray):
        return x[idx] if x.shape == (n,) else x
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        if not _point_arrays(x, n, []):
            return x  # a spec table: no per-point values
        return dataclasses.replace(x, **{f.name: _take(getattr(x, f.name), idx, n)
                                         for f in dataclasses.fields(x) if f.init})
    if isinstance(x, SimpleNamespace):
        return SimpleNamespace(**{a: _take(v, idx, n) for a, v in vars(x).items()})
    return x


def _point_arrays(x: Any, n: int, out: list[np.ndarray], depth: int = 0) -> list[np.ndarray]:
    """The per-point arrays (shape ``(n,)``) inside ``x`` (fields of dataclasses and
    namespaces, two levels deep)."""
    if isinstance(x, np.ndarray):
        if x.shape == (n,):
            out.append(x)
    elif depth < 2 and dataclasses.is_dataclass(x) and not isinstance(x, type):
        for f in dataclasses.fields(x):
            _point_arrays(getattr(x, f.name), n, out, depth + 1)
    elif depth < 2 and isinstance(x, SimpleNamespace):
        for v in vars(x).values():
            _point_arrays(v, n, out, depth + 1)
    return out


def _group_codes(columns: list[np.ndarray], n: int) -> np.ndarray:
    """One integer per point, equal for points equal in every column, numbered in order of
    first appearance (``pandas.factorize``: a hash table, no sort)."""
    import pandas as pd

    code = np.zeros(n, dtype=np.int64)
    size = 1  # codes are below this (a mixed-radix number of the columns' codes)
    for col in columns:
        c, uniq = pd.factorize(col, use_na_sentinel=False)
        if len(uniq) == 1:
            continue
        if size * len(uniq) >= 1 << 62:  # renumber before the product could overflow
            code, u = pd.factorize(code, use_na_sentinel=False)
            size = len(u)
        code = code * len(uniq) + c
        size *= len(uniq)
    if size == 1:
        return code
    return pd.factorize(code, use_na_sentinel=False)[0]


class _Distinct:
    """:class:`Kernels` methods evaluated once per distinct point and scattered back.

    A sweep's grid repeats the step model's inputs: the time of a layer depends on the
    tensor-parallel degree, the device's rates and the batch and lengths, not on the pipeline
    depth, the output length or the price; so each call finds the points whose inputs (the
    step model's per-point arrays and the call's arguments) are all equal, evaluates the
    method on one of each (a :class:`Kernels` cut to those points) and gathers the result.
    Where most points are distinct it evaluates them all directly. The values are those of the
    direct evaluation (the same arithmetic on the same numbers). Results are remembered per
    argument objects, so a quantity two closed forms need is computed once."""

    #: evaluate directly when more than this share of the points is distinct
    DENSE = 0.5

    def __init__(self, k: Kernels, n: int) -> None:
        self.k, self.n = k, n
        self.base = _group_codes(_point_arrays(k, n, []), n)
        self._memo: dict[tuple, tuple[tuple, np.ndarray]] = {}

    def __call__(self, name: str, *args: Any) -> np.ndarray:
        key = (name, *(id(a) if isinstance(a, np.ndarray) else float(a) for a in args))
        hit = self._memo.get(key)
        if hit is not None:
            return hit[1]
        n = self.n
        arrays = [a for a in args if isinstance(a, np.ndarray) and a.ndim]
        if any(a.shape != (n,) for a in arrays):  # not one value per point: as it is
            return getattr(self.k, name)(*args)
        code = _group_codes([self.base, *arrays], n)
        distinct = int(code.max()) + 1 if n else 0
        if n == 0 or distinct > self.DENSE * n:
            out = np.broadcast_to(getattr(self.k, name)(*args), (n,))
        else:
            # codes number the groups in order of first appearance: the first point of each
            first = np.flatnonzero(code > np.concatenate(
                ([-1], np.maximum.accumulate(code)[:-1])))
            sub = _take(self.k, first, n)
            vals = getattr(sub, name)(*(_take(a, first, n) for a in args))
            out = np.broadcast_to(vals, (distinct,))[code]
        self._memo[key] = (args, out)  # the arguments held: their ids stay theirs
        return out

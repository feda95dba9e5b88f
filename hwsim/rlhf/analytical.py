"""The analytical RLHF model: DeepSpeed-Chat's three steps on a cluster of GPUs.

Step 3 (PPO) runs ``ceil(pairs / (gpus x per_device_batch))`` iterations; one iteration is

1. **generation** with the Hybrid Engine: under ZeRO-3 the actor's partitioned weights are
   all-gathered (``2 P (g-1)/g`` bytes per GPU on the NVLink, or the network beyond one node),
   in groups of ``tp_gather_partition_size`` layers, and re-sliced into
   ``inference_tp_size``-way tensor-parallel inference weights (one HBM read and write of the
   slice); each tensor-parallel group of ``t`` GPUs then prefills ``t x b`` prompts and decodes
   ``answer_tokens`` steps with a KV cache, priced by the shared roofline step model
   (:func:`hwsim.llm.perf.prefill`, :func:`hwsim.llm.perf.decode_step`) plus the vocabulary
   projection. Decode is HBM-bound: every step reads the ``2 P / t`` weight bytes;
2. **scoring**: forward passes over the ``prompt + answer`` tokens of the actor (log-probs),
   the frozen reference actor, the reward model and the critic, each the longer of its FLOPs at
   the fitted rate and its ZeRO-3 weight all-gather (prefetched);
3. **training**: the actor (LoRA adapters, base frozen, gradient checkpointing) and the critic
   (every weight) each run ``ppo_epochs`` forward + backward passes over the same tokens
   (:func:`hwsim.llm.training.training_step`: FLOPs, ZeRO traffic, optimizer update).

Steps 1 (supervised fine-tuning of the actor, every weight) and 2 (the reward model on chosen /
rejected pairs) are plain training steps of the same model.

Memory per GPU (the check that says what fits): the model states of the actor (ZeRO over the
GPUs), the reference (ZeRO-3 when the actor is), the critic and the reward model; during
generation the Hybrid Engine's inference weights ``2 P / t`` and one gathered group of layers;
DeepSpeed-Inference's workspace for the ``t x b`` rows of the TP group (the KV cache, the
activations and the attention scores, :func:`inference_workspace_bytes`; kept through the
iteration unless released); the training
activations (:func:`hwsim.llm.training.activation_bytes`, Korthikanti et al. 2022) and logits.
Each phase's bytes are affine in the per-device batch ``b``, so the largest ``b`` that fits is
closed-form; the fastest fitting ``inference_tp_size`` is chosen when it is 0.

Every array has one entry per design point: GPU count, per-device batch, inference TP, the ZeRO
stages and the price are vectorised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hwsim.batch import REASON
from hwsim.errors import InputError
from hwsim.llm import model as llm_model
from hwsim.llm.model import Gemm, layer_shape
from hwsim.llm.perf import Device, decode_step, gemm_s, prefill
from hwsim.llm.perf import Mapping as PerfMapping
from hwsim.llm.spec import LlmSpec
from hwsim.llm.training import (
    BYTES_16BIT,
    Parallel,
    Recompute,
    Trainable,
    activation_bytes,
    forward_flops_per_token,
    held_params,
    logits_bytes,
    model_state_bytes,
    nccl_ring_step_latency_s,
    trained_params,
    training_flops_per_token,
    training_memory,
    training_step,
)
from hwsim.system import Inputs

#: keys the block evaluates as arrays
VECTOR_KEYS = frozenset({"run.gpus", "run.per_device_batch", "run.inference_tp_size",
                         "run.actor_zero_stage", "run.critic_zero_stage",
                         "run.usd_per_gpu_hour"})

GB = 1e9
HOUR = 3600.0


@dataclass(frozen=True)
class Cluster:
    """The per-point arrays and rates one evaluation uses."""

    n: int
    gpus: np.ndarray
    za: np.ndarray
    zc: np.ndarray
    dev: Device
    #: bandwidth of data-parallel (ZeRO) collectives per GPU: NVLink inside a node, else the
    #: network
    dp_link: np.ndarray
    capacity_B: float
    #: price the ring collectives' latency with NCCL's model (False: no latency)
    nccl_latency: bool = True


def cluster(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> tuple[Cluster, dict]:
    """The per-point arrays (vectorised keys broadcast to ``n``) and the device."""
    run, gpu, cal = inputs["run"], inputs["device"], inputs["calibration"]

    def get(key: str) -> np.ndarray:
        v = points.get(f"run.{key}")
        return np.broadcast_to(np.asarray(getattr(run, key) if v is None else v, dtype=float),
                               (n,)).copy()

    arr = {k: get(k) for k in ("gpus", "per_device_batch", "inference_tp_size",
                               "actor_zero_stage", "critic_zero_stage", "usd_per_gpu_hour")}
    nvlink = gpu.interconnect_bandwidth_GBps * GB * cal.link_efficiency
    net = gpu.network_bandwidth_GBps * GB * cal.link_efficiency
    dp_link = np.where(arr["gpus"] <= run.gpus_per_node, nvlink, min(net, nvlink))
    dev = Device(peak_flops=gpu.peak_16bit_TFLOPS * 1e12, mem_bw_Bps=gpu.hbm_bandwidth_GBps * GB,
                 compute_efficiency=cal.compute_efficiency,
                 memory_efficiency=cal.bandwidth_efficiency, tp_link_Bps=nvlink,
                 pp_link_Bps=net, link_latency_s=0.0)
    cap = (gpu.hbm_capacity_GB - run.memory_reserve_GB) * GB
    return Cluster(n=n, gpus=arr["gpus"], za=arr["actor_zero_stage"],
                   zc=arr["critic_zero_stage"], dev=dev, dp_link=dp_link, capacity_B=cap,
                   nccl_latency=cal.collective_latency == "nccl"), arr


def _trainable(run: Any) -> Trainable:
    return Trainable(lora_rank=run.lora_rank, frozen_base=run.frozen_base)


def _ring(g: np.ndarray) -> np.ndarray:
    return np.where(g > 1, (g - 1.0) / g, 0.0)


# --------------------------------------------------------------------------------------------
# memory


def step3_memory(actor: LlmSpec, critic: LlmSpec, run: Any, c: Cluster, tp: np.ndarray,
                 b: np.ndarray) -> dict[str, np.ndarray]:
    """Bytes per GPU of step 3's parts and phases at inference TP ``tp`` and batch ``b``."""
    seq = run.seq_tokens
    g = c.gpus
    what = _trainable(run)
    aw, ag, ao, _ = model_state_bytes(held_params(actor, what), trained_params(actor, what),
                                      c.za, g, run.offload)
    ref = BYTES_16BIT * llm_model.params(actor) / np.where(c.za >= 3, g, 1.0)
    p_c = llm_model.params(critic)
    cw, cg, co, _ = model_state_bytes(p_c, p_c, c.zc, g, run.offload)
    rew = BYTES_16BIT * p_c / np.where(c.zc >= 3, g, 1.0)
    states = aw + ag + ao + ref + cw + cg + co + rew
    # the Hybrid Engine's inference weights: gathered (ZeRO-3) or re-sliced (TP > 1); with
    # ZeRO 0-2 and no TP, generation reuses the training weights
    separate = (c.za >= 3) | (tp > 1)
    he = np.where(separate, BYTES_16BIT * llm_model.params(actor) / tp, 0.0)
    group = min(run.tp_gather_partition_size, actor.layers)
    gather = np.where((c.za >= 3) & (tp > 1),
                      BYTES_16BIT * group * llm_model.params_per_layer(actor), 0.0)
    kv = b * seq * llm_model.kv_bytes_per_token(actor)
    # the KV cache lives in the inference workspace, which also holds activations and scores
    ws = inference_workspace_bytes(actor, run, tp, b)
    kept = 0.0 if run.release_inference_cache else ws
    gen_logits = 4.0 * b * actor.vocab  # one step's fp32 logits of the t x b rows, over t GPUs
    generation = states + he + gather + ws + gen_logits
    rc_none = Recompute(checkpointing=False, dropout=False)
    score_acts = activation_bytes(actor, seq, b, rc=rc_none) / actor.layers
    scoring = states + kept + logits_bytes(actor, seq, b) + score_acts
    acts_a = activation_bytes(actor, seq, b, rc=Recompute(checkpointing=run.actor_checkpointing,
                                                          dropout=run.dropout))
    actor_train = states + kept + acts_a + logits_bytes(actor, seq, b)
    acts_c = activation_bytes(critic, seq, b, rc=Recompute(
        checkpointing=run.critic_checkpointing, dropout=run.dropout))
    critic_train = states + kept + acts_c
    peak = np.maximum.reduce([generation, scoring, actor_train, critic_train])
    return {"states": states, "inference_weights": he + gather, "kv": kv, "workspace": ws,
            "activations": np.maximum(acts_a + logits_bytes(actor, seq, b), acts_c),
            "generation": generation, "scoring": scoring, "actor_training": actor_train,
            "critic_training": critic_train, "peak": peak}


def inference_workspace_bytes(actor: LlmSpec, run: Any, tp: np.ndarray, b: np.ndarray
                              ) -> np.ndarray:
    """Bytes per GPU of the DeepSpeed-Inference workspace the Hybrid Engine's kernels allocate
    at the first generation and keep (unless ``release_inference_cache``); it holds the KV cache.

    ``InferenceContext::GenWorkSpace`` (microsoft/DeepSpeed
    ``csrc/transformer/inference/includes/inference_context.h``, the Hybrid-Engine era with
    ``min_out_tokens``) sizes it for ``r = t x b`` rows (the TP group's gathered prompts) and
    ``n = max_out_tokens`` tokens, ``n x e x (A + T + C)`` bytes with
    ``A = 10 H' r`` (activations, not split by TP), ``T = r (a / t) n`` (attention scores) and
    ``C = 2 L r H' / t`` (keys and values of every layer), where ``H' = a x d'`` pads the head
    size ``d'`` to 32, 64 or 128 (flash attention) and ``e`` is the element size the workspace is
    allocated with. The Hybrid Engine sets ``min_out_tokens = max_out_tokens``, so the whole
    ``n`` must fit, and DeepSpeed-Chat sets ``max_out_tokens = prompt + answer``
    (``rlhf_engine.py``)."""
    t = np.asarray(tp, dtype=float)
    rows = t * np.asarray(b, dtype=float)
    n = float(run.seq_tokens)
    d = actor.d_model / actor.heads
    d_eff = d if d > 128 else (32.0 if d <= 32 else (64.0 if d <= 64 else 128.0))
    hp = actor.heads * d_eff
    act = 10.0 * hp * rows
    scores = rows * (actor.heads / t) * n
    cache = 2.0 * actor.layers * rows * hp / t
    return n * run.workspace_bytes_per_value * (act + scores + cache)


def largest_batch(phase_at: Any, cap: float) -> np.ndarray:
    """The largest integer ``b`` with every phase's bytes within ``cap``; each phase is affine in
    ``b``, read off at b = 0 and b = 1. 0 when even b = 1 does not fit."""
    zero, one = phase_at(0.0), phase_at(1.0)
    best = None
    for k in ("generation", "scoring", "actor_training", "critic_training"):
        a, slope = zero[k], one[k] - zero[k]
        bk = np.floor((cap - a) / np.maximum(slope, 1e-30))
        best = bk if best is None else np.minimum(best, bk)
    return np.maximum(best, 0.0)


# --------------------------------------------------------------------------------------------
# time


def step3_flops_per_pair(actor: LlmSpec, critic: LlmSpec, run: Any) -> dict[str, float]:
    """FLOPs of one pair in each step-3 phase (Narayanan et al.'s convention: 2 per matmul
    weight per token, attention ``4 L h`` per token and context token)."""
    seq, prompt, answer = run.seq_tokens, run.prompt_tokens, run.answer_tokens
    gen = (float(forward_flops_per_token(actor, prompt)) * prompt
           + float(forward_flops_per_token(actor, prompt + answer / 2.0)) * (answer - 1))
    score = seq * float(forward_flops_per_token(actor, seq, run.lora_rank)
                        + forward_flops_per_token(actor, seq)
                        + 2.0 * forward_flops_per_token(critic, seq, 0, False))
    train = run.ppo_epochs * seq * float(
        training_flops_per_token(actor, seq, _trainable(run), run.actor_checkpointing)
        + training_flops_per_token(critic, seq, Trainable(), run.critic_checkpointing,
                                   lm_head=False))
    return {"generation": gen, "scoring": score, "training": train}


def step3_times(actor: LlmSpec, critic: LlmSpec, run: Any, c: Cluster, tp: np.ndarray,
                b: np.ndarray) -> dict[str, np.ndarray]:
    """Seconds of one step-3 iteration's phases at inference TP ``tp`` and batch ``b``."""
    g = c.gpus
    # the inference TP all-reduces: NCCL's ring latency for the tp group (one node's NVLink
    # when tp <= gpus_per_node); the training runs data-parallel only (no TP collectives)
    lat = (nccl_ring_step_latency_s(tp, run.gpus_per_node, allreduce=True)
           if c.nccl_latency else np.zeros_like(np.asarray(tp, dtype=float)))
    dev = replace(c.dev, link_latency_s=lat)
    seq, prompt, answer = run.seq_tokens, run.prompt_tokens, run.answer_tokens
    p_a = llm_model.params(actor)
    rows = tp * b
    # generation
    gather = np.where(c.za >= 3, _ring(g) * BYTES_16BIT * p_a / c.dp_link, 0.0)
    hbm = dev.mem_bw_Bps * dev.memory_efficiency
    reslice = np.where((c.za >= 3) | (tp > 1), 2.0 * BYTES_16BIT * p_a / tp / hbm, 0.0)
    shape = layer_shape(actor)
    m = PerfMapping(tp=tp, pp=1, batch=rows, micro_batch=rows)
    head = gemm_s(Gemm("lm_head", actor.d_model, actor.vocab, "col"), rows, tp, dev)
    pre = prefill(shape, dev, m, prompt).latency_s + head
    # the KV term is linear in the cached length: the mean context prices the 256 steps' sum
    dec = decode_step(shape, dev, m, prompt + (answer - 1) / 2.0).latency_s + head
    generation = gather + reslice + pre + (answer - 1) * dec
    # scoring: four forward passes, each the longer of its FLOPs and its ZeRO-3 gather
    rate = dev.peak_flops * dev.compute_efficiency
    tokens = seq * b

    def fwd(spec: LlmSpec, lora: int, lm_head: bool, z: np.ndarray) -> np.ndarray:
        t_c = forward_flops_per_token(spec, seq, lora, lm_head) * tokens / rate
        t_g = np.where(z >= 3, _ring(g) * BYTES_16BIT * llm_model.params(spec) / c.dp_link,
                       0.0)
        return np.maximum(t_c, t_g)

    scoring = (fwd(actor, run.lora_rank, True, c.za) + fwd(actor, 0, True, c.za)
               + 2.0 * fwd(critic, 0, False, c.zc))
    # training: actor (LoRA) and critic, ppo_epochs each
    par_a = Parallel(dp=g, micro_batch=b, zero_stage=c.za, offload=run.offload)
    par_c = Parallel(dp=g, micro_batch=b, zero_stage=c.zc, offload=run.offload)
    ta = training_step(actor, seq, par_a, dev,
                       _trainable(run), Recompute(run.actor_checkpointing, run.dropout),
                       dp_link_Bps=c.dp_link).step_s
    tc = training_step(critic, seq, par_c, dev,
                       Trainable(), Recompute(run.critic_checkpointing, run.dropout),
                       dp_link_Bps=c.dp_link, lm_head=False).step_s
    training = run.ppo_epochs * (ta + tc)
    return {"generation": generation, "gather": gather + reslice, "prefill": pre,
            "decode": (answer - 1) * dec, "scoring": scoring, "actor_training":
            run.ppo_epochs * ta, "critic_training": run.ppo_epochs * tc, "training": training,
            "iteration": generation + scoring + training}


def plain_training(spec: LlmSpec, run: Any, c: Cluster, sequences: float, zero: np.ndarray,
                   what: Trainable, checkpointing: bool, lm_head: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(hours, per-device batch) of one epoch of plain training over ``sequences``: the largest
    batch that fits under ``max_global_batch``."""
    seq = run.seq_tokens
    rc = Recompute(checkpointing, run.dropout)

    def mem(b: float) -> np.ndarray:
        return training_memory(spec, seq, Parallel(dp=c.gpus, micro_batch=b, zero_stage=zero,
                                                         offload=run.offload),
                               what, rc, logits=lm_head).total_B

    m0, m1 = mem(0.0), mem(1.0)
    b = np.floor((c.capacity_B - m0) / np.maximum(m1 - m0, 1e-30))
    b = np.minimum(b, np.floor(run.max_global_batch / c.gpus))
    b = np.maximum(b, 0.0)
    bb = np.maximum(b, 1.0)
    step = training_step(spec, seq, Parallel(dp=c.gpus, micro_batch=bb, zero_stage=zero,
                                          offload=run.offload), c.dev,
                         what, rc, dp_link_Bps=c.dp_link, lm_head=lm_head).step_s
    iters = np.ceil(sequences / (c.gpus * bb))
    hours = np.where(b >= 1, iters * step / HOUR, np.nan) if sequences else np.zeros(c.n)
    return hours, b


def tp_candidates(actor: LlmSpec, run: Any) -> list[int]:
    """Powers of two dividing the actor's heads, up to the node's GPUs."""
    out, t = [], 1
    while t <= run.gpus_per_node:
        if actor.heads % t == 0:
            out.append(t)
        t *= 2
    return out


def check(inputs: Inputs, points: Mapping[str, np.ndarray] | None = None) -> None:
    """Cross-spec checks: an InputError for an inference TP that does not divide the actor's
    heads or exceeds the node."""
    actor, run = inputs["actor"], inputs["run"]
    tps = [run.inference_tp_size]
    if points and "run.inference_tp_size" in points:
        tps = [int(x) for x in np.unique(np.asarray(points["run.inference_tp_size"]))]
    for t in tps:
        if t and actor.heads % t:
            raise InputError(f"run.inference_tp_size {t} does not divide the {actor.heads} "
                             f"heads of actor '{actor.name}'", key="run.inference_tp_size",
                             value=t, has_value=True)
        if t > run.gpus_per_node:
            raise InputError(f"run.inference_tp_size {t} exceeds gpus_per_node "
                             f"{run.gpus_per_node} (the Hybrid Engine's TP stays in a node)",
                             key="run.inference_tp_size", value=t, has_value=True)


def solve(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Choose per point the inference TP (fastest that fits, when 0) and the per-device batch
    (largest that fits, when 0); return the arrays of the chosen configuration."""
    check(inputs, points)
    actor, critic, run = inputs["actor"], inputs["critic"], inputs["run"]
    c, arr = cluster(inputs, points, n)
    cap_batch = np.floor(run.max_global_batch / c.gpus)
    best_t = np.full(n, np.nan)
    best_b = np.zeros(n)
    best_epoch = np.full(n, np.inf)
    max_b_any = np.zeros(n)  # the largest batch at the chosen TP
    for t in tp_candidates(actor, run):
        tt = np.full(n, float(t))
        allowed = ((arr["inference_tp_size"] == 0) | (arr["inference_tp_size"] == t)) \
            & (c.gpus % t == 0)
        if not allowed.any():
            continue
        bmax = largest_batch(lambda b, tt=tt: step3_memory(actor, critic, run, c, tt,
                                                           np.full(n, b)), c.capacity_B)
        b = np.where(arr["per_device_batch"] > 0, arr["per_device_batch"],
                     np.minimum(bmax, cap_batch))
        ok = allowed & (b >= 1) & (b <= bmax)
        bb = np.maximum(b, 1.0)
        it = step3_times(actor, critic, run, c, tt, bb)["iteration"]
        epoch = np.ceil(run.pairs / (c.gpus * bb)) * it
        better = ok & (epoch < best_epoch)
        best_t = np.where(better, t, best_t)
        best_b = np.where(better, bb, best_b)
        best_epoch = np.where(better, epoch, best_epoch)
        max_b_any = np.where(better, bmax, max_b_any)
    return {"cluster": c, "arrays": arr, "tp": best_t, "batch": best_b,
            "feasible": np.isfinite(best_epoch), "max_batch": max_b_any}


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every analytical metric of ``n`` points."""
    actor, critic, run = inputs["actor"], inputs["critic"], inputs["run"]
    sol = solve(inputs, points, n)
    c, arr = sol["cluster"], sol["arrays"]
    ok = sol["feasible"]
    tp = np.where(ok, sol["tp"], 1.0)
    b = np.where(ok, sol["batch"], 1.0)
    t = step3_times(actor, critic, run, c, tp, b)
    mem = step3_memory(actor, critic, run, c, tp, b)
    flops = step3_flops_per_pair(actor, critic, run)
    iters = np.ceil(run.pairs / (c.gpus * b))
    epoch_h = iters * t["iteration"] / HOUR
    gpu_h = epoch_h * c.gpus
    price = arr["usd_per_gpu_hour"]
    s1_h, _ = plain_training(actor, run, c, run.sft_sequences, c.za, Trainable(),
                                run.actor_checkpointing, True)
    s2_h, _ = plain_training(critic, run, c, 2.0 * run.reward_pairs, c.zc, Trainable(),
                                run.critic_checkpointing, False)
    reason = np.full(n, "", dtype=object)
    bad = np.flatnonzero(~ok)
    if bad.size:
        # at the run's inference TP and batch where given, else the widest TP and one pair
        widest = np.minimum(float(max(tp_candidates(actor, run))), c.gpus)
        tp_r = np.where(arr["inference_tp_size"] > 0, arr["inference_tp_size"], widest)
        b_r = np.where(arr["per_device_batch"] > 0, arr["per_device_batch"], 1.0)
        at1 = step3_memory(actor, critic, run, c, tp_r, b_r)
    for i in bad:
        pairs = "one pair" if b_r[i] == 1 else f"{int(b_r[i])} pairs"
        which = ("the widest inference TP" if arr["inference_tp_size"][i] == 0
                 else f"inference TP {int(tp_r[i])}")
        reason[i] = (f"actor '{actor.name}' does not fit on {int(c.gpus[i])} x "
                     f"{inputs['device'].name}: step 3 needs at least "
                     f"{at1['peak'][i] / GB:.1f} GB per GPU at {pairs} per GPU (model states "
                     f"{at1['states'][i] / GB:.1f} GB, inference weights "
                     f"{at1['inference_weights'][i] / GB:.1f} GB and workspace "
                     f"{at1['workspace'][i] / GB:.1f} GB at {which}); "
                     f"{c.capacity_B / GB:.1f} GB available")
    nan = np.full(n, np.nan)

    def keep(x: Any) -> np.ndarray:
        return np.where(ok, np.broadcast_to(np.asarray(x, dtype=float), (n,)), nan)

    return {
        "step3_hours": keep(epoch_h),
        "step3_gpu_hours": keep(gpu_h),
        "step3_cost_usd": keep(gpu_h * price),
        "iteration_s": keep(t["iteration"]),
        "generation_s": keep(t["generation"]),
        "scoring_s": keep(t["scoring"]),
        "training_s": keep(t["training"]),
        "generation_share": keep(t["generation"] / t["iteration"]),
        "generation_flops_share": keep(flops["generation"] / sum(flops.values())),
        "iterations": keep(iters),
        "per_device_batch": keep(b),
        "max_per_device_batch": keep(sol["max_batch"]),
        "inference_tp": keep(tp),
        "memory_per_gpu_GB": keep(mem["peak"] / GB),
        "model_states_GB": keep(mem["states"] / GB),
        "kv_cache_GB": keep(mem["kv"] / GB),
        "inference_workspace_GB": keep(mem["workspace"] / GB),
        "step1_hours": keep(s1_h),
        "step2_hours": keep(s2_h),
        "all_steps_hours": keep(s1_h + s2_h + epoch_h),
        "all_steps_cost_usd": keep((s1_h + s2_h + epoch_h) * c.gpus * price),
        REASON: reason,
    }


def explain(inputs: Inputs, reason: str) -> str:
    """The reason of one infeasible point (the block's own reasons are complete)."""
    return reason

"""A long-sequence GPT training step (the GenSLM runs of Megatron-DeepSpeed's long-sequence
release) under tensor and sequence parallelism, ZeRO and offload, on the shared training step
model (:mod:`hwsim.llm.training`).

The "new" Megatron-DeepSpeed configuration: Megatron sequence parallelism (degree = TP),
FlashAttention (no ``s x s`` scores stored), the causal mask built in CPU memory. The "old" one:
no sequence parallelism, the unfused attention storing its scores, softmax output and dropout
mask (Korthikanti et al. 2022, ``5 a s^2 b`` bytes per layer), the ``s x s`` mask on the GPU.

Per point (every number from :mod:`hwsim.llm.training`):

- memory per GPU: model states under ZeRO over the data-parallel ranks (split over TP x PP
  first), the Korthikanti activations of the stored micro-batches, the fp32 logits and the mask;
- step time: compute at peak x the fitted efficiency, the TP/SP collectives on the critical
  path over NVLink or, when the TP group spans servers, over the servers' NICs at NCCL's own
  bus bandwidth for its ring (:func:`tp_bus_Bps`: 8 channels x 24 GB/s on a DGX A100), each at
  the NCCL protocol (LL, LL128, Simple) its
  tuning model picks for the message size (:func:`hwsim.llm.training.nccl_ring_collective_s`),
  the backward's SP collectives as Megatron runs them (re-gathers and reduce-scatters beside
  the GEMMs, :func:`hwsim.llm.training.training_step`), ZeRO/DP traffic overlapped, the
  pipeline bubble, Adam on the GPU or (offload) on the CPU;
- TFLOPS per GPU in Megatron-DeepSpeed's convention (``throughput_calculator`` in
  ``megatron/utils.py``, Narayanan et al. 2021 eq. 3): ``(6 + 2 if recomputing) x weights x
  tokens + 3 (4) x 4 L h s x tokens`` per step, divided by the step time and the GPUs;
- the longest trainable sequence: the largest multiple of 512 tokens up to 2^20 whose memory
  fits (memory grows with ``s``, so the grid is searched at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.batch import REASON, reasons
from hwsim.llm.perf import Device
from hwsim.llm.spec import LlmSpec
from hwsim.llm.training import (
    NCCL_LL128_PER_CHANNEL_GBPS,
    ArrayLike,
    Parallel,
    Recompute,
    TrainingMemory,
    attention_mask_bytes,
    memory_reasons,
    nccl_inter_channel_Bps,
    nccl_ring_collective_s,
    nccl_ring_step_latency_s,
    tp_link_Bps,
    training_flops_per_token,
    training_memory,
    training_step,
)
from hwsim.system import Inputs

GB = 1e9
#: sequence lengths searched for the longest that fits: every 512 tokens up to 2^20
SEQ_GRID = np.arange(512, 2**20 + 1, 512, dtype=float)

VECTOR_KEYS = frozenset({f"workload.{k}" for k in (
    "seq_len", "gpus", "tensor_parallel", "pipeline_parallel", "micro_batch", "micro_batches",
    "zero_stage", "offload", "sequence_parallel")})

METRICS = {
    "longseq_tflops_per_gpu": "model TFLOPS per GPU, Megatron-DeepSpeed's convention "
                              "(throughput_calculator: recompute counted, no causal halving)",
    "longseq_tokens_per_s": "tokens trained per second by the whole job",
    "longseq_step_s": "one optimizer step",
    "longseq_tp_comm_share": "the tensor/sequence-parallel collectives' share of the step",
    "longseq_memory_per_gpu_GB": "GPU memory at the step's peak",
    "longseq_model_states_GB": "weights, gradients and optimizer states on one GPU",
    "longseq_activations_GB": "stored activations, logits and the mask on one GPU",
    "longseq_fits": "1 when the step fits the GPU's memory (a point that does not is "
                    "infeasible)",
    "longseq_max_seq_len": "the longest sequence (a multiple of 512 up to 2^20) whose step "
                           "fits, the mapping held",
    "longseq_tensor_parallel": "the tensor (and sequence) parallel degree used",
}


def llm_of(workload) -> LlmSpec:
    """The llm spec a gpt-longseq workload names."""
    return specs.load_spec(specs.find_spec_file("llm", workload.llm), kind="llm")


def choose_tp(heads: int, gpus: np.ndarray, pp: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """``tp`` where given, else the largest divisor of ``heads`` that divides ``gpus / pp``."""
    divs = np.array([d for d in range(1, heads + 1) if heads % d == 0], dtype=float)
    ok = (gpus[:, None] % (divs[None, :] * pp[:, None])) == 0
    auto = np.where(ok, divs[None, :], 0.0).max(axis=1)
    return np.where(tp > 0, tp, auto)


def tp_bus_Bps(gpu, cal, tp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bus bandwidth per GPU of a tensor-parallel ring, LL128's cap on it). Inside one server
    NVLink x the assumed link efficiency. Across servers, with ``inter_node_bandwidth =
    "nccl"``, NCCL's own figure for its ring: one channel per NIC (the ring graph's channels
    each leave the server through their GPU's NIC), each at the search speed the NIC sustains
    (:func:`hwsim.llm.training.nccl_inter_channel_Bps`: 24 GB/s for HDR), so ``NICs x 24 GB/s``
    (tuning.cc ``ncclTopoTuneModel``: ``busBw = nChannels x bwInter``), and LL128 capped at
    ``NICs x 20 GB/s``; with ``"link-efficiency"`` the NICs' line rate x the link efficiency
    (the previous model) and no cap."""
    nv = gpu.interconnect_bandwidth_GBps * 1e9
    nic = gpu.network_bandwidth_GBps * 1e9
    per = gpu.devices_per_server
    link = tp_link_Bps(tp, per, nv, nic, per) * cal.link_efficiency
    cross = np.asarray(tp, dtype=float) > per
    if cal.inter_node_bandwidth != "nccl":
        return link, np.full(np.shape(link), np.inf)
    nccl = np.minimum(nv * cal.link_efficiency, per * nccl_inter_channel_Bps(nic))
    cap = np.where(cross, per * NCCL_LL128_PER_CHANNEL_GBPS * 1e9, np.inf)
    return np.where(cross, nccl, link), cap


def _device(gpu, cal, tp: np.ndarray, sp: np.ndarray, link: np.ndarray) -> Device:
    """The step model's device, ``link`` the TP ring's bus bandwidth (:func:`tp_bus_Bps`)."""
    nic = gpu.network_bandwidth_GBps * 1e9
    return Device(peak_flops=gpu.peak_16bit_TFLOPS * 1e12,
                  mem_bw_Bps=gpu.hbm_bandwidth_GBps * 1e9,
                  compute_efficiency=cal.compute_efficiency,
                  memory_efficiency=cal.memory_efficiency,
                  tp_link_Bps=link,
                  pp_link_Bps=nic * cal.link_efficiency,
                  link_latency_s=_step_latency_s(cal, tp, sp, gpu.devices_per_server))


def _step_latency_s(cal, tp: np.ndarray, sp: np.ndarray, per_node: int) -> np.ndarray:
    """NCCL's ring/Simple latency per step of the tensor-parallel collectives: a reduce-scatter
    plus an all-gather with sequence parallelism, else an all-reduce."""
    if cal.collective_latency == "none":
        return np.zeros_like(np.asarray(tp, dtype=float))
    return np.where(sp, nccl_ring_step_latency_s(tp, per_node, allreduce=False),
                    nccl_ring_step_latency_s(tp, per_node, allreduce=True))


def tp_collective_s(cal, act_B: np.ndarray, tp: np.ndarray, sp: np.ndarray, per_node: int,
                    link_Bps: np.ndarray, ll128_cap_Bps: ArrayLike = np.inf
                    ) -> np.ndarray | None:
    """One tensor-parallel collective of a ``s b h`` activation of ``act_B`` bytes (a
    reduce-scatter plus an all-gather under SP, else an all-reduce) with the protocol NCCL picks
    for its size (:func:`hwsim.llm.training.nccl_ring_collective_s`), for ``collective_latency
    = "nccl"``; None (the ring model with the Simple per-step latency) otherwise."""
    if cal.collective_latency != "nccl":
        return None
    pair = 2.0 * nccl_ring_collective_s(act_B, tp, per_node, link_Bps, allreduce=False,
                                        ll128_cap_Bps=ll128_cap_Bps)
    one = nccl_ring_collective_s(act_B, tp, per_node, link_Bps, allreduce=True,
                                 ll128_cap_Bps=ll128_cap_Bps)
    return np.where(sp, pair, one)


def memory(spec: LlmSpec, seq, par: Parallel, rc: Recompute, mask_on_gpu: bool
           ) -> TrainingMemory:
    """Per-GPU bytes of the step, the causal mask counted with the activations."""
    mem = training_memory(spec, seq, par, rc=rc)
    mask = attention_mask_bytes(seq, mask_on_gpu)
    return TrainingMemory(weights_B=mem.weights_B, grads_B=mem.grads_B,
                          optimizer_B=mem.optimizer_B, activations_B=mem.activations_B + mask,
                          logits_B=mem.logits_B, cpu_B=mem.cpu_B)


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every long-sequence metric of ``n`` points."""
    w, gpu, cal = inputs["workload"], inputs["device"], inputs["calibration"]
    spec = llm_of(w)

    def get(key: str) -> np.ndarray:
        v = points.get(f"workload.{key}")
        return np.broadcast_to(np.asarray(getattr(w, key) if v is None else v,
                                          dtype=float), (n,)).copy()

    s, gpus, pp = get("seq_len"), get("gpus"), get("pipeline_parallel")
    tp = choose_tp(spec.heads, gpus, pp, get("tensor_parallel"))
    bad_heads = (tp == 0) | (spec.heads % np.maximum(tp, 1) != 0)
    bad_gpus = gpus % np.maximum(tp * pp, 1) != 0
    tp = np.where(bad_heads | bad_gpus, 1.0, tp)
    dp = np.maximum(np.floor(gpus / (tp * pp)), 1.0)
    par = Parallel(dp=dp, tp=tp, pp=pp, micro_batch=get("micro_batch"),
                   micro_batches=get("micro_batches"), zero_stage=get("zero_stage"),
                   sp=get("sequence_parallel").astype(bool), offload=get("offload").astype(bool))
    rc = Recompute(checkpointing=w.checkpointing, dropout=w.dropout,
                   fused_attention=w.flash_attention)
    cap = gpu.hbm_capacity_GB * GB - w.memory_reserve_GB * GB
    mem = memory(spec, s, par, rc, w.mask_on_gpu)
    fits, why = memory_reasons(mem, cap, f"training {spec.name}")
    bus, ll128_cap = tp_bus_Bps(gpu, cal, tp)
    dev = _device(gpu, cal, tp, np.asarray(par.sp, dtype=bool), bus)
    dp_link = np.where(gpus > gpu.devices_per_server, gpu.network_bandwidth_GBps,
                       gpu.interconnect_bandwidth_GBps) * 1e9 * cal.link_efficiency
    act = s * par.micro_batch * spec.d_model * 2.0
    coll = tp_collective_s(cal, act, tp, np.asarray(par.sp, dtype=bool), gpu.devices_per_server,
                           dev.tp_link_Bps, ll128_cap)
    step = training_step(spec, s, par, dev, rc=rc, dp_link_Bps=dp_link, tp_collective_s=coll)
    tokens = s * par.micro_batch * par.micro_batches * dp
    flops = training_flops_per_token(spec, s, checkpointing=rc.checkpointing) * tokens
    # the longest sequence that fits: the whole grid at once, per point
    g = SEQ_GRID[None, :]
    col = {k: np.asarray(getattr(par, k))[:, None] for k in (
        "dp", "tp", "pp", "micro_batch", "micro_batches", "zero_stage", "sp", "offload")}
    grid_mem = memory(spec, g, Parallel(**col), rc, w.mask_on_gpu)
    ok = grid_mem.total_B <= cap
    longest = np.where(ok, g, 0.0).max(axis=1)
    nan = np.where(fits, 1.0, np.nan)
    out = {
        "longseq_tflops_per_gpu": flops / step.step_s / gpus / 1e12 * nan,
        "longseq_tokens_per_s": tokens / step.step_s * nan,
        "longseq_step_s": step.step_s * nan,
        "longseq_tp_comm_share": step.tp_comm_s / step.step_s * nan,
        "longseq_memory_per_gpu_GB": mem.total_B / GB,
        "longseq_model_states_GB": mem.states_B / GB,
        "longseq_activations_GB": (mem.activations_B + mem.logits_B) / GB,
        "longseq_fits": fits.astype(float),
        "longseq_max_seq_len": longest,
        "longseq_tensor_parallel": tp,
    }
    rs = reasons(n, [
        (bad_heads, f"tensor parallelism does not divide {spec.name}'s {spec.heads} heads"),
        (bad_gpus & ~bad_heads, "tensor x pipeline parallelism does not divide the GPUs"),
    ])
    rs = np.where(rs == "", np.where(fits, "", why), rs)
    for k in out:
        out[k] = np.where(rs == "", out[k], np.nan)
    out[REASON] = rs
    return out

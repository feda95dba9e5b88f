"""The training step of a decoder-only LLM: FLOPs, memory per GPU and time on a parallel mapping.

A function of the model's shape (:class:`~hwsim.llm.spec.LlmSpec`), what is trained
(:class:`Trainable`: every weight, or LoRA adapters on a frozen base), the mapping
(:class:`Parallel`: data, tensor, sequence and pipeline parallelism, the ZeRO stage, CPU offload)
and one device (:class:`hwsim.llm.perf.Device`). Numeric fields of :class:`Parallel` and the
sequence length may be numpy arrays: everything broadcasts, so a sweep evaluates many mappings in
one call. Bytes and seconds are per GPU and per optimizer step.

Sources of the formulas:

- FLOPs: a forward pass costs 2 FLOPs per matmul weight per token plus the attention scores and
  value sums, 4 x layers x heads x head_dim x sequence per token (Narayanan et al. 2021,
  arXiv 2104.04473, sec. 5.1: 24 b s h^2 + 4 b s^2 h per layer; no causal halving). The
  backward pass of a trained weight costs twice its forward (the gradient of the input and of
  the weight); a frozen weight still passes the input gradient back (one forward's worth) but
  computes no weight gradient; attention's backward is twice its forward. Activation
  checkpointing recomputes the forward once more in the backward (Chen et al. 2016,
  arXiv 1604.06174).
- Model states under mixed-precision Adam: 2 bytes of 16-bit weights per parameter, 2 of
  16-bit gradients and 12 of fp32 master weights, momentum and variance per trained parameter;
  ZeRO stage 1 partitions the optimizer states over the data-parallel group, stage 2 also the
  gradients, stage 3 also the weights (Rajbhandari et al. 2020, arXiv 1910.02054, sec. 5, K = 12).
  CPU offload (ZeRO-Offload, Ren et al. 2021, arXiv 2101.06840) keeps the optimizer states and
  the fp32 gradients in host memory and runs Adam on the CPU.
- LoRA (Hu et al. 2021, arXiv 2106.09685): a rank-r pair A (k x r), B (r x n) beside each adapted
  k x n weight; here every linear layer of every decoder block (DeepSpeed-Chat's
  ``lora_module_name = decoder.layers.``), trained; the base is frozen when ``frozen_base``.
- Activations per layer (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
  Transformer Models", arXiv 2205.05198, sec. 4, eq. 1-2 and table 2), in bytes with 16-bit
  values: ``s b h (34 + 5 a s / h)`` without parallelism; ``s b h (10 + 24/t + 5 a s/(h t))``
  with tensor parallelism t; ``s b h/t (34 + 5 a s / h)`` with sequence parallelism too; full
  recomputation keeps only each layer's input, ``2 s b h`` (``/t`` with sequence parallelism),
  plus one layer's activations while it is recomputed. Without dropout the two ``s b h`` masks
  and the ``a s^2 b`` softmax mask and its 2-byte output are not stored (34 -> 32, 5 -> 2); a
  fused attention kernel (FlashAttention) stores no ``a s^2`` term. The output layer's logits
  take ``4 s b V / t`` (fp32 cross-entropy input, sec. 4.3).
- Communication: ring collectives (:func:`hwsim.llm.perf.ring_allreduce_s`): an all-gather or a
  reduce-scatter of n bytes over g devices moves ``(g-1)/g n`` per device, an all-reduce twice
  that. ZeRO-3 all-gathers the 16-bit weights in the forward and again in the backward and
  reduce-scatters the gradients; ZeRO 0-2 all-reduce the gradients (stage 1-2 as a
  reduce-scatter plus an all-gather of the updated weights, the same volume). Tensor
  parallelism all-reduces a ``s b h`` activation twice per layer in the forward and twice in the
  backward (twice more in a recompute), Megatron-LM (Shoeybi et al. 2019, arXiv 1909.08053);
  sequence parallelism replaces each by a reduce-scatter and an all-gather of the same volume,
  and its backward re-gathers the column-parallel linears' inputs beside their GEMMs
  (:func:`_sp_backward_comm_s`).
  The pipeline (GPipe/1F1B schedule) takes ``(m + p - 1)`` micro-batch slots for ``m``
  micro-batches on ``p`` stages: the bubble is ``(p - 1) / m`` of the ideal (Narayanan et al.
  2021, sec. 2.2). Communication that ZeRO prefetches or buckets overlaps compute:
  the step takes the longer of the two.
- Ring collective latency (:func:`nccl_ring_step_latency_s`): NCCL's own cost model
  (NVIDIA/nccl, src/graph/tuning.cc, ``ncclTopoTuneModel``; ring algorithm, Simple protocol,
  the one NCCL picks for large messages) prices a collective as ``baseLat`` (8.4 us) plus
  ``hwLat`` per ring step: 3.4 us over NVLink, 14.0 us over the network. A reduce-scatter or an
  all-gather over ``g`` ranks on ``N`` nodes takes ``g-1`` steps, ``N-1`` of them between
  nodes; an all-reduce ``2 (g-1)`` steps, ``2 (N-1)`` between nodes (the NCCL 2.8-era count;
  later releases count ``2 N`` when ``N > 1``). The shared ring model charges one latency per
  each of its ``2 (g-1)`` steps, so the per-step figure is NCCL's total over ``2 (g-1)``.
- Protocol choice (:func:`nccl_ring_collective_s`): NCCL prices each of its protocols, LL,
  LL128 and Simple, with its own latencies and bandwidth share (the same tuning model) and runs
  the fastest for the message size; across 4 DGX A100 nodes a 32-rank all-gather of 25 MB
  (2k tokens x 6,144 x 2 B) goes LL128 (79 us of latency instead of Simple's 146 us, less
  bandwidth), one of 100 MB or more Simple. The bus bandwidth across servers can be NCCL's own
  (:func:`nccl_inter_channel_Bps`): ``nChannels x bwInter`` with one channel per NIC at the
  largest of the ring search's speeds the NIC sustains (search.cc ``speedArrayInter``: 24 GB/s
  for HDR), LL128 capped at 20 GB/s per channel on Ampere (tuning.cc).
- Tensor parallelism across servers (:func:`tp_link_Bps`): NCCL runs one ring per NIC, so each
  ring crosses a server boundary once per server through its own NIC; a ring collective then
  moves every GPU's share at ``min(NVLink, NICs per server x NIC rate)`` (derived here from the
  ring volumes above; e.g. 8 x 200 Gb/s HDR InfiniBand per DGX A100 gives 200 GB/s).
- The attention mask (:func:`attention_mask_bytes`): Megatron's left-to-right mask is a
  ``[1, 1, s, s]`` boolean tensor (1 byte per element) built on the GPU; the long-sequence
  Megatron-DeepSpeed builds it in CPU memory and moves it (DeepSpeed4Science GenSLM notes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hwsim.llm.model import matmul_params, params
from hwsim.llm.perf import Device, ring_allreduce_s
from hwsim.llm.spec import LlmSpec

ArrayLike = Any  # float | int | np.ndarray

#: bytes per parameter of 16-bit weights and gradients
BYTES_16BIT = 2.0
#: bytes per trained parameter of Adam's fp32 master weights, momentum and variance (ZeRO's K)
ADAM_STATE_BYTES = 12.0


@dataclass(frozen=True)
class Trainable:
    """What the step trains: every weight (``lora_rank`` 0, ``frozen_base`` False), LoRA adapters
    beside every decoder linear (``lora_rank`` r), on a frozen base or not."""

    lora_rank: int = 0
    frozen_base: bool = False

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank {self.lora_rank} must be >= 0")
        if self.frozen_base and self.lora_rank == 0:
            raise ValueError("a frozen base needs LoRA adapters (lora_rank > 0) to train")


@dataclass(frozen=True)
class Parallel:
    """The mapping of one training step; numeric fields may be arrays.

    ``dp`` x ``tp`` x ``pp`` GPUs; ``micro_batch`` sequences per micro-batch, ``micro_batches``
    of them per optimizer step and data-parallel rank (pipeline micro-batches or gradient
    accumulation); ``sp``: Megatron sequence parallelism over the tensor-parallel group;
    ``zero_stage`` 0-3 over the data-parallel group; ``offload``: optimizer states and Adam on the
    CPU (ZeRO-Offload)."""

    dp: ArrayLike = 1
    tp: ArrayLike = 1
    pp: ArrayLike = 1
    micro_batch: ArrayLike = 1
    micro_batches: ArrayLike = 1
    zero_stage: ArrayLike = 0
    sp: ArrayLike = False
    offload: ArrayLike = False


@dataclass(frozen=True)
class Recompute:
    """Activation memory options: ``checkpointing`` keeps only each layer's input (full
    recomputation); ``dropout`` stores dropout masks; ``fused_attention`` stores no scores."""

    checkpointing: bool = False
    dropout: bool = True
    fused_attention: bool = False


def lora_params(spec: LlmSpec, rank: int) -> int:
    """Parameters of rank-``rank`` LoRA adapters beside every linear of every decoder layer:
    ``rank x (k + n)`` per k x n weight (Q, K and V as separate projections)."""
    if rank <= 0:
        return 0
    d, q, kv = spec.d_model, spec.heads * spec.d_head, spec.n_kv_heads * spec.d_head
    attn = (d + q) + 2 * (d + kv) + (q + d)
    mats_in = 2 if spec.ffn in ("swiglu", "geglu") else 1
    ffn = spec.experts * (mats_in * (d + spec.d_ff) + (spec.d_ff + d))
    return spec.layers * rank * (attn + ffn)


def trained_params(spec: LlmSpec, what: Trainable) -> int:
    """Parameters with gradients and optimizer states."""
    lora = lora_params(spec, what.lora_rank)
    return lora if what.frozen_base else params(spec) + lora


def held_params(spec: LlmSpec, what: Trainable) -> int:
    """Parameters held as 16-bit weights (the base and any adapters)."""
    return params(spec) + lora_params(spec, what.lora_rank)


def _attention_flops_per_token(spec: LlmSpec, seq: ArrayLike) -> np.ndarray:
    return 4.0 * spec.layers * spec.heads * spec.d_head * np.asarray(seq, dtype=float)


def _matmul(spec: LlmSpec, lm_head: bool) -> float:
    """Matmul weights per token; without ``lm_head`` a scalar value head replaces the vocabulary
    projection (a reward or critic model)."""
    return float(matmul_params(spec) - (0 if lm_head else spec.vocab * spec.d_embed - spec.d_model))


def forward_flops_per_token(spec: LlmSpec, seq: ArrayLike, lora_rank: int = 0,
                            lm_head: bool = True) -> np.ndarray:
    """Forward FLOPs per token of a ``seq``-token sequence (weights, adapters, attention);
    ``lm_head`` False for a scalar (value) head instead of the vocabulary projection."""
    return (2.0 * (_matmul(spec, lm_head) + lora_params(spec, lora_rank))
            + _attention_flops_per_token(spec, seq))


def training_flops_per_token(spec: LlmSpec, seq: ArrayLike, what: Trainable = Trainable(),
                             checkpointing: bool = False, lm_head: bool = True) -> np.ndarray:
    """Forward + backward (+ recompute) FLOPs per trained token.

    Full training without checkpointing: 6 per parameter-token plus three times the attention
    forward; a frozen base drops the weight gradients of the base (2 per base weight-token);
    checkpointing adds one forward."""
    fwd = forward_flops_per_token(spec, seq, what.lora_rank, lm_head)
    base = 2.0 * _matmul(spec, lm_head)
    attn = _attention_flops_per_token(spec, seq)
    lora = 2.0 * lora_params(spec, what.lora_rank)
    # backward: input gradients of every matmul (one forward), weight gradients of the trained
    # ones (one forward each), attention twice its forward
    bwd = base + lora + 2.0 * attn + lora + (0.0 if what.frozen_base else base)
    return fwd + bwd + (fwd if checkpointing else 0.0)


# --------------------------------------------------------------------------------------------
# memory


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes per GPU at the training step's peak (arrays where inputs were)."""

    weights_B: np.ndarray
    grads_B: np.ndarray
    optimizer_B: np.ndarray
    activations_B: np.ndarray
    logits_B: np.ndarray
    #: optimizer states and gradients held in host memory (offload)
    cpu_B: np.ndarray

    @property
    def states_B(self) -> np.ndarray:
        """Weights, gradients and optimizer states on the GPU."""
        return self.weights_B + self.grads_B + self.optimizer_B

    @property
    def total_B(self) -> np.ndarray:
        """Everything on the GPU."""
        return self.states_B + self.activations_B + self.logits_B


def model_state_bytes(n_held: ArrayLike, n_trained: ArrayLike, zero_stage: ArrayLike,
                      dp: ArrayLike, offload: ArrayLike = False, shard: ArrayLike = 1
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(weights, gradients, optimizer states, host bytes) per GPU under ZeRO ``zero_stage``
    over ``dp`` ranks; ``shard`` divides everything first (tensor x pipeline parallelism)."""
    z = np.asarray(zero_stage)
    dp = np.asarray(dp, dtype=float)
    held = np.asarray(n_held, dtype=float) / shard
    trained = np.asarray(n_trained, dtype=float) / shard
    w = BYTES_16BIT * held / np.where(z >= 3, dp, 1.0)
    g = BYTES_16BIT * trained / np.where(z >= 2, dp, 1.0)
    o = ADAM_STATE_BYTES * trained / np.where(z >= 1, dp, 1.0)
    off = np.asarray(offload, dtype=bool)
    cpu = np.where(off, o + g, 0.0)
    return w, np.where(off, 0.0, g), np.where(off, 0.0, o), cpu


def activation_bytes_per_layer(spec: LlmSpec, seq: ArrayLike, micro_batch: ArrayLike,
                               tp: ArrayLike = 1, sp: ArrayLike = False,
                               rc: Recompute = Recompute()) -> np.ndarray:
    """Korthikanti et al. 2022 (eq. 1-2, table 2): stored activation bytes of one layer for one
    micro-batch, without recomputation."""
    s = np.asarray(seq, dtype=float)
    b = np.asarray(micro_batch, dtype=float)
    t = np.asarray(tp, dtype=float)
    h, a = float(spec.d_model), float(spec.heads)
    lin = 34.0 if rc.dropout else 32.0
    quad = 0.0 if rc.fused_attention else (5.0 if rc.dropout else 2.0)
    scores = quad * a * s / h / t
    with_sp = lin / t + scores
    without = (lin - 24.0) + 24.0 / t + scores
    return s * b * h * np.where(np.asarray(sp, dtype=bool), with_sp, without)


def activation_bytes(spec: LlmSpec, seq: ArrayLike, micro_batch: ArrayLike, tp: ArrayLike = 1,
                     pp: ArrayLike = 1, sp: ArrayLike = False, rc: Recompute = Recompute(),
                     in_flight: ArrayLike = 1) -> np.ndarray:
    """Activation bytes per GPU of its ``ceil(layers / pp)`` layers with ``in_flight``
    micro-batches stored (1F1B keeps up to ``pp`` on the first stage)."""
    layers = np.ceil(spec.layers / np.asarray(pp, dtype=float))
    one = activation_bytes_per_layer(spec, seq, micro_batch, tp, sp, rc)
    if rc.checkpointing:
        s, b = np.asarray(seq, dtype=float), np.asarray(micro_batch, dtype=float)
        t = np.asarray(tp, dtype=float)
        inputs = 2.0 * s * b * spec.d_model / np.where(np.asarray(sp, dtype=bool), t, 1.0)
        return layers * inputs * np.asarray(in_flight, dtype=float) + one
    return layers * one * np.asarray(in_flight, dtype=float)


def logits_bytes(spec: LlmSpec, seq: ArrayLike, micro_batch: ArrayLike,
                 tp: ArrayLike = 1) -> np.ndarray:
    """The output layer's fp32 logits, ``4 s b V / t`` (Korthikanti et al. 2022, sec. 4.3)."""
    return 4.0 * np.asarray(seq, dtype=float) * np.asarray(micro_batch, dtype=float) \
        * spec.vocab / np.asarray(tp, dtype=float)


def training_memory(spec: LlmSpec, seq: ArrayLike, par: Parallel, what: Trainable = Trainable(),
                    rc: Recompute = Recompute(), logits: bool = True) -> TrainingMemory:
    """Per-GPU bytes of one training step: model states under ZeRO (split over tensor x pipeline
    ranks first), activations of the stored micro-batches, the logits."""
    shard = np.asarray(par.tp, dtype=float) * np.asarray(par.pp, dtype=float)
    w, g, o, cpu = model_state_bytes(held_params(spec, what), trained_params(spec, what),
                                     par.zero_stage, par.dp, par.offload, shard)
    in_flight = np.minimum(np.asarray(par.pp, dtype=float),
                           np.asarray(par.micro_batches, dtype=float))
    acts = activation_bytes(spec, seq, par.micro_batch, par.tp, par.pp, par.sp, rc, in_flight)
    lg = logits_bytes(spec, seq, par.micro_batch, par.tp) if logits else np.zeros_like(acts)
    return TrainingMemory(weights_B=w, grads_B=g, optimizer_B=o, activations_B=acts,
                          logits_B=lg, cpu_B=cpu)


def attention_mask_bytes(seq: ArrayLike, on_gpu: ArrayLike = True) -> np.ndarray:
    """GPU bytes of the causal mask: ``s^2`` booleans on the GPU, none when built in CPU memory
    (one mask broadcast over the batch)."""
    s = np.asarray(seq, dtype=float)
    return np.where(np.asarray(on_gpu, dtype=bool), s * s, 0.0)


#: NCCL's ring / Simple-protocol latencies in us (NVIDIA/nccl src/graph/tuning.cc: baseLat,
#: hwLat[NVLINK] and hwLat[NET] for NCCL_ALGO_RING, NCCL_PROTO_SIMPLE)
NCCL_RING_BASE_US = 8.4
NCCL_RING_NVLINK_US = 3.4
NCCL_RING_NET_US = 14.0


def nccl_ring_step_latency_s(ranks: ArrayLike, ranks_per_node: ArrayLike,
                             allreduce: bool = True) -> np.ndarray:
    """Latency per step of :func:`hwsim.llm.perf.ring_allreduce_s` over ``ranks`` GPUs,
    ``ranks_per_node`` to a node (NVLink inside, the network between), from NCCL's tuning
    model (ring, Simple): one NCCL all-reduce (``allreduce``) or a reduce-scatter plus an
    all-gather (sequence parallelism, ``allreduce=False``) spread over the ring model's
    ``2 (g-1)`` steps. 0 for a group of one."""
    g = np.asarray(ranks, dtype=float)
    nodes = np.ceil(g / np.asarray(ranks_per_node, dtype=float))
    inter = np.maximum(nodes - 1.0, 0.0)
    steps = np.maximum(g - 1.0, 0.0)
    one = NCCL_RING_BASE_US + (steps - inter) * NCCL_RING_NVLINK_US + inter * NCCL_RING_NET_US
    if allreduce:
        total = NCCL_RING_BASE_US + 2.0 * (one - NCCL_RING_BASE_US)
    else:
        total = 2.0 * one
    return np.where(g > 1, total / np.maximum(2.0 * steps, 1.0), 0.0) * 1e-6


#: NCCL's ring latencies in us per protocol, (baseLat, hwLat[NVLINK], hwLat[NET]), and the
#: share of the bus bandwidth each protocol reaches (LL: 1/4 across nodes or in an all-reduce,
#: else 1/3; LL128: 0.92 with two or more ranks per node, else 0.7; Simple: all of it), as
#: ``ncclTopoTuneModel`` sets them (NVIDIA/nccl src/graph/tuning.cc, commit b6475625, the
#: version whose Simple figures are the three constants above)
NCCL_RING_PROTOCOLS = {
    "LL": (6.6, 0.6, 2.7),
    "LL128": (14.0, 1.9, 4.0),
    "Simple": (NCCL_RING_BASE_US, NCCL_RING_NVLINK_US, NCCL_RING_NET_US),
}
#: the ring/Simple all-reduce latency multiplier across nodes on compute capability >= 8.0
#: (tuning.cc ``ncclTopoGetAlgoTime``, "plateau effect of ring"; 1.9 before Ampere)
NCCL_RING_PLATEAU = 1.4


#: the per-channel bandwidths (GB/s) NCCL's ring search tries when the ring leaves the node, the
#: highest first (NVIDIA/nccl src/graph/search.cc ``speedArrayInter``, commit b6475625; the
#: pre-Hopper array): a ring gets the largest one its path sustains
NCCL_INTER_SPEEDS_GBPS = (48.0, 30.0, 28.0, 24.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0,
                          5.0, 4.0, 3.0, 2.4, 1.2, 0.24, 0.12)
#: LL128's ring bus bandwidth cap per channel on Ampere, GB/s (tuning.cc
#: ``perChMaxRingLL128Bws``, commit b6475625)
NCCL_LL128_PER_CHANNEL_GBPS = 20.0


def nccl_inter_channel_Bps(nic_Bps: ArrayLike) -> np.ndarray:
    """Bandwidth of one NCCL ring channel that crosses servers through a NIC of ``nic_Bps``:
    the largest of NCCL's search speeds (:data:`NCCL_INTER_SPEEDS_GBPS`) not above the NIC's
    (e.g. 24 GB/s for a 200 Gb/s HDR NIC of 25 GB/s; the PCIe Gen4 x16 path NCCL's topology
    gives the GPU-NIC pair is 24 GB/s too)."""
    nic = np.asarray(nic_Bps, dtype=float) / 1e9
    speeds = np.array(NCCL_INTER_SPEEDS_GBPS)
    fit = np.where(speeds[None, :] <= nic.reshape(-1, 1) + 1e-9, speeds[None, :], 0.0)
    best = fit.max(axis=1).reshape(nic.shape)
    return np.where(best > 0, best, speeds[-1]) * 1e9


def nccl_ring_collective_s(n_bytes: ArrayLike, ranks: ArrayLike, ranks_per_node: ArrayLike,
                           link_Bps: ArrayLike, allreduce: bool = True,
                           protocols: tuple[str, ...] = ("LL", "LL128", "Simple"),
                           ll128_cap_Bps: ArrayLike = np.inf) -> np.ndarray:
    """Seconds of one ring collective of ``n_bytes`` (the whole buffer) over ``ranks`` GPUs,
    ``ranks_per_node`` to a node, at ``link_Bps`` per GPU (Simple's bus bandwidth), with the
    protocol NCCL would pick: the one of ``protocols`` its model says is fastest for this size
    (``ncclTopoGetAlgoTime``: latency plus bytes over the protocol's bandwidth; enqueue.cc takes
    the minimum). Small messages go LL or LL128 (lower latency), large ones Simple (full
    bandwidth). ``allreduce``: an all-reduce, else a reduce-scatter or an all-gather. The step
    counts are :func:`nccl_ring_step_latency_s`'s; the ring algorithm only (NCCL may pick a tree
    for a multi-node all-reduce: not modelled). ``ll128_cap_Bps``: LL128's bus bandwidth cap,
    NCCL's channels x :data:`NCCL_LL128_PER_CHANNEL_GBPS` (none by default); LL's cap (a few
    tens of GB/s, by host CPU) is not applied, as LL never wins at megabytes. 0 for a group of
    one."""
    g = np.asarray(ranks, dtype=float)
    per = np.asarray(ranks_per_node, dtype=float)
    nodes = np.ceil(g / per)
    steps = np.maximum(g - 1.0, 0.0) * (2.0 if allreduce else 1.0)
    inter = np.maximum(nodes - 1.0, 0.0) * (2.0 if allreduce else 1.0)
    volume = np.asarray(n_bytes, dtype=float) * steps / np.maximum(g, 1.0)
    factors = {"LL": np.where((nodes > 1) | allreduce, 0.25, 1.0 / 3.0),
               "LL128": np.where(g / nodes >= 2, 0.92, 0.7), "Simple": 1.0}
    link = np.asarray(link_Bps, dtype=float)
    best = np.full(np.broadcast(g, volume, link).shape, np.inf)
    for p in protocols:
        base, nvl, net = NCCL_RING_PROTOCOLS[p]
        lat = base + (steps - inter) * nvl + inter * net
        if p == "Simple" and allreduce:
            lat = np.where(nodes > 1, lat * NCCL_RING_PLATEAU, lat)
        bus = link * factors[p]
        if p == "LL128":
            bus = np.minimum(bus, np.asarray(ll128_cap_Bps, dtype=float))
        t = lat * 1e-6 + volume / bus
        best = np.minimum(best, t)
    return np.where(g > 1, best, 0.0)


def tp_link_Bps(tp: ArrayLike, per_server: ArrayLike, nvlink_Bps: ArrayLike,
                nic_Bps: ArrayLike, nics_per_server: ArrayLike) -> np.ndarray:
    """Per-GPU bandwidth of a tensor-parallel ring collective over ``tp`` GPUs: NVLink inside
    one server of ``per_server`` GPUs; across servers one ring per NIC, so
    ``min(NVLink, nics_per_server x nic_Bps)``."""
    cross = np.asarray(tp, dtype=float) > np.asarray(per_server, dtype=float)
    across = np.minimum(np.asarray(nvlink_Bps, dtype=float),
                        np.asarray(nics_per_server, dtype=float) * np.asarray(nic_Bps, dtype=float))
    return np.where(cross, across, np.asarray(nvlink_Bps, dtype=float))


def memory_reasons(mem: TrainingMemory, capacity_B: ArrayLike, what: str = "training"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(fits, reason per point): a point fits when its total is within ``capacity_B``; the
    reason names the total and its parts."""
    total = np.asarray(mem.total_B, dtype=float)
    cap = np.broadcast_to(np.asarray(capacity_B, dtype=float), total.shape)
    fits = total <= cap
    parts = np.broadcast_arrays(total, mem.weights_B, mem.grads_B, mem.optimizer_B,
                                mem.activations_B + mem.logits_B, cap)
    reason = np.full(total.shape, "", dtype=object)
    for i in zip(*np.nonzero(~fits), strict=True):
        t, w, g, o, a, c = (float(p[i]) / 1e9 for p in parts)
        reason[i] = (f"{what} needs {t:.1f} GB per GPU (weights {w:.1f}, gradients {g:.1f}, "
                     f"optimizer {o:.1f}, activations {a:.1f}); {c:.1f} GB available")
    return fits, reason


# --------------------------------------------------------------------------------------------
# time


@dataclass(frozen=True)
class TrainingStep:
    """Seconds of one optimizer step per GPU (arrays where inputs were)."""

    step_s: np.ndarray
    compute_s: np.ndarray
    #: ZeRO gathers / reduce-scatters and DP all-reduce (overlapped with compute)
    dp_comm_s: np.ndarray
    #: tensor-parallel all-reduces (on the critical path)
    tp_comm_s: np.ndarray
    #: the pipeline's idle slots
    bubble_s: np.ndarray
    #: optimizer update (GPU HBM or, offloaded, CPU and PCIe)
    optimizer_s: np.ndarray


def dp_comm_bytes(n_held: ArrayLike, n_trained: ArrayLike, zero_stage: ArrayLike,
                  dp: ArrayLike) -> np.ndarray:
    """Bytes each data-parallel rank sends per step: ZeRO-3 two weight all-gathers and a gradient
    reduce-scatter, otherwise one gradient all-reduce, ring volumes ``(g-1)/g``."""
    g = np.asarray(dp, dtype=float)
    f = (g - 1.0) / g
    w = BYTES_16BIT * np.asarray(n_held, dtype=float)
    gr = BYTES_16BIT * np.asarray(n_trained, dtype=float)
    z3 = f * (2.0 * w + gr)
    ar = 2.0 * f * gr
    return np.where(np.asarray(zero_stage) >= 3, z3, ar)


def _sp_backward_comm_s(spec: LlmSpec, rows: ArrayLike, tp: np.ndarray, one_s: ArrayLike,
                        rate: ArrayLike, frozen_base: bool) -> np.ndarray:
    """Exposed seconds of one layer's backward collectives under Megatron sequence parallelism,
    ``one_s`` per all-gather or reduce-scatter. The two row-parallel linears all-gather their
    output gradient before anything can run (exposed). Each column-parallel linear (attention's
    Q/K/V, the FFN's input projection) keeps only its local input shard in the forward, so its
    backward all-gathers the input again while its input-gradient GEMM runs, then
    reduce-scatters the input gradient while its weight-gradient GEMM runs; only the part of
    each collective longer than its GEMM is exposed (Megatron-LM's
    ``LinearWithGradAccumulationAndAsyncCommunication``, as in microsoft/Megatron-DeepSpeed
    ``megatron/core/tensor_parallel/layers.py`` since its 2023 rebase on Megatron-LM: both
    collectives ``async_op=True``, ordered before the GEMMs by ``CUDA_DEVICE_MAX_CONNECTIONS=1``).
    So the backward runs six collectives where the forward runs four, four of them partly
    hidden. The GEMMs' slowdown from sharing SMs with NCCL is not modelled."""
    mats_in = 2 if spec.ffn in ("swiglu", "geglu") else 1
    widths = ((spec.heads + 2 * spec.n_kv_heads) * spec.d_head,
              mats_in * spec.d_ff * spec.experts_per_token)
    one = np.asarray(one_s, dtype=float)
    out = 2.0 * one
    for n_out in widths:
        gemm = 2.0 * np.asarray(rows, dtype=float) * spec.d_model * n_out / tp / rate
        wgrad = 0.0 if frozen_base else gemm
        out = out + np.maximum(one - gemm, 0.0) + np.maximum(one - wgrad, 0.0)
    return out


def training_step(spec: LlmSpec, seq: ArrayLike, par: Parallel, dev: Device,
                  what: Trainable = Trainable(), rc: Recompute = Recompute(), *,
                  dp_link_Bps: ArrayLike | None = None, pcie_Bps: ArrayLike = 32e9,
                  host_mem_Bps: ArrayLike = 100e9, lm_head: bool = True,
                  tp_collective_s: ArrayLike | None = None) -> TrainingStep:
    """One optimizer step: ``micro_batches`` micro-batches of ``micro_batch`` sequences per
    data-parallel rank. Compute at the device's peak x efficiency; ZeRO/DP traffic on
    ``dp_link_Bps`` (default the device's tensor-parallel link) overlapped with compute;
    tensor-parallel all-reduces on the critical path; the pipeline bubble; the optimizer update
    (HBM-bound on the GPU, or on the CPU at ``host_mem_Bps`` after a PCIe round trip).
    ``tp_collective_s``, when given, is the time of one tensor-parallel collective (an
    all-reduce of a ``s b h`` activation, or its reduce-scatter plus all-gather) in place of the
    ring model with the device's per-step latency (e.g. from :func:`nccl_ring_collective_s`)."""
    tp = np.asarray(par.tp, dtype=float)
    pp = np.asarray(par.pp, dtype=float)
    mb = np.asarray(par.micro_batch, dtype=float)
    m = np.asarray(par.micro_batches, dtype=float)
    s = np.asarray(seq, dtype=float)
    tokens = s * mb * m
    flops = training_flops_per_token(spec, s, what, rc.checkpointing, lm_head) * tokens / (tp * pp)
    rate = np.asarray(dev.peak_flops) * np.asarray(dev.compute_efficiency)
    compute = flops / rate
    # tensor parallelism: 4 all-reduces per layer (6 with recompute) of s b h 16-bit values
    n_ar = 6.0 if rc.checkpointing else 4.0
    act = s * mb * spec.d_model * BYTES_16BIT
    layers = np.ceil(spec.layers / pp)
    one_ar = (ring_allreduce_s(act, tp, dev.tp_link_Bps, dev.link_latency_s)
              if tp_collective_s is None else np.asarray(tp_collective_s, dtype=float))
    sp = np.asarray(par.sp, dtype=bool) & (tp > 1)
    bwd_sp = _sp_backward_comm_s(spec, s * mb, tp, one_ar / 2.0, rate, what.frozen_base)
    per_layer = (n_ar - 2.0) * one_ar + np.where(sp, bwd_sp, 2.0 * one_ar)
    tp_comm = m * layers * per_layer
    p2p = np.where(pp > 1, 2.0 * m * act / np.asarray(dev.pp_link_Bps), 0.0)
    shard = tp * pp
    held, trained = held_params(spec, what) / shard, trained_params(spec, what) / shard
    link = dev.tp_link_Bps if dp_link_Bps is None else dp_link_Bps
    dp_comm = dp_comm_bytes(held, trained, par.zero_stage, par.dp) / np.asarray(link)
    dp_comm = np.where(np.asarray(par.dp, dtype=float) > 1, dp_comm, 0.0)
    work = np.maximum(compute, dp_comm) + tp_comm + p2p
    bubble = work * (pp - 1.0) / m
    # optimizer: Adam reads and writes its 16 B per trained parameter and the 2 B weight
    z = np.asarray(par.zero_stage)
    local = trained / np.where(z >= 1, np.asarray(par.dp, dtype=float), 1.0)
    gpu_opt = 2.0 * (ADAM_STATE_BYTES + 2 * BYTES_16BIT) * local / (
        np.asarray(dev.mem_bw_Bps) * np.asarray(dev.memory_efficiency))
    cpu_opt = (2.0 * BYTES_16BIT * local / np.asarray(pcie_Bps)
               + 2.0 * (ADAM_STATE_BYTES + 2 * BYTES_16BIT) * local / np.asarray(host_mem_Bps))
    opt = np.where(np.asarray(par.offload, dtype=bool), cpu_opt, gpu_opt)
    return TrainingStep(step_s=work + bubble + opt, compute_s=compute,
                        dp_comm_s=dp_comm, tp_comm_s=tp_comm, bubble_s=bubble, optimizer_s=opt)

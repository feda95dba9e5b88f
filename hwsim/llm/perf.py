"""Analytical LLM inference performance: prefill and one decode step on a TP x PP mapping.

A clean function of three things, none of them tied to one system:

- the workload: a :class:`~hwsim.llm.model.LayerShape` (``layer_shape(llm_spec)``), i.e. the
  per-layer weight GEMMs with their tensor-parallel split, the KV-cache bytes per token and the
  all-reduces per layer;
- the hardware of one device: :class:`Device` (peak FLOP/s, the bandwidth weights and KV stream
  at, efficiencies, the links used by tensor-parallel collectives and by stage-to-stage
  transfers, their start-up latency);
- the mapping: :class:`Mapping` (tensor parallelism ``tp`` devices per stage, ``pp`` pipeline
  stages, ``batch`` sequences in flight, split into micro-batches of ``micro_batch``).

Every numeric field may be a numpy array: all arithmetic broadcasts, so a sweep evaluates a whole
design space in one call. Times are in seconds.

Model (one stage of ``ceil(layers / pp)`` layers, per micro-batch of ``rows`` activation rows):

- each weight GEMM on ``tp`` devices (Megatron split, Shoeybi et al. 2019): column-split GEMMs
  cut ``n``, row-split ones cut ``k``. Its time is the roofline ``max(FLOPs / (peak x eff x u),
  local weight bytes / (bandwidth x eff))`` (Williams et al. 2009); ``u`` is 1 for the
  ``roofline`` utilisation model, or Chiplet Cloud v1's systolic-array occupancy for
  ``v1-systolic``: ``min(parallel columns / array side, 1)`` with parallel columns
  ``rows x n/tp`` for column-split and ``k/tp`` for row-split GEMMs, the array side being
  ``sqrt(peak MAC/s / clock)`` (arXiv 2307.02666 v1, sec. 5; authors' ``opt_mapping.py``);
- attention scores and the weighted sum of values (optional: ``attention=False`` reproduces v1,
  which times only the weight GEMMs): ``4 x q_width x kv_len`` FLOPs per row, and the KV cache
  read, split over ``min(tp, kv_heads)`` devices;
- per layer ``shape.allreduces`` ring all-reduces of the ``rows x d_model`` activation across
  ``tp`` devices: ``2 (tp - 1) (bytes / tp / link + latency)`` (Patarasuk & Yuan 2009);
- one stage-to-stage transfer of the activation: ``bytes / link + latency``.

Pipelining (micro-batches as in DeepSpeed-Inference, Aminabadi et al. 2022): a decode step of the
whole batch takes ``max(pp x stage, (batch / micro_batch) x stage)`` (a micro-batch's next token
waits for its previous one to leave the last stage), and produces ``batch`` tokens. Prefill of
``prompt`` tokens per sequence fills the pipe: ``(pp + batch / micro_batch - 1) x stage``.

Example::

    shape = layer_shape(load_spec("models/llm/gpt3-175b.toml"))
    dev = Device(peak_flops=312e12, mem_bw_Bps=2.0e12, mem_efficiency=0.6,
                 tp_link_Bps=300e9, pp_link_Bps=25e9, link_latency_s=5e-6)
    step = decode_step(shape, dev, Mapping(tp=8, pp=1, batch=8, micro_batch=8), kv_len=2048)
    step.latency_s, step.throughput_tokens_per_s
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hwsim.llm.model import Gemm, LayerShape

ArrayLike = Any  # float | int | np.ndarray

UTILIZATION_MODELS = ("roofline", "v1-systolic")


@dataclass(frozen=True)
class Device:
    """One device (chip or GPU) as the performance model needs it; fields may be arrays.

    ``mem_bw_Bps`` is the bandwidth weights and the KV cache are read at; ``np.inf`` means the
    operands sit in on-chip SRAM wide enough never to limit (Chiplet Cloud's assumption).
    """

    peak_flops: ArrayLike
    mem_bw_Bps: ArrayLike = np.inf
    compute_efficiency: ArrayLike = 1.0
    memory_efficiency: ArrayLike = 1.0
    tp_link_Bps: ArrayLike = np.inf
    pp_link_Bps: ArrayLike = np.inf
    link_latency_s: ArrayLike = 0.0
    utilization_model: str = "roofline"
    clock_Hz: ArrayLike = 1e9

    def __post_init__(self) -> None:
        if self.utilization_model not in UTILIZATION_MODELS:
            raise ValueError(f"utilization_model {self.utilization_model!r}: expected one of "
                             + ", ".join(UTILIZATION_MODELS))

    @property
    def array_side(self) -> ArrayLike:
        """Side of a square MAC array giving the peak at the clock (2 FLOPs per MAC)."""
        macs = np.floor(np.asarray(self.peak_flops) / 2.0 / np.asarray(self.clock_Hz))
        return np.maximum(np.round(np.sqrt(macs)), 1.0)


@dataclass(frozen=True)
class Mapping:
    """Tensor x pipeline parallelism and batching; fields may be arrays."""

    tp: ArrayLike = 1
    pp: ArrayLike = 1
    batch: ArrayLike = 1
    micro_batch: ArrayLike = 1


@dataclass(frozen=True)
class StepTime:
    """Times of one prefill or decode step of the whole batch (arrays where inputs were)."""

    #: the step for the whole batch (decode: one token per sequence; prefill: all prompts)
    latency_s: np.ndarray
    #: one micro-batch through one (the bottleneck) stage, transfer included
    stage_s: np.ndarray
    #: one micro-batch through every stage
    micro_batch_s: np.ndarray
    #: of ``micro_batch_s``: GEMMs and attention
    compute_s: np.ndarray
    #: of ``micro_batch_s``: all-reduces and stage-to-stage transfers
    comm_s: np.ndarray
    #: tokens per second the step delivers (decode: batch / latency; prefill: prompt tokens)
    throughput_tokens_per_s: np.ndarray


# --------------------------------------------------------------------------------------------
# building blocks


def ring_allreduce_s(n_bytes: ArrayLike, group: ArrayLike, link_Bps: ArrayLike,
                     latency_s: ArrayLike = 0.0) -> np.ndarray:
    """Ring all-reduce of ``n_bytes`` over ``group`` devices: 2 (g-1) (n/g / bw + latency)."""
    g = np.asarray(group, dtype=float)
    t = 2.0 * (g - 1.0) * (np.asarray(n_bytes) / g / link_Bps + latency_s)
    return np.where(g > 1, t, 0.0)


def torus_group_dims(group: int, torus_dims: tuple[int, ...]) -> tuple[int, ...]:
    """The extents a group of ``group`` devices spans on a torus of ``torus_dims``, spread over
    as many axes as it can (the most links, the fewest start-up steps): each prime factor of
    the group, largest first, goes to the axis of least extent so far that still divides (8
    chips of a 4x4x4 torus: 2 x 2 x 2; 64: 4 x 4 x 4); a remainder no axis takes stays one
    ring of its own."""
    on_axes, rest = _torus_placement(group, torus_dims)
    return on_axes + ((rest,) if rest > 1 else ())


def _torus_placement(group: int, torus_dims: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """:func:`torus_group_dims` split in two: the extents that lie on torus axes, and the
    remainder that runs as one ring of its own (1: none)."""
    used = [1] * len(torus_dims)
    left, primes, f = int(group), [], 2
    while f * f <= left:
        while left % f == 0:
            primes.append(f)
            left //= f
        f += 1
    if left > 1:
        primes.append(left)
    rest = 1
    for p in sorted(primes, reverse=True):
        fits = [i for i, k in enumerate(torus_dims) if int(k) % (used[i] * p) == 0]
        if fits:
            i = min(fits, key=lambda a: used[a])
            used[i] *= p
        else:
            rest *= p
    return tuple(u for u in used if u > 1), rest


def torus_allreduce_s(n_bytes: ArrayLike, group: ArrayLike, torus_dims: tuple[int, ...],
                      link_Bps: ArrayLike, latency_s: ArrayLike = 0.0) -> np.ndarray:
    """All-reduce of ``n_bytes`` over ``group`` devices of a torus of ``torus_dims``
    (``link_Bps`` is the device's bandwidth over all its torus links).

    A reduce-scatter then an all-gather as rings along each dimension the group spans in turn
    (extents ``k_i``, :func:`torus_group_dims`): ``2 sum(k_i - 1)`` start-up steps instead of
    the 1D ring's ``2 (g - 1)``. The data is cut into one part per dimension, each part taking
    the dimensions in a rotated order, so every dimension's links work at once: the bytes a
    device sends, ``2 n (g - 1) / g`` as on a ring, spread over the links of the dimensions
    the group spans (that share of ``link_Bps``; an extent shorter than its axis is taken to
    have the axis's links, its missing wrap-around link is not modelled).

    The TPU's interconnect is such a torus (Jouppi et al., ISCA 2023: ICI as a 3D torus);
    Pope et al. 2022 (arXiv 2211.05102, sec. 3.1) take an all-reduce as a reduce-scatter and
    an all-gather over the torus axes a tensor spans. Without dimensions this is
    :func:`ring_allreduce_s`."""
    if not torus_dims:
        return ring_allreduce_s(n_bytes, group, link_Bps, latency_s)
    g = np.asarray(group, dtype=float)
    steps = np.zeros_like(g)
    share = np.ones_like(g)
    for v in np.unique(g):
        on_axes, rest = _torus_placement(int(v), torus_dims)
        steps = np.where(g == v, float(sum(k - 1 for k in on_axes) + rest - 1), steps)
        share = np.where(g == v, max(len(on_axes), 1) / len(torus_dims), share)
    t = (2.0 * steps * latency_s
         + 2.0 * np.asarray(n_bytes) * (g - 1.0) / np.maximum(g, 1.0)
         / (np.asarray(link_Bps) * share))
    return np.where(g > 1, t, 0.0)


def transfer_s(n_bytes: ArrayLike, link_Bps: ArrayLike, latency_s: ArrayLike = 0.0) -> np.ndarray:
    """A point-to-point transfer."""
    return np.asarray(n_bytes) / link_Bps + latency_s


def gemm_s(gemm: Gemm, rows: ArrayLike, tp: ArrayLike, dev: Device,
           bytes_per_value: float = 2.0) -> np.ndarray:
    """Time of one weight GEMM of ``rows`` activation rows on one of ``tp`` devices."""
    tp = np.asarray(tp, dtype=float)
    rows = np.asarray(rows, dtype=float)
    if gemm.split == "col":
        k_loc, n_loc = float(gemm.k), np.ceil(gemm.n / tp)
        parallel = rows * n_loc
    else:
        k_loc, n_loc = np.ceil(gemm.k / tp), float(gemm.n)
        parallel = k_loc
    flops = 2.0 * rows * k_loc * n_loc
    eff = np.asarray(dev.compute_efficiency)
    if dev.utilization_model == "v1-systolic":
        eff = eff * np.minimum(parallel / dev.array_side, 1.0)
    t = flops / (np.asarray(dev.peak_flops) * eff)
    weight_bytes = k_loc * n_loc * bytes_per_value
    t_mem = weight_bytes / (np.asarray(dev.mem_bw_Bps) * np.asarray(dev.memory_efficiency))
    return np.maximum(t, t_mem)


def attention_s(shape: LayerShape, seqs: ArrayLike, q_len: ArrayLike, kv_len: ArrayLike,
                tp: ArrayLike, dev: Device) -> np.ndarray:
    """Attention scores and value sums of one layer: ``seqs`` sequences, ``q_len`` new tokens
    each, attending to ``kv_len`` cached tokens plus (causally) the new ones."""
    seqs = np.asarray(seqs, dtype=float)
    q_len = np.asarray(q_len, dtype=float)
    keys = np.asarray(kv_len, dtype=float) + (q_len + 1.0) / 2.0  # average keys per query
    tp = np.asarray(tp, dtype=float)
    flops = 4.0 * shape.q_width * seqs * q_len * keys / tp
    kv_split = np.minimum(tp, float(shape.kv_heads))
    cached = np.asarray(kv_len, dtype=float) + q_len
    kv_bytes = seqs * cached * shape.kv_bytes_per_token / kv_split
    t_c = flops / (np.asarray(dev.peak_flops) * np.asarray(dev.compute_efficiency))
    t_m = kv_bytes / (np.asarray(dev.mem_bw_Bps) * np.asarray(dev.memory_efficiency))
    return np.maximum(t_c, t_m)


def _stage(shape: LayerShape, dev: Device, mapping: Mapping, seqs: ArrayLike, q_len: ArrayLike,
           kv_len: ArrayLike, attention: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stage time, compute part, communication part) for one micro-batch on one stage."""
    tp = np.asarray(mapping.tp, dtype=float)
    pp = np.asarray(mapping.pp, dtype=float)
    rows = np.asarray(seqs, dtype=float) * np.asarray(q_len, dtype=float)
    per_layer = sum(gemm_s(g, rows, tp, dev, shape.bytes_per_value) for g in shape.gemms)
    if attention:
        per_layer = per_layer + attention_s(shape, seqs, q_len, kv_len, tp, dev)
    act_bytes = rows * shape.d_model * shape.bytes_per_value
    ar = shape.allreduces * ring_allreduce_s(act_bytes, tp, dev.tp_link_Bps, dev.link_latency_s)
    layers = np.ceil(shape.layers / pp)
    compute = layers * per_layer
    comm = layers * ar + transfer_s(act_bytes, dev.pp_link_Bps, dev.link_latency_s)
    return compute + comm, compute, comm


# --------------------------------------------------------------------------------------------
# the two phases


def decode_step(shape: LayerShape, dev: Device, mapping: Mapping, kv_len: ArrayLike,
                *, attention: bool = True) -> StepTime:
    """One decode step: every sequence of the batch gets one token, ``kv_len`` tokens cached."""
    m = np.asarray(mapping.micro_batch, dtype=float)
    b = np.asarray(mapping.batch, dtype=float)
    pp = np.asarray(mapping.pp, dtype=float)
    stage, compute, comm = _stage(shape, dev, mapping, m, 1.0, kv_len, attention)
    micro = pp * stage
    latency = np.maximum(micro, stage * b / m)
    return StepTime(latency_s=latency, stage_s=stage, micro_batch_s=micro,
                    compute_s=pp * compute, comm_s=pp * comm,
                    throughput_tokens_per_s=b / latency)


def prefill(shape: LayerShape, dev: Device, mapping: Mapping, prompt_tokens: ArrayLike,
            *, attention: bool = True) -> StepTime:
    """Prefill of ``prompt_tokens`` per sequence for the whole batch (GPipe-style fill)."""
    m = np.asarray(mapping.micro_batch, dtype=float)
    b = np.asarray(mapping.batch, dtype=float)
    pp = np.asarray(mapping.pp, dtype=float)
    stage, compute, comm = _stage(shape, dev, mapping, m, prompt_tokens, 0.0, attention)
    micro = pp * stage
    latency = (pp + b / m - 1.0) * stage
    return StepTime(latency_s=latency, stage_s=stage, micro_batch_s=micro,
                    compute_s=pp * compute, comm_s=pp * comm,
                    throughput_tokens_per_s=b * np.asarray(prompt_tokens, dtype=float) / latency)


def roofline_decode_s(shape: LayerShape, dev: Device, mapping: Mapping,
                      kv_len: ArrayLike) -> np.ndarray:
    """A lower bound of one decode step of the batch: max(all FLOPs / all peak, bytes / BW),
    with perfect overlap and no communication. Used by tests as a bound."""
    devices = np.asarray(mapping.tp, dtype=float) * np.asarray(mapping.pp, dtype=float)
    b = np.asarray(mapping.batch, dtype=float)
    flops = b * shape.flops_per_token
    t_c = flops / (devices * np.asarray(dev.peak_flops) * np.asarray(dev.compute_efficiency))
    bytes_ = shape.weight_bytes + b * np.asarray(kv_len) * shape.layers * shape.kv_bytes_per_token
    t_m = bytes_ / (devices * np.asarray(dev.mem_bw_Bps) * np.asarray(dev.memory_efficiency))
    return np.maximum(t_c, t_m)

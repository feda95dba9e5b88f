"""Kernel times of one GPU: GEMMs, attention, element-wise ops and collectives (numpy, vectorised).

The operator models the ``kernels`` step model (:mod:`hwsim.gpu_serving.roofline`) builds a
serving step from, each a function of the operator's shape, the device's datasheet rates and the
fitted constants of a ``gpu-calibration`` (:mod:`hwsim.gpu_serving.spec`); every argument may be
a numpy array (one value per design point or per measured row). The constants are fitted on
Vidur's per-operator kernel times and NCCL collective times (``hwsim/gpu_serving/data``, fitted
by :mod:`hwsim.gpu_serving.calibration`).

- **GEMM** ``(M x K) @ (K x N)``: the output is cut into tiles, one per SM at a time, so the
  compute time is whole *waves* of tiles (``ceil(tiles / SMs)``: tile and wave quantisation),
  for the tile shape that finishes first (cuBLAS picks among several; tiles smaller than
  128 x 128 reuse operands less and run at ``small_tile_efficiency`` of the rest); the memory
  time is the operands and the result over the achieved bandwidth (small M is memory bound);
  the two combine as a power mean (``smoothing``: large = the larger of the two, as a roofline;
  small = partly serialised) plus a fixed launch cost.
- **Decode attention** (paged KV, one new token per sequence): the KV cache read at a bandwidth
  that grows with the parallelism (thread blocks: sequences x local KV heads) from
  ``bandwidth_efficiency_min`` towards ``bandwidth_efficiency_max``, half way at
  ``half_blocks``, plus a cost per thread block and a fixed one.
- **Prefill attention** (FlashAttention-style, causal): ``4 x heads x head_dim x q x (kv +
  chunk_factor x q)`` FLOPs at a fitted share of the peak, plus a fixed cost.
- **Element-wise** (norms, residual adds, activations, rotary embedding):
  the larger (a power mean) of the bytes over an achieved bandwidth and a floor that grows with
  the width of a token's row (one thread block per token: a wide row takes longer even for
  one token). The step model times a GELU (PyTorch's ``torch.nn.GELU``) with the residual add's
  constants (both PyTorch's element-wise loop) on its own bytes, and every norm with the RMSNorm
  table; a fused SiLU x gate (sarathi's ``silu_and_mul``) has a table of its own. PyTorch's
  LayerNorm and exact GELU have their own tables too (``layernorm``, ``gelu``: same form, fitted
  on phi-2's operator rows; :mod:`hwsim.gpu_serving.operators`), not yet used by the step model.
- **Embedding gather** (PyTorch's ``index_select``): two kernels by the token count (its
  ``index_select_out_cuda_impl`` switches at 16 indices): the small-index kernel copies the
  rows one after another (a fixed time and one per token, whatever the width), the large-index
  kernel is the element-wise model.
- **All-reduce and send/recv** (NCCL, within a node): a start-up latency plus the bytes over a
  bus bandwidth, ``2 (n - 1) / n`` of the message for an all-reduce of ``n`` devices (the ring's
  traffic, as NCCL's bus bandwidth counts it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.hw.gemm import FULL_TILE, TILES, power_mean, tile_wave_compute_s

ArrayLike = Any  # float | np.ndarray

__all__ = ["FULL_TILE", "TILES", "power_mean"]  # re-exported: the tile model lives in hwsim.hw


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def gemm_s(m: ArrayLike, n: ArrayLike, k: ArrayLike, bytes_per_value: ArrayLike,
           peak_flops: ArrayLike, bandwidth_Bps: ArrayLike, sms: ArrayLike, c: Any) -> np.ndarray:
    """One GEMM of ``m`` rows (tokens), ``n`` output columns and inner size ``k`` on one device
    (``c``: the calibration's ``gemm`` constants); 0 where there are no rows. The compute side
    is the shared tile/wave model (:func:`hwsim.hw.gemm.tile_wave_compute_s`)."""
    m, n, k = _f(m), _f(n), _f(k)
    best = tile_wave_compute_s(m, n, k, peak_flops, sms, c.compute_efficiency,
                               c.small_tile_efficiency)
    mem = (m * k + k * n + m * n) * _f(bytes_per_value) / (
        _f(bandwidth_Bps) * _f(c.bandwidth_efficiency))
    t = _f(c.overhead_us) * 1e-6 + power_mean(best, mem, c.smoothing)
    return np.where(m > 0, t, 0.0)


def decode_attention_s(seqs: ArrayLike, kv_tokens: ArrayLike, blocks_per_seq: ArrayLike,
                       kv_bytes_per_token: ArrayLike, bandwidth_Bps: ArrayLike,
                       c: Any) -> np.ndarray:
    """Attention of one decode step: ``seqs`` sequences of ``kv_tokens`` cached tokens (the new
    one included), ``blocks_per_seq`` thread blocks per sequence (one per KV head on this
    device: the query heads of a KV head share a block, as in TensorRT-LLM's XQA and
    FlashInfer's GQA kernels), ``kv_bytes_per_token`` of K and V per token on this device
    (``c``: ``attention_decode`` constants); 0 without sequences."""
    seqs = _f(seqs)
    blocks = seqs * _f(blocks_per_seq)
    lo, hi, half = _f(c.bandwidth_efficiency_min), _f(c.bandwidth_efficiency_max), _f(
        c.half_blocks)
    eff = hi - (hi - lo) * half / (half + blocks)
    t = (_f(c.overhead_us) * 1e-6 + _f(c.per_block_us) * 1e-6 * blocks
         + seqs * _f(kv_tokens) * _f(kv_bytes_per_token) / (_f(bandwidth_Bps) * eff))
    return np.where(seqs > 0, t, 0.0)


def prefill_attention_s(seqs: ArrayLike, q_tokens: ArrayLike, kv_tokens: ArrayLike,
                        heads: ArrayLike, head_dim: ArrayLike, peak_flops: ArrayLike,
                        c: Any) -> np.ndarray:
    """Causal attention of ``seqs`` sequences, each ``q_tokens`` new tokens after
    ``kv_tokens`` cached ones, ``heads`` query heads on this device (``c``:
    ``attention_prefill`` constants); 0 without new tokens."""
    seqs, q = _f(seqs), _f(q_tokens)
    flops = 4.0 * _f(heads) * _f(head_dim) * seqs * q * (_f(kv_tokens) + _f(c.chunk_factor) * q)
    t = _f(c.overhead_us) * 1e-6 + flops / (_f(peak_flops) * _f(c.compute_efficiency))
    return np.where(seqs * q > 0, t, 0.0)


def elementwise_s(width: ArrayLike, nbytes: ArrayLike, bandwidth_Bps: ArrayLike,
                  c: Any) -> np.ndarray:
    """An element-wise kernel over ``nbytes`` (read and written) whose rows are ``width``
    elements wide (``c``: one ``elementwise`` table); 0 for no bytes."""
    nbytes = _f(nbytes)
    floor = (_f(c.floor_us) + _f(width) * _f(c.floor_ns_per_element) * 1e-3) * 1e-6
    mem = nbytes / (_f(bandwidth_Bps) * _f(c.bandwidth_efficiency))
    return np.where(nbytes > 0, power_mean(floor, mem, c.smoothing), 0.0)


def embedding_s(tokens: ArrayLike, width: ArrayLike, nbytes: ArrayLike,
                bandwidth_Bps: ArrayLike, c: Any) -> np.ndarray:
    """The embedding gather of ``tokens`` rows of ``width`` elements, ``nbytes`` read and
    written (``c``: the ``embedding`` table): PyTorch's small-index kernel up to
    ``c.small_index_max`` tokens (a fixed time plus one per token: the rows are copied one
    after another, each by the whole grid, so the time does not depend on the width), else
    its large-index kernel (the element-wise model); 0 for no bytes."""
    tokens = _f(tokens)
    small = (_f(c.small_floor_us) + tokens * _f(c.small_per_index_us)) * 1e-6
    large = elementwise_s(width, nbytes, bandwidth_Bps, c)
    return np.where(_f(nbytes) > 0, np.where(tokens <= _f(c.small_index_max), small, large),
                    0.0)


def allreduce_s(nbytes: ArrayLike, group: ArrayLike, latency_us: ArrayLike,
                bus_bandwidth_Bps: ArrayLike) -> np.ndarray:
    """An all-reduce of ``nbytes`` over ``group`` devices: the latency plus
    ``2 (n - 1) / n`` of the message over the bus bandwidth; 0 for one device."""
    g = _f(group)
    frac = 2.0 * (g - 1.0) / np.maximum(g, 1.0)
    t = _f(latency_us) * 1e-6 + _f(nbytes) * frac / _f(bus_bandwidth_Bps)
    return np.where(g > 1, t, 0.0)


def send_recv_s(nbytes: ArrayLike, latency_us: ArrayLike, bandwidth_Bps: ArrayLike
                ) -> np.ndarray:
    """A point-to-point transfer: the latency plus the bytes over the bandwidth."""
    return _f(latency_us) * 1e-6 + _f(nbytes) / _f(bandwidth_Bps)

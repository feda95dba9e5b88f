"""Tile and wave quantisation of a tensor-core GEMM on a GPU (numpy, vectorised).

A GEMM ``(M x K) @ (K x N)`` is cut into output tiles, each computed by one SM at a time, so
its compute time is whole *waves* of tiles, ``ceil(ceil(M / tm) ceil(N / tn) / SMs)``, for the
tile shape that finishes first (cuBLAS and cuDNN pick among several CUTLASS-style tensor-core
tiles; tiles smaller than 128 x 128 reuse their operands less and run at a lower efficiency).
This is the compute side only; the memory side and any fixed cost belong to the model that
calls it (``hwsim.gpu_serving.kernels.gemm_s``, ``hwsim.diffusion.analytical``), each with its
own fitted constants. Shared here so that two systems use one wave model, not two copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ArrayLike = Any  # float | np.ndarray

#: output tile shapes (rows x columns) a GEMM may be cut into (CUTLASS/cuBLAS tensor-core tiles)
TILES: tuple[tuple[int, int], ...] = ((64, 64), (128, 64), (64, 128), (128, 128), (128, 256),
                                      (256, 128))
#: tiles of at least this many outputs run at the full compute efficiency
FULL_TILE = 128 * 128

_TM = np.array([t[0] for t in TILES], dtype=float)
_TN = np.array([t[1] for t in TILES], dtype=float)
_FULL = _TM * _TN >= FULL_TILE


def power_mean(a: ArrayLike, b: ArrayLike, p: ArrayLike) -> np.ndarray:
    """``(a^p + b^p)^(1/p)`` without under- or overflow (the larger of the two as p grows)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    top, low = np.maximum(a, b), np.minimum(a, b)
    safe = np.where(top > 0, top, 1.0)
    p = np.asarray(p, dtype=float)
    return np.where(top > 0, safe * (1.0 + (low / safe) ** p) ** (1.0 / p), 0.0)


def tile_wave_compute_s(m: ArrayLike, n: ArrayLike, k: ArrayLike, peak_flops: ArrayLike,
                        sms: ArrayLike, efficiency: ArrayLike,
                        small_tile_efficiency: ArrayLike) -> np.ndarray:
    """Compute time (s) of one GEMM of ``m`` rows, ``n`` columns and inner size ``k``: the
    fewest whole waves of output tiles over ``sms`` SMs, each tile at ``efficiency`` of its
    SM's share of ``peak_flops`` (FLOP/s), tiles under 128 x 128 at ``efficiency x
    small_tile_efficiency``. Never less than ``2 m n k / (peak x efficiency)``."""
    m, n, k = (np.asarray(x, dtype=float) for x in (m, n, k))
    sms = np.maximum(np.asarray(sms, dtype=float), 1.0)
    eff = np.asarray(efficiency, dtype=float)
    small = eff * np.asarray(small_tile_efficiency, dtype=float)
    if np.broadcast(m, n, sms).size <= 64:  # few points: the tile shapes on a last axis
        waves = np.ceil(np.ceil(m[..., None] / _TM) * np.ceil(n[..., None] / _TN)
                        / sms[..., None])
        rate = np.where(_FULL, eff[..., None], small[..., None])
        best = np.min(waves * (2.0 * _TM * _TN) / rate, axis=-1)
    else:  # many points: one pass per tile shape (smaller temporaries)
        rows = {tm: np.ceil(m / tm) for tm in {t[0] for t in TILES}}
        cols = {tn: np.ceil(n / tn) for tn in {t[1] for t in TILES}}
        best = None
        for tm, tn in TILES:
            w = np.ceil(rows[tm] * cols[tn] / sms) * ((2.0 * tm * tn)
                                                     / (eff if tm * tn >= FULL_TILE else small))
            best = w if best is None else np.minimum(best, w)
    return best * k * sms / np.asarray(peak_flops, dtype=float)

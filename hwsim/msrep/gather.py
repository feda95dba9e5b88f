"""DRAM bytes of the x gather of a row-format SpMV/SpMM (CSR, row-sorted COO) on one GPU.

Each nonzero reads ``x[col]``. The GPU serves the read from its L2 in 32-byte sectors
(``node.atomic_sector_bytes``; CUDA C++ programming guide, device memory accesses), so a read
that misses moves a whole sector from DRAM for ``vec`` useful bytes, and one that hits moves
nothing. The DRAM bytes of a part are its x misses times the sector; how many reads miss
depends on how the columns fall:

- **banded** (``Profile.band``): the columns of consecutive rows overlap, so a sector is reused
  by the next rows long before anything evicts it; only its first read misses. A part reads
  the sectors of its column range once (unless one row's band is larger than the L2).
- **columns independent of the row** (R-MAT, uniform, any shuffled matrix): the reads are draws
  from the columns' popularity (sector ``s`` read ``n_s`` times, the nonzeros of its
  columns, at random places of the row order), the independent reference model. An LRU cache
  of ``C`` sectors then holds the sectors read in the last ``t_C`` reads, where ``t_C`` solves
  ``D(t_C) = C`` with ``D(t) = sum_s (1 - (1 - t / nnz)^n_s)`` the expected distinct sectors
  of ``t`` reads (Che, Tung and Wang, IEEE JSAC 20(7), 2002, there with ``exp(-t n_s / nnz)``
  for an endless sequence; here for the matrix's finite one, so that all of it touches every
  sector once). A part of ``N`` reads starting with an empty cache misses ``D(N)`` times if
  ``N <= t_C``, else ``C + (N - t_C) m(t_C)`` with ``m = dD/dt`` the miss ratio there.
- **a Matrix Market file** (``Profile.csr_cols``): the real read sequence of each part. A read
  whose sector was last read ``d`` reads earlier (its reuse time) hits if ``d <= T``, where the
  working set of ``T`` reads, ``s(T) = sum_{k < T} P(d > k)``, equals the cache (Denning's
  working-set model, CACM 11(5), 1968, which for independent reads is the same ``t_C``); first
  reads of a sector always miss.

Assumptions (derived here, not measured): the whole L2 holds x (the matrix and y stream
through it once and are taken not to evict reused x sectors); each part (or task) starts with
an empty L2; a sector missed is read at the HBM efficiency fitted on streaming (HV15R). With
``vec`` of 32 B or more (SpMM) each column is its own group of ``ceil(vec / sector)`` sectors.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import brentq

from hwsim.msrep.matrix import Profile

log = logging.getLogger(__name__)

#: entries of one (sector values x parts) temporary of the independent-reference model
_CHUNK = 1 << 22


def _cache(prof: Profile) -> dict:
    """A per-profile memo (profiles are frozen; their ``__dict__`` still takes entries)."""
    return prof.__dict__.setdefault("_gather_cache", {})


def _popularity(prof: Profile, spc: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct per-sector nonzero counts (>0) and how many sectors have each."""
    key = ("pop", spc)
    memo = _cache(prof)
    if key not in memo:
        c = np.asarray(prof.col_nnz, dtype=np.int64)
        c = np.concatenate([c, np.zeros((-c.size) % spc, dtype=np.int64)])
        per_sector = c.reshape(-1, spc).sum(axis=1)
        u, m = np.unique(per_sector[per_sector > 0], return_counts=True)
        memo[key] = (u.astype(float), m.astype(float))
    return memo[key]


def _distinct(u: np.ndarray, m: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Expected distinct sectors among a random ``frac`` of the reads:
    ``sum m (1 - (1 - frac)^u)`` for each entry of ``frac`` (chunked)."""
    out = np.empty(frac.size)
    step = max(1, _CHUNK // max(u.size, 1))
    with np.errstate(divide="ignore"):
        log_keep = np.log1p(-np.minimum(frac, 1.0))
    for i in range(0, frac.size, step):
        out[i:i + step] = m @ (1.0 - np.exp(np.outer(u, log_keep[i:i + step])))
    return out


def _irm_misses(prof: Profile, reads: np.ndarray, spc: int, cap: float) -> np.ndarray:
    """Cold-start misses of parts of ``reads`` independent reads (module docstring)."""
    u, m = _popularity(prof, spc)
    total = float(prof.nnz)
    if total <= 0 or u.size == 0:
        return np.zeros_like(reads)
    cold = _distinct(u, m, reads / total)
    if m.sum() <= cap:  # every sector x touches fits: only first reads miss
        return cold
    key = ("tc", spc, cap)
    memo = _cache(prof)
    if key not in memo:
        def gap(f: float) -> float:
            return float(_distinct(u, m, np.array([f]))[0]) - cap
        f_c = float(brentq(gap, 0.0, 1.0, xtol=1e-14, rtol=1e-12))
        # the miss ratio there: dD/dt, t = f total
        ratio = float(m @ (u / total * np.exp((u - 1.0) * np.log1p(-f_c))))
        memo[key] = (f_c * total, ratio)
    t_c, ratio = memo[key]
    return np.where(reads <= t_c, cold, cap + (reads - t_c) * ratio)


def _reuse_prev(prof: Profile, spc: int) -> np.ndarray:
    """For each nonzero in CSR order, the index of the previous read of its sector (-1)."""
    key = ("prev", spc)
    memo = _cache(prof)
    if key not in memo:
        s = np.asarray(prof.csr_cols, dtype=np.int64) // spc
        order = np.argsort(s, kind="stable")
        ss = s[order]
        prev = np.full(s.size, -1, dtype=np.int64)
        same = ss[1:] == ss[:-1]
        prev[order[1:][same]] = order[:-1][same]
        memo[key] = prev
    return memo[key]


def _trace_misses(prev: np.ndarray, a: int, b: int, cap: float) -> float:
    """Misses of the reads ``[a, b)`` from an empty cache of ``cap`` sectors (working set)."""
    n = b - a
    if n <= 0:
        return 0.0
    pv = prev[a:b]
    first = pv < a
    f = float(first.sum())
    if f <= cap:
        return f
    d = np.sort((np.arange(a, b) - pv)[~first]).astype(float)
    # s(T) = (f T + sum min(d, T)) / n, piecewise linear in T; evaluated at each d_k
    k = np.arange(d.size)
    prefix = np.concatenate([[0.0], np.cumsum(d)[:-1]])
    s_at = (f * d + prefix + (d.size - k) * d) / n
    j = int(np.searchsorted(s_at, cap, side="left"))
    below = prefix[j] if j < d.size else float(d.sum())
    t = (cap * n - below) / (f + d.size - j)  # solve on the segment before d_j
    return f + float((d > t).sum())


def x_miss_sectors(prof: Profile, nnz: np.ndarray, first_line: np.ndarray,
                   lines: np.ndarray, vec: int, sector: int, l2_bytes: float) -> np.ndarray:
    """x sectors each part reads from DRAM; parts are contiguous runs of the CSR nonzeros
    (``nnz`` each, starting in line ``first_line`` and holding ``lines`` lines)."""
    nnz = np.asarray(nnz, dtype=float)
    spc = max(1, sector // vec)             # x entries per sector
    groups = -(-vec // sector)              # sectors per x entry (SpMM: vec >= sector)
    cap = l2_bytes / (groups * sector)      # x entries' sector groups the L2 holds
    if prof.band >= 0:
        w = prof.band
        lo = np.maximum(first_line - w, 0)
        hi = np.minimum(first_line + lines - 1 + w, prof.cols - 1)
        touched = np.where((nnz > 0) & (hi >= lo), hi // spc - lo // spc + 1, 0).astype(float)
        per_row = (2 * w + 1) / spc + 1
        if per_row > cap:  # one row's band overflows the L2: each row reads its own sectors
            touched = np.ceil(nnz / spc) + lines
        return touched * groups
    if prof.csr_cols is not None:
        prev = _reuse_prev(prof, spc)
        off = np.concatenate([[0], np.cumsum(nnz.astype(np.int64))])
        return np.array([_trace_misses(prev, int(off[i]), int(off[i + 1]), cap)
                         for i in range(nnz.size)]) * groups
    return _irm_misses(prof, nnz, spc, cap) * groups

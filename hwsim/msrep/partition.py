"""Partitions of a sparse matrix across GPUs (after MSREP, arXiv 2209.07552, and PNNL's
multi-GPU SpMV code, github.com/pnnl/s-blas and JieyangChen7/HPDA_SBLAS_PNNL).

A partition cuts the matrix along its *lines*: rows for CSR and COO (row-sorted), columns for
CSC. Three schemes:

- **row-block**: equal lines per part, part ``d`` starts at line ``floor(d L / P)``;
- **nnz-balanced**: equal nonzeros, part ``i`` starts at nonzero ``floor(i nnz / P)``; a line
  cut by a boundary is held partly by both parts (a *split* line, at most ``P - 1``), whose
  partial results the merge adds;
- **task-pool**: the nnz-balanced cut into ``P = GPUs x tasks_per_gpu`` tasks, which the GPUs
  pull in order as they free up (the schedule is in :mod:`hwsim.msrep.analytical`).

Load imbalance is ``max_g nnz_g / (nnz / G)`` (1 = perfect): nnz-balanced gives at most
``1 + G / nnz`` by construction; row-block gives whatever the matrix's skew over line blocks is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Parts:
    """Contiguous parts of a matrix's lines: per part its nonzeros, the lines it touches
    (a split line counts for both parts) and whether it starts inside a line."""

    nnz: np.ndarray
    lines: np.ndarray
    split_start: np.ndarray
    first: np.ndarray  # the first line each part holds (its own or the split one it starts in)

    @property
    def count(self) -> int:
        return int(self.nnz.size)

    @property
    def split_lines(self) -> int:
        """Lines held by more than one part."""
        return int(self.split_start.sum())


def row_block(line_nnz: np.ndarray, parts: int) -> Parts:
    """Equal lines per part."""
    n_lines = line_nnz.size
    starts = (np.arange(parts + 1, dtype=np.int64) * n_lines) // parts
    cum = np.concatenate([[0], np.cumsum(line_nnz, dtype=np.int64)])
    return Parts(nnz=np.diff(cum[starts]), lines=np.diff(starts),
                 split_start=np.zeros(parts, dtype=bool), first=starts[:-1].copy())


def nnz_bounds(total: int, parts: int) -> np.ndarray:
    """Nonzero index where each part starts, and the total: ``floor(i total / parts)``."""
    return (np.arange(parts + 1, dtype=np.int64) * total) // parts


def by_nonzeros(line_nnz: np.ndarray, bounds: np.ndarray) -> Parts:
    """Parts holding the nonzeros ``[bounds[i], bounds[i + 1])`` in line order."""
    cum = np.cumsum(line_nnz, dtype=np.int64)
    n_lines = line_nnz.size
    b = bounds[:-1]
    # the line holding nonzero b (the first line whose cumulative count exceeds b)
    start = np.minimum(np.searchsorted(cum, b, side="right"), n_lines - 1)
    before = cum[start] - line_nnz[start]
    split = (b > before) & (b < cum[start])
    split[0] = False
    start[0] = 0
    # a part runs to the next part's first line, and into it when that line is split
    end = np.append(start[1:] + split[1:], n_lines)
    empty = np.diff(bounds) == 0
    # lines before a part's first nonzero that a run of empty parts just before it would have
    # started on (zero-nonzero lines) are the part's own: it starts where that run starts
    idx = np.arange(empty.size)
    last_full = np.maximum.accumulate(np.where(empty, -1, idx))
    first = np.concatenate(([0], last_full[:-1] + 1))
    lines = np.where(empty, 0, end - start[first])
    return Parts(nnz=np.diff(bounds), lines=lines, split_start=split & ~empty,
                 first=start[first])


def partition(line_nnz: np.ndarray, gpus: int, scheme: str, tasks_per_gpu: int = 1) -> Parts:
    """The parts of ``scheme`` (tasks, for the task pool)."""
    total = int(line_nnz.sum())
    if scheme == "row-block":
        return row_block(line_nnz, gpus)
    count = gpus * (tasks_per_gpu if scheme == "task-pool" else 1)
    return by_nonzeros(line_nnz, nnz_bounds(total, count))


def imbalance(per_gpu: np.ndarray) -> float:
    """``max / mean`` of a per-GPU load (1 = balanced; NaN for no load at all)."""
    per_gpu = np.asarray(per_gpu, dtype=float)
    mean = per_gpu.mean()
    return float(per_gpu.max() / mean) if mean > 0 else float("nan")

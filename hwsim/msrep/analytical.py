"""Closed-form time of a multi-GPU SpMV/SpMM (after MSREP, arXiv 2209.07552), vectorised over
the node's figures.

One product ``y = A x`` (``x`` with ``vectors`` columns), ``A`` cut into parts
(:mod:`hwsim.msrep.partition`), on ``G`` GPUs:

1. **host to device**: each GPU's part of A in its format plus the x it needs (all of x for
   CSR and COO, its column segment for CSC) over PCIe. GPUs behind one PCIe switch share its
   uplink fairly (processor sharing: with ``k`` copies in flight each gets ``1/k``), so a
   switch's copies end together when they are equal; a copy's time is its bytes over
   ``pcie_efficiency x`` the x16 bandwidth. A resident matrix skips the copy of A.
2. **kernel**: memory-bound; each GPU streams its bytes at ``hbm_efficiency x`` peak HBM plus a
   launch. Bytes (derived here from the formats): CSR ``nnz (v + i) + (lines + 1) i`` for A,
   plus ``lines v N`` of y and the x sectors its gathers miss in the L2
   (:mod:`hwsim.msrep.gather`: 32 B per miss; a banded matrix reads its column range once, a
   scattered one misses as an LRU L2 of ``node.l2_cache_KiB`` under independent reads does);
   COO ``nnz (v + 2 i)`` for A and the same x gather; CSC streams its column segment of x and
   updates y with atomics: each update is a read-modify-write of a y sector in L2, charged
   as one ``atomic_sector_bytes`` sector of memory traffic per nonzero and vector group
   whether or not y stays in L2 (an assumption, not a measured atomic throughput; MSREP's
   research code measured CSC 4-33x slower than CSR on one GPU, 3.7x on HV15R, where the
   model gives 3.6x).
3. **merge**: ``host``: each GPU copies its partial y back as soon as its kernel ends (the
   switches shared as above) and the host adds the split rows (CSC: sums G full-length
   partials); ``nvlink``: each GPU but the last sends its boundary row's partial to the next
   (the at most ``G - 1`` split rows; CSC: a ring all-reduce of y, ``2 (G - 1) / G`` of it per
   GPU), y stays on the GPUs.

Further iterations copy only x again (host) or all-gather y into x over NVLink. The task pool
pulls tasks in order onto the GPU that frees first (list scheduling); its copies and kernels
overlap when it has 2 or more streams (a task then takes ``max(copy, kernel)``), its copies
sharing a switch as if every GPU behind it were copying (the DES resolves the real overlap).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwsim.batch import REASON
from hwsim.msrep import gather
from hwsim.msrep import partition as part
from hwsim.msrep.matrix import Profile, profile_of
from hwsim.system import Inputs

log = logging.getLogger(__name__)

#: node fields the block evaluates as arrays
NODE_VECTOR_FIELDS = ("hbm_bandwidth_GBps", "pcie_bandwidth_GBps", "nvlink_bandwidth_GBps",
                      "host_memory_bandwidth_GBps", "launch_overhead_us", "hbm_capacity_GB")
CALIBRATION_FIELDS = ("hbm_efficiency", "pcie_efficiency")
VECTOR_KEYS: frozenset[str] = frozenset(
    [f"node.{k}" for k in NODE_VECTOR_FIELDS]
    + [f"calibration.{k}" for k in CALIBRATION_FIELDS])


@dataclass(frozen=True)
class Work:
    """Bytes of each part (GPU or task) of one product, in one format."""

    nnz: np.ndarray        # nonzeros per part
    lines: np.ndarray      # rows (CSR, COO) or columns (CSC) per part
    a_bytes: np.ndarray    # the part of A in its format
    kernel_bytes: np.ndarray  # what its kernel moves through HBM
    y_bytes: np.ndarray    # its partial result
    x_bytes: float         # x one GPU needs (row formats: all of it), per GPU
    split_lines: int
    rows: int
    cols: int
    total_nnz: int


def work(prof: Profile, fmt: str, parts: part.Parts, vb: int, ib: int, n_vec: int,
         sector: int, gpus: int, l2_bytes: float) -> Work:
    """Bytes per part for format ``fmt`` (see the module docstring; the x gather of the row
    formats from :func:`hwsim.msrep.gather.x_miss_sectors`)."""
    nnz = parts.nnz.astype(float)
    lines = parts.lines.astype(float)
    vec = vb * n_vec
    if fmt == "coo":
        a = nnz * (vb + 2 * ib)
    else:
        a = nnz * (vb + ib) + np.where(parts.lines > 0, (lines + 1) * ib, 0.0)
    if fmt == "csc":
        groups = np.ceil(vec / sector)
        kernel = a + lines * vec + nnz * groups * sector
        y = np.full_like(nnz, float(prof.rows * vec))
        x_gpu = 0.0  # its column segment is counted per part below
    else:
        misses = gather.x_miss_sectors(prof, parts.nnz, parts.first, parts.lines, vec, sector,
                                       l2_bytes)
        kernel = a + lines * vec + misses * sector
        y = lines * vec
        x_gpu = float(prof.cols * vec)
    return Work(nnz=nnz, lines=lines, a_bytes=a, kernel_bytes=kernel, y_bytes=y,
                x_bytes=x_gpu, split_lines=parts.split_lines, rows=prof.rows, cols=prof.cols,
                total_nnz=prof.nnz)


def ps_finish(starts: np.ndarray, sizes: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Finish times of jobs sharing one server fairly (processor sharing): ``starts`` and
    ``sizes`` of shape (points, jobs), ``rate`` (points,) in size units per second."""
    starts = np.asarray(starts, dtype=float)
    left = np.array(sizes, dtype=float)
    n, k = left.shape
    rate = np.broadcast_to(np.asarray(rate, dtype=float), (n,))
    finish = np.where(left <= 0, starts, np.nan)
    done = left <= 0
    t = np.min(np.where(done, np.inf, starts), axis=1)
    t = np.where(np.isfinite(t), t, 0.0)
    for _ in range(2 * k + 1):
        if done.all():
            break
        active = (starts <= t[:, None] + 1e-18) & ~done
        na = active.sum(axis=1)
        share = np.where(na > 0, rate / np.maximum(na, 1), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            dt_done = np.min(np.where(active, left / share[:, None], np.inf), axis=1)
        dt_arr = np.min(np.where(~active & ~done, starts - t[:, None], np.inf), axis=1)
        dt = np.minimum(dt_done, dt_arr)
        dt = np.where(np.isfinite(dt), dt, 0.0)
        left = np.where(active, left - dt[:, None] * share[:, None], left)
        t = t + dt
        now_done = active & (left <= 1e-9 * np.maximum(np.asarray(sizes, float), 1.0))
        finish = np.where(now_done, t[:, None], finish)
        done |= now_done
    return finish


def shared_switch_finish(starts: np.ndarray, sizes: np.ndarray, rate: np.ndarray,
                         per_switch: int) -> np.ndarray:
    """:func:`ps_finish` per PCIe switch: GPU ``g`` is behind switch ``g // per_switch``."""
    n, g = sizes.shape
    out = np.empty((n, g))
    for s in range(0, g, per_switch):
        sl = slice(s, min(s + per_switch, g))
        out[:, sl] = ps_finish(starts[:, sl], sizes[:, sl], rate)
    return out


def list_schedule(first_free: np.ndarray, durations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tasks in order onto the GPU that frees first: ``first_free`` (points, G), ``durations``
    (points, tasks); returns each GPU's end time and each task's GPU (points, tasks)."""
    free = np.array(first_free, dtype=float)
    n, tasks = durations.shape
    owner = np.empty((n, tasks), dtype=np.int64)
    idx = np.arange(n)
    for t in range(tasks):
        g = np.argmin(free, axis=1)
        owner[:, t] = g
        free[idx, g] += durations[:, t]
    return free, owner


@dataclass(frozen=True)
class Node:
    """The node figures the model reads, as arrays over design points (SI units)."""

    hbm_Bps: np.ndarray
    pcie_Bps: np.ndarray
    nvlink_Bps: np.ndarray
    host_Bps: np.ndarray
    launch_s: np.ndarray
    capacity_B: np.ndarray
    per_switch: int
    sector: int
    l2_bytes: float


def node_arrays(node: Any, cal: Any, points: Mapping[str, np.ndarray], n: int) -> Node:
    """The node's figures and fitted constants with any vectorised overrides, broadcast to
    ``n`` points."""

    def get(field: str) -> np.ndarray:
        role, spec = ("calibration", cal) if field in CALIBRATION_FIELDS else ("node", node)
        v = points.get(f"{role}.{field}")
        return np.broadcast_to(np.asarray(getattr(spec, field) if v is None else v,
                                          dtype=float), (n,))

    return Node(hbm_Bps=get("hbm_bandwidth_GBps") * 1e9 * get("hbm_efficiency"),
                pcie_Bps=get("pcie_bandwidth_GBps") * 1e9 * get("pcie_efficiency"),
                nvlink_Bps=get("nvlink_bandwidth_GBps") * 1e9,
                host_Bps=get("host_memory_bandwidth_GBps") * 1e9,
                launch_s=get("launch_overhead_us") * 1e-6,
                capacity_B=get("hbm_capacity_GB") * 1e9,
                per_switch=int(node.gpus_per_pcie_switch), sector=int(node.atomic_sector_bytes),
                l2_bytes=float(node.l2_cache_KiB) * 1024.0)


def _merge(end: np.ndarray, w: Work, y_gpu: np.ndarray, fmt: str, merge: str, nd: Node,
           vec: float) -> tuple[np.ndarray, np.ndarray]:
    """When the merged result is ready, from each GPU's kernel end; and bytes moved."""
    n, g = end.shape
    if merge == "host":  # the result comes back to the host, even from one GPU
        fin = shared_switch_finish(end, y_gpu, nd.pcie_Bps, nd.per_switch)
        add_B = 0.0 if g == 1 else (
            (g + 1) * w.rows * vec if fmt == "csc" else 3.0 * w.split_lines * vec)
        return fin.max(axis=1) + add_B / nd.host_Bps, y_gpu.sum(axis=1)
    if g == 1:
        return end[:, 0] + 0.0, np.zeros(n)
    if fmt == "csc":  # ring all-reduce of the full-length partials
        ar_B = 2.0 * (g - 1) / g * w.rows * vec
        return end.max(axis=1) + ar_B / nd.nvlink_Bps, np.full(n, ar_B * g)
    # each GPU but the last sends its boundary row's partial to the next (G - 1 rows at most)
    sent = end.copy()
    sent[:, :-1] += vec / nd.nvlink_Bps[:, None]
    return sent.max(axis=1), np.full(n, (g - 1) * vec)


def evaluate(prof: Profile, wl: Any, mp: Any, node: Any, cal: Any,
             points: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Every metric at ``n`` points (node figures vectorised), for one matrix and mapping."""
    g = int(mp.gpus or node.gpus)
    nd = node_arrays(node, cal, points, n)
    vb, ib, n_vec = wl.value_bytes, wl.index_bytes, wl.vectors
    vec = float(vb * n_vec)
    line_nnz = prof.col_nnz if mp.format == "csc" else prof.row_nnz
    parts = part.partition(line_nnz, g, mp.partition, mp.tasks_per_gpu)
    w = work(prof, mp.format, parts, vb, ib, n_vec, nd.sector, g, nd.l2_bytes)
    x_part = w.lines * vec if mp.format == "csc" else np.zeros_like(w.lines)
    a_copy = 0.0 if mp.resident else 1.0
    kernel_p = nd.launch_s[:, None] + w.kernel_bytes[None, :] / nd.hbm_Bps[:, None]
    if mp.partition == "task-pool":
        share = np.minimum(nd.per_switch, g)
        copy_rate = nd.pcie_Bps / share
        copy_p = (a_copy * w.a_bytes + x_part)[None, :] / copy_rate[:, None]
        k_task = kernel_p - nd.launch_s[:, None] * (1.0 - 1.0 / mp.streams)
        dur = copy_p + k_task if mp.streams == 1 else np.maximum(copy_p, k_task)
        x_first = np.full((n, g), w.x_bytes) / copy_rate[:, None]
        end, owner = list_schedule(x_first, dur)
        onehot = owner[:, :, None] == np.arange(g)[None, None, :]  # (n, tasks, G)
        nnz_g = np.einsum("ntg,t->ng", onehot, w.nnz)
        y_g = np.einsum("ntg,t->ng", onehot, w.y_bytes)
        kern_g = np.einsum("ntg,nt->ng", onehot, k_task)
        h2d_g = np.einsum("ntg,nt->ng", onehot, copy_p) + x_first
        h2d_B = float((a_copy * w.a_bytes + x_part).sum() + g * w.x_bytes)
        hold_B = (np.einsum("ntg,t->ng", onehot, w.a_bytes + x_part + w.y_bytes)
                  + w.x_bytes)
        if mp.format == "csc":
            y_g = np.full((n, g), float(w.rows * vec))
        x_g = np.einsum("ntg,t->ng", onehot, x_part) + w.x_bytes
    else:
        h2d_each = a_copy * w.a_bytes + w.x_bytes + x_part  # (G,)
        h2d_g = shared_switch_finish(np.zeros((n, g)), np.broadcast_to(h2d_each, (n, g)),
                                     nd.pcie_Bps, nd.per_switch)
        kern_g = kernel_p
        end = h2d_g + kern_g
        nnz_g = np.broadcast_to(w.nnz, (n, g))
        y_g = np.broadcast_to(w.y_bytes, (n, g))
        h2d_B = float(h2d_each.sum())
        hold_B = np.broadcast_to(w.a_bytes + w.x_bytes + x_part + w.y_bytes, (n, g))
        x_g = np.broadcast_to(w.x_bytes + x_part, (n, g))
    first_done, merge_B = _merge(end, w, np.asarray(y_g, dtype=float), mp.format, mp.merge, nd,
                                 vec)
    iters = wl.iterations
    if iters > 1:
        if mp.merge == "host":  # x again over PCIe, then the same kernels and merge
            x_fin = shared_switch_finish(np.zeros((n, g)), np.asarray(x_g, dtype=float),
                                         nd.pcie_Bps, nd.per_switch)
            it_done, it_B = _merge(x_fin + kern_g, w, np.asarray(y_g, float), mp.format,
                                   mp.merge, nd, vec)
            x_moved = np.asarray(x_g).sum(axis=1)
        else:  # all-gather of y into x (row formats); CSC's all-reduce left x in place
            ag = 0.0 if mp.format == "csc" else (g - 1) / g * w.cols * vec
            it_done, it_B = _merge(ag / nd.nvlink_Bps[:, None] + kern_g, w,
                                   np.asarray(y_g, float), mp.format, mp.merge, nd, vec)
            x_moved = float(ag * g)
        total = first_done + (iters - 1) * it_done
        h2d_total = h2d_B + (iters - 1) * (x_moved if mp.merge == "host" else 0.0)
        merge_total = merge_B + (iters - 1) * (it_B + (x_moved if mp.merge == "nvlink" else 0))
    else:
        total, h2d_total, merge_total = first_done, np.full(n, h2d_B), merge_B
    kernel_s = kern_g.max(axis=1)
    one_gpu = work(prof, mp.format, part.partition(line_nnz, 1, "row-block"), vb, ib, n_vec,
                   nd.sector, 1, nd.l2_bytes)
    kernel_1 = nd.launch_s + float(one_gpu.kernel_bytes[0]) / nd.hbm_Bps
    with np.errstate(invalid="ignore", divide="ignore"):
        nnz_imb = nnz_g.max(axis=1) / (w.total_nnz / g)
        kern_imb = kernel_s / kern_g.mean(axis=1)
    fits = np.asarray(hold_B).max(axis=1) <= nd.capacity_B
    split = (w.rows if g > 1 else 0) if mp.format == "csc" else w.split_lines
    out = {
        "latency_s": total,
        "h2d_s": np.asarray(h2d_g).max(axis=1),
        "kernel_s": kernel_s,
        "merge_s": first_done - end.max(axis=1),
        "transfer_share": 1.0 - iters * kernel_s / total,
        "imbalance": nnz_imb,
        "kernel_imbalance": kern_imb,
        "split_rows": np.full(n, float(split)),
        "h2d_bytes": np.broadcast_to(h2d_total, (n,)).astype(float),
        "merge_bytes": np.broadcast_to(merge_total, (n,)).astype(float),
        "compute_speedup": kernel_1 / kernel_s,
        "gflops": 2.0 * w.total_nnz * n_vec * iters / total / 1e9,
        "gpus": np.full(n, float(g)),
        "nnz": np.full(n, float(w.total_nnz)),
    }
    reason = np.full(n, "", dtype=object)
    reason[~fits] = ("a GPU's part of the matrix with its vectors exceeds its HBM "
                     "(node.hbm_capacity_GB)")
    for key in out:
        out[key] = np.where(fits, out[key], np.nan)
    out[REASON] = reason
    return out


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """The :class:`hwsim.batch.BatchModel` block: node figures as arrays, the rest grouped."""
    wl, mp, node = inputs["workload"], inputs["mapping"], inputs["node"]
    g = int(mp.gpus or node.gpus)
    if g > node.gpus:
        out = {k: np.full(n, np.nan) for k in METRIC_NAMES}
        out[REASON] = np.full(n, f"mapping.gpus = {g} exceeds the node's {node.gpus} GPUs",
                              dtype=object)
        return out
    return evaluate(profile_of(wl), wl, mp, node, inputs["calibration"], points, n)


METRIC_NAMES = ("latency_s", "h2d_s", "kernel_s", "merge_s", "transfer_share", "imbalance",
                "kernel_imbalance", "split_rows", "h2d_bytes", "merge_bytes", "compute_speedup",
                "gflops", "gpus", "nnz")

"""Discrete-event simulation of a multi-GPU SpMV/SpMM on the shared kernel (:mod:`hwsim.des`).

One event per copy, kernel or task, never per nonzero:

- each PCIe switch has a :class:`~hwsim.des.Link` per direction (host to device, device to
  host), shared fairly by the copies of the GPUs behind it; each GPU an NVLink
  :class:`~hwsim.des.Link` to its ring neighbour and its HBM as a
  :class:`~hwsim.des.FairShare` (concurrent kernels of a task pool's streams share it);
- row-block and nonzero-balanced: each GPU copies its part and x, runs its kernel, and sends
  its partial result to the merge as soon as it ends; the host adds the split rows (CSC: the
  full-length partials) when the last one has arrived, and the next product starts;
- task pool: each GPU copies x, then ``streams`` workers per GPU pull tasks in order from one
  shared pool as they free up; a task copies its slice of A (unless resident) and runs its
  kernel. The assignment of the first product is kept for the next ones (the data stay).
  ``h2d_s`` and ``kernel_s`` are the time a GPU had a copy (a kernel) in flight, so the
  overlap of its streams shows.

Per-part bytes come from :func:`hwsim.msrep.analytical.work`, so where nothing contends (one
GPU per switch, or one GPU) the DES reproduces the analytical time exactly; the task pool's
copies on a shared switch overlap as they happen here, where the analytical model assumes
every GPU behind the switch is always copying.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np
import simpy

from hwsim.des import FairShare, Link, TraceRecorder
from hwsim.errors import InfeasibleDesign, InputError
from hwsim.msrep import analytical as an
from hwsim.msrep import partition as part
from hwsim.msrep.matrix import profile_of
from hwsim.system import Inputs, Metrics

log = logging.getLogger(__name__)

MAX_TASKS = 200_000  # tasks one run may simulate


class Busy:
    """Per GPU, the time during which at least one of its copies (kernels) was in flight."""

    def __init__(self, g: int) -> None:
        self.total = np.zeros(g)
        self._open = np.zeros(g, dtype=np.int64)
        self._since = np.zeros(g)

    def start(self, i: int, now: float) -> None:
        if self._open[i] == 0:
            self._since[i] = now
        self._open[i] += 1

    def stop(self, i: int, now: float) -> float:
        self._open[i] -= 1
        if self._open[i] == 0:
            self.total[i] += now - self._since[i]
        return float(self.total[i])


def evaluate(inputs: Inputs, *, seed: int = 0, trace: TraceRecorder | None = None) -> Metrics:
    """Simulate the products of one design point (deterministic: ``seed`` is unused, the
    matrix's own seed draws a generated matrix)."""
    wl, mp, node, cal = (inputs[r] for r in ("workload", "mapping", "node", "calibration"))
    g = int(mp.gpus or node.gpus)
    if g > node.gpus:
        raise InfeasibleDesign(f"mapping.gpus = {g} exceeds the node's {node.gpus} GPUs")
    base = an.evaluate(profile_of(wl), wl, mp, node, cal, {}, 1)
    if not np.isfinite(base["latency_s"][0]):
        raise InfeasibleDesign(str(base["reason"][0]) if "reason" in base else "infeasible")
    prof = profile_of(wl)
    nd = an.node_arrays(node, cal, {}, 1)
    hbm_Bps, pcie_Bps, nvl_Bps, host_Bps, launch = (
        float(x[0]) for x in (nd.hbm_Bps, nd.pcie_Bps, nd.nvlink_Bps, nd.host_Bps, nd.launch_s))
    vb, ib, n_vec = wl.value_bytes, wl.index_bytes, wl.vectors
    vec = float(vb * n_vec)
    csc = mp.format == "csc"
    line_nnz = prof.col_nnz if csc else prof.row_nnz
    parts = part.partition(line_nnz, g, mp.partition, mp.tasks_per_gpu)
    if parts.count > MAX_TASKS:
        raise InputError(f"{parts.count} tasks is more than the DES's {MAX_TASKS}; use "
                         "--fidelity analytical", key="mapping.tasks_per_gpu",
                         value=mp.tasks_per_gpu, has_value=True)
    w = an.work(prof, mp.format, parts, vb, ib, n_vec, nd.sector, g, nd.l2_bytes)
    x_part = w.lines * vec if csc else np.zeros_like(w.lines)
    a_copy = 0.0 if mp.resident else 1.0
    pool = mp.partition == "task-pool"

    env = simpy.Environment()
    n_sw = -(-g // nd.per_switch)
    h2d = [Link(env, pcie_Bps, name=f"pcie{s}.h2d", recorder=trace) for s in range(n_sw)]
    d2h = [Link(env, pcie_Bps, name=f"pcie{s}.d2h", recorder=trace) for s in range(n_sw)]
    nvl = [Link(env, nvl_Bps, name=f"nvlink{i}", recorder=trace) for i in range(g)]
    hbm = [FairShare(env, hbm_Bps) for _ in range(g)]
    sw = [i // nd.per_switch for i in range(g)]
    iters = wl.iterations
    copy_s = np.zeros(g)
    nnz_g = np.zeros(g)
    y_g = np.zeros(g) if not csc else np.full(g, float(w.rows * vec))
    x_g = np.zeros(g)
    mine: list[list[int]] = [[] for _ in range(g)]
    ends = np.zeros(g)
    marks: dict[str, float] = {}
    tasks: deque[int] = deque(range(parts.count))

    busy = {"copy": Busy(g), "kernel": Busy(g)}

    def copy(i: int, nbytes: float):
        busy["copy"].start(i, env.now)
        yield h2d[sw[i]].transfer(nbytes, label="h2d")
        return busy["copy"].stop(i, env.now)

    def kernel(i: int, nbytes: float, fixed: float):
        busy["kernel"].start(i, env.now)
        yield env.timeout(fixed)
        yield hbm[i].submit(nbytes)
        return busy["kernel"].stop(i, env.now)

    def worker(i: int):
        while tasks:
            t = tasks.popleft()
            mine[i].append(t)
            yield env.process(copy(i, a_copy * w.a_bytes[t] + x_part[t]))
            yield env.process(kernel(i, w.kernel_bytes[t], launch / mp.streams))

    def first_product(i: int):
        if pool:
            yield env.process(copy(i, w.x_bytes))
            yield simpy.AllOf(env, [env.process(worker(i)) for _ in range(mp.streams)])
            nnz_g[i] = w.nnz[mine[i]].sum()
            if not csc:
                y_g[i] = w.y_bytes[mine[i]].sum()
            x_g[i] = w.x_bytes + x_part[mine[i]].sum()
        else:
            yield env.process(copy(i, a_copy * w.a_bytes[i] + w.x_bytes + x_part[i]))
            yield env.process(kernel(i, w.kernel_bytes[i], launch))
            nnz_g[i], x_g[i] = w.nnz[i], w.x_bytes + x_part[i]
            if not csc:
                y_g[i] = w.y_bytes[i]
        ends[i] = env.now

    def later_product(i: int):
        if mp.merge == "host":
            yield h2d[sw[i]].transfer(x_g[i], label="x")
        elif not csc:
            yield nvl[i].transfer((g - 1) / g * w.cols * vec, label="all-gather x")
        fixed = launch / mp.streams * len(mine[i]) if pool else launch
        own = w.kernel_bytes[mine[i]].sum() if pool else w.kernel_bytes[i]
        yield env.process(kernel(i, own, fixed))
        ends[i] = env.now

    def merge_one(i: int):
        if mp.merge == "host":
            yield d2h[sw[i]].transfer(y_g[i], label="partial y")
        elif not csc and i < g - 1:  # the boundary row's partial to the next GPU
            yield nvl[i].transfer(vec, label="split row")

    def merge_all():
        if mp.merge == "nvlink" and csc and g > 1:
            yield simpy.AllOf(env, [nvl[i].transfer(2.0 * (g - 1) / g * w.rows * vec,
                                                    label="all-reduce y") for i in range(g)])
            return
        if mp.merge == "host" and g > 1:
            add_B = (g + 1) * w.rows * vec if csc else 3.0 * w.split_lines * vec
            yield env.timeout(add_B / host_Bps)

    def product(i: int, first: bool):
        yield env.process(first_product(i) if first else later_product(i))
        if not (mp.merge == "nvlink" and csc):
            yield env.process(merge_one(i))

    def run():
        for it in range(iters):
            yield simpy.AllOf(env, [env.process(product(i, it == 0)) for i in range(g)])
            if it == 0:
                marks["kernels_end"] = float(ends.max())
                kern_first = busy["kernel"].total.copy()
                copy_s[:] = busy["copy"].total
            yield env.process(merge_all())
            if it == 0:
                marks["first_done"] = env.now
                marks["kernel_s"] = float(kern_first.max())
                marks["kernel_mean"] = float(kern_first.mean())

    env.process(run())
    env.run()
    total = env.now
    kernel_s = marks["kernel_s"]
    one = an.work(prof, mp.format, part.partition(line_nnz, 1, "row-block"), vb, ib, n_vec,
                  nd.sector, 1, nd.l2_bytes)
    kernel_1 = launch + float(one.kernel_bytes[0]) / hbm_Bps
    h2d_bytes = sum(lk.bytes_in for lk in h2d)
    merge_bytes = sum(lk.bytes_in for lk in d2h) + sum(lk.bytes_in for lk in nvl)
    log.debug("msrep DES: %d GPUs, %d parts, %.6f s", g, parts.count, total)
    return {
        "latency_s": total,
        "h2d_s": float(copy_s.max()),
        "kernel_s": kernel_s,
        "merge_s": marks["first_done"] - marks["kernels_end"],
        "transfer_share": 1.0 - iters * kernel_s / total,
        "imbalance": float(nnz_g.max() / (w.total_nnz / g)) if w.total_nnz else float("nan"),
        "kernel_imbalance": kernel_s / marks["kernel_mean"],
        "split_rows": float((w.rows if g > 1 else 0) if csc else w.split_lines),
        "h2d_bytes": float(h2d_bytes),
        "merge_bytes": float(merge_bytes),
        "compute_speedup": kernel_1 / kernel_s,
        "gflops": 2.0 * w.total_nnz * n_vec * iters / total / 1e9,
        "gpus": float(g),
        "nnz": float(w.total_nnz),
    }

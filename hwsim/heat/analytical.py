"""HEAT's epoch time on a CPU, vectorised over design points, and the PyTorch-style baselines.

One training sample is one positive (user u, item i) with ``n`` sampled negatives. A thread
reads the ``n + 2`` embedding rows, does the fused forward and backward pass with vector
products, and writes the rows back (HEAT, Zhang et al. ICS'23, arXiv 2304.07334, section 4).
The released engine keeps a gradient table of the same shape beside each embedding table and
reads, accumulates and writes back an id's gradient row with its weight row
(hipdac-lab/ICS23-HEAT, commit 992252e: cf_cpu/src/modules/embeddings/embedding.cpp and
cf_cpu/src/modules/models/matrix_factorization.cpp), so each id is ``row_tables`` = 2 rows,
each served and charged as below.
The time of one sample on one thread is

    t = t_compute + sum over rows of t_row(level serving the row) + (DRAM rows) x W

- ``t_compute``: vector operations of K floats (n+1 cross dots, n+2 norms for the cosine,
  then the backward reusing the cached sums), each ceil(K / lanes) SIMD
  vectors at ``cycles_per_simd_vector`` (fitted) at the clock; the backward is fused with the
  update (n+1 user-gradient accumulations, n+1 item updates, 1 user update). The clock
  follows the power limit: f = min(boost, base x (cores per socket / active cores)^(1/3))
  (dynamic power ~ f^3), the active cores being those of the busiest socket.
- thread placement (``training.thread_placement``): ``compact`` fills socket 0 core by core
  and L3 domain by L3 domain, ``scatter`` deals the threads evenly over the sockets and then
  the L3 domains (OpenMP's close and spread binding over core places); it sets the busiest
  socket's active cores, the L3 domains in use and the threads per domain, the busiest die,
  and, with first-touch tables, the threads reading locally.
- ``t_row(level) = latency x (1 + (lines - 1) / MLP)``: the first cache line pays the level's
  latency, the rest overlap ``memory_level_parallelism`` (fitted) at a time.
- where a row is served: the user row stays in L2 across a user's consecutive interactions; a
  uniformly drawn row hits the shared last-level cache (L3 or, without one, L2) with probability
  (1/c)(1 - exp(-c C / N)) (C rows of capacity, N rows of both tables, c active cache domains
  whose writes invalidate each other's copies), else DRAM. With the tile sampler a negative is
  warm with probability 1 - N1 (1 - exp(-N2 / N1)) / N2 (N2 counts negative draws, as in
  Algorithm 1's read-time model; the first touches of each refreshed tile are cold), survives
  the writes of the other tiles holding it with exp(-(T-1) N1 / I), and is then served from
  the private level the tile fits (L1, L2, L3 share: min(1, C / S)).
- ``W``: the memory system is one queue of rate B (the DRAM or HBM bandwidth) that every
  thread's row misses (read plus write-back) share: W = s rho / (1 - rho), solved in closed form
  together with t (the fixed point is a quadratic).
- epoch = interactions x t / threads (the dynamic schedule balances the threads).

The baselines move bytes: per step of B positives, 12 passes over the B (n+2) gathered rows
(gather and copy, normalise, batched matmul, their backward, scatter) and 5 over the whole
tables (dense gradient zero and add, SGD read and write) or, with sparse gradients, 5 more over
the gathered rows (coalesce, sparse update), at a fitted share of the CPU's DRAM
or the GPU's HBM bandwidth, plus a per-step host overhead on the GPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hwsim.batch import REASON
from hwsim.errors import InputError
from hwsim.system import Inputs

GB = 1e9
VECTOR_KEYS = ("training.tile_rows", "training.refresh_interval", "training.threads",
               "training.negatives", "training.embedding_dim", "training.history_items")
#: baseline passes over the gathered rows per step (cosine; the dot product skips the two
#: normalisation passes forward and the two backward) and over the whole tables (dense path)
PASSES_GATHERED = {"cosine": 12.0, "dot": 8.0}
PASSES_TABLES = 5.0
#: sparse gradients instead: coalescing (read, write) and the sparse SGD update (parameter and
#: gradient read, parameter write) over the gathered rows, never the whole tables
PASSES_SPARSE = 5.0


def check_inputs(inputs: Inputs) -> None:
    """Cross-spec checks the schemas cannot make: a tile no larger than the item count."""
    ds, tr = inputs["dataset"], inputs["training"]
    if tr.sampler == "tile" and tr.tile_rows > ds.items:
        raise InputError(f"a tile of {tr.tile_rows} rows is larger than the {ds.items} items "
                         f"of dataset {ds.name}; expected tile_rows <= {ds.items}",
                         key="training.tile_rows", value=tr.tile_rows, has_value=True)


def spread(threads: np.ndarray, unit_cores: int, units: int, placement: str
           ) -> tuple[np.ndarray, np.ndarray]:
    """(units in use, busy cores of the busiest unit) for ``threads`` threads on a node of
    ``units`` units (sockets, L3 domains, dies, NUMA nodes) of ``unit_cores`` cores each, one
    thread per core. ``compact`` fills one unit before the next (OMP_PLACES=cores with
    OMP_PROC_BIND=close: consecutive threads on consecutive cores); ``scatter`` deals the
    threads evenly over the units (OMP_PROC_BIND=spread; Intel's KMP_AFFINITY=scatter, Intel
    C++ Compiler Developer Guide, "Thread Affinity Interface")."""
    phys = np.minimum(threads, unit_cores * units)
    if placement == "scatter":
        used = np.minimum(phys, units)
        return used, np.ceil(phys / used)
    return np.ceil(phys / unit_cores), np.minimum(phys, unit_cores)


def _levels(cpu: Any, f: np.ndarray, threads: np.ndarray, placement: str
            ) -> dict[str, np.ndarray]:
    """Latencies (s), per-thread private capacities (B) and shared-cache figures."""
    phys = np.minimum(threads, cpu.cores)
    smt = np.maximum(1.0, threads / cpu.cores)
    l1 = cpu.l1d_KiB * 1024 / smt
    _, on_l2 = spread(phys, cpu.l2_cores_sharing, cpu.cores // cpu.l2_cores_sharing, placement)
    l2 = cpu.l2_KiB * 1024 / (on_l2 * smt)
    if cpu.l3_MiB > 0:
        domains, on_l3 = spread(phys, cpu.l3_cores_sharing, cpu.cores // cpu.l3_cores_sharing,
                                placement)
        l3 = cpu.l3_MiB * 2**20 / (on_l3 * smt)
        llc_bytes, llc_lat = cpu.l3_MiB * 2**20, cpu.l3_latency_cycles / f
    else:
        domains, _ = spread(phys, cpu.l2_cores_sharing, cpu.cores // cpu.l2_cores_sharing,
                            placement)
        l3 = np.zeros_like(f)
        llc_bytes, llc_lat = cpu.l2_KiB * 1024, cpu.l2_latency_cycles / f
    return {"l1": l1, "l2": l2, "l3": l3, "lat1": cpu.l1_latency_cycles / f,
            "lat2": cpu.l2_latency_cycles / f,
            "lat3": (cpu.l3_latency_cycles / f) if cpu.l3_MiB > 0 else cpu.l2_latency_cycles / f,
            "llc_bytes": np.full_like(f, llc_bytes), "llc_lat": llc_lat,
            "domains": domains, "smt": smt, "phys": phys}


def clock_Hz(cpu: Any, threads: np.ndarray, placement: str = "compact") -> np.ndarray:
    """Clock of the busiest socket under the thread placement: the power limit's cube law."""
    _, active = spread(np.minimum(threads, cpu.cores), cpu.cores_per_socket, cpu.sockets,
                       placement)
    boost = cpu.boost_clock_GHz or cpu.base_clock_GHz
    return np.minimum(boost, cpu.base_clock_GHz
                      * (cpu.cores_per_socket / active) ** (1.0 / 3.0)) * 1e9


def _memory(cpu: Any, placement: str, threads: np.ndarray, thread_placement: str = "compact"
            ) -> tuple[np.ndarray, float]:
    """Mean DRAM latency (s) over the NUMA placement, and the bandwidth (B/s) serving it.
    First touch puts every page on node 0 (the initialising thread's); the threads on node 0
    (the busiest node under either thread placement) read locally, the others remotely."""
    nodes = cpu.sockets * cpu.numa_nodes_per_socket
    phys = np.minimum(threads, cpu.cores)
    if placement == "interleave":
        remote = np.full_like(phys, 1.0 - 1.0 / nodes, dtype=float)
        bw = cpu.memory_bandwidth_GBps * cpu.sockets * GB
    else:
        _, on_node0 = spread(phys, cpu.cores // nodes, nodes, thread_placement)
        remote = 1.0 - on_node0 / phys
        bw = cpu.memory_bandwidth_GBps / cpu.numa_nodes_per_socket * GB
    lat = cpu.memory_latency_ns * 1e-9 * (1.0 + remote * (cpu.numa_remote_latency_factor - 1))
    return lat, bw


def sample_model(inputs: Inputs, get, n: int, sampler: str) -> dict[str, np.ndarray]:
    """Per-sample time and its parts for ``n`` points with the given sampler."""
    cpu, cal, ds, tr = inputs["cpu"], inputs["calibration"], inputs["dataset"], \
        inputs["training"]
    T, K, neg = get("threads"), get("embedding_dim"), get("negatives")
    N1, N2, hist = get("tile_rows"), get("refresh_interval"), get("history_items")
    M, U, n_items = float(ds.train_interactions), float(ds.users), float(ds.items)
    row_B = K * tr.float_bytes
    # rows per id: the weight row and, in the released engine, its gradient row (module doc)
    g = float(tr.row_tables)
    lines = np.ceil(row_B / cpu.cache_line_B)
    mlp = cal.memory_level_parallelism
    f = clock_Hz(cpu, T, tr.thread_placement)
    lv = _levels(cpu, f, T, tr.thread_placement)
    lat_mem, bw = _memory(cpu, tr.memory_placement, T, tr.thread_placement)

    def t_row(lat):
        return lat * (1.0 + (lines - 1.0) / mlp)

    # a uniformly drawn row: last-level cache or DRAM
    c = lv["domains"]
    cap_rows = lv["llc_bytes"] / row_B
    h_llc = (1.0 / c) * (1.0 - np.exp(-c * cap_rows / (g * (U + n_items))))
    t_uni_fixed = h_llc * t_row(lv["llc_lat"]) + (1 - h_llc) * t_row(lat_mem)
    dram_uni = 1.0 - h_llc
    # user row: cold once per user (interactions grouped by user), else in L2
    cold_u = min(1.0, U / M)
    t_user = cold_u * t_uni_fixed + (1 - cold_u) * t_row(lv["lat2"])
    dram_user = cold_u * dram_uni
    # negatives
    if sampler == "tile":
        S = g * N1 * row_B
        h1 = np.minimum(1.0, np.maximum(lv["l1"] - 4 * row_B, 0) / S)
        h2 = np.maximum(np.minimum(1.0, lv["l2"] / S) - h1, 0)
        h3 = np.maximum(np.minimum(1.0, (lv["l2"] + lv["l3"]) / S) - h1 - h2, 0)
        spill = 1.0 - h1 - h2 - h3
        # N2 counts negative draws (Algorithm 1's read-time model: N1 cold reads per N2)
        warm = 1.0 - N1 * (1.0 - np.exp(-N2 / N1)) / N2
        survive = np.exp(-(np.minimum(T, cpu.cores) - 1) * N1 / n_items)
        hot = warm * survive
        t_hot = h1 * t_row(lv["lat1"]) + h2 * t_row(lv["lat2"]) + h3 * t_row(lv["lat3"]) \
            + spill * t_uni_fixed
        t_neg = hot * t_hot + (1 - hot) * t_uni_fixed
        dram_neg = (hot * spill + (1 - hot)) * dram_uni
        tiles = M * neg / N2                        # tiles drawn over an epoch, all threads
        space = tiles * N1 / n_items
        coverage = 1.0 - np.exp(tiles * np.log1p(-np.minimum(N1 / n_items, 1 - 1e-12)))
        pool = N1
    else:
        t_neg, dram_neg = t_uni_fixed, dram_uni
        space = np.full(n, np.inf)
        coverage = np.ones(n)
        pool = np.full(n, n_items)
    # behaviour aggregation: the user's history once per user, a K x K layer per sample, the
    # thread's local weight gradient applied every m iterations (K rows of the shared layer)
    hist_rows = hist * cold_u
    sync_rows = np.where(hist > 0, K / tr.aggregation_sync_interval, 0.0)
    t_reads = g * (t_user + t_uni_fixed + neg * t_neg) + hist_rows * t_uni_fixed \
        + sync_rows * t_row(lat_mem)
    dram_rows = g * (dram_user + dram_uni + neg * dram_neg) + hist_rows * dram_uni + sync_rows
    # vector operations of K floats
    ops_fwd = (neg + 1) + np.where(tr.similarity == "cosine", neg + 2, 0)
    # backward, fused with the update (the gradients are scalar combinations of S_u and T_j
    # from the cached sums): n+1 user-gradient accumulations, n+1 item updates, 1 user update
    ops_bwd = 2 * neg + 3
    ops_agg = np.where(hist > 0, hist * cold_u + 3 * K, 0.0)
    ops = ops_fwd + ops_bwd + ops_agg
    vecs = np.ceil(K / cpu.fp32_lanes)
    t_comp = ops * vecs * cal.cycles_per_simd_vector / f * lv["smt"]
    t_comp_fwd = ops_fwd * vecs * cal.cycles_per_simd_vector / f * lv["smt"]
    a = t_comp + t_reads
    # shared memory queue: x = a + m W, W = s rho / (1 - rho), rho = T m s / x
    s = 2.0 * row_B / bw
    cq = T * dram_rows * s
    x = 0.5 * ((a + cq) + np.sqrt((a - cq) ** 2 + 4.0 * dram_rows * s * cq))
    wait = x - a
    rows_touched = g * (2.0 + neg) + hist_rows
    return {
        "t": x, "t_comp": t_comp, "t_comp_fwd": t_comp_fwd, "t_reads": t_reads + wait,
        # one negative id: its g rows and their share of the memory queue
        "t_neg": g * (t_neg + dram_neg * wait / np.maximum(dram_rows, 1e-30)),
        "dram_rows": dram_rows, "rho": cq / x, "f": f, "h_llc": h_llc,
        "flops": 2.0 * K * ops, "bytes": 2.0 * rows_touched * row_B,
        "dram_GBps": T / x * dram_rows * 2 * row_B / GB, "space": space,
        "coverage": coverage,
        # expected distinct negatives of one sample drawn from a pool of `pool` items, over n
        "distinct": pool * -np.expm1(neg * np.log1p(-1.0 / np.maximum(pool, 1.0 + 1e-12)))
        / neg, "bw": np.full(n, bw), "row_B": row_B,
        "wait": wait, "lat_mem": lat_mem, "lines": lines,
    }


def baseline_bytes_per_step(inputs: Inputs, get) -> tuple[np.ndarray, np.ndarray]:
    """Bytes one PyTorch-style step moves, and the steps per epoch."""
    ds, tr = inputs["dataset"], inputs["training"]
    K, neg = get("embedding_dim"), get("negatives")
    row_B = K * tr.float_bytes
    B = tr.baseline_batch
    rows = B * (neg + 2)
    if tr.baseline_gradient == "dense":
        update = PASSES_TABLES * (ds.users + ds.items)
    else:
        update = PASSES_SPARSE * rows
    by = row_B * (PASSES_GATHERED[tr.similarity] * rows + update)
    steps = math.ceil(ds.train_interactions / B)
    return by, np.full_like(by, steps)


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every analytical metric of ``n`` points."""
    cpu, ds, tr = inputs["cpu"], inputs["dataset"], inputs["training"]
    gpu, gcal, cal = inputs["gpu"], inputs["gpu_calibration"], inputs["calibration"]

    def get(key: str) -> np.ndarray:
        v = points.get(f"training.{key}")
        return np.broadcast_to(np.asarray(getattr(tr, key) if v is None else v, dtype=float),
                               (n,))

    T = get("threads")
    m = sample_model(inputs, get, n, tr.sampler)
    uni = m if tr.sampler == "uniform" else sample_model(inputs, get, n, "uniform")
    M = float(ds.train_interactions)
    epoch = M * m["t"] / T
    epoch_uni = M * uni["t"] / T
    by, steps = baseline_bytes_per_step(inputs, get)
    cpu_bw = cpu.memory_bandwidth_GBps * cpu.sockets * GB
    pt_cpu = steps * by / (cpu_bw * cal.baseline_bandwidth_efficiency)
    gpu_mem = (ds.users + ds.items) * gcal.memory_per_row_B * get("embedding_dim") / 128.0
    fits_gpu = gpu_mem <= gpu.hbm_capacity_GB * GB
    t_gpu = steps * (by / (gpu.hbm_bandwidth_GBps * GB * gcal.bandwidth_efficiency)
                     + gcal.overhead_s_per_step)
    t_gpu = np.where(fits_gpu, t_gpu, np.nan)
    cloud_gpus = np.ceil(gpu_mem / (tr.cloud_gpu_memory_GB * GB))
    gpu_usd = cloud_gpus * gpu.rental_usd_per_device_hour * t_gpu / 3600.0
    cpu_usd = (cpu.rental_usd_per_hour * epoch / 3600.0) if cpu.rental_usd_per_hour > 0 \
        else np.full(n, np.nan)
    bad_tile = (get("tile_rows") > ds.items) if tr.sampler == "tile" else np.zeros(n, bool)
    mem_need = (ds.users + ds.items) * m["row_B"]
    too_big = mem_need > cpu.memory_capacity_GB * GB
    ok = ~bad_tile & ~too_big
    reason = np.full(n, "", dtype=object)
    for i in np.flatnonzero(bad_tile):
        reason[i] = (f"a tile of {get('tile_rows')[i]:g} rows is larger than the {ds.items} "
                     f"items of {ds.name}")
    for i in np.flatnonzero(~bad_tile & too_big):
        reason[i] = (f"the embedding tables need {mem_need[i] / GB:.1f} GB; {cpu.name} has "
                     f"{cpu.memory_capacity_GB:g} GB")
    nan = np.full(n, np.nan)

    def keep(x: Any) -> np.ndarray:
        return np.where(ok, np.broadcast_to(np.asarray(x, dtype=float), (n,)), nan)

    # the busiest compute die's fabric link (compact placement fills one die first): its
    # threads' row misses read and write back through it; not part of the time (section
    # "Why 32 threads are slower" of docs/heat.md: at most 15% busy on the EPYC 7742)
    if cpu.cores_per_die:
        _, on_die = spread(np.minimum(T, cpu.cores), cpu.cores_per_die,
                           cpu.cores // cpu.cores_per_die, tr.thread_placement)
        on_die = on_die * np.maximum(1.0, T / cpu.cores)
        die_Bps = on_die / m["t"] * m["dram_rows"] * m["row_B"]
        die_util = np.maximum(die_Bps / (cpu.die_read_bandwidth_GBps * GB),
                              die_Bps / (cpu.die_write_bandwidth_GBps * GB))
    else:
        die_util = np.zeros(n)
    read_share = m["t_reads"] / m["t"]
    return {
        "epoch_time_s": keep(epoch),
        "samples_per_s": keep(T / m["t"]),
        "time_per_sample_us": keep(m["t"] * 1e6),
        "clock_GHz": keep(m["f"] / 1e9),
        "flops_per_sample": keep(m["flops"]),
        "bytes_per_sample": keep(m["bytes"]),
        "arithmetic_intensity_flop_per_B": keep(m["flops"] / m["bytes"]),
        "dram_rows_per_sample": keep(m["dram_rows"]),
        "llc_hit_fraction_uniform": keep(m["h_llc"]),
        "negative_read_ns": keep(m["t_neg"] * 1e9),
        "negative_read_speedup": keep(uni["t_neg"] / m["t_neg"]),
        "read_share": keep(read_share),
        "forward_read_share": keep((m["t_reads"]) / (m["t_reads"] + m["t_comp_fwd"])),
        "memory_bandwidth_GBps": keep(m["dram_GBps"]),
        "memory_utilization": keep(m["rho"]),
        "die_link_utilization": keep(die_util),
        "uniform_epoch_time_s": keep(epoch_uni),
        "tiling_speedup": keep(epoch_uni / epoch),
        "negative_space_ratio": keep(m["space"]),
        "negative_coverage": keep(m["coverage"]),
        "negative_distinct_share": keep(m["distinct"]),
        "pytorch_cpu_epoch_time_s": keep(pt_cpu),
        "speedup_vs_pytorch_cpu": keep(pt_cpu / epoch),
        "gpu_epoch_time_s": keep(t_gpu),
        "speedup_vs_gpu": keep(t_gpu / epoch),
        "gpu_memory_GB": keep(gpu_mem / GB),
        "cloud_gpus": keep(cloud_gpus),
        "cpu_usd_per_epoch": keep(cpu_usd),
        "gpu_usd_per_epoch": keep(gpu_usd),
        "gpu_to_cpu_cost_ratio": keep(gpu_usd / cpu_usd),
        REASON: reason,
    }


def explain(inputs: Inputs, reason: str) -> str:
    """The reason of one infeasible point (the block's own reasons are complete)."""
    return reason

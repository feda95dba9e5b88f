"""The ``spmm`` system's analytical evaluator: one skinny SpMM ``C[M,N] = A[M,K] @ B[K,N]`` per
design point, timed by the kernel models of :mod:`hwsim.sparse.kernels` (Flash-LLM, cuBLAS,
Sputnik, cuSPARSE, SparTA: their mechanisms and sources are described there), vectorised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.batch import REASON
from hwsim.errors import InputError
from hwsim.sparse import format as fmt
from hwsim.sparse.kernels import (  # noqa: F401  (the kernel models, re-exported)
    BOUND_CODES,
    SMEM_STORES_PER_CLK,
    WARP_ISSUE_PER_CLK,
    Device,
    _ceil,
    cublas,
    cusparse,
    default_split_k,
    device_of,
    flash_llm,
    flash_llm_tiles,
    flash_llm_warp_grid,
    kernel_fields,
    load_calibration,
    sparta,
    sputnik,
    sputnik_tile,
    two_four,
    two_four_ctas,
    two_four_split,
)
from hwsim.spmm.spec import (
    DTYPE_BYTES,
    SpmmCalibrationSpec,
    SpmmKernelSpec,
    SpmmSpec,
)
from hwsim.system import Inputs

log = logging.getLogger(__name__)
# ---------------------------------------------------------------------------------------------


@cache
def cublas_baseline(device: str) -> dict[str, Any]:
    """The cuBLAS kernel ``speedup_vs_cublas`` compares against, with its constants on
    ``device`` (``models/spmm-kernel/cublas``, ``models/calibration/spmm-cublas-<device>``)."""
    ker = specs.load_spec(specs.find_spec_file("spmm-kernel", "cublas"), kind="spmm-kernel")
    try:
        cal = load_calibration("cublas", device)
    except InputError:
        raise InputError(f"speedup_vs_cublas needs cuBLAS's constants on '{device}': no "
                         f"models/calibration/spmm-cublas-{device}.toml") from None
    return kernel_fields(ker, cal)


def _nnz_tile(w: Mapping[str, Any]) -> np.ndarray:
    """Padded nonzeros of a format tile holding its expected share ``(1 - s) * 8192``."""
    d = 1.0 - np.asarray(w["sparsity"], dtype=float)
    return fmt.padded(_ceil(d * fmt.TILE_ELEMS)).astype(float)


def evaluate_arrays(w: Mapping[str, Any], ker: Mapping[str, Any], dev: Device,
                    baseline: Mapping[str, Any], nnz_tile: Any = None) -> dict[str, np.ndarray]:
    """Every metric for (broadcast) workload and kernel values; infeasible points give NaN.
    ``baseline``: the cuBLAS kernel fields ``speedup_vs_cublas`` divides by."""
    m, k, n, s = (np.asarray(w[x], dtype=float) for x in ("m", "k", "n", "sparsity"))
    eb = float(DTYPE_BYTES[w.get("dtype", "fp16")])
    d = 1.0 - s
    kind = ker["kernel"]
    feasible = np.ones(np.broadcast(m, k, n, s).shape, dtype=bool)
    if kind == "flash-llm":
        if nnz_tile is None:
            nnz_tile = _nnz_tile(w)
        sk = np.where(np.asarray(ker["split_k"]) > 0, ker["split_k"], default_split_k(m))
        r = flash_llm(m, k, n, nnz_tile, sk, ker, dev)
        feasible = feasible & r.pop("feasible") & (d <= ker["max_tile_density"])
    elif kind == "cublas":
        r = cublas(m, k, n, ker, dev, eb)
    elif kind == "sputnik":
        r = sputnik(m, k, n, d * m * k, ker, dev, eb)
    elif kind == "cusparse":
        r = cusparse(m, k, n, d * m * k, ker, dev, eb)
    else:
        r = sparta(m, k, n, d, ker, dev, eb)
    base = cublas(m, k, n, baseline, dev, eb)["latency_s"]
    flops = 2.0 * m * n * k
    lat = r["latency_s"]
    out = {
        "latency_us": lat * 1e6,
        "tflops": flops / lat / 1e12,
        "speedup_vs_cublas": base / lat,
        "hbm_bytes": r["hbm_bytes"],
        "arithmetic_intensity_flop_per_byte": flops / r["hbm_bytes"],
        "bound": r["bound"],
        "memory_bound": (r["bound"] == BOUND_CODES["hbm"]).astype(float),
        "memory_bytes": r["memory_bytes"],
        "compression_vs_dense": eb * m * k / r["memory_bytes"],
        "ctas": r.get("ctas", np.full_like(lat, np.nan)),
        "waves": r.get("waves", np.full_like(lat, np.nan)),
    }
    shape = np.broadcast_shapes(feasible.shape, *(np.shape(v) for v in out.values()))
    feasible = np.broadcast_to(feasible, shape)
    return {key: np.where(feasible, np.broadcast_to(v, shape), np.nan)
            for key, v in out.items()}


def _workload_dict(w: SpmmSpec) -> dict[str, Any]:
    return {"m": w.m, "k": w.k, "n": w.n, "sparsity": w.sparsity, "dtype": w.dtype}


#: keys the block evaluates as arrays; any other (the kernel, the data type, the mask seed, a
#: spec file) is grouped by the core
VECTOR_KEYS: frozenset[str] = frozenset(
    [f"workload.{k}" for k in ("m", "k", "n", "sparsity")]
    + [f"kernel.{k}" for k in ("tile_m", "tile_n", "tile_k", "stages", "threads_per_cta",
                               "max_threads_per_sm", "split_k", "max_tile_density")]
    + [f"calibration.{k}" for k in SpmmCalibrationSpec.CONSTANTS]
    + [f"device.{k}" for k in ("sms", "boost_clock_MHz", "smem_per_sm_KiB",
                               "smem_bytes_per_clk_per_sm", "hbm_bandwidth_GBps",
                               "peak_16bit_TFLOPS", "peak_fp32_TFLOPS")])


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every metric of ``n`` points (the :class:`hwsim.batch.BatchModel` block); infeasible
    points get NaN and a reason. With the workload's ``seed`` >= 0 the per-tile nonzero counts
    of Flash-LLM come from a random mask of that seed, else every tile holds its expected
    count."""
    wl: SpmmSpec = inputs["workload"]
    ker_spec: SpmmKernelSpec = inputs["kernel"]
    gpu = inputs["device"]
    device_of(gpu)  # the figures the model needs are present
    w: dict[str, Any] = _workload_dict(wl)
    ker = kernel_fields(ker_spec, inputs["calibration"])
    g = {f: getattr(gpu, f) for f in ("sms", "boost_clock_MHz", "smem_per_sm_KiB",
                                      "smem_bytes_per_clk_per_sm", "hbm_bandwidth_GBps",
                                      "peak_16bit_TFLOPS", "peak_fp32_TFLOPS")}
    for key, arr in points.items():
        role, _, name = key.partition(".")
        target = {"workload": w, "kernel": ker, "calibration": ker, "device": g}[role]
        target[name] = arr
    for key in ("m", "k", "n", "sparsity"):
        w[key] = np.broadcast_to(np.asarray(w[key], dtype=float), (n,))
    dev = Device(sms=np.asarray(g["sms"], dtype=float), clock_Hz=g["boost_clock_MHz"] * 1e6,
                 smem_per_sm_B=g["smem_per_sm_KiB"] * 1024.0,
                 smem_Bpc=g["smem_bytes_per_clk_per_sm"], hbm_Bps=g["hbm_bandwidth_GBps"] * 1e9,
                 tensor_flops=g["peak_16bit_TFLOPS"] * 1e12,
                 fp32_flops=g["peak_fp32_TFLOPS"] * 1e12, l2_B=gpu.l2_MiB * 2.0**20)
    nnz_tile = None
    densest = np.ceil((1.0 - w["sparsity"]) * fmt.TILE_ELEMS) / fmt.TILE_ELEMS
    if ker["kernel"] == "flash-llm" and wl.seed >= 0:
        nnz_tile, densest = np.empty(n), np.empty(n)
        for key in set(zip(w["m"], w["k"], w["sparsity"], strict=True)):
            sel = (w["m"] == key[0]) & (w["k"] == key[1]) & (w["sparsity"] == key[2])
            counts = fmt.random_tile_nnz(int(key[0]), int(key[1]), 1.0 - key[2], wl.seed)
            nnz_tile[sel] = float(fmt.padded(counts).mean())
            densest[sel] = counts.max() / fmt.TILE_ELEMS
    out: dict[str, Any] = evaluate_arrays(w, ker, dev, cublas_baseline(gpu.name), nnz_tile)
    lat = np.broadcast_to(out["latency_us"], (n,))
    reason = np.full(n, "", dtype=object)
    reason[np.isnan(lat)] = (f"a thread block of kernel '{ker_spec.name}' does not fit in one "
                             f"SM's shared memory on '{gpu.name}'")
    if ker["kernel"] == "flash-llm":
        cap = np.broadcast_to(np.asarray(ker["max_tile_density"], dtype=float), (n,))
        dense = np.broadcast_to(densest, (n,)) > cap
        for c in np.unique(cap[dense]):
            reason[dense & (cap == c)] = (
                f"a {fmt.TILE_ROWS}x{fmt.TILE_COLS} tile holds more nonzeros than the {c:.0%} "
                "this kernel buffers per tile (Flash-LLM's register budget, max_tile_density; "
                "denser tiles are silently truncated)")
        for key in out:
            out[key] = np.where(dense, np.nan, out[key])
    out[REASON] = reason
    return out

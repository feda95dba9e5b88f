#!/usr/bin/env python3
"""Kernel timings on one NVIDIA GPU for the open validation gaps of spmm (issue 13) and
diffusion (issue 15): cuBLAS, cuSPARSELt / CUTLASS 2:4 and cuSPARSE CSR on the Flash-LLM
benchmark shapes, and the SD1.5 / SDXL UNet operator classes (convolutions, GroupNorm,
LayerNorm, linears, SDPA per backend).

Run on the device machine (benchmarks/device/README.md gives the exact call)::

    python3 benchmarks/device/measure_kernels.py --out $OUT        # full, under 5 minutes
    python3 benchmarks/device/measure_kernels.py --out $OUT --quick
    python3 benchmarks/device/measure_kernels.py --plan             # no torch: rows and estimates

Shapes come from the repository at run time: the Flash-LLM shapes from
hwsim/spmm/data/flash_llm_benchmark_shapes.csv, the UNet operators from the diffusion-model
specs through hwsim/diffusion/arch.py's own UNet (the shapes it records per operator).
Timing: CUDA events around each call, warm-up first, the L2 flushed
(a buffer of 4x the L2 zeroed) before every repeat so weights come from HBM as in decode, a
short sleep kernel after the flush so the host's launch cost stays outside the events; median
and min of the repeats. Kernel names come from one call under the torch profiler.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import datetime as dt
import itertools
import json
import math
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHAPES_CSV = ROOT / "hwsim" / "spmm" / "data" / "flash_llm_benchmark_shapes.csv"

DENSE_N = (8, 16, 32, 64, 128)
CSR_N = (8, 16, 32)
CSR_SPARSITY = (0.7, 0.8, 0.9)
CSR_MODEL = "OPT-30B"
GEMM_CALLS = ("matmul", "linear")          # torch.matmul(W, X) and F.linear(X^T, W)
SPARSE24_BACKENDS = ("cusparselt", "cutlass")
#: (diffusion-model spec, image px): SD1.5 at 512 px (latent 64), SDXL at 1024 px (latent 128)
UNET_MODELS = (("sd15", 512), ("sdxl", 1024))
#: UNet rows per call: batch 1 / 4 / 16 under classifier-free guidance
UNET_ROWS = (2, 8, 32)
SDPA_BACKENDS = ("flash", "efficient", "cudnn", "math", "default")
CONV_LAYOUTS = ("channels_last", "contiguous")
SECTIONS = ("dense", "sparse24", "csr", "unet", "sdpa")
#: seconds of the run each section may end by, cumulated (a section that ends early leaves its
#: time to the next); with torch's import and CUDA start about 15 s, the whole run ends < 300 s
SECTION_BUDGET_S = {"dense": 30, "sparse24": 35, "csr": 45, "unet": 85, "sdpa": 60}
QUICK_BUDGET_S = {s: 5 for s in SECTIONS}

TIMING_COLUMNS = ["median_us", "min_us", "reps", "warmup", "l2_flushed", "tflop_per_s",
                  "gbyte_per_s", "rel_err", "kernels", "status"]
_FIRST = ["gpu_name", "dtype"]
COLUMNS = {
    "dense": [*_FIRST, "layer", "m", "k", "n", "call", "flop", "min_bytes", *TIMING_COLUMNS],
    "sparse24": [*_FIRST, "layer", "m", "k", "n", "backend", "call", "tensor_class", "flop",
                 "min_bytes", *TIMING_COLUMNS],
    "csr": [*_FIRST, "layer", "m", "k", "n", "sparsity", "nnz", "index_dtype", "flop",
            "min_bytes", *TIMING_COLUMNS],
    "unet": [*_FIRST, "model", "latent_px", "rows", "op", "cin", "cout", "kernel", "stride",
             "side_px", "tokens", "bias", "layout", "count_per_call", "flop", "min_bytes",
             *TIMING_COLUMNS],
    "sdpa": [*_FIRST, "model", "latent_px", "rows", "attention", "heads", "head_dim",
             "q_tokens", "kv_tokens", "count_per_call", "backend", "default_picks", "flop",
             "min_bytes", *TIMING_COLUMNS],
}
CSV_NAMES = {s: f"{s}.csv" for s in SECTIONS}
ENV_NAME = "env.json"

# Leads for the time estimate only (never written as results): H200 dense 16-bit matrix rate
# and copy bandwidth as measured on this workplace's machine (769-798 TFLOP/s bf16 8192^3,
# ~4.3 TB/s device copy; the lending workplace's notes on its H200 machines, 2026-11), taken
# lower for skinny shapes; cuSPARSE
# CSR below 1 TFLOP/s dense-equivalent (Flash-LLM arXiv 2309.10285, its kernel figure)
EST_TENSOR_FLOP_S = 5e14
EST_CSR_FLOP_S = 2e11
EST_BW_B_S = 3.5e12
EST_CALL_OVERHEAD_S = 1.8e-4    # flush (4 x 50 MB L2 at ~4 TB/s), sleep kernel, events
EST_PROFILE_S = 0.05            # one call under the torch profiler
SLEEP_CYCLES = 200_000          # ~100 us at ~1.98 GHz: covers the host's launch of one call


# ---------------------------------------------------------------- shapes from the repository

def _repo_on_path() -> None:
    """Let the script import the repository's hwsim without an install (the device image)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def flash_llm_shapes(path: Path = SHAPES_CSV) -> list[dict[str, Any]]:
    """The 12 Flash-LLM benchmark layers (name, M, K) from the repository's data file."""
    _repo_on_path()
    from hwsim.validation import data_rows

    return [{"layer": r["layer"], "m": int(r["M"]), "k": int(r["K"])} for r in data_rows(path)]


@dataclass(frozen=True)
class UnetOp:
    """One UNet operator per image row. ``cin``/``cout``: channels in/out (conv), features
    in/out (linear), channels (norms, attention); ``side_px``: output side (conv, GroupNorm);
    ``tokens``: rows per image (linear, LayerNorm) or query tokens (attention)."""

    op: str
    cin: int = 0
    cout: int = 0
    kernel: int = 0
    stride: int = 1
    side_px: int = 0
    tokens: int = 0
    kv_tokens: int = 0
    heads: int = 0
    bias: bool = True

    @property
    def macs(self) -> float:
        """Multiply-accumulates per image row (attention: both matmuls)."""
        if self.op == "conv":
            return self.side_px ** 2 * self.cin * self.cout * self.kernel ** 2
        if self.op == "linear":
            return self.tokens * self.cin * self.cout
        if self.op == "attention":
            return 2.0 * self.tokens * self.kv_tokens * self.cin
        return 0.0

    @property
    def head_dim(self) -> int:
        return self.cin // self.heads if self.heads else 0


def load_model_spec(name: str):
    """A diffusion-model spec through hwsim's own loader. Importing the diffusion package first
    registers its kinds, so the loader never imports every system (the device image has no
    simpy, optuna or amaranth; tests/test_device_script.py runs the plan without them)."""
    _repo_on_path()
    import hwsim.diffusion.spec  # noqa: F401  (registers diffusion-model)
    from hwsim.specs import find_spec_file, load_spec

    return load_spec(find_spec_file("diffusion-model", name), "diffusion-model")


def unet_ops(spec, latent_px: int) -> list[UnetOp]:
    """The UNet's operators (pointwise ops left out) at ``latent_px``, read off the shapes
    hwsim.diffusion.arch.unet records as it builds the model's operator rows (the text context
    of the spec's longest encoder, as arch.denoiser takes it): one walk of the UNet, the
    model's own."""
    _repo_on_path()
    from hwsim.diffusion import arch

    ctx_tokens = max((t.tokens for t in spec.text_encoders), default=0)
    net = arch.unet(spec.unet, ctx_tokens)

    def tokens(size: tuple[float, int]) -> int:   # (coefficient, power of the latent pixels)
        c, power = size
        return round(c * latent_px ** (2 * power))

    def side(size: tuple[float, int]) -> int:
        return round(math.sqrt(tokens(size)))

    ops = []
    for kind, s in zip(net.kinds, net.shapes, strict=True):
        if kind == "conv":
            ops.append(UnetOp("conv", s["cin"], s["cout"], s["kernel"],
                              stride=round(math.sqrt(s["stride_in"])), side_px=side(s["size"])))
        elif kind == "linear":
            ops.append(UnetOp("linear", s["din"], s["dout"], tokens=tokens(s["size"]),
                              bias=bool(s["bias"])))
        elif kind == "norm" and s["layer"] == "groupnorm":
            ops.append(UnetOp("groupnorm", s["ch"], side_px=side(s["size"])))
        elif kind == "norm":
            ops.append(UnetOp("layernorm", s["ch"], tokens=tokens(s["size"])))
        elif kind == "attention":
            ops.append(UnetOp("attention", s["ch"], tokens=tokens(s["n"]),
                              kv_tokens=tokens(s["m"]), heads=s["heads"]))
    return ops


def distinct_ops(ops: Iterable[UnetOp]) -> list[tuple[UnetOp, int]]:
    """Each distinct operator once, with its count per UNet call, in first-seen order."""
    counts: dict[UnetOp, int] = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    return list(counts.items())


# ---------------------------------------------------------------- the plan: rows to measure

@dataclass
class Point:
    """One row to measure: its condition columns, FLOPs, the fewest bytes it must move, and
    the key of the tensors it shares with its neighbours (built once per key)."""

    section: str
    conds: dict[str, Any]
    flop: float
    min_bytes: float
    setup_key: tuple = ()
    setup_s: float = 0.0     # estimated cost of building the shared tensors (once per key)
    extra: dict[str, Any] = field(default_factory=dict)


def _gemm_bytes(m: int, k: int, n: int, a_bytes: float) -> float:
    return a_bytes + 2.0 * (k * n + m * n)


def plan_dense(shapes: list[dict], ns: Iterable[int] = DENSE_N,
               calls: Iterable[str] = GEMM_CALLS) -> list[Point]:
    pts = []
    for s, call, n in itertools.product(shapes, calls, ns):
        m, k = s["m"], s["k"]
        pts.append(Point("dense", {"layer": s["layer"], "m": m, "k": k, "n": n, "call": call},
                         2.0 * m * n * k, _gemm_bytes(m, k, n, 2.0 * m * k),
                         setup_key=(s["layer"],), setup_s=0.02 + 6 * m * k * 2 / EST_BW_B_S))
    return pts


def plan_sparse24(shapes: list[dict], ns: Iterable[int] = DENSE_N,
                  backends: Iterable[str] = SPARSE24_BACKENDS,
                  calls: Iterable[str] = GEMM_CALLS) -> list[Point]:
    """2:4 rows; ``flop`` is dense-equivalent (2MNK, as Flash-LLM reports); A moves as half
    its values plus 2 bits of metadata per kept value (M K / 8 bytes)."""
    pts = []
    for s, b, call, n in itertools.product(shapes, backends, calls, ns):
        m, k = s["m"], s["k"]
        a_bytes = m * k + m * k / 8
        pts.append(Point("sparse24", {"layer": s["layer"], "m": m, "k": k, "n": n,
                                      "backend": b, "call": call},
                         2.0 * m * n * k, _gemm_bytes(m, k, n, a_bytes),
                         setup_key=(s["layer"], b), setup_s=0.1 + 20 * m * k * 2 / EST_BW_B_S))
    return pts


def plan_csr(shapes: list[dict], sparsities: Iterable[float] = CSR_SPARSITY,
             ns: Iterable[int] = CSR_N) -> list[Point]:
    """CSR rows on the OPT-30B shapes; ``min_bytes`` counts fp16 values, int32 column indices
    and row pointers, B and C once."""
    pts = []
    for s, sp, n in itertools.product(shapes, sparsities, ns):
        m, k = s["m"], s["k"]
        nnz = round(m * k * (1 - sp))
        a_bytes = nnz * 6.0 + (m + 1) * 4.0
        pts.append(Point("csr", {"layer": s["layer"], "m": m, "k": k, "n": n, "sparsity": sp},
                         2.0 * m * n * k, _gemm_bytes(m, k, n, a_bytes),
                         setup_key=(s["layer"], sp), setup_s=0.3 + 20 * m * k * 2 / EST_BW_B_S))
    return pts


def _op_row(model: str, latent: int, rows: int, op: UnetOp, count: int) -> dict[str, Any]:
    return {"model": model, "latent_px": latent, "rows": rows, "op": op.op, "cin": op.cin,
            "cout": op.cout, "kernel": op.kernel, "stride": op.stride, "side_px": op.side_px,
            "tokens": op.tokens, "bias": int(op.bias), "count_per_call": count}


def _op_bytes(op: UnetOp, rows: int) -> float:
    """Fewest bytes of one call at 2 bytes per value: inputs, weights and outputs once."""
    if op.op == "conv":
        x = (op.side_px * op.stride) ** 2 * op.cin
        return 2.0 * (rows * (x + op.side_px ** 2 * op.cout) + op.cin * op.cout * op.kernel ** 2)
    if op.op == "linear":
        return 2.0 * (rows * op.tokens * (op.cin + op.cout) + op.cin * op.cout)
    if op.op == "groupnorm":
        return 4.0 * rows * op.side_px ** 2 * op.cin
    if op.op == "layernorm":
        return 4.0 * rows * op.tokens * op.cin
    return 2.0 * rows * op.cin * (2 * op.tokens + 2 * op.kv_tokens)   # q, out; k, v


def plan_unet(models: Iterable[tuple[str, int]] = UNET_MODELS, rows: Iterable[int] = UNET_ROWS,
              spec_loader: Callable = load_model_spec, per_kind: int = 0) -> list[Point]:
    """Convolutions and GroupNorms in both layouts, LayerNorms and linears, each distinct
    operator of each model once per row count, the largest count first (the GPU-bound calls
    matter most if the time budget cuts a section short); ``per_kind`` > 0 keeps that many
    operators per kind."""
    pts = []
    for r, (model, px) in itertools.product(sorted(rows, reverse=True), models):
        latent = px // 8
        ops = [(o, c) for o, c in distinct_ops(unet_ops(spec_loader(model), latent))
               if o.op != "attention"]
        if per_kind:
            ops = [oc for kind in ("conv", "groupnorm", "layernorm", "linear")
                   for oc in [x for x in ops if x[0].op == kind][:per_kind]]
        for op, count in ops:
            layouts = CONV_LAYOUTS if op.op in ("conv", "groupnorm") else ("row-major",)
            for layout in layouts:
                pts.append(Point("unet", {**_op_row(model, latent, r, op, count),
                                          "layout": layout},
                                 2.0 * r * op.macs, _op_bytes(op, r), extra={"op": op}))
    return pts


def plan_sdpa(models: Iterable[tuple[str, int]] = UNET_MODELS, rows: Iterable[int] = UNET_ROWS,
              spec_loader: Callable = load_model_spec, backends: Iterable[str] = SDPA_BACKENDS,
              limit: int = 0) -> list[Point]:
    """Self- and cross-attention of each model at its heads and head dims, each backend in
    turn and the default last (``limit`` > 0 keeps that many shapes per model)."""
    pts = []
    for r, (model, px) in itertools.product(sorted(rows, reverse=True), models):
        latent = px // 8
        ops = [(o, c) for o, c in distinct_ops(unet_ops(spec_loader(model), latent))
               if o.op == "attention"]
        if limit:
            ops = ops[:limit]
        for (op, count), b in itertools.product(ops, backends):
            kind = "self" if op.kv_tokens == op.tokens else "cross"
            pts.append(Point("sdpa", {"model": model, "latent_px": latent, "rows": r,
                                      "attention": kind, "heads": op.heads,
                                      "head_dim": op.head_dim, "q_tokens": op.tokens,
                                      "kv_tokens": op.kv_tokens, "count_per_call": count,
                                      "backend": b},
                             2.0 * r * op.macs, _op_bytes(op, r),
                             setup_key=(model, r, op), extra={"op": op}))
    return pts


def build_plan(quick: bool = False, spec_loader: Callable = load_model_spec,
               shapes: list[dict] | None = None) -> dict[str, list[Point]]:
    """Every section's rows; ``quick`` keeps a few of each for a first smoke run."""
    shapes = flash_llm_shapes() if shapes is None else shapes
    small = [s for s in shapes if s["layer"].startswith(CSR_MODEL)]
    if quick:
        return {"dense": plan_dense(shapes[:1], (16, 128)),
                "sparse24": plan_sparse24(shapes[:1], (16,), calls=("matmul",)),
                "csr": plan_csr(small[:1], (0.9,), (16,)),
                "unet": plan_unet(UNET_MODELS[:1], (2,), spec_loader, per_kind=1),
                "sdpa": plan_sdpa(UNET_MODELS[:1], (2,), spec_loader, limit=2)}
    return {"dense": plan_dense(shapes), "sparse24": plan_sparse24(shapes),
            "csr": plan_csr(small), "unet": plan_unet(spec_loader=spec_loader),
            "sdpa": plan_sdpa(spec_loader=spec_loader)}


# ---------------------------------------------------------------- repeats and the estimate

@dataclass(frozen=True)
class Reps:
    """Warm-up calls, then as many repeats as fit ``target_s``, within [min_reps, max_reps]."""

    warmup: int = 3
    min_reps: int = 5
    max_reps: int = 50
    target_s: float = 0.03

    def count(self, call_s: float) -> int:
        want = self.target_s / max(call_s + EST_CALL_OVERHEAD_S, 1e-9)
        return int(min(self.max_reps, max(self.min_reps, math.floor(want))))


FULL_REPS = Reps()
QUICK_REPS = Reps(warmup=2, min_reps=3, max_reps=10, target_s=0.005)


def estimate_call_s(p: Point) -> float:
    """A lead for one call's GPU time (roofline of the leads above; math SDPA writes and
    reads its fp16 score matrix about three times)."""
    rate = EST_CSR_FLOP_S if p.section == "csr" else EST_TENSOR_FLOP_S
    moved = p.min_bytes
    if p.section == "sdpa" and p.conds["backend"] == "math":
        op = p.extra["op"]
        moved += 6.0 * p.conds["rows"] * op.heads * op.tokens * op.kv_tokens
    return max(p.flop / rate, moved / EST_BW_B_S, 5e-6)


def estimate_section_s(points: list[Point], reps: Reps) -> float:
    """Estimated wall time of a section: warm-up, the first sizing call, repeats, one
    profiled call per row, and each shared setup once."""
    total, seen = 0.0, set()
    for p in points:
        t = estimate_call_s(p)
        calls = reps.warmup + 1 + reps.count(t) + 1
        total += calls * (t + EST_CALL_OVERHEAD_S) + EST_PROFILE_S
        if p.setup_key not in seen:
            seen.add(p.setup_key)
            total += p.setup_s
    return total


def format_kernels(events: Iterable[tuple[str, float]], width: int = 300) -> str:
    """GPU activities of one call as ``name xcount [us]``, first-seen order, names cut at
    ``width`` characters (CUTLASS template names run to thousands)."""
    agg: dict[str, list[float]] = {}
    for name, us in events:
        a = agg.setdefault(name[:width], [0, 0.0])
        a[0] += 1
        a[1] += us
    return "; ".join(f"{n} x{int(c)} [{us:.1f} us]" for n, (c, us) in agg.items())


def summarise(times_us: list[float]) -> dict[str, float]:
    return {"median_us": round(statistics.median(times_us), 3),
            "min_us": round(min(times_us), 3), "reps": len(times_us)}


def rates(flop: float, min_bytes: float, median_us: float) -> dict[str, float]:
    s = median_us * 1e-6
    return {"tflop_per_s": round(flop / s / 1e12, 3) if flop else 0.0,
            "gbyte_per_s": round(min_bytes / s / 1e9, 1)}


# ---------------------------------------------------------------- output

class CsvOut:
    """One section's CSV, written row by row (flushed) so a run cut short keeps its rows."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.columns = columns
        self._f = path.open("w", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=columns, restval="", extrasaction="raise")
        self._w.writeheader()
        self._f.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._w.writerow(row)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def nvidia_smi() -> dict[str, str]:
    """Clocks, power and state now, as nvidia-smi reads them (read only; nothing is set)."""
    full = ("name,driver_version,pstate,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,"
            "power.draw,power.limit,temperature.gpu,memory.total,memory.used")
    error = ""
    for fields in (full, "name,driver_version,clocks.sm,clocks.mem"):   # a field a driver
        try:                                                            # lacks fails the query
            out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}",
                                  "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=30, check=True).stdout.splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError) as e:
            error = str(e)[:200]
            continue
        return dict(zip(fields.split(","), (v.strip() for v in out.split(",")), strict=False))
    return {"error": error}


def _safe(fn: Callable[[], Any]) -> Any:
    """A version or setting that this torch may not have: its value, or the error as text."""
    try:
        return fn()
    except Exception as e:
        return f"unavailable: {type(e).__name__}: {str(e)[:100]}"


# ---------------------------------------------------------------- torch side

class Timer:
    """GPU time of calls between CUDA events; the L2 is flushed before each repeat."""

    def __init__(self, torch, device: str, flush_bytes: int, names: bool = True) -> None:
        self.torch, self.cuda, self.names = torch, device == "cuda", names
        self.flush_buf = (torch.empty(flush_bytes // 4, dtype=torch.float32, device=device)
                          if self.cuda and flush_bytes else None)

    def times_us(self, fn: Callable[[], Any], reps: int) -> list[float]:
        torch = self.torch
        if not self.cuda:                      # the CPU smoke run: wall clock
            out = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t0) * 1e6)
            return out
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(reps)]
        for start, end in ev:
            if self.flush_buf is not None:
                self.flush_buf.zero_()
            torch.cuda._sleep(SLEEP_CYCLES)
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) * 1e3 for s, e in ev]

    def measure(self, fn: Callable[[], Any], reps: Reps) -> dict[str, Any]:
        for _ in range(reps.warmup):
            fn()
        first = self.times_us(fn, 1)[0]
        row = summarise(self.times_us(fn, reps.count(first * 1e-6)))
        return {**row, "warmup": reps.warmup, "l2_flushed": int(self.flush_buf is not None)}

    def kernels(self, fn: Callable[[], Any]) -> str:
        """Names and times of the GPU activities of one call, from the torch profiler."""
        torch = self.torch
        if not (self.cuda and self.names):
            return ""
        from torch.profiler import ProfilerActivity, profile

        try:
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                fn()
                torch.cuda.synchronize()
            return format_kernels((e.name, e.time_range.elapsed_us()) for e in prof.events()
                                  if str(getattr(e, "device_type", "")).endswith("CUDA"))
        except Exception as e:  # the profiler is an extra: keep the timing row
            return f"profiler failed: {type(e).__name__}: {str(e)[:120]}"


def rel_err(out, ref) -> float:
    """||out - ref|| / ||ref|| in float32."""
    return round(float((out.float() - ref).norm() / ref.norm()), 6)


@dataclass
class Ctx:
    torch: Any
    device: str
    dtype: Any
    timer: Timer
    reps: Reps
    gpu_name: str
    cache: dict = field(default_factory=dict)

    def shared(self, key: tuple, build: Callable[[], Any]) -> Any:
        """Tensors shared by consecutive rows: built once per key, the previous ones freed."""
        if key not in self.cache:
            self.cache.clear()
            if self.device == "cuda":
                self.torch.cuda.empty_cache()
            self.cache[key] = build()
        return self.cache[key]

    def randn(self, *shape, scale: float = 1.0):
        return self.torch.randn(*shape, device=self.device, dtype=self.dtype) * scale


def _gemm_call(ctx: Ctx, w, n: int, call: str):
    """(the call, X as [K, N], a map of its output to C[M, N]) for C = W[M,K] @ X: as
    torch.matmul(W, X) or as F.linear(X^T, W), which gives C^T."""
    torch = ctx.torch
    k = w.shape[1]
    if call == "matmul":
        x = ctx.randn(k, n)
        return (lambda: torch.matmul(w, x)), x, (lambda out: out)
    xt = ctx.randn(n, k)
    return (lambda: torch.nn.functional.linear(xt, w)), xt.t(), (lambda out: out.t())


def run_dense(ctx: Ctx, p: Point) -> dict[str, Any]:
    c = p.conds
    w = ctx.shared(p.setup_key, lambda: ctx.randn(c["m"], c["k"], scale=c["k"] ** -0.5))
    fn, x, orient = _gemm_call(ctx, w, c["n"], c["call"])
    err = rel_err(orient(fn()), w.float() @ x.float())
    return {**ctx.timer.measure(fn, ctx.reps), "rel_err": err, "kernels": ctx.timer.kernels(fn)}


def prune_2_4(torch, w):
    """Keep the 2 largest magnitudes of every 4 consecutive values along K."""
    m, k = w.shape
    g = w.view(m, k // 4, 4)
    keep = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, g.abs().topk(2, dim=-1).indices,
                                                          True)
    return (g * keep).view(m, k)


def to_semi_structured(torch, w, backend: str):
    """torch.sparse.to_sparse_semi_structured with the backend forced (restored after)."""
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    old = SparseSemiStructuredTensor._FORCE_CUTLASS
    SparseSemiStructuredTensor._FORCE_CUTLASS = backend == "cutlass"
    try:
        return to_sparse_semi_structured(w)
    finally:
        SparseSemiStructuredTensor._FORCE_CUTLASS = old


def run_sparse24(ctx: Ctx, p: Point) -> dict[str, Any]:
    c = p.conds

    def build():
        dense = prune_2_4(ctx.torch, ctx.randn(c["m"], c["k"], scale=c["k"] ** -0.5))
        return dense, to_semi_structured(ctx.torch, dense, c["backend"])

    dense, ws = ctx.shared(p.setup_key, build)
    fn, x, orient = _gemm_call(ctx, ws, c["n"], c["call"])
    err = rel_err(orient(fn()), dense.float() @ x.float())
    return {**ctx.timer.measure(fn, ctx.reps), "rel_err": err, "kernels": ctx.timer.kernels(fn),
            "tensor_class": type(ws).__name__}


def _to_csr(torch, w):
    """CSR with int32 indices (as Flash-LLM's cuSPARSE baseline builds it); int64 if refused."""
    csr = w.to_sparse_csr()
    try:
        return torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(),
                                       csr.values(), csr.shape), "int32"
    except RuntimeError:
        return csr, "int64"


def run_csr(ctx: Ctx, p: Point) -> dict[str, Any]:
    torch, c = ctx.torch, p.conds

    def build():
        w = ctx.randn(c["m"], c["k"], scale=c["k"] ** -0.5)
        w = w * (torch.rand(c["m"], c["k"], device=ctx.device) >= c["sparsity"])
        csr, idx = _to_csr(torch, w)
        return w, csr, idx

    w, csr, idx = ctx.shared(p.setup_key, build)
    x = ctx.randn(c["k"], c["n"])
    dtype = str(ctx.dtype).removeprefix("torch.")
    try:
        fn = lambda: torch.sparse.mm(csr, x)  # noqa: E731
        out = fn()
    except RuntimeError:                  # no fp16 CSR SpMM in this build: fp32 instead
        csr32, x = csr.to(torch.float32), x.float()
        fn = lambda: torch.sparse.mm(csr32, x)  # noqa: E731
        out, dtype = fn(), "float32"
    err = rel_err(out, w.float() @ x.float())
    return {**ctx.timer.measure(fn, ctx.reps), "rel_err": err, "kernels": ctx.timer.kernels(fn),
            "nnz": int(csr._nnz()), "index_dtype": idx, "dtype": dtype}


def _unet_fn(ctx: Ctx, op: UnetOp, rows: int, layout: str):
    """The operator as the diffusers UNet calls it, on fresh random inputs."""
    torch = ctx.torch
    f = torch.nn.functional
    cl = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    if op.op == "conv":
        side_in = op.side_px * op.stride
        x = ctx.randn(rows, op.cin, side_in, side_in).to(memory_format=cl)
        w = ctx.randn(op.cout, op.cin, op.kernel, op.kernel,
                      scale=(op.cin * op.kernel ** 2) ** -0.5).to(memory_format=cl)
        b = ctx.randn(op.cout)
        return lambda: f.conv2d(x, w, b, stride=op.stride, padding=op.kernel // 2)
    if op.op == "groupnorm":
        x = ctx.randn(rows, op.cin, op.side_px, op.side_px).to(memory_format=cl)
        g, b = ctx.randn(op.cin), ctx.randn(op.cin)
        return lambda: f.group_norm(x, 32, g, b, eps=1e-5)
    if op.op == "layernorm":
        x = ctx.randn(rows * op.tokens, op.cin)
        g, b = ctx.randn(op.cin), ctx.randn(op.cin)
        return lambda: f.layer_norm(x, (op.cin,), g, b)
    x = ctx.randn(rows * op.tokens, op.cin)
    w = ctx.randn(op.cout, op.cin, scale=op.cin ** -0.5)
    b = ctx.randn(op.cout) if op.bias else None
    return lambda: f.linear(x, w, b)


def run_unet(ctx: Ctx, p: Point) -> dict[str, Any]:
    fn = _unet_fn(ctx, p.extra["op"], p.conds["rows"], p.conds["layout"])
    return {**ctx.timer.measure(fn, ctx.reps), "kernels": ctx.timer.kernels(fn)}


def _sdpa_fn(ctx: Ctx, op: UnetOp, rows: int, backend: str):
    """SDPA on (rows, heads, tokens, head_dim) views of (rows, tokens, heads, head_dim)
    tensors, the layout diffusers' attention processor hands it."""
    torch = ctx.torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    hd = op.head_dim
    q = ctx.randn(rows, op.tokens, op.heads, hd).transpose(1, 2)
    k = ctx.randn(rows, op.kv_tokens, op.heads, hd).transpose(1, 2)
    v = ctx.randn(rows, op.kv_tokens, op.heads, hd).transpose(1, 2)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    if backend == "default":
        return lambda: sdpa(q, k, v)
    forced = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
              "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[backend]

    def fn():
        with sdpa_kernel([forced]):
            return sdpa(q, k, v)
    return fn


def _first_kernel(kernels: str) -> str:
    """The first GPU activity's name in a ``format_kernels`` string."""
    return re.split(r" x\d+ \[", kernels, maxsplit=1)[0] if kernels else ""


def run_sdpa(ctx: Ctx, p: Point) -> dict[str, Any]:
    op, c = p.extra["op"], p.conds
    fn = _sdpa_fn(ctx, op, c["rows"], c["backend"])
    out = {**ctx.timer.measure(fn, ctx.reps), "kernels": ctx.timer.kernels(fn)}
    seen = ctx.cache.setdefault(p.setup_key, {})        # backend -> first kernel, per shape
    first = _first_kernel(out["kernels"])
    if c["backend"] == "default":
        out["default_picks"] = "+".join(b for b, k in seen.items() if k and k == first) or "?"
    else:
        seen[c["backend"]] = first
    return out


RUNNERS = {"dense": run_dense, "sparse24": run_sparse24, "csr": run_csr, "unet": run_unet,
           "sdpa": run_sdpa}


def run_section(ctx: Ctx, name: str, points: list[Point], out: CsvOut,
                deadline: float) -> dict[str, int]:
    """Every row of a section; a row that fails is written with its error, and rows past the
    section's deadline are written as skipped."""
    tally = {"ok": 0, "failed": 0, "skipped": 0}
    dtype = str(ctx.dtype).removeprefix("torch.")
    for p in points:
        row = {"gpu_name": ctx.gpu_name, "dtype": dtype, **p.conds, "flop": round(p.flop),
               "min_bytes": round(p.min_bytes)}
        if time.monotonic() > deadline:
            row["status"] = "skipped: section time budget spent"
            tally["skipped"] += 1
        else:
            try:
                res = RUNNERS[name](ctx, p)
                row.update(res)
                row.update(rates(p.flop, p.min_bytes, res["median_us"]))
                row["status"] = "ok"
                tally["ok"] += 1
            except Exception as e:  # a kernel that is missing or refuses a shape is a result
                row["status"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                tally["failed"] += 1
                if ctx.device == "cuda":
                    with contextlib.suppress(Exception):   # a sticky CUDA error fails the rest
                        ctx.torch.cuda.synchronize()
        out.write(row)
    ctx.cache.clear()
    return tally


def _loaded_libraries() -> dict[str, str]:
    """File names of the CUDA math libraries this process has loaded (from /proc/self/maps)."""
    names = {}
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1]
            base = Path(path).name
            if ".so" in base and base.startswith(("libcublas", "libcusparse", "libcudnn",
                                                   "libcudart", "libnvJitLink")):
                names[base] = path
    except OSError:
        pass
    return names


def _cublaslt_version(libs: dict[str, str]) -> int | None:
    for base, path in libs.items():
        if base.startswith("libcublasLt."):
            try:
                f = ctypes.CDLL(path).cublasLtGetVersion
                f.restype = ctypes.c_size_t
                return int(f())
            except (OSError, AttributeError):
                return None
    return None


def env_info(torch, args: argparse.Namespace) -> dict[str, Any]:
    """The conditions of every row: GPU, library versions, settings, clocks before the run."""
    from importlib import metadata

    p = torch.cuda.get_device_properties(0)
    torch.matmul(torch.ones(64, 64, device="cuda", dtype=torch.float16),
                 torch.ones(64, 64, device="cuda", dtype=torch.float16))   # loads cuBLAS
    torch.cuda.synchronize()
    libs = _loaded_libraries()
    cslt = getattr(torch.backends, "cusparselt", None)
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "gpu_name": p.name, "compute_capability": f"{p.major}.{p.minor}",
        "sm_count": p.multi_processor_count, "l2_bytes": getattr(p, "L2_cache_size", None),
        "memory_bytes": p.total_memory,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": _safe(torch.backends.cudnn.version),
        "cublaslt_version": _cublaslt_version(libs),
        "cusparselt_version": _safe(lambda: cslt.version() if cslt.is_available() else None),
        "loaded_libraries": sorted(libs),
        "nvidia_packages": _safe(lambda: {
            d.metadata["Name"]: d.version for d in metadata.distributions()
            if (d.metadata["Name"] or "").lower().startswith("nvidia-")}),
        "settings": {
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "fp16_reduced_precision_reduction": _safe(
                lambda: torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction),
            "sleep_cycles_before_each_timed_call": SLEEP_CYCLES,
            "l2_flush_bytes": 4 * (getattr(p, "L2_cache_size", 0) or 64 << 20),
        },
        "python": sys.version.split()[0], "argv": sys.argv[1:], "quick": args.quick,
        "nvidia_smi_before": nvidia_smi(),
    }


# ---------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="folder for env.json and the section CSVs")
    ap.add_argument("--quick", action="store_true", help="a few rows per section (< 30 s)")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--no-kernels", action="store_true",
                    help="skip the profiled call per row (no kernel names; saves ~0.05 s/row)")
    ap.add_argument("--plan", action="store_true",
                    help="print the rows and time estimate per section, measure nothing")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="developer check without a GPU: the quick rows on the CPU in float32 "
                         "with shapes cut down (torch on the CPU; no CUDA timings)")
    return ap


def print_plan(plan: dict[str, list[Point]], reps: Reps) -> float:
    total = 0.0
    for name, pts in plan.items():
        est = estimate_section_s(pts, reps)
        total += est
        print(f"{name:9s} {len(pts):5d} rows  ~{est:6.1f} s  -> {CSV_NAMES[name]}")
    print(f"total     ~{total:.0f} s of measurement (+ ~15 s torch import and CUDA start)")
    return total


def _shrink(plan: dict[str, list[Point]]) -> dict[str, list[Point]]:
    """The CPU smoke run's rows: GEMM shapes /16, UNet latents /4 (the same code paths)."""
    small = {}
    for name, pts in plan.items():
        out = []
        for p in pts:
            c = dict(p.conds)
            extra = dict(p.extra)
            if "m" in c:
                c["m"], c["k"] = c["m"] // 16, c["k"] // 16
            if "op" in extra:
                op = extra["op"]
                t = op.tokens if op.tokens in (1, 77) else op.tokens // 16
                kv = op.kv_tokens if op.kv_tokens == 77 else op.kv_tokens // 16
                extra["op"] = UnetOp(op.op, op.cin, op.cout, op.kernel, op.stride,
                                     op.side_px // 4, t, kv, op.heads, op.bias)
            out.append(Point(p.section, c, p.flop / 256, p.min_bytes / 16,
                             (*p.setup_key, "small"), p.setup_s, extra))
        small[name] = out
    return small


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"measure_kernels: unknown sections {sorted(unknown)}; known: {SECTIONS}",
              file=sys.stderr)
        return 2
    reps = QUICK_REPS if args.quick or args.cpu_smoke else FULL_REPS
    if args.plan:
        plan = build_plan(args.quick)
        print_plan({s: plan[s] for s in sections}, reps)
        return 0
    torch = _import_torch()
    device = "cpu" if args.cpu_smoke else "cuda"
    if torch is None or (device == "cuda" and not torch.cuda.is_available()):
        what = "PyTorch is not installed" if torch is None else "torch sees no CUDA GPU"
        print(f"measure_kernels: {what}; run it on a machine with an NVIDIA GPU "
              "(benchmarks/device/README.md)", file=sys.stderr)
        return 2
    if args.out is None:
        print("measure_kernels: --out FOLDER is required", file=sys.stderr)
        return 2
    return measure(torch, args, sections, device, reps)


def measure(torch, args: argparse.Namespace, sections: list[str], device: str,
            reps: Reps) -> int:
    """Run the sections in order, each within its cumulative time budget."""
    t0 = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    plan = build_plan(args.quick or args.cpu_smoke)
    if args.cpu_smoke:
        plan = _shrink(plan)
        env = {"date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "gpu_name": "cpu-smoke", "torch": torch.__version__, "cpu_smoke": True}
        flush, dtype = 0, torch.float32
    else:
        env = env_info(torch, args)
        flush, dtype = env["settings"]["l2_flush_bytes"], torch.float16
    env["estimate_s"] = {s: round(estimate_section_s(plan[s], reps), 1) for s in sections}
    env_path = args.out / ENV_NAME
    env_path.write_text(json.dumps(env, indent=1))
    timer = Timer(torch, device, flush, names=not args.no_kernels)
    ctx = Ctx(torch, device, dtype, timer, reps, env["gpu_name"])
    if device == "cuda":
        ctx.timer.kernels(lambda: torch.ones(1, device="cuda") + 1)   # profiler start-up
    budgets = QUICK_BUDGET_S if args.quick or args.cpu_smoke else SECTION_BUDGET_S
    deadline, env["sections"], env["clocks_after_section"] = t0, {}, {}
    for name in sections:
        deadline += budgets[name]
        s0 = time.monotonic()
        out = CsvOut(args.out / CSV_NAMES[name], COLUMNS[name])
        try:
            tally = run_section(ctx, name, plan[name], out, deadline)
        finally:
            out.close()
        env["sections"][name] = {**tally, "wall_s": round(time.monotonic() - s0, 1)}
        if device == "cuda":
            env["clocks_after_section"][name] = nvidia_smi()
        print(f"{name:9s} {tally}  {env['sections'][name]['wall_s']:.1f} s", flush=True)
        env_path.write_text(json.dumps(env, indent=1))
    env["nvidia_smi_after"] = nvidia_smi() if device == "cuda" else {}
    env["total_wall_s"] = round(time.monotonic() - t0, 1)
    env_path.write_text(json.dumps(env, indent=1))
    print(f"done in {env['total_wall_s']:.0f} s; files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

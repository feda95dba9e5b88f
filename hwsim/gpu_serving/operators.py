"""Vidur's measured kernel times (``data/operators_vidur.csv``, ``data/collectives_vidur.csv``),
the operator fits per GPU, and the operator validation groups.

Each measured row is predicted with the operator models of :mod:`hwsim.gpu_serving.kernels` at
the row's shape; the fit chooses the constants of one operator kind on one GPU that minimise the
sum of squared log errors (``scipy.optimize.least_squares``) over that GPU's rows of the models
in :data:`FIT_MODELS`; the rows of every other model are held out. The embedding gather is
PyTorch's two ``index_select`` kernels (:data:`SMALL_INDEX_MAX`), each with its own constants.
phi-2's LayerNorm and exact GELU are kernels no fit model runs: each has a table of its own
(``layernorm``, ``gelu``), fitted per GPU on phi-2's rows at the token counts of
:data:`OWN_KERNEL_FIT_TOKENS` (every other one), its other rows held out.
Vidur's samples are whole microseconds, so the fits and the validation compare each mean with
the predicted kernel time as recorded (:func:`recorded_ms`), the repeats' jitter read off the
data (:func:`timing_jitter_us`); the step model takes the kernel times themselves.
The attention profile exists for the A100 only (Llama-2-7B); it is fitted on its rows with
kernel-launch overheads, so it has no held-out rows, and the H100 uses the A100's efficiencies
(shares of its own peaks; an assumption). Collectives are fitted per GPU over the all-reduces
of 2, 4 and 8 devices of one DGX node at once (one latency, one bus bandwidth) and over
send/recv within a node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.gpu_serving import kernels as kn
from hwsim.validation import data_rows

ArrayLike = Any  # float | np.ndarray

DATA = Path(__file__).resolve().parent / "data"
OPERATORS_CSV = DATA / "operators_vidur.csv"
COLLECTIVES_CSV = DATA / "collectives_vidur.csv"

#: Vidur's GPU folder -> our device spec
DEVICES = {"A100": "a100-sxm-80gb", "H100": "h100-sxm-80gb"}
#: Vidur's network profile -> our device spec
NETWORKS = {"a100_dgx": "a100-sxm-80gb", "h100_dgx": "h100-sxm-80gb"}
#: the models whose operator rows the constants are fitted on; the others are held out
FIT_MODELS = ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf", "internlm/internlm-20b")
#: operator -> the calibration table that times it
TABLES = {
    "attn_pre_proj": "gemm", "attn_post_proj": "gemm", "mlp_up_proj": "gemm",
    "mlp_down_proj": "gemm",
    "input_layernorm": "norm", "post_attention_layernorm": "norm", "add": "add",
    "mlp_act": "activation", "attn_rope": "rope", "emb": "embedding",
    "attn_decode": "attention_decode", "attn_prefill": "attention_prefill",
}
#: the fitted fields of each table, in order, with their bounds
FIELDS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "gemm": (("compute_efficiency", 0.05, 1.0), ("small_tile_efficiency", 0.1, 1.0),
             ("bandwidth_efficiency", 0.05, 1.0), ("overhead_us", 0.0, 50.0),
             ("smoothing", 1.0, 100.0)),
    "attention_decode": (("overhead_us", 0.0, 100.0), ("per_block_us", 0.0, 5.0),
                         ("bandwidth_efficiency_min", 0.05, 1.0),
                         ("bandwidth_efficiency_max", 0.05, 1.0), ("half_blocks", 1.0, 1e6)),
    "attention_prefill": (("overhead_us", 0.0, 200.0), ("compute_efficiency", 0.01, 1.0),
                          ("chunk_factor", 0.0, 5.0)),
    "elementwise": (("floor_us", 0.0, 100.0), ("floor_ns_per_element", 0.0, 100.0),
                    ("bandwidth_efficiency", 0.01, 1.5), ("smoothing", 1.0, 30.0)),
    # phi-2's own kernels: one row width (2,560; TP 1 only), so the floor's width term is not
    # identifiable and is held at 0 (the GELU's loop has none: it is a flat grid over the
    # elements, no block per row); its floor at that width is floor_us
    "own_elementwise": (("floor_us", 0.0, 100.0), ("bandwidth_efficiency", 0.01, 1.0),
                        ("smoothing", 1.0, 30.0)),
    "embedding": (("small_floor_us", 0.0, 100.0), ("small_per_index_us", 0.0, 10.0),
                  ("floor_us", 0.0, 100.0), ("floor_ns_per_element", 0.0, 100.0),
                  ("bandwidth_efficiency", 0.01, 1.5), ("smoothing", 1.0, 30.0)),
}
#: the most indices PyTorch's index_select (the embedding gather) copies with its small-index
#: kernel, one row after another; more take the large-index kernel (pytorch/pytorch
#: aten/src/ATen/native/cuda/Indexing.cu, index_select_out_cuda_impl: ``numIndices <= 16``).
#: A fact of the kernel, not fitted.
SMALL_INDEX_MAX = 16
BYTES = 2.0  # FP16 activations and weights, as profiled
#: held-out models whose element-wise kernels differ from the fitted ones (phi-2: PyTorch's
#: LayerNorm, an ungated GELU, the parallel attention and MLP's add of three terms), each timed
#: by its own kernel model on the fitted constants and reported as groups of their own
OTHER_ARCHITECTURE = ("microsoft/phi-2",)
OTHER_LABEL = "phi-2"
#: models whose norm is PyTorch's ``torch.nn.LayerNorm`` (Vidur's model configs,
#: vidur/config/model_config.py: phi-2 ``norm = "layer_norm"``; the others ``rms_norm``, timed
#: with sarathi's RMSNorm kernel). Its forward (pytorch/pytorch
#: aten/src/ATen/native/cuda/layer_norm_kernel.cu, ``LayerNormKernelImplInternal``) takes the
#: vectorized path for FP16 when the row width is a multiple of 4 and X, Y, weight and bias are
#: 16-byte aligned (phi-2: 2,560): ONE kernel, ``vectorized_layer_norm_kernel``, one block of
#: 32 x 4 threads per row, which reads the row for Welford's mean and variance (a division per
#: element, merged by warp shuffles and shared memory), then again (from cache: 5 KB per row)
#: to write the output. HBM traffic is one read and one write (as the RMSNorm); the serial
#: Welford chain is why its floor is above the RMSNorm kernel's. (The two-kernel path,
#: ``RowwiseMomentsCUDAKernel`` + ``LayerNormForwardCUDAKernel``, three passes over HBM, is
#: for unaligned or odd widths: not phi-2's.)
LAYERNORM_MODELS = ("microsoft/phi-2",)
#: the token counts whose phi-2 LayerNorm and GELU rows fit those kernels' constants (per
#: GPU): every other distinct token count of phi-2's rows, from the smallest; the other token
#: counts (2, 8, 32, 128, 384, 768, 1,536, 3,072) are held out. A fixed, named split
#: (tests/test_gpu_serving_operators.py checks it is every other one and disjoint).
OWN_KERNEL_FIT_TOKENS = (1.0, 4.0, 16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0)
#: the tables of kernels fitted on OWN_KERNEL_FIT_TOKENS
OWN_KERNEL_TABLES = ("layernorm", "gelu")



@dataclass(frozen=True)
class OperatorRows:
    """The measured rows of one GPU (arrays, one entry per row)."""

    gpu: str
    model: np.ndarray
    op: np.ndarray
    op_class: np.ndarray
    tp: np.ndarray
    tokens: np.ndarray
    m: np.ndarray
    n: np.ndarray
    k: np.ndarray
    batch: np.ndarray
    kv_len: np.ndarray
    chunk: np.ndarray
    heads: np.ndarray
    kv_heads: np.ndarray
    d_model: np.ndarray
    d_ff: np.ndarray
    gated: np.ndarray
    #: the model's attention and MLP read the same normed input and one timed add sums both
    #: with the residual (no post-attention norm: phi-2, GPT-J), two binary adds
    parallel: np.ndarray
    ms: np.ndarray

    def where(self, mask: np.ndarray) -> OperatorRows:
        return OperatorRows(self.gpu, **{k: getattr(self, k)[mask] for k in _ARRAYS})

    @property
    def table(self) -> np.ndarray:
        """The calibration table that times each row: :data:`TABLES` by operator, except a
        LayerNorm model's norms (``layernorm``) and an ungated MLP's activation, PyTorch's
        exact GELU (``gelu``)."""
        base = np.array([TABLES.get(o, "") for o in self.op], dtype=object)
        layernorm = (base == "norm") & np.isin(self.model, LAYERNORM_MODELS)
        gelu = (base == "activation") & (self.gated == 0)
        return np.where(layernorm, "layernorm", np.where(gelu, "gelu", base))

    @property
    def fitted(self) -> np.ndarray:
        """Rows the constants are fitted on: the fit models' (the attention rows are all
        fitted) and the own kernels' rows at :data:`OWN_KERNEL_FIT_TOKENS`."""
        own = np.isin(self.table, OWN_KERNEL_TABLES) & np.isin(self.tokens,
                                                                OWN_KERNEL_FIT_TOKENS)
        return (np.isin(self.model, FIT_MODELS) & ~np.isin(self.table, OWN_KERNEL_TABLES)
                | np.isin(self.op, ["attn_decode", "attn_prefill"]) | own)


_ARRAYS = ("model", "op", "op_class", "tp", "tokens", "m", "n", "k", "batch", "kv_len", "chunk",
           "heads", "kv_heads", "d_model", "d_ff", "gated", "parallel", "ms")


def _rows(path: Path) -> list[dict[str, str]]:
    return data_rows(path)


def _num(x: str) -> float:
    return float(x) if x != "" else math.nan


@cache
def operator_rows(gpu: str) -> OperatorRows:
    """The Vidur rows measured on ``gpu`` (a device spec name)."""
    rows = [r for r in _rows(OPERATORS_CSV) if DEVICES[r["gpu"]] == gpu]
    cols: dict[str, Any] = {}
    for key, name, conv in (("model", "model", str), ("op", "op", str),
                            ("op_class", "op_class", str), ("tp", "tp", _num),
                            ("tokens", "tokens", _num), ("m", "M", _num), ("n", "N", _num),
                            ("k", "K", _num), ("batch", "batch", _num),
                            ("kv_len", "kv_len", _num), ("chunk", "prefill_chunk", _num),
                            ("heads", "n_head", _num), ("kv_heads", "n_kv_head", _num),
                            ("d_model", "d_model", _num), ("d_ff", "d_ff", _num),
                            ("gated", "gated", _num), ("ms", "time_ms_mean", _num)):
        cols[key] = np.array([conv(r[name]) for r in rows],
                             dtype=object if conv is str else float)
    # Vidur's block (vidur/profiling/mlp/mlp_impl.py, GPTBlock): a model without a
    # post-attention norm runs attention and MLP side by side and times one add of three terms
    sequential = {r["model"] for r in rows if r["op"] == "post_attention_layernorm"}
    cols["parallel"] = np.array([r["model"] not in sequential for r in rows], dtype=bool)
    return OperatorRows(gpu, **cols)


def _gpu_rates(gpu: str) -> tuple[float, float, float]:
    """(peak 16-bit FLOP/s, HBM bytes/s, SMs) from the device spec."""
    from hwsim.gpu_serving.calibration import load_gpu

    g = load_gpu(gpu)
    return g.peak_16bit_TFLOPS * 1e12, g.hbm_bandwidth_GBps * 1e9, float(g.sms)


def predict_ms(rows: OperatorRows, table: str, c: Any) -> np.ndarray:
    """Predicted times (ms) of ``rows`` (all of one ``table``) with that table's constants."""
    peak, bw, sms = _gpu_rates(rows.gpu)
    d = rows.d_model
    if table == "gemm":
        return kn.gemm_s(rows.m, rows.n, rows.k, BYTES, peak, bw, sms, c) * 1e3
    if table == "attention_decode":
        # Llama-2-7B on one GPU: 32 heads of 128; K and V of every head per token
        kvb = 2.0 * rows.kv_heads * (d / rows.heads) * BYTES
        return kn.decode_attention_s(rows.batch, rows.kv_len + 1, rows.kv_heads, kvb, bw,
                                     c) * 1e3
    if table == "attention_prefill":
        return kn.prefill_attention_s(1.0, rows.chunk, rows.kv_len, rows.heads, d / rows.heads,
                                      peak, c) * 1e3
    width, nbytes = elementwise_shape(rows)
    if table == "embedding":
        return kn.embedding_s(rows.tokens, width, nbytes, bw, c) * 1e3
    if table == "add":  # two binary adds where attention and MLP run side by side
        return np.where(rows.parallel, 2.0, 1.0) * kn.elementwise_s(width, nbytes, bw, c) * 1e3
    # norms, the fused SiLU x gate, rope; the LayerNorm and the GELU (their own tables)
    return kn.elementwise_s(width, nbytes, bw, c) * 1e3


# --------------------------------------------------------------------------------------------
# Vidur's recording: whole microseconds per sample

#: repeats behind each row's mean (its means are multiples of 1/20 or 1/21 of a microsecond)
SAMPLES = 20
#: rows below this mean (us) tell the timing jitter: their samples straddle a whole microsecond
JITTER_ROWS_US = 5.0
#: harmonics of the smoothed floor (the sixth is damped below 1e-3 for a jitter of 0.1 us)
_HARMONICS = 6


@cache
def _straddle_width() -> float:
    """Width (in jitter standard deviations) of the band around a whole microsecond where
    :data:`SAMPLES` samples of ``floor(t + e)``, ``e ~ N(0, sigma^2)``, are not all equal:
    ``integral of 1 - (1 - Phi(z))^N - Phi(z)^N dz``."""
    from scipy.stats import norm

    z = np.linspace(-10.0, 10.0, 40001)
    p = norm.cdf(z)
    return float(np.trapezoid(1.0 - (1.0 - p) ** SAMPLES - p ** SAMPLES, z))


@cache
def timing_jitter_us(gpu: str) -> float:
    """The standard deviation of one kernel's duration between Vidur's repeats on ``gpu``,
    from the recording itself: every sample is whole microseconds (the medians are whole or
    half microseconds), so a row's mean is a whole number unless its samples straddle one; the
    share of the fit models' rows below :data:`JITTER_ROWS_US` whose mean is not whole, over
    the width of the straddling band (:func:`_straddle_width`), is the jitter (a property of
    the measurement, not of a kernel model)."""
    rows = operator_rows(gpu)
    small = np.isin(rows.model, FIT_MODELS) & (rows.ms * 1e3 < JITTER_ROWS_US)
    us = rows.ms[small] * 1e3
    whole = np.isclose(us, np.round(us), rtol=0.0, atol=1e-6)
    return float(np.mean(~whole)) / _straddle_width()


def recorded_us(t_us: ArrayLike, jitter_us: float) -> np.ndarray:
    """The mean Vidur records for a kernel of ``t_us`` microseconds: each sample is the
    duration cut to whole microseconds (``floor``) after a jitter of ``jitter_us`` (normal), so
    the mean is ``E[floor(t + e)]`` = ``t - 1/2 + sum_m sin(2 pi m t) exp(-2 pi^2 m^2 s^2) /
    (pi m)`` (the sawtooth's Fourier series, each harmonic damped by the jitter); a sample of 0
    is dropped (``get_operation_time_stats`` skips a zero CUDA time), so at least 1 us."""
    t = np.asarray(t_us, dtype=float)
    out = t - 0.5
    for m in range(1, _HARMONICS + 1):
        out = out + (np.exp(-2.0 * (np.pi * m * jitter_us) ** 2) * np.sin(2.0 * np.pi * m * t)
                     / (np.pi * m))
    return np.maximum(out, 1.0)


def recorded_ms(rows: OperatorRows, table: str, c: Any) -> np.ndarray:
    """:func:`predict_ms` as Vidur records it (:func:`recorded_us` per kernel: the parallel
    residual's two adds each recorded); what the fits and the validation compare with the
    measured means. The step model uses the kernel times themselves."""
    t = predict_ms(rows, table, c) * 1e3
    kernels = np.where(rows.parallel, 2.0, 1.0) if table == "add" else 1.0
    return kernels * recorded_us(t / kernels, timing_jitter_us(rows.gpu)) * 1e-3


def elementwise_shape(rows: OperatorRows) -> tuple[np.ndarray, np.ndarray]:
    """(row width in elements, bytes read and written) of element-wise rows, as the step model
    counts them (:meth:`hwsim.gpu_serving.roofline.Kernels._elementwise_s`)."""
    t, d, tp, op = rows.tokens, rows.d_model, rows.tp, rows.op
    ff = np.ceil(rows.d_ff / tp)
    qk = np.ceil((rows.heads + rows.kv_heads) / tp) * (d / rows.heads)
    width = np.where(op == "mlp_act", ff, np.where(op == "attn_rope", qk, d))
    elems = np.select([np.isin(op, ["input_layernorm", "post_attention_layernorm", "emb"]),
                       op == "add", op == "mlp_act", op == "attn_rope"],
                      [2 * t * d, 3 * t * d, np.where(rows.gated > 0, 3, 2) * t * ff,
                       2 * t * qk], 0.0)
    return width, elems * BYTES


def table_rows(gpu: str, table: str) -> OperatorRows:
    rows = operator_rows(gpu)
    return rows.where(rows.table == table)


def _fit(residual: Callable[[np.ndarray], np.ndarray], x0: Sequence[float],
         bounds: Sequence[tuple[float, float]], tol: float = 1e-12,
         max_nfev: int = 4000) -> np.ndarray:
    from scipy.optimize import least_squares

    lo, hi = [b[0] for b in bounds], [b[1] for b in bounds]
    x0 = np.clip(np.asarray(x0, dtype=float), lo, hi)
    return least_squares(residual, x0, bounds=(lo, hi), x_scale="jac", xtol=tol,
                         ftol=tol, max_nfev=max_nfev).x


def fit_table(gpu: str, table: str) -> dict[str, float]:
    """The constants of ``table`` on ``gpu`` fitted on its fitted rows (:attr:`OperatorRows.
    fitted`: the fit models', or phi-2's at :data:`OWN_KERNEL_FIT_TOKENS` for its own
    kernels)."""
    from types import SimpleNamespace

    rows = table_rows(gpu, table)
    rows = rows.where(rows.fitted)
    kind = table if table in FIELDS else ("own_elementwise" if table in OWN_KERNEL_TABLES
                                          else "elementwise")
    fields = FIELDS[kind]
    fixed: dict[str, float] = ({"small_index_max": SMALL_INDEX_MAX} if kind == "embedding"
                               else {"floor_ns_per_element": 0.0}
                               if kind == "own_elementwise" else {})
    y = rows.ms

    def constants(x: np.ndarray) -> SimpleNamespace:
        return SimpleNamespace(**fixed, **{f: v for (f, _, _), v in zip(fields, x, strict=True)})

    def plain(x: np.ndarray) -> np.ndarray:
        return np.log(predict_ms(rows, table, constants(x)) / y)

    def residual(x: np.ndarray) -> np.ndarray:
        return np.log(recorded_ms(rows, table, constants(x)) / y)

    start = {"gemm": (0.75, 0.9, 0.8, 4.0, 3.0),
             "attention_decode": (7.0, 0.03, 0.6, 1.0, 1000.0),
             "attention_prefill": (30.0, 0.4, 1.5),
             "embedding": (2.0, 0.7, 3.0, 0.5, 0.5, 2.0),
             "own_elementwise": (3.0, 0.5, 2.0)}.get(kind, (3.0, 0.5, 0.5, 2.0))
    bounds = [(lo, hi) for _, lo, hi in fields]
    # the kernel times against the means first (smooth), then through the recording (its
    # whole-microsecond steps make the residual ripple: a short refinement from there)
    x = _fit(residual, _fit(plain, start, bounds), bounds, tol=1e-8, max_nfev=60)
    out = {**fixed, **{f: float(v) for (f, _, _), v in zip(fields, x, strict=True)}}
    if kind == "own_elementwise":  # in the order of the elementwise table
        out = {f: out[f] for f, _, _ in FIELDS["elementwise"]}
    return out


# --------------------------------------------------------------------------------------------
# collectives


@dataclass(frozen=True)
class CollectiveRows:
    gpu: str
    collective: np.ndarray
    workers: np.ndarray
    per_node: np.ndarray
    size: np.ndarray
    ms: np.ndarray


@cache
def collective_rows(gpu: str) -> CollectiveRows:
    rows = [r for r in _rows(COLLECTIVES_CSV) if NETWORKS[r["network_device"]] == gpu]
    return CollectiveRows(
        gpu, np.array([r["collective"] for r in rows], dtype=object),
        np.array([float(r["num_workers"]) for r in rows]),
        np.array([float(r["devices_per_node"]) for r in rows]),
        np.array([float(r["size_bytes"]) for r in rows]),
        np.array([float(r["time_ms_median"]) for r in rows]))


def collective_masks(rows: CollectiveRows) -> dict[str, np.ndarray]:
    """The series fitted and checked: all-reduce within a node, send/recv within a node."""
    return {"all_reduce": (rows.collective == "all_reduce") & (rows.workers == rows.per_node),
            "send_recv": (rows.collective == "send_recv") & (rows.per_node == 2)}


def predict_collective_ms(rows: CollectiveRows, kind: str, latency_us: float,
                          bandwidth_GBps: float) -> np.ndarray:
    if kind == "all_reduce":
        return kn.allreduce_s(rows.size, rows.workers, latency_us, bandwidth_GBps * 1e9) * 1e3
    return kn.send_recv_s(rows.size, latency_us, bandwidth_GBps * 1e9) * 1e3


def fit_collectives(gpu: str) -> dict[str, float]:
    """Latency and bandwidth of the all-reduce (2, 4 and 8 devices together) and of
    send/recv within a node, on ``gpu``'s DGX."""
    rows = collective_rows(gpu)
    out = {}
    for kind, mask in collective_masks(rows).items():
        sel = CollectiveRows(gpu, *(getattr(rows, k)[mask] for k in
                                    ("collective", "workers", "per_node", "size", "ms")))

        def residual(x: np.ndarray, sel: CollectiveRows = sel, kind: str = kind) -> np.ndarray:
            return np.log(predict_collective_ms(sel, kind, x[0], x[1]) / sel.ms)

        lat, bw = _fit(residual, (30.0, 200.0), [(0.0, 500.0), (1.0, 5000.0)])
        prefix = "allreduce" if kind == "all_reduce" else "send_recv"
        out[f"{prefix}_latency_us"] = float(lat)
        out[f"{prefix}_{'bus_' if kind == 'all_reduce' else ''}bandwidth_GBps"] = float(bw)
    return out


def fit_all(gpu: str) -> dict[str, dict[str, float]]:
    """Every operator table and the collectives of ``gpu`` (the attention tables only where
    measured: the A100)."""
    out = {t: fit_table(gpu, t) for t in ("gemm", "norm", "add", "activation", "rope",
                                          "embedding", *OWN_KERNEL_TABLES)}
    if len(table_rows(gpu, "attention_decode").ms):
        out["attention_decode"] = fit_table(gpu, "attention_decode")
        out["attention_prefill"] = fit_table(gpu, "attention_prefill")
    out["collectives"] = fit_collectives(gpu)
    return out


# --------------------------------------------------------------------------------------------
# errors per operator class, with a calibration


def class_errors(gpu: str, cal: Any) -> dict[tuple[str, str], np.ndarray]:
    """Relative errors of every row of ``gpu`` with the constants of ``cal`` (a
    ``gpu-calibration``), keyed by (operator class, "calibration" | "held-out")."""
    rows = operator_rows(gpu)
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    for table in sorted({*TABLES.values(), *OWN_KERNEL_TABLES}):
        sel = table_rows(gpu, table)
        if not len(sel.ms):
            continue
        err = recorded_ms(sel, table, getattr(cal, table)) / sel.ms - 1.0
        for role, mask in (("calibration", sel.fitted), ("held-out", ~sel.fitted)):
            if not mask.any():
                continue
            if table.startswith("attention"):
                out.setdefault((table.replace("_", " "), role), []).append(err[mask])
                continue
            other = np.isin(sel.model, OTHER_ARCHITECTURE) & (table not in ("gemm",
                                                                            "embedding"))
            for cls in np.unique(sel.op_class[mask]):
                for label, m in ((str(cls), mask & (sel.op_class == cls) & ~other),
                                 (f"{cls} {OTHER_LABEL}", mask & (sel.op_class == cls) & other)):
                    if m.any():
                        out.setdefault((label, role), []).append(err[m])
    del rows
    return {k: np.concatenate(v) for k, v in out.items()}


def collective_errors(gpu: str, cal: Any) -> dict[str, np.ndarray]:
    rows = collective_rows(gpu)
    c = cal.collectives
    out = {}
    for kind, mask in collective_masks(rows).items():
        if kind == "all_reduce":
            p = kn.allreduce_s(rows.size[mask], rows.workers[mask], c.allreduce_latency_us,
                               c.allreduce_bus_bandwidth_GBps * 1e9) * 1e3
        else:
            p = kn.send_recv_s(rows.size[mask], c.send_recv_latency_us,
                               c.send_recv_bandwidth_GBps * 1e9) * 1e3
        out[kind] = p / rows.ms[mask] - 1.0
    return out

"""Calibration of the SpMM kernel model on Flash-LLM's published kernel figure, and its
validation cases.

Reference: ``data/flash_llm_kernels_opt30b.csv`` (its header names the source): Flash-LLM,
cuBLAS (tensor cores), SparTA and Sputnik TFLOPS on an A100-SXM4-80GB for the four OPT-30B
layer shapes at 70/80/90% sparsity and N = 8/16/32, digitised from the kernel figure of the
Flash-LLM README (``docs/assets/KernelBenchmarking.png``), about +-0.2 TFLOPS at N = 8 and
+-0.4 at N = 16/32. Those error bars are shown beside each case (``reference_error``); they do
not widen its tolerance.

**One fitted constant per kernel on the A100** (:data:`FITS`), on the rows :data:`FIT_ROWS`
names: cuBLAS ``hbm_efficiency`` (N = 16), Flash-LLM ``load_latency_us`` (N = 16; its HBM
efficiency is cuBLAS's, its shared memory at the peak), SparTA the 2:4 part's
``hbm_efficiency`` (N = 16; its load latency is Flash-LLM's), Sputnik ``issue_efficiency``
(the 80% rows), cuSPARSE
``issue_efficiency`` (on the figure's "below 1 TFLOPS"). Every kernel's launch costs an
assumed 5 us. Each minimises the squared relative TFLOPS error on its rows
(``scipy.optimize.least_squares``); the other rows are held out.
``python -m hwsim.spmm.calibration`` prints the fit and every case; the calibration files
``models/calibration/spmm-<kernel>-a100-sxm-80gb.toml`` carry the fitted values (rounded) and
name the rows they were fitted on, and a test checks they match.

A second, held-out reference checks the extrapolation to the OPT-66B/175B shapes, which no
point measures: ``data/flash_llm_kernel_means_12shapes.csv``, the digitised means over all 12
shapes per N and sparsity, from which, with the OPT-30B points, follows the mean Flash-LLM
TFLOPS over the 8 larger shapes (:func:`implied_big_means`; the ``flash-llm-big-mean`` cases)
and the mean ratios there (:func:`speedup_diagnosis`).

Cases that miss their tolerance are listed in :data:`KNOWN_DEVIATIONS` with their reason and a
ceiling on their error, and documented, with their numbers, in ``docs/spmm.md``; ``hwsim
validate`` reports them as known deviations, and fails any that goes past its ceiling.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, least_squares

from hwsim import specs
from hwsim.hw.gpu import GpuSpec
from hwsim.sparse import format as fmt
from hwsim.spmm import analytical
from hwsim.spmm.spec import SpmmCalibrationSpec, SpmmKernelSpec
from hwsim.validation import Case, data_rows

log = logging.getLogger(__name__)

CSV_PATH = Path(__file__).resolve().parent / "data" / "flash_llm_kernels_opt30b.csv"
CALIBRATION_N = 16
LAYER_TAGS = {"OPT-30B QKV": "qkv", "OPT-30B out-proj": "out", "OPT-30B FFN1": "ffn1",
              "OPT-30B FFN2": "ffn2"}

#: what the kernel models claim: each point within 15%; the Flash-LLM, cuBLAS, Sputnik and
#: SparTA models also a held-out mean absolute error within 10% (SparTA claims it since its 2:4
#: part runs in waves of latency-bound CTAs, which serves both its shape classes; before, with
#: one bandwidth share, at 8.6% it claimed none).
TOLERANCE = 0.15
GROUP_MAPE = 0.10
MAPE_CLAIMED = ("flash-llm", "cublas", "sputnik", "sparta")

#: cases outside their tolerance: (reason, ceiling on the relative error); numbers in
#: docs/spmm.md. A case past its ceiling fails.
SPUTNIK_OUTLIER_REASON = (
    "the FFN1 N = 16 90% time is 31% above the same shape's at N = 8, where Sputnik runs the "
    "same 16-column tile; the other shapes step up 7-17% (a digitisation or measurement "
    "outlier the tile model cannot produce; docs/spmm.md)")
SPUTNIK_ROWS_REASON = (
    "the instruction count has no per-row work (row offsets, the residue of each row's last "
    "32-nonzero strip, the output store); at 90% rows are 3x shorter than at 70% and the data's "
    "time per nonzero rises 15-20%, so the model is 6.5% fast on average at 90% and 16% on this "
    "point (docs/spmm.md)")
SPEEDUP_REASON = (
    "measured apart (docs/spmm.md, 'Why the cuBLAS mean at 90% misses'): on the OPT-30B "
    "shapes, where the points are, the model's mean over cuBLAS at 90% is 2.03 against the "
    "digitised 1.96; the miss (2.253 against the band's 2.25) comes from the OPT-66B/175B "
    "shapes, which the mean averages in and no point measures, and there from the cuBLAS "
    "model, not Flash-LLM's: the digitised 12-shape means per N imply a Flash-LLM mean TFLOPS "
    "on those shapes that the model matches within +2.9% at 90% (the flash-llm-big-mean "
    "cases), while its ratio there is 2.36 against the implied 2.17: the cuBLAS model is about "
    "6-9% slow on the larger shapes (one bandwidth constant fitted on the OPT-30B shapes; "
    "cuBLAS's per-shape kernel choice is not public and not modelled)")
CUSPARSE_CROSSOVER_REASON = (
    "the blog's crossover and the kernel figure's bars below 1 TFLOPS cannot both hold for a "
    "time that grows with the nonzeros (the mechanism of a CSR SpMM): at 90% the figure puts "
    "cuSPARSE below 1 TFLOPS where cuBLAS runs 11-50, so matching cuBLAS takes at least 11-50x "
    "fewer nonzeros, 99.1-99.8% sparsity; the model keeps the figure's bound (docs/spmm.md)")

KNOWN_DEVIATIONS: dict[str, tuple[str, float]] = {
    "sputnik-ffn1-n16-s90": (SPUTNIK_OUTLIER_REASON, 0.35),
    "sputnik-qkv-n16-s90": (SPUTNIK_ROWS_REASON, 0.25),
    "speedup-vs-cublas-s90": (SPEEDUP_REASON, 0.05),
    "cusparse-crossover-vs-cublas": (CUSPARSE_CROSSOVER_REASON, 0.03),
}


@dataclass(frozen=True)
class Row:
    """One row of the reference CSV."""

    layer: str
    m: int
    k: int
    n: int
    split_k: int
    sparsity: float
    flash_llm_tflops: float
    cublas_tflops: float
    sparta_tflops: float
    sputnik_tflops: float

    @property
    def tag(self) -> str:
        return f"{LAYER_TAGS.get(self.layer, self.layer)}-n{self.n}"

    @property
    def error_tflops(self) -> float:
        """The digitisation error bar the CSV's source line states for this N."""
        return 0.2 if self.n == 8 else 0.4


@cache
def source_line() -> str:
    with CSV_PATH.open() as f:
        return f.readline().lstrip("# ").strip()


@cache
def rows() -> tuple[Row, ...]:
    return tuple(Row(layer=r["layer"], m=int(r["M"]), k=int(r["K"]), n=int(r["N"]),
                     split_k=int(r["split_k"]), sparsity=float(r["sparsity"]),
                     flash_llm_tflops=float(r["flash_llm_tflops"]),
                     cublas_tflops=float(r["cublas_tc_tflops"]),
                     sparta_tflops=float(r["sparta_tflops"]),
                     sputnik_tflops=float(r["sputnik_tflops"])) for r in data_rows(CSV_PATH))


def load_kernel(name: str) -> SpmmKernelSpec:
    return specs.load_spec(specs.find_spec_file("spmm-kernel", name), kind="spmm-kernel")


def load_gpu(name: str = "a100-sxm-80gb") -> GpuSpec:
    return specs.load_spec(specs.find_spec_file("gpu", name), kind="gpu")


def load_calibration(kernel: str, gpu: str = "a100-sxm-80gb") -> SpmmCalibrationSpec:
    return analytical.load_calibration(kernel, gpu)


def predict_tflops(rs: tuple[Row, ...], kernel: SpmmKernelSpec, cal: SpmmCalibrationSpec,
                   gpu: GpuSpec) -> np.ndarray:
    """Model TFLOPS of the rows (each with its own SplitK) for one kernel and its constants."""
    w = {"m": np.array([r.m for r in rs]), "k": np.array([r.k for r in rs]),
         "n": np.array([r.n for r in rs]), "sparsity": np.array([r.sparsity for r in rs]),
         "dtype": "fp16"}
    ker = analytical.kernel_fields(kernel, cal)
    ker["split_k"] = np.array([r.split_k for r in rs])
    return analytical.evaluate_arrays(w, ker, analytical.device_of(gpu),
                                      analytical.cublas_baseline(gpu.name))["tflops"]


FLASH_LLM_FREE = ("load_latency_us",)
CUBLAS_FREE = ("hbm_efficiency",)
SPUTNIK_FREE = ("issue_efficiency",)
SPARTA_FREE = ("hbm_efficiency",)
CUSPARSE_FREE = ("smem_efficiency",)

#: the rows each kernel's constants are fitted on (the rest are held out): Flash-LLM, cuBLAS
#: and SparTA on N = 16; Sputnik, whose N dependence comes from its tile table and is not
#: fitted, on the 80% rows, holding out the sparsities its model must extrapolate to
FIT_ROWS: dict[str, tuple[str, Callable[[Row], bool]]] = {
    "flash-llm": ("N = 16", lambda r: r.n == CALIBRATION_N),
    "cublas": ("N = 16", lambda r: r.n == CALIBRATION_N),
    "sparta": ("N = 16", lambda r: r.n == CALIBRATION_N),
    "sputnik": ("sparsity 0.8", lambda r: round(r.sparsity * 100) == 80),
}


def fit(kernel: SpmmKernelSpec, cal: SpmmCalibrationSpec, free: tuple[str, ...], ref_attr: str,
        gpu: GpuSpec | None = None) -> dict[str, float]:
    """Least-squares fit of ``free`` (constants of ``cal``) on the kernel's calibration rows
    (:data:`FIT_ROWS`), minimising the relative TFLOPS error."""
    gpu = gpu or load_gpu()
    _, keep = FIT_ROWS[kernel.kernel]
    rows_ = tuple(r for r in rows() if keep(r))
    if ref_attr == "cublas_tflops":  # one point per shape: cuBLAS does not see sparsity
        rows_ = tuple({(r.m, r.k): r for r in rows_}.values())
    ref = np.array([getattr(r, ref_attr) for r in rows_])
    timed = ("launch_overhead_us", "load_latency_us")
    lo = [0.0 if f in timed else 1e-4 for f in free]
    hi = [100.0 if f in timed else 1.0 for f in free]
    x0 = [min(max(getattr(cal, f), a), b) for f, a, b in zip(free, lo, hi, strict=True)]

    def resid(x: np.ndarray) -> np.ndarray:
        c2 = dataclasses.replace(cal, **dict(zip(free, map(float, x), strict=True)))
        return predict_tflops(rows_, kernel, c2, gpu) / ref - 1.0

    sol = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac")
    return dict(zip(free, map(float, sol.x), strict=True))


#: (kernel, fitted constants, reference column) of every least-squares fit
FITS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("flash-llm", FLASH_LLM_FREE, "flash_llm_tflops"), ("cublas", CUBLAS_FREE, "cublas_tflops"),
    ("sputnik", SPUTNIK_FREE, "sputnik_tflops"), ("sparta", SPARTA_FREE, "sparta_tflops"))

CUSPARSE_TARGET_TFLOPS = 0.5  # the middle of the figure's "below 1 TFLOPS"


def fit_cusparse(gpu: GpuSpec | None = None) -> dict[str, float]:
    """cuSPARSE's L1-sector efficiency (``smem_efficiency``, :func:`hwsim.sparse.kernels.cusparse`)
    such that its largest TFLOPS over the 36 OPT-30B points is :data:`CUSPARSE_TARGET_TFLOPS`
    (its time grows with the efficiency's inverse)."""
    gpu = gpu or load_gpu()
    kernel, cal = load_kernel("cusparse"), load_calibration("cusparse")

    def gap(eta: float) -> float:
        c2 = dataclasses.replace(cal, smem_efficiency=eta)
        return float(predict_tflops(rows(), kernel, c2, gpu).max()) - CUSPARSE_TARGET_TFLOPS

    return {"smem_efficiency": float(brentq(gap, 1e-6, 1.0))}


CUSPARSE_CROSSOVER = 0.98
CROSSOVER_SOURCE = ("the authors' Hugging Face blog (flash-llm.md in github.com/huggingface/blog): "
                    "on these shapes cuSPARSE beats cuBLAS only above ~98% sparsity")


def cusparse_crossover(gpu: GpuSpec | None = None) -> float:
    """The sparsity at which the cuSPARSE model's time equals cuBLAS's, averaged over the 12
    OPT-30B (shape, N) points (each kernel with its committed constants)."""
    gpu = gpu or load_gpu()
    kernels = [(load_kernel(k), load_calibration(k)) for k in ("cusparse", "cublas")]
    points = {(r.m, r.k, r.n): r for r in rows()}.values()

    def gap(s: float, r: Row) -> float:
        rr = (dataclasses.replace(r, sparsity=s),)
        sp, cb = (float(predict_tflops(rr, k, c, gpu)[0]) for k, c in kernels)
        return sp / cb - 1.0

    return float(np.mean([brentq(gap, 0.5, 1.0 - 1e-6, args=(r,)) for r in points]))


#: the README's mean Flash-LLM speedups (over 3 models x 4 layers x N = 8/16/32) at 70/80/90%
PUBLISHED_SPEEDUPS: dict[str, tuple[float, float, float]] = {
    "cublas": (1.4, 1.7, 2.1), "sparta": (1.4, 1.4, 1.6), "sputnik": (3.6, 3.0, 2.0)}
SPEEDUP_TOLERANCE = 0.15  # absolute, on a mean ratio
SPEEDUP_SOURCE = ("github.com/AlibabaResearch/flash-llm README and the authors' Hugging Face "
                  "blog (flash-llm.md): Flash-LLM is 1.4x/1.7x/2.1x cuBLAS_TC, 1.4x/1.4x/1.6x "
                  "SparTA and 3.6x/3.0x/2.0x Sputnik on average at 70/80/90% sparsity")


SHAPES_PATH = Path(__file__).resolve().parent / "data" / "flash_llm_benchmark_shapes.csv"


@cache
def benchmark_points() -> tuple[Row, ...]:
    """The README's averaging set: the 12 OPT-30B/66B/175B layer shapes (with their SplitK)
    x N = 8/16/32 x sparsity 70/80/90% (TFLOPS fields NaN: no per-point reference)."""
    shapes = data_rows(SHAPES_PATH)
    nan = float("nan")
    return tuple(Row(layer=r["layer"], m=int(r["M"]), k=int(r["K"]), n=n,
                     split_k=int(r["split_k"]), sparsity=s, flash_llm_tflops=nan,
                     cublas_tflops=nan, sparta_tflops=nan, sputnik_tflops=nan)
                 for r in shapes for s in (0.7, 0.8, 0.9) for n in (8, 16, 32))


def mean_speedup(over: str, sparsity: float, gpu: GpuSpec | None = None) -> float:
    """The model's mean Flash-LLM / ``over`` TFLOPS ratio over the README's 12 shapes x N =
    8/16/32 at one sparsity (each kernel with its committed constants)."""
    gpu = gpu or load_gpu()
    rs = tuple(r for r in benchmark_points() if abs(r.sparsity - sparsity) < 1e-9)
    fl = predict_tflops(rs, load_kernel("flash-llm"), load_calibration("flash-llm"), gpu)
    base = predict_tflops(rs, load_kernel(over), load_calibration(over), gpu)
    return float(np.mean(fl / base))


MEANS_PATH = Path(__file__).resolve().parent / "data" / "flash_llm_kernel_means_12shapes.csv"
#: the baselines whose mean ratios the 12-shape summary gives, and their column
SUMMARY_RATIOS = {"cublas": "fl_over_cublas", "sparta": "fl_over_sparta",
                  "sputnik": "fl_over_sputnik"}
BIG_SHAPES = 8  # OPT-66B and OPT-175B: 4 layers each, no per-point reference
ALL_SHAPES = 12


@cache
def means_source_line() -> str:
    with MEANS_PATH.open() as f:
        return f.readline().lstrip("# ").strip()


@cache
def summary_means() -> dict[tuple[int, float], dict[str, float]]:
    """The digitised means over all 12 shapes per (N, sparsity) (``data/
    flash_llm_kernel_means_12shapes.csv``, its header names the source): the three Flash-LLM /
    baseline ratio means and the Flash-LLM TFLOPS mean."""
    return {(int(r["N"]), round(float(r["sparsity"]), 2)):
            {k: float(v) for k, v in r.items() if k not in ("N", "sparsity")}
            for r in data_rows(MEANS_PATH)}


def implied_big_means() -> dict[tuple[int, float], dict[str, float]]:
    """What the 12-shape means and the 4 measured OPT-30B points imply for the mean over the 8
    OPT-66B/175B shapes, per (N, sparsity): ``(12 x mean_12 - 4 x mean_30B) / 8`` for the
    Flash-LLM TFLOPS and for each ratio (every term is a plain mean over shapes, so the split
    is exact up to the digitisation and the means' rounding, which it scales by 12/8)."""
    out = {}
    for (n, s), m in summary_means().items():
        sel = [r for r in rows() if r.n == n and abs(r.sparsity - s) < 1e-9]
        d = {"flash_llm_tflops": float(np.mean([r.flash_llm_tflops for r in sel]))}
        for over, col in SUMMARY_RATIOS.items():
            d[col] = float(np.mean([r.flash_llm_tflops / getattr(r, f"{over}_tflops")
                                    for r in sel]))
        out[(n, s)] = {k: (ALL_SHAPES * m[k] - (ALL_SHAPES - BIG_SHAPES) * d[k]) / BIG_SHAPES
                       for k in d}
    return out


def big_points(n: int, sparsity: float) -> tuple[Row, ...]:
    """The 4 OPT-66B and 4 OPT-175B benchmark points at one (N, sparsity)."""
    return tuple(r for r in benchmark_points() if "OPT-30B" not in r.layer and r.n == n
                 and abs(r.sparsity - sparsity) < 1e-9)


def empirical_flash_llm_law() -> dict[int, np.ndarray]:
    """A diagnostic, not a model: per N, the least-squares ``t = a nnz + b M K + c`` over the
    12 digitised OPT-30B Flash-LLM times (seconds per nonzero, per dense element, fixed)."""
    law = {}
    for n in sorted({r.n for r in rows()}):
        sel = [r for r in rows() if r.n == n]
        t = np.array([2.0 * r.m * r.n * r.k / (r.flash_llm_tflops * 1e12) for r in sel])
        a = np.array([[(1.0 - r.sparsity) * r.m * r.k, r.m * r.k, 1.0] for r in sel])
        law[n] = np.linalg.lstsq(a, t, rcond=None)[0]
    return law


def additive_step_diagnosis(gpu: GpuSpec | None = None) -> dict[int, dict[str, float]]:
    """Why Flash-LLM's step is not modelled as a sum (docs/spmm.md, "Is the step additive?"):
    per N, the digitised times' cost per nonzero over their cost per dense element
    (:func:`empirical_flash_llm_law`) against the same ratio for a step that adds the
    extraction to the MMAs and their operand reads at the hardware rates (one 16-bit store per
    nonzero at 32 per clock; the zero-fill, the ``ldmatrix`` of the dense A tile and the B tile's
    copy and its reads by the 4 warps at ``smem_bytes_per_clk_per_sm``; the MMAs at the tensor
    peak, or left out as hidden), which no efficiency constant changes; and the data's cost per
    nonzero against what its 4-B record costs at the HBM peak if the load were serial too; and
    the cost per nonzero
    of the modelled step (``chain_s_per_nnz``: the record's transfer at an SM's share of HBM,
    ``ctas_per_sm`` CTAs per SM alternating, plus its scatter; nothing fitted enters it)."""
    gpu = gpu or load_gpu()
    dev = analytical.device_of(gpu)
    ker = analytical.kernel_fields(load_kernel("flash-llm"), load_calibration("flash-llm"))
    ker["split_k"] = 1
    out = {}
    for n, (a, b, _) in empirical_flash_llm_law().items():
        tm, tn = (float(x) for x in analytical.flash_llm_tiles(n))
        per_nnz = 1.0 / analytical.SMEM_STORES_PER_CLK  # SM clocks per scattered record
        rows_w, cols_w = (float(x) for x in analytical.flash_llm_warp_grid(tm, 128))
        n_copy = min(tn, 8.0 * np.ceil(n / 8.0))  # B rows copied in (TILE_N2)
        # per dense element: fill, ldmatrix of A, the B tile copied in and read by every warp row
        smem_B = 2.0 + 2.0 * cols_w + 2.0 * (n_copy + rows_w * tn) / tm
        per_elem = smem_B / dev.smem_Bpc
        n_mma = min(tn, 8.0 * np.ceil(n / 8.0))
        mma = 2.0 * n_mma / (dev.tensor_flops / dev.sms / dev.clock_Hz)
        cap = float(analytical.flash_llm(7168, 7168, n, 1000.0, 1, ker, dev)["ctas_per_sm"])
        bw = dev.hbm_Bps * ker["hbm_efficiency"]
        chain = (fmt.RECORD_BYTES / (cap * bw) + 1.0 / (analytical.SMEM_STORES_PER_CLK
                 * ker["smem_efficiency"] * dev.clock_Hz * dev.sms * cap))
        out[n] = {"data_ratio": float(a / b), "chain_s_per_nnz": float(chain),
                  "additive_ratio": float(per_nnz / per_elem),
                  "additive_ratio_with_mma": float(per_nnz / (per_elem + mma)),
                  "data_s_per_nnz": float(a),
                  "serial_load_s_per_nnz": float(fmt.RECORD_BYTES / dev.hbm_Bps)}
    return out


def speedup_diagnosis(gpu: GpuSpec | None = None) -> dict[str, dict[str, tuple[float, ...]]]:
    """Where the mean speedups come from (docs/spmm.md, 'Why three means miss'): per baseline,
    the model's means at 70/80/90% on the OPT-30B shapes and on the OPT-66B/175B shapes, the
    digitised OPT-30B means, what the published and digitised means imply for 66B/175B
    (``(3 published - digitised) / 2``), what the digitised 12-shape means per N imply for them
    (:func:`implied_big_means`, averaged over N), and the means with Flash-LLM's time taken
    from :func:`empirical_flash_llm_law` instead of the model. Under ``"flash-llm"``: the
    model's and the law's mean Flash-LLM TFLOPS on the OPT-66B/175B shapes over the implied
    ones (per sparsity, averaged over N = 8/16/32; ``model_big_n32`` at N = 32 alone)."""
    gpu = gpu or load_gpu()
    pts = benchmark_points()
    big = np.array(["OPT-30B" not in r.layer for r in pts])
    fl = predict_tflops(pts, load_kernel("flash-llm"), load_calibration("flash-llm"), gpu)
    law = empirical_flash_llm_law()
    fl_law = np.array([2.0 * r.m * r.n * r.k / (law[r.n] @ [(1 - r.sparsity) * r.m * r.k,
                                                            r.m * r.k, 1.0]) / 1e12
                       for r in pts])
    ref = rows()
    implied = implied_big_means()
    ns = sorted({n for n, _ in implied})

    def at(s: float, n: int | None = None) -> np.ndarray:
        return np.array([abs(r.sparsity - s) < 1e-9 and (n is None or r.n == n) for r in pts])

    out: dict[str, dict[str, tuple[float, ...]]] = {}
    for over, published in PUBLISHED_SPEEDUPS.items():
        base = predict_tflops(pts, load_kernel(over), load_calibration(over), gpu)
        d: dict[str, list[float]] = {k: [] for k in ("model_30b", "model_big", "digitised_30b",
                                                     "implied_big", "summary_big",
                                                     "with_law")}
        for s, pub in zip((0.7, 0.8, 0.9), published, strict=True):
            d["model_30b"].append(float(np.mean((fl / base)[at(s) & ~big])))
            d["model_big"].append(float(np.mean((fl / base)[at(s) & big])))
            dig = float(np.mean([r.flash_llm_tflops / getattr(r, f"{over}_tflops")
                                 for r in ref if abs(r.sparsity - s) < 1e-9]))
            d["digitised_30b"].append(dig)
            d["implied_big"].append((3.0 * pub - dig) / 2.0)
            d["summary_big"].append(float(np.mean(
                [implied[(n, s)][SUMMARY_RATIOS[over]] for n in ns])))
            d["with_law"].append(float(np.mean((fl_law / base)[at(s)])))
        out[over] = {k: tuple(v) for k, v in d.items()}
    f: dict[str, list[float]] = {"model_big": [], "law_big": [], "model_big_n32": []}
    for s in (0.7, 0.8, 0.9):
        imp = {n: implied[(n, s)]["flash_llm_tflops"] for n in ns}
        f["model_big"].append(float(np.mean([fl[at(s, n) & big].mean() / imp[n] for n in ns])))
        f["law_big"].append(float(np.mean([fl_law[at(s, n) & big].mean() / imp[n]
                                           for n in ns])))
        f["model_big_n32"].append(float(fl[at(s, 32) & big].mean() / imp[32]))
    out["flash-llm"] = {k: tuple(v) for k, v in f.items()}
    return out


def all_cases() -> list[Case]:
    """Every case, judged at the accuracy the model claims (15% per point; a held-out MAPE
    within 10% for the kernels in :data:`MAPE_CLAIMED`): Flash-LLM (36 points), cuBLAS (12),
    Sputnik (36), SparTA (36), cuSPARSE (the largest of its 36 points against the figure's
    "below 1 TFLOPS"), Flash-LLM's mean TFLOPS on the OPT-66B/175B shapes per N and sparsity
    (9, within 15%, the reference implied by the 12-shape means) and the nine published mean
    speedups (within 0.15). The digitisation
    error of each reference is shown beside it, not added to the tolerance. Each kernel's
    calibration rows are :data:`FIT_ROWS`; the speedup means mix calibration and held-out
    points and are held out themselves (no constant was fitted on a ratio)."""
    gpu = load_gpu()
    src = f"hwsim/spmm/data/flash_llm_kernels_opt30b.csv; {source_line()}"
    kernels = {name: (load_kernel(name), load_calibration(name))
               for name in ("flash-llm", "cublas", "sputnik", "sparta", "cusparse")}
    out: list[Case] = []

    def case(name: str, kernel: str, ref: float, r: Row, dense: bool) -> Case:
        ker, cal = kernels[kernel]
        reason, ceiling = KNOWN_DEVIATIONS.get(name, ("", None))
        what = "dense" if dense else f"sparsity={r.sparsity:.0%}"
        role = "calibration" if FIT_ROWS[kernel][1](r) else "held-out"
        return Case(
            system="spmm", case=name, metric="tflops", reference=ref, tolerance=TOLERANCE,
            source=src, role=role, group=f"{kernel} TFLOPS, A100, OPT-30B shapes",
            group_mape=GROUP_MAPE if kernel in MAPE_CLAIMED else None,
            reference_error=r.error_tflops / ref,
            conditions=f"A100, M={r.m} K={r.k} N={r.n} SplitK={r.split_k} {what}",
            known_deviation=reason, ceiling=ceiling,
            predict=lambda r=r, ker=ker, cal=cal: float(predict_tflops((r,), ker, cal, gpu)[0]))

    seen: set[tuple[int, int, int]] = set()
    for r in rows():
        s = round(r.sparsity * 100)
        out.append(case(f"flash-llm-{r.tag}-s{s}", "flash-llm", r.flash_llm_tflops, r, False))
        if (r.m, r.k, r.n) not in seen:
            seen.add((r.m, r.k, r.n))
            out.append(case(f"cublas-{r.tag}", "cublas", r.cublas_tflops, r, True))
        for kernel, ref in (("sputnik", r.sputnik_tflops), ("sparta", r.sparta_tflops)):
            out.append(case(f"{kernel}-{r.tag}-s{s}", kernel, ref, r, False))
    ker, cal = kernels["cusparse"]
    for r in rows():
        name = f"cusparse-{r.tag}-s{round(r.sparsity * 100)}"
        reason, ceiling = KNOWN_DEVIATIONS.get(name, ("", None))
        out.append(Case(
            system="spmm", case=name, metric="tflops", reference=CUSPARSE_TARGET_TFLOPS,
            tolerance=0.0, bounds=(0.0, 1.0),
            source=f"{src}; cuSPARSE's bars are below 1 TFLOPS at every point",
            role="calibration", group="cusparse TFLOPS, A100, OPT-30B shapes",
            conditions=f"A100, M={r.m} K={r.k} N={r.n} sparsity={r.sparsity:.0%}, below 1 "
            "TFLOPS (the constant puts the largest of the 36 at 0.5)",
            known_deviation=reason, ceiling=ceiling,
            predict=lambda r=r, ker=ker, cal=cal: float(predict_tflops((r,), ker, cal, gpu)[0])))
    reason, ceiling = KNOWN_DEVIATIONS.get("cusparse-crossover-vs-cublas", ("", None))
    out.append(Case(
        system="spmm", case="cusparse-crossover-vs-cublas", metric="sparsity",
        reference=CUSPARSE_CROSSOVER, tolerance=0.0,
        bounds=(CUSPARSE_CROSSOVER - 0.01, CUSPARSE_CROSSOVER + 0.01), source=CROSSOVER_SOURCE,
        role="held-out", group="cusparse TFLOPS, A100, OPT-30B shapes",
        conditions="A100, the sparsity where cuSPARSE's model time equals cuBLAS's, mean over "
        "the 12 OPT-30B (shape, N) points, within 0.01 of the blog's ~98%",
        known_deviation=reason, ceiling=ceiling,
        predict=lambda: cusparse_crossover(gpu)))
    fl_ker, fl_cal = kernels["flash-llm"]
    means_src = f"hwsim/spmm/data/{MEANS_PATH.name} and {CSV_PATH.name}; {means_source_line()}"
    for (n, sparsity), imp in sorted(implied_big_means().items()):
        ref = imp["flash_llm_tflops"]
        # worst case: the 12-shape mean's rounding (0.05) and a bar's digitisation error (all
        # bars off alike) scaled by 12/8, plus the OPT-30B mean's bar error scaled by 4/8
        bar = 0.2 if n == 8 else 0.4
        err = ((0.05 + bar) * ALL_SHAPES / BIG_SHAPES
               + bar * (ALL_SHAPES - BIG_SHAPES) / BIG_SHAPES) / ref
        out.append(Case(
            system="spmm", case=f"flash-llm-big-mean-n{n}-s{round(sparsity * 100)}",
            metric="tflops", reference=ref, tolerance=TOLERANCE, source=means_src,
            role="held-out", group="flash-llm mean TFLOPS, A100, OPT-66B/175B shapes",
            reference_error=err,
            conditions=f"A100, mean Flash-LLM TFLOPS over the 8 OPT-66B/175B shapes (their "
            f"SplitK) at N={n} sparsity={sparsity:.0%}; reference (12 x the digitised 12-shape "
            "mean - 4 x the OPT-30B one) / 8, never fitted",
            predict=lambda n=n, s=sparsity: float(np.mean(
                predict_tflops(big_points(n, s), fl_ker, fl_cal, gpu)))))
    for over, refs in PUBLISHED_SPEEDUPS.items():
        for sparsity, ref in zip((0.7, 0.8, 0.9), refs, strict=True):
            name = f"speedup-vs-{over}-s{round(sparsity * 100)}"
            reason, ceiling = KNOWN_DEVIATIONS.get(name, ("", None))
            out.append(Case(
                system="spmm", case=name, metric="speedup", reference=ref, tolerance=0.0,
                bounds=(ref - SPEEDUP_TOLERANCE, ref + SPEEDUP_TOLERANCE),
                source=SPEEDUP_SOURCE, role="held-out",
                group="mean Flash-LLM speedups, A100",
                conditions=f"A100, mean Flash-LLM / {over} TFLOPS over the 12 OPT-30B/66B/175B "
                f"shapes x N = 8/16/32 at {sparsity:.0%} (hwsim/spmm/data/"
                "flash_llm_benchmark_shapes.csv; 66B and 175B shapes never fitted), within 0.15",
                known_deviation=reason, ceiling=ceiling,
                predict=lambda over=over, sparsity=sparsity: mean_speedup(over, sparsity, gpu)))
    return out


def validation_cases() -> list[Case]:
    """Every case (known deviations carry their reasons and ceilings)."""
    return all_cases()


def main() -> None:  # pragma: no cover - a report for people
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name, free, ref in FITS:
        log.info("%s fit on %s: %s", name, FIT_ROWS[name][0],
                 fit(load_kernel(name), load_calibration(name), free, ref))
    log.info("cusparse fit on its bound: %s", fit_cusparse())
    for n, (a, b, c) in empirical_flash_llm_law().items():
        log.info("Flash-LLM digitised times, N = %d: %.2f ps per nonzero + %.3f ps per dense "
                 "element + %.1f us", n, a * 1e12, b * 1e12, c * 1e6)
    for n, d in additive_step_diagnosis().items():
        log.info("Flash-LLM N = %d: nonzero / dense-element cost %.2f in the data, %.2f for an "
                 "additive step at hardware rates (%.2f with the MMAs); %.2f ps per nonzero "
                 "against %.2f ps for the modelled step and %.2f ps for a serial load at the "
                 "HBM peak", n, d["data_ratio"], d["additive_ratio"],
                 d["additive_ratio_with_mma"], d["data_s_per_nnz"] * 1e12,
                 d["chain_s_per_nnz"] * 1e12, d["serial_load_s_per_nnz"] * 1e12)
    for over, d in speedup_diagnosis().items():
        for key, v in d.items():
            log.info("speedup over %-8s %-14s %s", over, key, " ".join(f"{x:.2f}" for x in v))
    from hwsim.validation import run

    for res in run(all_cases()):
        log.info("%-26s predicted %7.2f reference %6.1f err %+6.1f%% tol %4.1f%% %s",
                 res.case.case, res.predicted, res.reference,
                 100 * (res.predicted / res.reference - 1), 100 * res.case.tolerance,
                 res.verdict)


if __name__ == "__main__":
    main()

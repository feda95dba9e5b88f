"""Calibration of the SpMM kernel model on Flash-LLM's published kernel figure, and its
validation cases.

Reference: ``data/flash_llm_kernels_opt30b.csv`` (its header names the source): Flash-LLM and
cuBLAS (tensor cores) TFLOPS on an A100-SXM4-80GB for the four OPT-30B layer shapes at 70/80/90%
sparsity and N = 8/16/32, digitised from the kernel figure of the Flash-LLM README
(``docs/assets/KernelBenchmarking.png``), about +-0.2 TFLOPS at N = 8 and +-0.4 at N = 16/32.
Those error bars are shown beside each case (``reference_error``); they do not widen its
tolerance.

Calibration subset: the **N = 16** rows only (12 Flash-LLM points, 4 cuBLAS points). Flash-LLM's
free parameters are ``hbm_efficiency``, ``smem_efficiency`` and ``launch_overhead_us``; cuBLAS's
are ``hbm_efficiency`` and ``launch_overhead_us``. They minimise the squared relative TFLOPS
error on that subset (``scipy.optimize.least_squares``); the N = 8 and N = 32 rows are held out.
``python -m hwsim.spmm.calibration`` prints the fit and every case; the calibration files
``models/calibration/spmm-<kernel>-a100-sxm-80gb.toml`` carry the fitted values (rounded) and
name the rows they were fitted on, and a test checks they match.

Cases that miss their tolerance are listed in :data:`KNOWN_DEVIATIONS` with their reason and a
ceiling on their error, and documented, with their numbers, in ``docs/spmm.md``; ``hwsim
validate`` reports them as known deviations, and fails any that goes past its ceiling.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from hwsim import specs
from hwsim.hw.gpu import GpuSpec
from hwsim.spmm import analytical
from hwsim.spmm.spec import SpmmCalibrationSpec, SpmmKernelSpec
from hwsim.validation import Case

log = logging.getLogger(__name__)

CSV_PATH = Path(__file__).resolve().parent / "data" / "flash_llm_kernels_opt30b.csv"
CALIBRATION_N = 16
LAYER_TAGS = {"OPT-30B QKV": "qkv", "OPT-30B out-proj": "out", "OPT-30B FFN1": "ffn1",
              "OPT-30B FFN2": "ffn2"}

#: what the kernel models claim: each point within 15%; the Flash-LLM and cuBLAS models (the
#: SpMM issue's acceptance) also a held-out mean absolute error within 10%. The baselines'
#: models are not fitted and claim no mean yet (their MAPE is in the report's summary).
TOLERANCE = 0.15
GROUP_MAPE = 0.10
MAPE_CLAIMED = ("flash-llm", "cublas")

SPUTNIK_REASON = (
    "the CSR model streams A at 80% of HBM bandwidth and 27% of FP32 peak (neither fitted: "
    "Sputnik's V100 figures); at N = 8 and 16 the real kernel is far from bandwidth bound on "
    "these shapes and runs up to 2.4x slower; an N-dependent model is the SpMM-inference "
    "issue's work (docs/spmm.md, 'Known deviations')")
SPARTA_REASON = (
    "the 2:4 + residual decomposition runs on cuBLAS's and Sputnik's constants, none fitted on "
    "SparTA; on the FFN shapes (M or K = 28,672) it is 24-51% optimistic, and it inherits "
    "Sputnik's small-N optimism for the residual (docs/spmm.md, 'Known deviations')")
CUSPARSE_REASON = (
    "the CSR model's one CUDA-core efficiency is derived from the blog's 98% break-even with "
    "cuBLAS at N = 8 on the QKV shape; at N = 32 it reaches 2.5 TFLOPS where every cuSPARSE bar "
    "of the figure is below 1 TFLOPS (docs/spmm.md, 'Known deviations')")

#: cases outside their tolerance: (reason, ceiling on the relative error); numbers in
#: docs/spmm.md. A case past its ceiling fails.
KNOWN_DEVIATIONS: dict[str, tuple[str, float]] = {
    **{f"sputnik-{layer}-n8-s{s}": (SPUTNIK_REASON, 1.6)
       for layer in ("qkv", "out", "ffn1", "ffn2") for s in (70, 80, 90)},
    **{f"sputnik-{layer}-n16-s{s}": (SPUTNIK_REASON, 0.9)
       for layer in ("qkv", "out", "ffn1", "ffn2") for s in (70, 80, 90)},
    **{f"sparta-{case}": (SPARTA_REASON, 0.6) for case in (
        "qkv-n8-s70", "out-n8-s70", "ffn1-n8-s70", "ffn1-n16-s70", "ffn1-n32-s70",
        "ffn1-n8-s80", "ffn1-n16-s80", "ffn1-n32-s80", "ffn1-n8-s90", "ffn1-n16-s90",
        "ffn1-n32-s90", "ffn2-n8-s70", "ffn2-n16-s70", "ffn2-n32-s70", "ffn2-n8-s80",
        "ffn2-n16-s80", "ffn2-n32-s80", "ffn2-n8-s90", "ffn2-n16-s90", "ffn2-n32-s90")},
    "cusparse-max-tflops": (CUSPARSE_REASON, 1.7),
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
    with CSV_PATH.open() as f:
        reader = csv.DictReader(line for line in f if not line.startswith("#"))
        return tuple(Row(layer=r["layer"], m=int(r["M"]), k=int(r["K"]), n=int(r["N"]),
                         split_k=int(r["split_k"]), sparsity=float(r["sparsity"]),
                         flash_llm_tflops=float(r["flash_llm_tflops"]),
                         cublas_tflops=float(r["cublas_tc_tflops"]),
                         sparta_tflops=float(r["sparta_tflops"]),
                         sputnik_tflops=float(r["sputnik_tflops"])) for r in reader)


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


FLASH_LLM_FREE = ("hbm_efficiency", "smem_efficiency", "launch_overhead_us")
CUBLAS_FREE = ("hbm_efficiency", "launch_overhead_us")


def fit(kernel: SpmmKernelSpec, cal: SpmmCalibrationSpec, free: tuple[str, ...], ref_attr: str,
        gpu: GpuSpec | None = None) -> dict[str, float]:
    """Least-squares fit of ``free`` (constants of ``cal``) on the calibration rows (N = 16)."""
    gpu = gpu or load_gpu()
    rows_ = tuple(r for r in rows() if r.n == CALIBRATION_N)
    if ref_attr == "cublas_tflops":  # one point per shape: cuBLAS does not see sparsity
        rows_ = tuple({(r.m, r.k): r for r in rows_}.values())
    ref = np.array([getattr(r, ref_attr) for r in rows_])
    lo = [0.05 if f != "launch_overhead_us" else 0.0 for f in free]
    hi = [1.0 if f != "launch_overhead_us" else 100.0 for f in free]
    x0 = [min(max(getattr(cal, f), a), b) for f, a, b in zip(free, lo, hi, strict=True)]

    def resid(x: np.ndarray) -> np.ndarray:
        c2 = dataclasses.replace(cal, **dict(zip(free, map(float, x), strict=True)))
        return predict_tflops(rows_, kernel, c2, gpu) / ref - 1.0

    sol = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac")
    return dict(zip(free, map(float, sol.x), strict=True))


def all_cases() -> list[Case]:
    """Every case, judged at the accuracy the model claims (15% per point, 10% held-out MAPE
    per kernel): Flash-LLM (36 points), cuBLAS (12), Sputnik (36), SparTA (36) and cuSPARSE
    (the largest of its 36 points against the figure's "below 1 TFLOPS"). The digitisation
    error of each reference is shown beside it, not added to the tolerance. Flash-LLM and
    cuBLAS are calibrated on N = 16; the other kernels are fitted on nothing."""
    gpu = load_gpu()
    src = f"hwsim/spmm/data/flash_llm_kernels_opt30b.csv; {source_line()}"
    kernels = {name: (load_kernel(name), load_calibration(name))
               for name in ("flash-llm", "cublas", "sputnik", "sparta", "cusparse")}
    out: list[Case] = []

    def case(name: str, kernel: str, ref: float, r: Row, role: str, dense: bool) -> Case:
        ker, cal = kernels[kernel]
        reason, ceiling = KNOWN_DEVIATIONS.get(name, ("", None))
        what = "dense" if dense else f"sparsity={r.sparsity:.0%}"
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
        role = "calibration" if r.n == CALIBRATION_N else "held-out"
        s = round(r.sparsity * 100)
        out.append(case(f"flash-llm-{r.tag}-s{s}", "flash-llm", r.flash_llm_tflops, r, role,
                        False))
        if (r.m, r.k, r.n) not in seen:
            seen.add((r.m, r.k, r.n))
            out.append(case(f"cublas-{r.tag}", "cublas", r.cublas_tflops, r, role, True))
        for kernel, ref in (("sputnik", r.sputnik_tflops), ("sparta", r.sparta_tflops)):
            out.append(case(f"{kernel}-{r.tag}-s{s}", kernel, ref, r, "held-out", False))
    ker, cal = kernels["cusparse"]
    reason, ceiling = KNOWN_DEVIATIONS["cusparse-max-tflops"]
    out.append(Case(
        system="spmm", case="cusparse-max-tflops", metric="tflops", reference=0.5,
        tolerance=0.0, bounds=(0.0, 1.0), source=f"{src}; cuSPARSE's bars are below 1 TFLOPS "
        "at every point", role="held-out", group="cusparse TFLOPS, A100, OPT-30B shapes",
        conditions="A100, the largest over the 36 OPT-30B points (N = 8, 16, 32)",
        known_deviation=reason, ceiling=ceiling,
        predict=lambda: float(predict_tflops(rows(), ker, cal, gpu).max())))
    return out


def validation_cases() -> list[Case]:
    """Every case (known deviations carry their reasons and ceilings)."""
    return all_cases()


def main() -> None:  # pragma: no cover - a report for people
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name, free, ref in (("flash-llm", FLASH_LLM_FREE, "flash_llm_tflops"),
                            ("cublas", CUBLAS_FREE, "cublas_tflops")):
        log.info("%s fit on N=%d: %s", name, CALIBRATION_N,
                 fit(load_kernel(name), load_calibration(name), free, ref))
    from hwsim.validation import run

    for res in run(all_cases()):
        log.info("%-26s predicted %7.2f reference %6.1f err %+6.1f%% tol %4.1f%% %s",
                 res.case.case, res.predicted, res.reference,
                 100 * (res.predicted / res.reference - 1), 100 * res.case.tolerance,
                 res.verdict)


if __name__ == "__main__":
    main()

"""Calibration of the GPU step model and its validation cases.

**What is fitted, per GPU** (``python -m hwsim.gpu_serving.calibration`` prints the fits and the
errors; ``python -m hwsim.gpu_serving.calfiles`` rewrites the files ``models/calibration/*.toml``
that carry them, and ``tests/test_gpu_serving_fit.py`` checks they still do):

1. *Operators* (:mod:`hwsim.gpu_serving.operators`): the GEMM, norm, residual-add, activation,
   rotary-embedding and embedding constants of the A100 and the H100 on Vidur's kernel times of
   Llama-2-7B, Llama-2-70B and InternLM-20B (every tensor-parallel degree, 1 to 4,096 tokens);
   the other models' rows are held out. phi-2's own kernels (PyTorch's LayerNorm and exact
   GELU) on its rows at every other token count (``operators.OWN_KERNEL_FIT_TOKENS``), its
   other rows held out. Decode and prefill attention on the A100's attention
   profile (the H100 takes the A100's shares of its peaks). All-reduce and send/recv on the
   NCCL times of one DGX node.
2. *Frameworks* (:mod:`hwsim.gpu_serving.measured`): per GPU and serving framework, the fixed
   step overhead, the framework's all-reduce latency and the share of the unfused element-wise
   kernels it pays (and on the H100 the FP8 GEMM speed-up), the operator constants held, on a
   named subset of the serving rows; the rest are held out.

One calibration file per GPU and framework: ``roofline-<device>`` (the role's default: the
TensorRT-LLM fit) and ``lmdeploy-a100-sxm-80gb``; both A100 files carry the same operator
constants. The H200 (``roofline-h200-sxm-141gb``) is the H100's silicon with more and faster HBM
and has no measurement: it takes the H100's constants, not fitted.

**Validation cases**: the operator groups (MAPE of each operator class on each GPU, on the fitted
and on the held-out models), one case per measured serving row (calibration or held-out as
above), the three decode latencies of ``llm_decode_measured.csv`` (held out: nothing was fitted
on them now), and ``validation.toml`` (PaLM on TPU v4, the roofline model).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.gpu_serving import measured, operators
from hwsim.gpu_serving.roofline import RooflineStepModel
from hwsim.gpu_serving.spec import GpuCalibrationSpec, GpuMappingSpec
from hwsim.hw.gpu import GpuSpec
from hwsim.llm.spec import LlmSpec
from hwsim.validation import Case, data_rows, load_cases

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "llm_decode_measured.csv"
CONDITIONS_PATH = HERE / "calibration.toml"
SOURCE = ("hwsim/gpu_serving/llm_decode_measured.csv: R1 LLMCompass real_hardware A100; "
          "R3 TensorRT-LLM 0.5 H100vsA100 blog; R5 NVIDIA NIM 1.8.0 benchmarks")
TOLERANCE = 0.15

#: the calibration files fitted here: file -> (device, framework, operators fitted on)
FILES = {
    "roofline-a100-sxm-80gb": ("a100-sxm-80gb", "TensorRT-LLM 0.12.0"),
    "trtllm0.11-a100-sxm-80gb": ("a100-sxm-80gb", "TensorRT-LLM 0.11.0"),
    "trtllm0.10-a100-sxm-80gb": ("a100-sxm-80gb", "TensorRT-LLM 0.10.0"),
    "lmdeploy-a100-sxm-80gb": ("a100-sxm-80gb", "LMDeploy v0.1.0a1 (TurboMind)"),
    "roofline-h100-sxm-80gb": ("h100-sxm-80gb", "TensorRT-LLM 0.12.0"),
    "trtllm0.11-h100-sxm-80gb": ("h100-sxm-80gb", "TensorRT-LLM 0.11.0"),
    "trtllm0.10-h100-sxm-80gb": ("h100-sxm-80gb", "TensorRT-LLM 0.10.0"),
}
#: operator tables of a calibration file (attention: the A100's for every GPU)
OPERATOR_TABLES = ("gemm", "attention_decode", "attention_prefill", "norm", "add", "activation",
                   "rope", "embedding", "layernorm", "gelu", "collectives")


# --------------------------------------------------------------------------------------------
# the decode latencies of llm_decode_measured.csv (held-out checks of the step model)


@dataclass(frozen=True)
class MeasuredCase:
    """One measured decode latency and the conditions to predict it."""

    case: str
    gpu: str
    tp: int
    llm: LlmSpec
    batch: int
    kv_len: int
    weight_dtype: str
    kv_dtype: str
    scope: str  # "layer" (one decoder layer) or "token" (a whole decode step)
    what: str
    measured_ms: float

    def mapping(self) -> GpuMappingSpec:
        return GpuMappingSpec(name=f"{self.case}-tp{self.tp}", tensor_parallel=self.tp,
                              batch=self.batch, weight_dtype=self.weight_dtype,
                              kv_dtype=self.kv_dtype)

    def predict_ms(self, gpu: GpuSpec, cal: GpuCalibrationSpec) -> float:
        """The step model's prediction of this case on ``gpu`` with constants ``cal``."""
        model = RooflineStepModel.build(gpu, cal, self.llm, self.mapping())
        if self.scope == "layer":
            return model.layer_decode_s(self.batch, self.kv_len) * 1e3
        return model.decode_s(0, self.batch, self.kv_len) * 1e3


@cache
def measured_cases() -> tuple[MeasuredCase, ...]:
    """The measured cases with their conditions."""
    cond = specs.read_toml(CONDITIONS_PATH)
    rows = data_rows(CSV_PATH)
    out = []
    for r in rows:
        c = cond["cases"][r["case"]]
        llm = specs.load_spec(specs.find_spec_file("llm", cond["models"][r["model"]]), "llm")
        kv = int(r["kv_len"]) if r["kv_len"] else int(c["kv_len"])
        out.append(MeasuredCase(
            case=r["case"], gpu=r["gpu"], tp=int(r["tp"]), llm=llm, batch=int(r["batch"]),
            kv_len=kv, weight_dtype=c["weight_dtype"], kv_dtype=c["kv_dtype"], scope=c["scope"],
            what=r["what"], measured_ms=float(r["measured_ms"]),
        ))
    return tuple(out)


def load_gpu(name: str) -> GpuSpec:
    return specs.load_spec(specs.find_spec_file("gpu", name), "gpu")


def load_calibration_file(name: str) -> GpuCalibrationSpec:
    return specs.load_spec(specs.find_spec_file("gpu-calibration", name), "gpu-calibration")


def load_calibration(gpu: str) -> GpuCalibrationSpec:
    """The committed default constants of device ``gpu`` (``roofline-<device>``)."""
    return load_calibration_file(f"roofline-{gpu}")


# --------------------------------------------------------------------------------------------
# the fits


@cache
def operator_fit(gpu: str) -> dict[str, dict[str, float]]:
    """The operator tables of ``gpu`` fitted on Vidur's rows (attention: the A100's)."""
    fit = operators.fit_all(gpu)
    if "attention_decode" not in fit:
        a100 = operators.fit_all("a100-sxm-80gb")
        fit["attention_decode"] = a100["attention_decode"]
        fit["attention_prefill"] = a100["attention_prefill"]
    return fit


def with_operators(cal: GpuCalibrationSpec, fit: dict[str, dict[str, float]]
                   ) -> GpuCalibrationSpec:
    """``cal`` with the operator tables of ``fit``."""
    return dataclasses.replace(cal, **{t: dataclasses.replace(getattr(cal, t), **fit[t])
                                       for t in OPERATOR_TABLES})


def operator_tables(cal: Any) -> dict[str, dict[str, float]]:
    """The operator tables of ``cal`` as numbers (a count stays an integer)."""
    def num(v: Any) -> float:
        return v if isinstance(v, int) else float(v)

    return {t: {f.name: num(getattr(getattr(cal, t), f.name))
                for f in dataclasses.fields(getattr(cal, t))} for t in OPERATOR_TABLES}


def calibrate(frameworks: bool = True) -> dict[str, dict[str, dict[str, float]]]:
    """Fitted tables per calibration file: the operators (and the framework constants, on the
    committed operator constants, when ``frameworks``)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, (gpu, _) in FILES.items():
        out[name] = dict(operator_fit(gpu))
        if frameworks:
            out[name]["framework"] = measured.fit_framework(name)
    return out


def toml_tables(tables: dict[str, dict[str, float]]) -> str:
    """The fitted tables as TOML (4 significant digits)."""
    lines = []
    for t, fields in tables.items():
        lines.append(f"[{t}]")
        for k, v in fields.items():
            if not isinstance(v, int):  # a count stays an integer
                v = 0.0 if abs(v) < 1e-9 else float(f"{v:.4g}")
            lines.append(f"{k} = {v!r}")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# validation cases

OPERATOR_SOURCE = ("hwsim/gpu_serving/data/operators_vidur.csv (microsoft/vidur@7d47513 "
                   "data/profiling/compute/{a100,h100}/*/mlp.csv and the A100 Llama-2-7B "
                   "attention profile); collectives_vidur.csv (data/profiling/network)")
#: the operator MAPE each class claims (held-out models), as a range case's upper bound
OPERATOR_CLAIM = 0.10
#: held-out classes the model is known to miss, by (class, GPU or "" for every GPU): (reason,
#: ceiling on the MAPE's excess over the claim, relative to the claim)
OPERATOR_KNOWN: dict[tuple[str, str], tuple[str, float]] = {
    ("elementwise phi-2", "h100"): (
        "phi-2's rotary embedding on the H100: 14.0% MAPE over its 19 rows, timed on the fit "
        "models' rope constants; the kernel is slower than they predict (13-19% short at 4-64 "
        "tokens, 20-22% at 1,536-4,096). Not its partial rotation (phi-2's config rotates 40% "
        "of each head's 80 dimensions, partial_rotary_factor 0.4; fewer bytes would make it "
        "faster, not slower); the mechanism is not found. Its GELU's held-out rows are within "
        "7.2% and the parallel residual's two adds within 8.4%; on the A100 the group passes "
        "(8.4%; its rope 8.2%)", 0.5),
}


def _mape_case(gpu: str, cls: str, role: str, errors: Any, n: int, claim: float,
               known: tuple[str, float] | None) -> Case:
    reason, ceiling = known or ("", None)
    what = "the fitted models" if role == "calibration" else "the held-out models"
    if cls.endswith(operators.OTHER_LABEL):  # phi-2's own kernels: fitted on a token split
        tokens = ", ".join(f"{t:g}" for t in operators.OWN_KERNEL_FIT_TOKENS)
        kernel = "LayerNorm" if cls.startswith("norm") else "GELU"
        rest = "" if kernel == "LayerNorm" else "its add and rope rows, "
        what = (f"its {kernel} rows at {tokens} tokens (fitted)" if role == "calibration"
                else f"held out: {rest}its {kernel} rows at the other token counts")
    return Case(
        system="gpu-serving", case=f"vidur {cls} {gpu.split('-')[0]} {role} MAPE",
        metric="mape", reference=0.0, tolerance=0.0, bounds=(0.0, claim),
        source=OPERATOR_SOURCE, role=role, group=f"Vidur operators {gpu.split('-')[0]}",
        conditions=f"{n} kernel times of {cls} on {gpu}, {what}; MAPE within [0, {claim:.0%}]",
        predict=errors, known_deviation=reason, ceiling=ceiling)


def _combined_errors(gpu: str) -> dict[str, np.ndarray]:
    """Held-out errors per operator class on ``gpu``, every held-out model's rows together
    (phi-2's own kernels counted in the class they belong to)."""
    out: dict[str, list[np.ndarray]] = {}
    for (cls, role), e in operators.class_errors(gpu, load_calibration(gpu)).items():
        if role == "held-out":
            base = cls.removesuffix(f" {operators.OTHER_LABEL}")
            out.setdefault(base, []).append(np.asarray(e, dtype=float))
    return {c: np.concatenate(v) for c, v in out.items()}


def _class_cases(gpu: str, errs: dict[tuple[str, str], Any]) -> list[Case]:
    """The issue's measure: one MAPE per operator class and GPU over every held-out row (the
    per-model groups above split phi-2's kernels out; this joins them)."""
    short = gpu.split("-")[0]
    out = []
    for cls, e in sorted(_combined_errors(gpu).items()):

        def mape(gpu: str = gpu, cls: str = cls) -> float:
            return float(np.mean(np.abs(_combined_errors(gpu)[cls])))

        out.append(Case(
            system="gpu-serving", case=f"vidur {cls} {short} held-out MAPE, every model",
            metric="mape", reference=0.0, tolerance=0.0, bounds=(0.0, OPERATOR_CLAIM),
            source=OPERATOR_SOURCE, role="held-out",
            group=f"Vidur operators per class {short} (every held-out model)",
            conditions=f"{len(e)} held-out kernel times of the {cls} class on {gpu}, every "
                       f"held-out model's rows (phi-2's own kernels included); MAPE within "
                       f"[0, {OPERATOR_CLAIM:.0%}]",
            predict=mape))
    return out


def operator_cases() -> list[Case]:
    """The MAPE of each operator class on each GPU with the committed constants, fitted and
    held-out models apart (range cases: the MAPE within the claim)."""
    out = []
    for gpu in ("a100-sxm-80gb", "h100-sxm-80gb"):
        errs = operators.class_errors(gpu, load_calibration(gpu))
        for (cls, role), e in sorted(errs.items()):
            short = gpu.split("-")[0]
            known = (OPERATOR_KNOWN.get((cls, short)) or OPERATOR_KNOWN.get((cls, ""))
                     if role == "held-out" else None)

            def mape(gpu: str = gpu, cls: str = cls, role: str = role) -> float:
                e = operators.class_errors(gpu, load_calibration(gpu))[(cls, role)]
                return float(np.mean(np.abs(e)))

            out.append(_mape_case(gpu, cls, role, mape, len(e), OPERATOR_CLAIM, known))
        out.extend(_class_cases(gpu, errs))
        for kind in ("all_reduce", "send_recv"):

            def cmape(gpu: str = gpu, kind: str = kind) -> float:
                e = operators.collective_errors(gpu, load_calibration(gpu))[kind]
                return float(np.mean(np.abs(e)))

            n = len(operators.collective_errors(gpu, load_calibration(gpu))[kind])
            out.append(dataclasses.replace(
                _mape_case(gpu, kind.replace("_", "-"), "calibration", cmape, n, 0.15, None),
                conditions=f"{n} NCCL times of {kind} within a DGX node on {gpu} (2 KB to "
                           "64 MB; all-reduce of 2, 4 and 8 devices); MAPE within [0, 15%]"))
    return out


#: decode points the model is known to miss
DECODE_KNOWN: dict[str, dict[str, Any]] = {
    "R5": {"known_deviation": (
        "batch 1 at TP2: the TensorRT-LLM fit's all-reduce time (93 us each, fitted at maximum "
        "load, where it also carries the group's synchronisation under load) is 15 of the "
        "29.2 ms predicted (2 x 80 all-reduces); with NCCL's idle latency of the H100 fit "
        "(29 us) the step is 19.0 ms (+2%): one fixed all-reduce time cannot serve batch 1 "
        "and maximum load"), "ceiling": 0.7},
}


def decode_cases() -> list[Case]:
    """Each measured decode latency predicted with the committed default calibration (held
    out: nothing is fitted on them)."""
    out = []
    for c in measured_cases():
        cond = (f"{c.tp} x {c.gpu}, {c.llm.name}, batch {c.batch}, {c.kv_len} cached tokens, "
                f"{c.weight_dtype}; {c.what}")
        out.append(Case(
            system="gpu-serving", case=f"decode {c.case}", metric="decode_ms",
            reference=c.measured_ms, tolerance=TOLERANCE, source=SOURCE, conditions=cond,
            role="held-out", group="decode latency (published single points)",
            predict=lambda c=c: c.predict_ms(load_gpu(c.gpu), load_calibration(c.gpu)),
            **DECODE_KNOWN.get(c.case, {}),
        ))
    return out


def validation_cases() -> list[Case]:
    """The operator groups, the measured serving rows and the published decode points."""
    from hwsim.gpu_serving.known import GROUP_MAPE, KNOWN

    return [*operator_cases(), *measured.cases(KNOWN, GROUP_MAPE), *decode_cases()]


def held_out_cases() -> list[Case]:
    """Checks no calibration used (``validation.toml``)."""
    return load_cases("gpu-serving", HERE / "validation.toml")


def main() -> None:  # pragma: no cover - a maintenance command
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operators-only", action="store_true",
                        help="fit the operator tables only (seconds); the frameworks take "
                        "about a minute")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fits = calibrate(frameworks=not args.operators_only)
    for name, tables in fits.items():
        log.info("# %s\n%s", name, toml_tables(tables))
    for gpu in ("a100-sxm-80gb", "h100-sxm-80gb"):
        for (cls, role), e in sorted(operators.class_errors(gpu, load_calibration(gpu)).items()):
            log.info("%s %s %s: %d rows, MAPE %.1f%%, worst %.0f%%", gpu, cls, role, len(e),
                     100 * float(np.mean(np.abs(e))), 100 * float(np.max(np.abs(e))))


if __name__ == "__main__":  # pragma: no cover
    main()

"""Calibration of the GPU step model against measured decode latencies, and its validation cases.

The cases are ``llm_decode_measured.csv`` (measured decode latencies from three public sources,
each named with its file or page in the header) with the conditions in ``calibration.toml``. Decode
at small batch is bound by HBM bandwidth, so the one free parameter per device is
``bandwidth_efficiency``: it is chosen to minimise the largest relative error over that device's
cases (a 1-D bounded search; the error is monotone in the efficiency). Run ``python -m
hwsim.gpu_serving.calibration`` to print the fit and the errors; the calibration files
``models/calibration/roofline-<device>.toml`` carry the fitted values (rounded to three decimals)
and name the rows they were fitted on, and a test checks they still match the fit. Every measured
case is a calibration case of the validation report (its value was used to fit); the held-out cases
are ``validation.toml``.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from scipy.optimize import minimize_scalar

from hwsim import specs
from hwsim.gpu_serving.roofline import RooflineStepModel
from hwsim.gpu_serving.spec import GpuCalibrationSpec, GpuMappingSpec
from hwsim.hw.gpu import GpuSpec
from hwsim.llm.spec import LlmSpec
from hwsim.validation import Case, load_cases

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "llm_decode_measured.csv"
CONDITIONS_PATH = HERE / "calibration.toml"
SOURCE = ("hwsim/gpu_serving/llm_decode_measured.csv: R1 LLMCompass real_hardware A100; "
          "R3 TensorRT-LLM 0.5 H100vsA100 blog; R5 NVIDIA NIM 1.8.0 benchmarks")
TOLERANCE = 0.15


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
    with CSV_PATH.open(newline="") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    out = []
    for r in rows:
        c = cond["cases"][r["case"]]
        name = r["model"]
        if name in cond.get("shapes", {}):
            llm = specs.build_spec(LlmSpec, cond["shapes"][name], file=str(CONDITIONS_PATH))
        else:
            llm = specs.load_spec(specs.find_spec_file("llm", cond["models"][name]), "llm")
        kv = int(r["kv_len"]) if r["kv_len"] else int(c["kv_len"])
        out.append(MeasuredCase(
            case=r["case"], gpu=r["gpu"], tp=int(r["tp"]), llm=llm, batch=int(r["batch"]),
            kv_len=kv, weight_dtype=c["weight_dtype"], kv_dtype=c["kv_dtype"], scope=c["scope"],
            what=r["what"], measured_ms=float(r["measured_ms"]),
        ))
    return tuple(out)


def load_gpu(name: str) -> GpuSpec:
    return specs.load_spec(specs.find_spec_file("gpu", name), "gpu")


def load_calibration(gpu: str) -> GpuCalibrationSpec:
    """The committed roofline constants of device ``gpu``."""
    return specs.load_spec(specs.find_spec_file("gpu-calibration", f"roofline-{gpu}"),
                           "gpu-calibration")


def fit_bandwidth_efficiency(gpu: GpuSpec, cal: GpuCalibrationSpec,
                             cases: tuple[MeasuredCase, ...]) -> float:
    """The bandwidth efficiency minimising the largest |log(predicted / measured)|, the other
    constants of ``cal`` held."""

    def worst(eff: float) -> float:
        c2 = dataclasses.replace(cal, bandwidth_efficiency=eff)
        return max(abs(math.log(c.predict_ms(gpu, c2) / c.measured_ms)) for c in cases)

    res = minimize_scalar(worst, bounds=(0.05, 1.0), method="bounded",
                          options={"xatol": 1e-5})
    return float(res.x)


def calibrate() -> dict[str, float]:
    """Fitted bandwidth efficiency per device that has measured cases."""
    by_gpu: dict[str, list[MeasuredCase]] = {}
    for c in measured_cases():
        by_gpu.setdefault(c.gpu, []).append(c)
    return {name: fit_bandwidth_efficiency(load_gpu(name), load_calibration(name), tuple(cs))
            for name, cs in by_gpu.items()}


def validation_cases() -> list[Case]:
    """Each measured case predicted with the committed calibration (calibration cases: their
    values were used to fit ``bandwidth_efficiency``)."""
    out = []
    for c in measured_cases():
        cond = (f"{c.tp} x {c.gpu}, {c.llm.name}, batch {c.batch}, {c.kv_len} cached tokens, "
                f"{c.weight_dtype}; {c.what}")
        out.append(Case(
            system="gpu-serving", case=f"decode {c.case}", metric="decode_ms",
            reference=c.measured_ms, tolerance=TOLERANCE, source=SOURCE, conditions=cond,
            role="calibration", group="decode latency, measured (calibration set)",
            predict=lambda c=c: c.predict_ms(load_gpu(c.gpu), load_calibration(c.gpu)),
        ))
    return out


def held_out_cases() -> list[Case]:
    """Checks no calibration used (``validation.toml``)."""
    return load_cases("gpu-serving", HERE / "validation.toml")


def main() -> None:  # pragma: no cover - a maintenance command
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fitted = calibrate()
    for name, eff in fitted.items():
        gpu = load_gpu(name)
        cal = dataclasses.replace(load_calibration(name), bandwidth_efficiency=round(eff, 3))
        log.info("%s: bandwidth_efficiency = %.3f", name, eff)
        for c in measured_cases():
            if c.gpu == name:
                p = c.predict_ms(gpu, cal)
                log.info("  %s predicted %.3f ms, measured %.3f ms, error %+.1f%%", c.case, p,
                         c.measured_ms, (p / c.measured_ms - 1) * 100)


if __name__ == "__main__":  # pragma: no cover
    main()

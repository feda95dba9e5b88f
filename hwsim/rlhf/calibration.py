"""Fitting the RLHF time model's one constant per GPU type, ``compute_efficiency``, on named
cells of the DeepSpeed-Chat one-node table (``hwsim/rlhf/data/step3_one_node.csv``, rows with
role ``calibration``).

The efficiency minimises the sum of squared log errors of the predicted step-3 hours over the
device's calibration rows (a golden-section search on (0, 1]; the error is unimodal in it).
The bandwidth and link efficiencies stay at their assumed values; the collective latency is
derived from NCCL's model (:func:`hwsim.llm.training.nccl_ring_step_latency_s`), not fitted.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from hwsim.fitting import golden_section_argmin
from hwsim.rlhf.spec import RlhfCalibrationSpec
from hwsim.system import get_system
from hwsim.validation import data_rows

DATA = Path(__file__).with_name("data") / "step3_one_node.csv"


def rows() -> list[dict[str, str]]:
    """The published cells (comment lines skipped)."""
    return data_rows(DATA)


def predict_hours(row: dict[str, str], cal: RlhfCalibrationSpec | None = None) -> float:
    """Predicted step-3 hours of one row (with ``cal`` in place of the device's file)."""
    s = get_system("rlhf")
    inputs = s.resolve([f"actor={row['actor']}", f"device={row['device']}"], [])
    if cal is not None:
        inputs = s.with_spec(inputs, "calibration", cal)
    return s.evaluate(inputs)["step3_hours"]


def fit(base: RlhfCalibrationSpec, cells: list[dict[str, str]]) -> RlhfCalibrationSpec:
    """``base`` with the compute efficiency that best reproduces ``cells`` (two or more)."""
    if len(cells) < 2:
        raise ValueError("fit on two or more cells, never on one point")

    def loss(eta: float) -> float:
        cal = replace(base, compute_efficiency=eta)
        return sum(math.log(predict_hours(r, cal) / float(r["hours"])) ** 2 for r in cells)

    return replace(base, compute_efficiency=round(golden_section_argmin(loss, 0.05, 1.0), 4))


def calibration_cells(device: str) -> list[dict[str, str]]:
    """The device's rows marked calibration."""
    return [r for r in rows() if r["device"] == device and r["role"] == "calibration"]

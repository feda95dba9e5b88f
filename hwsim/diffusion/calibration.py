"""Fitting the diffusion latency model's two constants on two measured A100 latencies.

``compute_efficiency`` and ``overhead_s_per_call`` are solved so that the model reproduces both
figures exactly (two equations, two unknowns, by bisection on the efficiency: for each
efficiency the overhead follows from the first figure, the second picks the efficiency);
``bandwidth_efficiency`` is assumed, not fitted. The figures are in
``hwsim/diffusion/data/latency_measured.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from hwsim.diffusion.spec import DiffusionCalibrationSpec
from hwsim.system import get_system

DATA = Path(__file__).with_name("data") / "latency_measured.csv"


def rows() -> list[dict[str, str]]:
    """The measured latencies (comment lines skipped)."""
    with DATA.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def predict(row: dict[str, str], cal: DiffusionCalibrationSpec | None = None) -> float:
    """The model's prediction of one row's ``metric`` (with ``cal`` in place of the file)."""
    s = get_system("diffusion")
    sets = [x for x in row["set"].split(";") if x]
    inputs = s.resolve([f"model={row['model']}", f"pipeline={row['pipeline']}",
                        f"device={row['device']}"], sets)
    if cal is not None:
        inputs = s.with_choices(inputs, {f"calibration.{k}": getattr(cal, k) for k in
                                         ("compute_efficiency", "bandwidth_efficiency",
                                          "overhead_s_per_call")})
    out = s.evaluate(inputs)
    value = out[row["metric"]]
    return 1.0 / value if row["metric"] == "step_latency_s" and row["unit"] == "it/s" \
        else value


def _seconds(row: dict[str, str], cal: DiffusionCalibrationSpec) -> float:
    v = predict(row, cal)
    return 1.0 / v if row["unit"] == "it/s" else v


def _target_s(row: dict[str, str]) -> float:
    v = float(row["value"])
    return 1.0 / v if row["unit"] == "it/s" else v


def fit(base: DiffusionCalibrationSpec, first: dict[str, str], second: dict[str, str]
        ) -> DiffusionCalibrationSpec:
    """Efficiency and overhead that reproduce ``first`` and ``second`` exactly. For a given
    efficiency a latency is affine in the overhead (calls x overhead), so the overhead that
    meets ``first`` is one linear solve; the efficiency is bisected on ``second``."""

    def with_eta(eta: float) -> DiffusionCalibrationSpec:
        c0 = replace(base, compute_efficiency=eta, overhead_s_per_call=0.0)
        c1 = replace(base, compute_efficiency=eta, overhead_s_per_call=1e-3)
        t0, t1 = _seconds(first, c0), _seconds(first, c1)
        over = max(0.0, (_target_s(first) - t0) / (t1 - t0) * 1e-3)
        return replace(base, compute_efficiency=eta, overhead_s_per_call=over)

    lo, hi = 0.05, 1.0
    target = _target_s(second)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        v = _seconds(second, with_eta(mid))
        lo, hi = (mid, hi) if v > target else (lo, mid)
    return with_eta(0.5 * (lo + hi))

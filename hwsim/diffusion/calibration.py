"""Fitting the diffusion latency model's two constants on the three measured A100 SD1.5 rows.

``host_s_per_operator`` is the host time to issue one operator, set by the host-bound call
(SD1.5 at batch 1 in eager PyTorch, whose GPU work is shorter than the dispatch of its
operators); ``compute_efficiency`` by the GPU-bound ones (batch 4 and 16); both by least
squares of the log errors. ``bandwidth_efficiency`` is assumed, not fitted. The figures are in
``hwsim/diffusion/data/latency_measured.csv``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from hwsim.diffusion.spec import DiffusionCalibrationSpec
from hwsim.system import get_system
from hwsim.validation import data_rows

DATA = Path(__file__).with_name("data") / "latency_measured.csv"
#: the sources of the rows (the file's first line)
DATA_SOURCE = ("huggingface/diffusers docs/source/en/optimization/torch2.0.md (SD1.5 rows), "
               "docs/source/en/tutorials/fast_diffusion.md (SDXL rows), "
               "huggingface.co/blog/simple_sdxl_optimizations (SDXL fp32 4 images)")


def rows() -> list[dict[str, str]]:
    """The measured latencies (comment lines skipped)."""
    return data_rows(DATA)


def _inputs(row: dict[str, str]):
    s = get_system("diffusion")
    sets = [x for x in row["set"].split(";") if x]
    return s, s.resolve([f"model={row['model']}", f"pipeline={row['pipeline']}",
                         f"device={row['device']}"], sets)


def predict(row: dict[str, str], cal: DiffusionCalibrationSpec | None = None) -> float:
    """The model's prediction of one row's ``metric`` (with ``cal`` in place of the file)."""
    s, inputs = _inputs(row)
    if cal is not None:
        inputs = s.with_spec(inputs, "calibration", cal)
    return s.evaluate(inputs)[row["metric"]]


def _target_s(row: dict[str, str]) -> float:
    v = float(row["value"])
    return 1.0 / v if row["unit"] == "it/s" else v


def grid_seconds(row: dict[str, str], eta: np.ndarray, host: np.ndarray) -> np.ndarray:
    """The row's predicted time (s; an it/s row as s per step) at many (efficiency, host
    time per operator) pairs at once: one vectorised call of the analytical block."""
    s, inputs = _inputs(row)
    out = s.analytical_batch(inputs, {"calibration.compute_efficiency": eta,
                                      "calibration.host_s_per_operator": host})
    metric = "step_latency_s" if row["unit"] == "it/s" else row["metric"]
    return np.asarray(out[metric], dtype=float)


def fit(base: DiffusionCalibrationSpec, fit_rows: list[dict[str, str]],
        rounds: int = 4, points: int = 41) -> DiffusionCalibrationSpec:
    """``compute_efficiency`` and ``host_s_per_operator`` minimising the sum of squared log
    errors over ``fit_rows`` (at least two), by a grid refined ``rounds`` times around its
    best point."""
    if len(fit_rows) < 2:
        raise ValueError("two constants are never fitted on fewer than two rows")
    targets = [_target_s(r) for r in fit_rows]
    e_lo, e_hi, h_lo, h_hi = 0.05, 1.0, 0.0, 4e-4
    best = (0.5, 0.0)
    for _ in range(rounds):
        e, h = np.meshgrid(np.linspace(e_lo, e_hi, points), np.linspace(h_lo, h_hi, points))
        e, h = e.ravel(), h.ravel()
        err = np.zeros(e.size)
        for r, t in zip(fit_rows, targets, strict=True):
            err += np.log(grid_seconds(r, e, h) / t) ** 2
        k = int(np.argmin(err))
        best = (float(e[k]), float(h[k]))
        de, dh = 2 * (e_hi - e_lo) / (points - 1), 2 * (h_hi - h_lo) / (points - 1)
        e_lo, e_hi = max(0.01, best[0] - de), min(1.0, best[0] + de)
        h_lo, h_hi = max(0.0, best[1] - dh), best[1] + dh
    return replace(base, compute_efficiency=best[0], host_s_per_operator=best[1])


def calibration_rows(device: str) -> list[dict[str, str]]:
    """The rows marked calibration for ``device``."""
    return [r for r in rows() if r["role"] == "calibration" and r["device"] == device]

"""Fitting HEAT's constants on the EPYC 7742 node, and the GPU baseline's memory per row.

- ``memory_level_parallelism`` (row-read kernel) and ``cycles_per_simd_vector`` (vector kernel)
  together: for a trial parallelism the cycles follow from the forward split (Table 4: reads
  62%, compute 26% of the forward pass, imposed at 2 threads); the parallelism is then the
  golden-section minimum of the squared log errors on the thread-scaling points marked ``fit``
  (Fig. 12: 2 and 8 threads). 4, 16 and 32 threads stay held out.
- ``baseline_bandwidth_efficiency``: the PyTorch-style time is inversely proportional to it, so
  the least-squares (log) fit on the Table 1 rows marked ``fit`` is a geometric mean.
- ``memory_per_row_B`` of the GPU baseline: geometric mean of Table 3's two V100 shares.

The data are in ``hwsim/heat/data/``; ``python -m hwsim.heat.calibration`` prints the fit.
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

import numpy as np

from hwsim.fitting import golden_section_argmin
from hwsim.system import Inputs, get_system
from hwsim.validation import data_rows

log = logging.getLogger(__name__)

DATA = Path(__file__).with_name("data")


def rows(name: str) -> list[dict[str, str]]:
    """The rows of ``data/<name>.csv`` (comment lines skipped)."""
    return data_rows(DATA / f"{name}.csv")


def read_share_target() -> float:
    """read / (read + compute) of the forward pass (Table 4)."""
    d = {r["part"]: float(r["share_percent"]) for r in rows("forward_split")}
    return d["read"] / (d["read"] + d["compute"])


@functools.lru_cache(maxsize=8)
def _base(dataset: str, sets: tuple[str, ...] = ()) -> Inputs:
    return get_system("heat").resolve([f"dataset={dataset}", "cpu=epyc-7742-2s",
                                       "calibration=heat-uncalibrated",
                                       "training=simplex-k128-n64"], list(sets))


def _inputs(mlp: float, cpv: float, dataset: str = "amazon-books",
            sets: tuple[str, ...] = ()) -> Inputs:
    s = get_system("heat")
    return s.with_choices(_base(dataset, sets), {"calibration.memory_level_parallelism": mlp,
                                   "calibration.cycles_per_simd_vector": cpv})


def _batch(inputs: Inputs, threads: list[float]) -> dict[str, np.ndarray]:
    return get_system("heat").analytical_batch(inputs, {"training.threads": threads})


def cycles_for(mlp: float, sets: tuple[str, ...] = ()) -> float:
    """The cycles per SIMD vector that give Table 4's forward split at 2 threads."""
    target = read_share_target()
    lo, hi = 0.01, 10_000.0
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        share = float(_batch(_inputs(mlp, mid, sets=sets), [2.0])["forward_read_share"][0])
        lo, hi = (mid, hi) if share > target else (lo, mid)
    return math.sqrt(lo * hi)


def _loss(mlp: float, sets: tuple[str, ...] = ()) -> float:
    fit = [r for r in rows("thread_scaling") if r["role"] == "fit"]
    t = [float(r["threads"]) for r in fit]
    pred = _batch(_inputs(mlp, cycles_for(mlp, sets), sets=sets), t)["epoch_time_s"]
    return float(sum(math.log(p / float(r["epoch_time_s"])) ** 2
                     for p, r in zip(pred, fit, strict=True)))


def fit_kernels(sets: tuple[str, ...] = ()) -> tuple[float, float]:
    """(memory_level_parallelism, cycles_per_simd_vector) of the EPYC 7742 node; ``sets``
    (``--set`` overrides of the node or the training) fit a hypothesis about the node the same
    way, on the same rows."""
    mlp = math.exp(golden_section_argmin(lambda x: _loss(math.exp(x), sets),
                                         math.log(0.5), math.log(64.0)))
    return mlp, cycles_for(mlp, sets)


def fit_baseline_efficiency(mlp: float, cpv: float) -> float:
    """The PyTorch-style baseline's share of peak DRAM bandwidth (Table 1, rows ``fit``)."""
    logs = []
    for r in rows("pytorch_profile"):
        if r["role"] != "fit":
            continue
        inputs = get_system("heat").with_choices(
            _inputs(mlp, cpv, r["dataset"]), {"calibration.baseline_bandwidth_efficiency": 1.0})
        pred = float(_batch(inputs, [128.0])["pytorch_cpu_epoch_time_s"][0])
        logs.append(math.log(pred / float(r["epoch_time_s"])))
    return math.exp(sum(logs) / len(logs))


def fit_gpu_memory_per_row() -> float:
    """Bytes of V100 memory per embedding row (Table 3, both rows)."""
    logs = [math.log(float(r["share_of_32GB_percent"]) / 100 * 32e9
                     / (float(r["users"]) + float(r["items"]))) for r in rows("gpu_memory")]
    return math.exp(sum(logs) / len(logs))


def main() -> None:  # pragma: no cover - a report for people refitting
    mlp, cpv = fit_kernels()
    eff = fit_baseline_efficiency(mlp, cpv)
    mem = fit_gpu_memory_per_row()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("memory_level_parallelism = %.4g\ncycles_per_simd_vector = %.4g\n"
             "baseline_bandwidth_efficiency = %.4g\nmemory_per_row_B = %.5g", mlp, cpv, eff, mem)


if __name__ == "__main__":  # pragma: no cover
    main()

"""Fitting the long-sequence model's one constant for a GPU type, ``compute_efficiency``, on
named cells of the Megatron-DeepSpeed long-sequence table
(``hwsim/scitransformer/data/longseq_tflops.csv``, rows with role ``calibration``).

The efficiency minimises the sum of squared log errors of the predicted TFLOPS per GPU over
the calibration rows (golden-section search on [0.05, 1]; the error is unimodal in it). The
memory and link efficiencies keep their assumed values; the collective time is derived from
NCCL's model at the protocol it picks per size (:func:`hwsim.llm.training.nccl_ring_collective_s`),
not fitted.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from hwsim.fitting import golden_section_argmin
from hwsim.scitransformer.spec import LongseqCalibrationSpec
from hwsim.system import get_system
from hwsim.validation import data_rows

DATA = Path(__file__).with_name("data") / "longseq_tflops.csv"
#: the GPU the table was measured on (4 DGX A100 nodes, 8 x A100-40GB each)
DEVICE = "a100-sxm-40gb"


def rows() -> list[dict[str, str]]:
    """The published cells (comment lines skipped)."""
    return data_rows(DATA)


def predict_tflops(workload: str, seq_lens, cal: LongseqCalibrationSpec | None = None
                   ) -> np.ndarray:
    """Predicted TFLOPS per GPU of ``workload`` at ``seq_lens`` (``cal`` in place of the file)."""
    s = get_system("scitransformer")
    inputs = s.resolve([f"workload={workload}", f"device={DEVICE}"], [])
    if cal is not None:
        inputs = s.with_spec(inputs, "calibration", cal)
    out = s.analytical_batch(inputs, {"workload.seq_len": np.asarray(seq_lens, dtype=float)})
    return np.asarray(out["longseq_tflops_per_gpu"], dtype=float)


def fit(base: LongseqCalibrationSpec, cells: list[dict[str, str]]) -> LongseqCalibrationSpec:
    """``base`` with the compute efficiency that best reproduces ``cells`` (two or more, one
    workload)."""
    if len(cells) < 2:
        raise ValueError("fit on two or more cells, never on one point")
    (workload,) = {r["workload"] for r in cells}
    seq = [float(r["seq_len"]) for r in cells]
    ref = np.array([float(r["tflops_per_gpu"]) for r in cells])

    def loss(eta: float) -> float:
        pred = predict_tflops(workload, seq, replace(base, compute_efficiency=eta))
        return float(np.sum(np.log(pred / ref) ** 2))

    return replace(base, compute_efficiency=round(golden_section_argmin(loss, 0.05, 1.0), 4))


def calibration_cells() -> list[dict[str, str]]:
    """The rows marked calibration."""
    return [r for r in rows() if r["role"] == "calibration"]

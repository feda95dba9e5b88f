"""Scientific transformers whose attention breaks GPU memory. Two workload families (the
``workload`` role): the EvoFormer attention variants of AlphaFold2 / OpenFold (MSA row with
pair bias, MSA column, triangular start and end, the extra-MSA stack) with their logit, bias,
activation and peak memory, unfused or with the DeepSpeed4Science fused kernel; and a
long-sequence GPT training step (GenSLM under Megatron-DeepSpeed's sequence parallelism and
FlashAttention): TFLOPS per GPU, tokens/s, memory and the longest trainable sequence. The other
family's metrics are NaN. See docs/scitransformer.md."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.batch import BatchModel
from hwsim.scitransformer import evoformer, longseq, params
from hwsim.scitransformer.evoformer import LABELS, VARIANTS, module_table, table
from hwsim.scitransformer.spec import (
    EvoformerCropSpec,
    EvoformerSpec,
    LongseqCalibrationSpec,
    WorkloadSpec,
)
from hwsim.system import Inputs, Metric, Role, System, register_system
from hwsim.validation import load_cases

__all__ = ["SYSTEM", "EvoformerCropSpec", "EvoformerSpec", "LongseqCalibrationSpec",
           "WorkloadSpec"]

VECTOR_KEYS = evoformer.VECTOR_KEYS | longseq.VECTOR_KEYS


def _cases():
    from hwsim.scitransformer.validation import cases

    return load_cases("scitransformer", Path(__file__).with_name("validation.toml")) + cases()


def block(inputs: Inputs, points: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """The workload family's metrics; the other family's are NaN."""
    if inputs["workload"].family == "gpt-longseq":
        out = longseq.block(inputs, points, n)
        out.update({m.name: np.full(n, np.nan) for m in _evoformer_metrics()})
        return out
    out = evoformer.block(inputs, points, n)
    out.update({k: np.full(n, np.nan) for k in longseq.METRICS})
    return out


def _tables(inputs: Inputs, fidelity: str, *, seed: int = 0, trace: Any = None):
    metrics = SYSTEM.evaluate(inputs, fidelity, seed=seed, trace=trace)
    if inputs["workload"].family == "gpt-longseq":
        return metrics, {}
    return metrics, {"variants": table(inputs, metrics), "modules": module_table(inputs)}


def _evoformer_metrics() -> tuple[Metric, ...]:
    return (*_variant_metrics(), *_EVOFORMER, *_param_metrics())


def _param_metrics() -> tuple[Metric, ...]:
    return (*(Metric(f"params_{m}_M", f"millions of parameters of the {params.LABELS[m]}, "
                     "weights and biases counted from the model spec's architecture")
              for m in params.MODULES),
            Metric("params_M", "millions of parameters of the whole model (every module "
                   "above; AlphaFold2 monomer as OpenFold builds it for the openfold spec)"))


def _variant_metrics() -> tuple[Metric, ...]:
    out = []
    for v in VARIANTS:
        what = LABELS[v]
        out += [
            Metric(f"{v}_logits_GB", f"{what}: the Q K^T + bias logits one call writes to HBM "
                   "(0 with the fused kernel)"),
            Metric(f"{v}_bias_GB", f"{what}: its bias (pair or triangle, shared over rows) and "
                   "mask tensors"),
            Metric(f"{v}_activations_GB", f"{what}: Q, K, V, gate, gated output, the layer's "
                   "input and output"),
            Metric(f"{v}_peak_GB", f"{what}: bytes live at the worst moment of one call "
                   "(unfused: 2 logit-sized tensors in the forward, 3 in training's backward; "
                   "fused: fp32 log-sum-exp rows instead)"),
        ]
    return tuple(out)


_EVOFORMER = (
        Metric("attention_peak_GB", "the largest peak of any variant"),
        Metric("largest_logits_GB", "the largest logit tensor of any variant held in HBM"),
        Metric("largest_logits_variant", "which variant has the largest logits were they "
               "materialised: its index in (msa_row, msa_col, tri_start, tri_end, "
               "extra_msa_row, extra_msa_col)"),
        Metric("variants_over_hbm", "variants whose one-call peak exceeds the device's HBM"),
        Metric("fits_hbm", "1 when every variant's peak fits the device's HBM, else 0"),
        Metric("max_n_res_fits", "the largest crop (residues, a multiple of 4 up to 16,384) "
               "whose every variant fits the device's HBM, the other sizes held"),
        Metric("first_oom_variant", "the variant that runs out of HBM first as the crop grows "
               "(its index, as largest_logits_variant); NaN when none does by 16,384"),
)

def _longseq(roles: Mapping[str, Any]) -> bool:
    """Only the gpt-longseq family reads the calibration: the EvoFormer memory model does not
    look it up (no warning about a device without a long-sequence fit)."""
    return roles["workload"].family == "gpt-longseq"


SYSTEM = register_system(System(
    name="scitransformer",
    summary="scientific transformers: EvoFormer attention memory (OpenFold, with and without "
            "the DS4Sci fused kernel) and long-sequence GPT training (GenSLM under sequence "
            "parallelism and FlashAttention)",
    roles=(
        Role("workload", "scitransformer-workload", "evoformer",
             "which family: the EvoFormer attention (model, crop) or a long-sequence GPT "
             "training step (its llm and mapping)"),
        Role("model", "evoformer", "openfold", "the EvoFormer's attention shapes"),
        Role("crop", "evoformer-crop", "openfold-finetune",
             "residues, MSA sequences, batch, precision, kernel, training or inference"),
        Role("device", "gpu", "a100-sxm-80gb", "the GPU whose HBM the peak is held to"),
        Role("calibration", "longseq-calibration", "longseq-{device}",
             "the long-sequence time model's fitted efficiency for the device",
             matches=("device",), fallback="longseq-uncalibrated", used=_longseq),
    ),
    metrics=(
        *_evoformer_metrics(),
        *(Metric(k, v) for k, v in longseq.METRICS.items()),
    ),
    batch=BatchModel(VECTOR_KEYS, block, block_points=64),
    validation=_cases,
    tables=_tables,
))

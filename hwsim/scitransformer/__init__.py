"""Scientific transformers whose attention breaks GPU memory: the EvoFormer attention variants
of AlphaFold2 / OpenFold (MSA row with pair bias, MSA column, triangular start and end, the
extra-MSA stack) with their logit, bias, activation and peak memory, unfused or with the
DeepSpeed4Science fused kernel. See docs/scitransformer.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwsim.batch import BatchModel
from hwsim.scitransformer.evoformer import LABELS, VARIANTS, VECTOR_KEYS, block, table
from hwsim.scitransformer.spec import EvoformerCropSpec, EvoformerSpec
from hwsim.system import Inputs, Metric, Role, System, register_system
from hwsim.validation import load_cases

__all__ = ["SYSTEM", "EvoformerCropSpec", "EvoformerSpec"]


def _cases():
    return load_cases("scitransformer", Path(__file__).with_name("validation.toml"))


def _tables(inputs: Inputs, fidelity: str, *, seed: int = 0, trace: Any = None):
    metrics = SYSTEM.evaluate(inputs, fidelity, seed=seed, trace=trace)
    return metrics, {"variants": table(inputs, metrics)}


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


SYSTEM = register_system(System(
    name="scitransformer",
    summary="EvoFormer attention variants (OpenFold): logit, bias, activation and peak memory "
            "with and without the DS4Sci fused kernel",
    roles=(
        Role("model", "evoformer", "openfold", "the EvoFormer's attention shapes"),
        Role("crop", "evoformer-crop", "openfold-finetune",
             "residues, MSA sequences, batch, precision, kernel, training or inference"),
        Role("device", "gpu", "a100-sxm-80gb", "the GPU whose HBM the peak is held to"),
    ),
    metrics=(
        *_variant_metrics(),
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
    ),
    batch=BatchModel(VECTOR_KEYS, block, block_points=64),
    validation=_cases,
    tables=_tables,
))

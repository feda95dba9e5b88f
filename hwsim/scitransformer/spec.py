"""Spec kinds of the ``scitransformer`` system: an EvoFormer's attention shapes
(``evoformer``) and the crop it runs at (``evoformer-crop``: residues, MSA sequences, batch,
precision, kernel, inference or training)."""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("evoformer")
@dataclass(frozen=True, kw_only=True)
class EvoformerSpec:
    """The attention layers of an AlphaFold2-style EvoFormer (OpenFold's layout)."""

    name: str = param(help="identifier")
    c_m: int = param(256, ge=1, le=65536, help="MSA representation channels")
    c_z: int = param(128, ge=1, le=65536, help="pair representation channels")
    c_e: int = param(64, ge=1, le=65536, help="extra-MSA representation channels")
    msa_heads: int = param(8, ge=1, le=1024, help="MSA row / column attention heads")
    msa_head_dim: int = param(32, ge=1, le=4096, help="channels per MSA attention head")
    pair_heads: int = param(4, ge=1, le=1024, help="triangular attention heads")
    pair_head_dim: int = param(32, ge=1, le=4096, help="channels per triangular head")
    extra_msa_heads: int = param(8, ge=1, le=1024, help="extra-MSA attention heads")
    extra_msa_head_dim: int = param(8, ge=1, le=4096, help="channels per extra-MSA head")
    evoformer_blocks: int = param(48, ge=0, le=1024, help="EvoFormer blocks")
    extra_msa_blocks: int = param(4, ge=0, le=1024, help="extra-MSA stack blocks")
    extra_msa_global_column: bool = param(True, help="the extra-MSA stack's column attention "
                                          "is global (one averaged query per column: AF2)")
    source: str = param("", help="where the shapes come from")


@spec_kind("evoformer-crop")
@dataclass(frozen=True, kw_only=True)
class EvoformerCropSpec:
    """What one EvoFormer call holds: crop size, MSA depth, batch, precision and kernel."""

    name: str = param(help="identifier")
    n_res: int = param(256, ge=1, le=100_000, help="residues in the crop")
    n_seq: int = param(128, ge=1, le=1_000_000, help="MSA cluster sequences (main stack)")
    n_extra_seq: int = param(1024, ge=0, le=1_000_000, help="extra MSA sequences")
    batch: int = param(1, ge=1, le=4096, help="proteins per call")
    bytes_per_value: float = param(2.0, gt=0, le=8, help="activation bytes (2: fp16/bf16)")
    fused_kernel: bool = param(False, help="the DS4Sci EvoformerAttention kernel (tiled, "
                               "exact, bias and mask applied on the fly: no N x N logits in "
                               "HBM); false: the unfused softmax(QK^T + bias) of PyTorch")
    mode: str = param("training", choices=("training", "inference"),
                      help="training: the softmax probabilities are kept for the backward "
                      "pass, which holds their gradient and the logits' at once; inference: "
                      "the forward only")
    source: str = param("", help="where the sizes come from")

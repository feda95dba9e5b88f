"""Spec kinds of the ``scitransformer`` system: an EvoFormer's attention shapes
(``evoformer``) and the crop it runs at (``evoformer-crop``: residues, MSA sequences, batch,
precision, kernel, inference or training)."""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.errors import InputError
from hwsim.specs import find_spec_file, param, spec_kind


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
    # the rest of the network, for its parameter count (hwsim/scitransformer/params.py)
    c_s: int = param(384, ge=1, le=65536, help="single representation channels")
    c_t: int = param(64, ge=1, le=65536, help="template pair channels")
    msa_transition_factor: int = param(4, ge=1, le=64, help="MSA transition hidden / c_m "
                                       "(also the extra-MSA stack's, over c_e)")
    pair_transition_factor: int = param(4, ge=1, le=64, help="pair transition hidden / c_z")
    opm_hidden: int = param(32, ge=1, le=4096, help="outer product mean channels (both "
                            "stacks)")
    tri_mul_hidden: int = param(128, ge=1, le=65536, help="triangle multiplication channels "
                                "(both stacks)")
    templates: bool = param(True, help="the template stack is built (OpenFold's default "
                            "config: templates_enabled)")
    template_blocks: int = param(2, ge=0, le=1024, help="template pair stack blocks")
    template_heads: int = param(4, ge=1, le=1024, help="template triangular attention heads")
    template_head_dim: int = param(16, ge=1, le=4096, help="channels per template "
                                   "triangular attention head")
    template_tri_mul_hidden: int = param(64, ge=1, le=65536, help="template triangle "
                                         "multiplication channels")
    template_transition_factor: int = param(2, ge=1, le=64, help="template pair transition "
                                            "hidden / c_t")
    template_pointwise_heads: int = param(4, ge=1, le=1024, help="template pointwise "
                                          "attention heads")
    template_pointwise_head_dim: int = param(16, ge=1, le=4096, help="channels per template "
                                             "pointwise attention head")
    ipa_heads: int = param(12, ge=1, le=1024, help="invariant point attention heads")
    ipa_head_dim: int = param(16, ge=1, le=4096, help="scalar channels per IPA head")
    ipa_qk_points: int = param(4, ge=1, le=1024, help="IPA query/key points per head")
    ipa_v_points: int = param(8, ge=1, le=1024, help="IPA value points per head")
    structure_layers: int = param(8, ge=1, le=1024, help="structure module layers (one set "
                                  "of weights, applied this many times)")
    structure_transition_layers: int = param(1, ge=1, le=64, help="layers of the structure "
                                             "module's single transition")
    angle_resnet_hidden: int = param(128, ge=1, le=65536, help="angle resnet channels")
    angle_resnet_blocks: int = param(2, ge=1, le=64, help="angle resnet blocks")
    torsion_angles: int = param(7, ge=1, le=64, help="torsion angles predicted per residue")
    lddt_hidden: int = param(128, ge=1, le=65536, help="pLDDT head channels")
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


@spec_kind("scitransformer-workload")
@dataclass(frozen=True, kw_only=True)
class WorkloadSpec:
    """Which workload the system evaluates: the EvoFormer attention memory (``evoformer``: the
    ``model`` and ``crop`` roles) or a long-sequence GPT training step (``gpt-longseq``: the
    model named by ``llm`` under this mapping)."""

    name: str = param(help="identifier")
    family: str = param("evoformer", choices=("evoformer", "gpt-longseq"),
                        help="evoformer: attention memory of the model/crop roles; "
                        "gpt-longseq: training step of the llm below")
    llm: str = param("", help="the llm spec (models/llm/) trained, for gpt-longseq")
    seq_len: int = param(2048, ge=1, le=16_777_216, unit="tokens", help="sequence length")
    gpus: int = param(32, ge=1, le=65_536, help="GPUs in the job")
    tensor_parallel: int = param(0, ge=0, le=65_536, help="tensor-parallel degree (also the "
                                 "sequence-parallel degree when sequence_parallel); 0: the "
                                 "largest divisor of the heads that divides the GPUs; one that "
                                 "does not divide the heads or the GPUs is infeasible")
    pipeline_parallel: int = param(1, ge=1, le=1024, help="pipeline stages")
    micro_batch: int = param(1, ge=1, le=4096, help="sequences per micro-batch")
    micro_batches: int = param(1, ge=1, le=65_536, help="micro-batches per optimizer step and "
                               "data-parallel rank (gradient accumulation)")
    sequence_parallel: bool = param(True, help="Megatron sequence parallelism (degree = TP)")
    flash_attention: bool = param(True, help="FlashAttention: no s x s scores stored")
    mask_on_gpu: bool = param(False, help="the s x s causal mask is built on the GPU (old "
                              "Megatron); false: in CPU memory")
    checkpointing: bool = param(False, help="full activation recomputation")
    dropout: bool = param(True, help="dropout masks stored (attention and hidden dropout)")
    zero_stage: int = param(1, ge=0, le=3, help="ZeRO stage over the data-parallel ranks")
    offload: bool = param(False, help="ZeRO-Offload: optimizer states and Adam on the CPU")
    memory_reserve_GB: float = param(0.0, ge=0, le=1024, unit="GB",
                                     help="GPU memory not available to tensors")
    source: str = param("", help="where the configuration comes from")

    def __post_init__(self) -> None:
        if self.family == "gpt-longseq" and not self.llm:
            raise ValueError("a gpt-longseq workload names its llm")
        if self.llm:
            try:
                find_spec_file("llm", self.llm)
            except InputError as exc:
                raise ValueError(f"llm {self.llm!r}: {exc.message}") from None


@spec_kind("longseq-calibration", folder="calibration")
@dataclass(frozen=True, kw_only=True)
class LongseqCalibrationSpec:
    """The long-sequence training model's constants for one GPU type."""

    name: str = param(help="identifier: longseq-<device>")
    device: str = param("", help="the gpu spec these constants were fitted for; empty = any")
    fitted_on: str = param(help="the data the constants were fitted on (file and rows)")
    compute_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak 16-bit tensor "
                                      "rate of the matmuls and attention (fitted)")
    memory_efficiency: float = param(0.8, gt=0, le=1, help="achieved / peak HBM bandwidth "
                                     "(the optimizer update; assumed)")
    link_efficiency: float = param(0.75, gt=0, le=1, help="NCCL bus bandwidth / link peak "
                                   "(assumed)")
    inter_node_bandwidth: str = param("nccl", choices=("nccl", "link-efficiency"),
                                      help="bus bandwidth of a tensor-parallel ring across "
                                      "servers: nccl = NCCL's tuning model's (one channel per "
                                      "NIC at its search speed, 24 GB/s for HDR; LL128 capped "
                                      "at 20 GB/s per channel); link-efficiency = the NICs' "
                                      "line rate x link_efficiency (the previous model)")
    collective_latency: str = param("nccl", choices=("nccl", "nccl-simple", "none"),
                                    help="tensor-parallel collective latency from NCCL's "
                                    "tuning model: nccl = the protocol (LL, LL128, Simple) it "
                                    "picks per message size "
                                    "(hwsim.llm.training.nccl_ring_collective_s); nccl-simple "
                                    "= ring/Simple always "
                                    "(hwsim.llm.training.nccl_ring_step_latency_s); none = 0")

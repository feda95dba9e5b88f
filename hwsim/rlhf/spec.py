"""Spec kinds of the ``rlhf`` system: the run (DeepSpeed-Chat's settings and the benchmark
workload) and the one fitted constant per device.

The actor and the critic are ``llm`` specs (OPT shapes, :mod:`hwsim.llm.spec`); the reward model
has the critic's shape (DeepSpeed-Chat initialises the critic from the trained reward model);
the GPU is the shared ``gpu`` kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind

#: query-answer pairs of the DeepSpeed-Chat benchmark epoch (BenckmarkSetting.md)
BENCHMARK_PAIRS = 264_292


@spec_kind("rlhf-run")
@dataclass(frozen=True, kw_only=True)
class RlhfRunSpec:
    """One DeepSpeed-Chat run: cluster size, the step-3 workload and the engine's settings."""

    name: str = param(help="identifier")
    gpus: int = param(8, ge=1, le=65_536, help="GPUs in the run (data-parallel ranks)")
    gpus_per_node: int = param(8, ge=1, le=1024, help="GPUs per node (NVLink domain); "
                               "collectives over more GPUs use the network")
    prompt_tokens: int = param(256, ge=1, le=1_000_000, unit="tokens",
                               help="prompt length (max_prompt_seq_len)")
    answer_tokens: int = param(256, ge=1, le=1_000_000, unit="tokens",
                               help="tokens generated per prompt (max_answer_seq_len)")
    pairs: int = param(BENCHMARK_PAIRS, ge=1, le=10**12,
                       help="query-answer pairs in one step-3 epoch")
    max_global_batch: int = param(1024, ge=1, le=10**9,
                                  help="largest global batch of pairs per iteration")
    per_device_batch: int = param(0, ge=0, le=1_000_000,
                                  help="pairs per GPU per iteration; 0 = the largest that fits "
                                  "under max_global_batch (the benchmark's rule)")
    actor_zero_stage: int = param(3, ge=0, le=3, help="ZeRO stage of the actor (and of the "
                                  "reference model when 3)")
    critic_zero_stage: int = param(3, ge=0, le=3, help="ZeRO stage of the critic (and of the "
                                   "reward model when 3)")
    lora_rank: int = param(128, ge=0, le=65_536, help="actor LoRA dimension (actor_lora_dim); "
                           "0 = no adapters")
    frozen_base: bool = param(True, help="the actor's base weights are frozen and only the "
                              "adapters train (needs lora_rank > 0)")
    actor_checkpointing: bool = param(True, help="actor gradient checkpointing")
    critic_checkpointing: bool = param(False, help="critic gradient checkpointing")
    dropout: bool = param(True, help="dropout masks are stored (False: "
                          "--disable_actor_dropout / --disable_critic_dropout)")
    inference_tp_size: int = param(0, ge=0, le=1024, help="Hybrid Engine tensor parallelism of "
                                   "generation; 0 = the fastest that fits (a power of two "
                                   "dividing the heads and the node)")
    tp_gather_partition_size: int = param(8, ge=1, le=10_000, help="layers the Hybrid Engine "
                                          "all-gathers at once under ZeRO-3")
    release_inference_cache: bool = param(False, help="free the generation KV cache before "
                                          "scoring and training")
    workspace_bytes_per_value: int = param(
        4, choices=(2, 4), unit="B", help="element size the DeepSpeed-Inference workspace "
        "(KV cache, activations, scores) is allocated with: 4 = DeepSpeed's fp16 path calls "
        "allocate_workspace_fp32 (deepspeed/model_implementations/transformers/"
        "ds_transformer.py), 2 = sized at fp16")
    offload: bool = param(False, help="ZeRO-Offload: gradients and Adam states of actor and "
                          "critic in host memory, Adam on the CPU (DeepSpeed-Chat --offload)")
    ppo_epochs: int = param(1, ge=1, le=1000, help="PPO passes over each generated batch")
    sft_sequences: int = param(132_146, ge=0, le=10**12,
                               help="step 1 (supervised fine-tuning) sequences; default: the "
                               "data split 2:4:4 of the step-3 pairs (derived here)")
    reward_pairs: int = param(BENCHMARK_PAIRS, ge=0, le=10**12,
                              help="step 2 (reward model) chosen/rejected pairs; default: the "
                              "data split 2:4:4 (derived here)")
    usd_per_gpu_hour: float = param(4.0215, gt=0, unit="$/h",
                                    help="price of one GPU-hour; default: Azure A100-80GB as "
                                    "implied by the DeepSpeed-Chat blog's table 1 ($ / (hours "
                                    "x 8 GPUs), derived here)")
    memory_reserve_GB: float = param(1.0, ge=0, le=1000, unit="GB",
                                     help="GPU memory not available to tensors (CUDA context, "
                                     "allocator fragmentation; assumed)")

    def __post_init__(self) -> None:
        if self.frozen_base and self.lora_rank == 0:
            raise ValueError("frozen_base needs LoRA adapters: give lora_rank > 0 or "
                             "frozen_base = false")
        if self.inference_tp_size and self.gpus % self.inference_tp_size:
            raise ValueError(f"inference_tp_size {self.inference_tp_size} does not divide "
                             f"gpus {self.gpus}")
        if self.per_device_batch and self.per_device_batch * self.gpus > self.max_global_batch:
            raise ValueError(f"per_device_batch {self.per_device_batch} x gpus {self.gpus} "
                             f"exceeds max_global_batch {self.max_global_batch}")

    @property
    def seq_tokens(self) -> int:
        """Tokens of one prompt plus its answer."""
        return self.prompt_tokens + self.answer_tokens


@spec_kind("rlhf-calibration", folder="calibration")
@dataclass(frozen=True, kw_only=True)
class RlhfCalibrationSpec:
    """The RLHF time model's constants for one device and software stack."""

    name: str = param(help="identifier: rlhf-<device>")
    device: str = param("", help="the gpu spec these constants were fitted for; empty = any")
    fitted_on: str = param(help="the data the constants were fitted on (file and rows)")
    compute_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak 16-bit tensor "
                                      "FLOP rate of every phase's matrix products (fitted)")
    bandwidth_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak HBM bandwidth "
                                        "(assumed)")
    link_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak NVLink and network "
                                   "bandwidth of collectives (assumed)")
    collective_latency: str = param("nccl", choices=("nccl", "none"),
                                    help="latency of a ring step: nccl = derived from NCCL's "
                                    "tuning model for the group "
                                    "(hwsim.llm.training.nccl_ring_step_latency_s); none = 0")

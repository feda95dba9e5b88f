"""Spec kinds of the GPU/TPU serving baselines: ``gpu-calibration`` and ``gpu-mapping``.

The device itself is the shared ``gpu`` kind (:mod:`hwsim.hw.gpu`, datasheet figures only).
``gpu-calibration`` holds the roofline step model's fitted constants for one device and names
the data they were fitted on (:mod:`hwsim.gpu_serving.calibration`). ``gpu-mapping`` is how one
model replica is laid out on such devices (tensor and pipeline parallelism, batch, data types,
the share of HBM the serving framework uses) and how it is paid for.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind

#: bytes per element of each data type a mapping may name
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}

#: how a mapping may store its linear layers' weights (:mod:`hwsim.sparse`)
WEIGHT_FORMATS: tuple[str, ...] = ("dense", "tiled-csl", "2:4")
#: the kernel model (``models/spmm-kernel/<name>``) that multiplies each sparse format
FORMAT_KERNELS: dict[str, str] = {"tiled-csl": "flash-llm", "2:4": "sparta"}


@dataclass(frozen=True, kw_only=True)
class GemmConstants:
    """GEMM kernels (:func:`hwsim.gpu_serving.kernels.gemm_s`)."""

    compute_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak matrix FLOP/s "
                                      "of a full wave of 128 x 128 (or larger) tiles")
    small_tile_efficiency: float = param(1.0, gt=0, le=1, help="relative efficiency of tiles "
                                         "smaller than 128 x 128")
    bandwidth_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak HBM bandwidth "
                                        "on the operands and the result")
    overhead_us: float = param(0.0, unit="us", ge=0, le=1e4, help="fixed time of one GEMM "
                               "kernel")
    smoothing: float = param(50.0, ge=1, le=100, help="exponent of the power mean of compute "
                             "and memory time (100: their maximum, a roofline)")


@dataclass(frozen=True, kw_only=True)
class DecodeAttentionConstants:
    """Paged decode attention (:func:`hwsim.gpu_serving.kernels.decode_attention_s`)."""

    overhead_us: float = param(0.0, unit="us", ge=0, le=1e4, help="fixed time of one kernel")
    per_block_us: float = param(0.0, unit="us", ge=0, le=1e4, help="time per thread block "
                                "(sequence x local KV head)")
    bandwidth_efficiency_min: float = param(1.0, gt=0, le=1, help="achieved / peak HBM "
                                            "bandwidth reading the KV cache with few thread "
                                            "blocks")
    bandwidth_efficiency_max: float = param(1.0, gt=0, le=1, help="... with many thread "
                                            "blocks")
    half_blocks: float = param(1.0, gt=0, le=1e7, help="thread blocks (sequences x local "
                               "KV heads) half way from the one to the other")


@dataclass(frozen=True, kw_only=True)
class PrefillAttentionConstants:
    """FlashAttention-style prefill (:func:`hwsim.gpu_serving.kernels.prefill_attention_s`)."""

    overhead_us: float = param(0.0, unit="us", ge=0, le=1e4, help="fixed time of one kernel")
    compute_efficiency: float = param(1.0, gt=0, le=1, help="achieved / peak 16-bit FLOP/s")
    chunk_factor: float = param(0.5, ge=0, le=10, help="effective keys per new token among "
                                "the chunk's own tokens, per token (0.5: an ideal causal "
                                "mask)")


@dataclass(frozen=True, kw_only=True)
class ElementwiseConstants:
    """One element-wise kernel (:func:`hwsim.gpu_serving.kernels.elementwise_s`)."""

    floor_us: float = param(0.0, unit="us", ge=0, le=1e4, help="fixed part of the time floor")
    floor_ns_per_element: float = param(0.0, unit="ns", ge=0, le=1e4, help="floor per element "
                                        "of a token's row")
    bandwidth_efficiency: float = param(1.0, gt=0, le=1.5, help="achieved / peak HBM bandwidth")
    smoothing: float = param(50.0, ge=1, le=100, help="exponent of the power mean of floor "
                             "and memory time")


@dataclass(frozen=True, kw_only=True)
class EmbeddingConstants:
    """The token-embedding gather (:func:`hwsim.gpu_serving.kernels.embedding_s`): PyTorch's
    ``index_select`` runs one of two kernels by the number of tokens (pytorch/pytorch
    aten/src/ATen/native/cuda/Indexing.cu, ``index_select_out_cuda_impl``): up to
    ``small_index_max`` tokens ``indexSelectSmallIndex``, which copies the tokens' rows one
    after another (each a pass of the whole grid over one row); more tokens
    ``indexSelectLargeIndex``, every element of every row at once (the element-wise model)."""

    small_index_max: int = param(0, ge=0, le=1 << 20, help="the most tokens gathered by the "
                                 "small-index kernel (PyTorch: 16); 0 = the large-index kernel "
                                 "for every token count")
    small_floor_us: float = param(0.0, unit="us", ge=0, le=1e4, help="fixed time of the "
                                  "small-index kernel")
    small_per_index_us: float = param(0.0, unit="us", ge=0, le=1e4, help="time per token of "
                                      "the small-index kernel (one row copied after another)")
    floor_us: float = param(0.0, unit="us", ge=0, le=1e4, help="large-index kernel: fixed part "
                            "of the time floor")
    floor_ns_per_element: float = param(0.0, unit="ns", ge=0, le=1e4, help="large-index "
                                        "kernel: floor per element of a token's row")
    bandwidth_efficiency: float = param(1.0, gt=0, le=1.5, help="large-index kernel: achieved "
                                        "/ peak HBM bandwidth")
    smoothing: float = param(50.0, ge=1, le=100, help="large-index kernel: exponent of the "
                             "power mean of floor and memory time")


@dataclass(frozen=True, kw_only=True)
class CollectiveConstants:
    """NCCL collectives within a server (:func:`hwsim.gpu_serving.kernels.allreduce_s`)."""

    allreduce_latency_us: float = param(0.0, unit="us", ge=0, le=1e5,
                                        help="start-up time of one all-reduce")
    allreduce_bus_bandwidth_GBps: float = param(1e6, unit="GB/s", gt=0, le=1e6,
                                                help="bus bandwidth (2 (n-1)/n of the message "
                                                "per second)")
    send_recv_latency_us: float = param(0.0, unit="us", ge=0, le=1e5,
                                        help="start-up time of one send/recv")
    send_recv_bandwidth_GBps: float = param(1e6, unit="GB/s", gt=0, le=1e6,
                                            help="point-to-point bandwidth within a server")


@dataclass(frozen=True, kw_only=True)
class FrameworkConstants:
    """What a serving framework adds to the kernels, fitted on its serving measurements."""

    name: str = param("", help="the framework and version these constants describe")
    fitted_on: str = param("", help="the serving rows they were fitted on (file and rows)")
    step_overhead_us: float = param(0.0, unit="us", ge=0, le=1e6,
                                    help="fixed time per forward step (scheduling, sampling, "
                                    "launch gaps)")
    allreduce_latency_us: float = param(-1.0, unit="us", ge=-1, le=1e5,
                                        help="fixed time of one of the framework's "
                                        "all-reduces in a serving step (its kernels, the "
                                        "group's synchronisation), fitted on serving rows; "
                                        "-1 = the collectives' NCCL latency")
    allreduce_bandwidth_share: float = param(1.0, gt=0, le=1,
                                             help="share of the NCCL bus bandwidth the "
                                             "framework's all-reduces get in a serving step "
                                             "(contending with the step's kernels)")
    elementwise_share: float = param(1.0, ge=0, le=1,
                                     help="share of the unfused element-wise kernels' time "
                                     "(norms, adds, activation, rotary embedding) the "
                                     "framework pays (0: fused into GEMMs and attention)")
    fp8_speedup: float = param(1.0, gt=0, le=4,
                               help="8-bit GEMM throughput relative to the 16-bit fit scaled "
                               "to the 8-bit peak (no 8-bit operator data: fitted on serving "
                               "rows, or 1)")
    last_prompt_token_decoded: bool = param(False,
                                            help="the prefill covers all but the last prompt "
                                            "token, which a decode step turns into the first "
                                            "output token (TurboMind)")


@spec_kind("gpu-calibration", folder="calibration")
@dataclass(frozen=True, kw_only=True)
class GpuCalibrationSpec:
    """The constants of the roofline step model for one device, and the data they came from.

    A ``gpu`` file holds the datasheet; this holds what the model needs beyond it: the achieved
    shares of the peaks and the fixed costs. Files are named ``roofline-<device>``, which is the
    default the ``calibration`` input of ``gpu-serving`` takes for a device.
    """

    name: str = param(help="identifier: roofline-<device>")
    device: str = param(help="the gpu spec (its name) these constants were fitted for; "
                        "empty = any device")
    model: str = param("roofline", choices=("roofline", "kernels"),
                       help="the step model the constants belong to: roofline (one "
                       "efficiency per peak, the fields below) or kernels (per-operator fits: "
                       "gemm, attention, element-wise, collectives, framework)")
    fitted_on: str = param(help="the data the constants were fitted on (file and rows), or "
                           "where an assumed value comes from")
    bandwidth_efficiency: float = param(1.0, gt=0, le=1,
                                        help="achieved / peak HBM bandwidth on weight and "
                                        "KV-cache streams")
    compute_efficiency: float = param(1.0, gt=0, le=1,
                                      help="achieved / peak matrix throughput")
    interconnect_efficiency: float = param(1.0, gt=0, le=1,
                                           help="achieved / peak link bandwidth")
    interconnect_latency_us: float = param(0.0, unit="us", ge=0,
                                           help="start-up latency of one link transfer: each of "
                                           "an all-reduce's 2 (t-1) ring steps, each "
                                           "stage-to-stage transfer")
    layer_overhead_us: float = param(0.0, unit="us", ge=0,
                                     help="fixed time per layer and step (kernel launches, "
                                     "norms, activations)")
    # the kernels model (model = "kernels"); the roofline model ignores these tables
    gemm: GemmConstants = param(default_factory=GemmConstants, help="GEMM kernels")
    attention_decode: DecodeAttentionConstants = param(
        default_factory=DecodeAttentionConstants, help="decode attention")
    attention_prefill: PrefillAttentionConstants = param(
        default_factory=PrefillAttentionConstants, help="prefill attention")
    norm: ElementwiseConstants = param(default_factory=ElementwiseConstants,
                                       help="RMSNorm (sarathi's kernel); the step model times "
                                       "every norm with it")
    add: ElementwiseConstants = param(default_factory=ElementwiseConstants,
                                      help="residual add")
    layernorm: ElementwiseConstants = param(default_factory=ElementwiseConstants,
                                            help="PyTorch's LayerNorm (one vectorized kernel); "
                                            "fitted on phi-2's operator rows, not used by the "
                                            "step model yet")
    gelu: ElementwiseConstants = param(default_factory=ElementwiseConstants,
                                       help="PyTorch's exact GELU (erf); fitted on phi-2's "
                                       "operator rows, not used by the step model yet")
    activation: ElementwiseConstants = param(default_factory=ElementwiseConstants,
                                             help="the FFN activation (SiLU x gate, GELU)")
    rope: ElementwiseConstants = param(default_factory=ElementwiseConstants,
                                       help="rotary position embedding")
    embedding: EmbeddingConstants = param(default_factory=EmbeddingConstants,
                                          help="the token-embedding gather (two kernels)")
    collectives: CollectiveConstants = param(default_factory=CollectiveConstants,
                                             help="NCCL all-reduce and send/recv")
    framework: FrameworkConstants = param(default_factory=FrameworkConstants,
                                          help="the serving framework's own costs")


@spec_kind("gpu-mapping")
@dataclass(frozen=True, kw_only=True)
class GpuMappingSpec:
    """How one model replica runs on ``gpu`` devices, and how the devices are paid for."""

    name: str = param(help="identifier")
    tensor_parallel: int = param(1, ge=1, le=4096, help="devices sharing every layer")
    pipeline_parallel: int = param(1, ge=1, le=4096, help="pipeline stages (layer groups)")
    batch: int = param(1, ge=1, le=1 << 16, help="sequences in flight per replica")
    micro_batch: int = param(0, ge=0, le=1 << 16,
                             help="sequences per pipeline micro-batch; 0 = batch / stages "
                             "rounded up")
    weight_dtype: str = param("fp16", choices=tuple(DTYPE_BYTES), help="weight data type")
    vocab_dtype: str = param("", choices=("", *DTYPE_BYTES),
                             help="data type of the embedding table and the LM head; '' = "
                             "weight_dtype. TensorRT-LLM's FP8 checkpoints keep both 16-bit "
                             "(its quantization flow leaves '*lm_head*' unquantized; the "
                             "embedding is a lookup table)")
    weight_format: str = param(
        "dense", choices=WEIGHT_FORMATS,
        help="how every linear layer's weights are stored and multiplied: dense (weight_dtype, "
        "the GEMM model; int8 weights are weight_dtype = 'int8'), tiled-csl (Flash-LLM's "
        "Tiled-CSL at weight_sparsity, its SpMM kernel: hwsim.sparse) or 2:4 (two of every "
        "four weights kept, cuSPARSELt on the sparse tensor cores); the embeddings, biases and "
        "norms stay dense")
    weight_sparsity: float = param(0.0, ge=0, lt=1,
                                   help="share of zero weights in every linear layer: what a "
                                   "tiled-csl layer stores (unstructured pruning; 0.8 = 80%); "
                                   "2:4 holds 0.5 by construction (0 or 0.5 here)")
    kv_dtype: str = param("fp16", choices=tuple(DTYPE_BYTES), help="KV-cache data type")
    activation_dtype: str = param("fp16", choices=tuple(DTYPE_BYTES),
                                  help="activations sent over links")
    attention_sharding: str = param(
        "heads", choices=("heads", "batch"),
        help="how the tensor-parallel group splits attention and the KV cache: by heads "
        "(Megatron; at most one device per head) or by sequences (Pope et al. 2022, for "
        "multi-query attention: each device holds whole sequences' KV cache)")
    hbm_usable_fraction: float = param(0.9, gt=0, le=1,
                                       help="share of HBM the serving framework gives to weights "
                                       "and KV cache (vLLM's gpu_memory_utilization default, 0.9)")
    replicas: int = param(1, ge=1, le=65536, help="identical replicas behind a router, each "
                          "with tensor_parallel x pipeline_parallel devices; throughput, "
                          "devices and cost per hour are the deployment's, latencies a "
                          "request's")
    router: str = param("round-robin", choices=("round-robin", "least-tokens"),
                        help="how the router picks a replica for an arriving request: in turn, "
                        "or the one with the fewest outstanding tokens (prompt + output of "
                        "its unfinished requests)")
    prefill_replicas: int = param(0, ge=0, le=65536, help="prefill/decode disaggregation: "
                                  "replicas that only prefill (as many devices each as a "
                                  "decode replica), their KV cache sent to a decode replica "
                                  "over the network; 0 = every replica prefills and decodes. "
                                  "With it, replicas counts the decode replicas")
    expert_parallel: bool = param(False, help="mixture of experts: each device of the "
                                  "tensor-parallel group holds experts / tensor_parallel whole "
                                  "experts, tokens dispatched and combined by all-to-all "
                                  "(false: every expert split over the group, as a dense FFN)")
    kv_overflow: str = param("infeasible", choices=("infeasible", "queue"),
                             help="when the KV cache of batch sequences does not fit: "
                             "infeasible, or queue (as many run as fit, the rest wait for a "
                             "free slot)")
    kv_reservation: str = param("full", choices=("full", "mean"),
                                help="KV blocks a running sequence holds, for what fits: full "
                                "(prompt + output reserved at admission, TensorRT-LLM's "
                                "guaranteed-no-evict) or mean (allocated as generated, "
                                "staggered sequences holding their mean context: paged "
                                "on-demand caches such as LMDeploy's and vLLM's)")
    kv_block_tokens: int = param(1, ge=1, le=65536, help="tokens per KV-cache block (paged "
                                 "KV: a sequence holds whole blocks; 1 = exact)")
    kv_memory: str = param("total", choices=("total", "free"),
                           help="what hbm_usable_fraction is a share of: total (weights and "
                           "KV cache in that share of HBM, vLLM's gpu_memory_utilization) or "
                           "free (the KV cache gets that share of what the weights leave, "
                           "TensorRT-LLM's kv_cache_free_gpu_mem_fraction)")
    max_batch_tokens: int = param(0, ge=0, le=1 << 24,
                                  help="tokens per forward step with chunked prefill (mixed "
                                  "prefill and decode steps; closed traffic, one stage): "
                                  "TensorRT-LLM's max_num_tokens; 0 = no chunking, whole "
                                  "prompts in prefill steps of their own")
    pricing: str = param("rental", choices=("rental", "owned"),
                         help="what tco_usd_per_1k_tokens reports: rented devices or owned "
                         "servers on the Chiplet Cloud TCO model")

    def __post_init__(self) -> None:
        if self.weight_format != "dense" and self.weight_dtype not in ("fp16", "bf16"):
            raise ValueError(f"weight_format {self.weight_format!r} stores 16-bit values; "
                             f"weight_dtype is {self.weight_dtype!r}")
        if self.weight_format == "2:4" and self.weight_sparsity not in (0.0, 0.5):
            raise ValueError(f"weight_format '2:4' holds sparsity 0.5; weight_sparsity is "
                             f"{self.weight_sparsity}")
        if self.micro_batch > self.batch:
            raise ValueError(f"micro_batch {self.micro_batch} exceeds batch {self.batch}")

    @property
    def devices(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def micro_batch_size(self) -> int:
        """Sequences per micro-batch (the default fills every stage once)."""
        if self.micro_batch:
            return self.micro_batch
        return -(-self.batch // self.pipeline_parallel)

    @property
    def micro_batches(self) -> int:
        return -(-self.batch // self.micro_batch_size)

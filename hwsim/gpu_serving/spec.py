"""Spec kinds of the GPU/TPU serving baselines: ``gpu`` (a device) and ``gpu-mapping``.

``gpu`` describes any HBM accelerator that serves LLMs from its own memory (NVIDIA GPUs and
Google TPUs alike; ``family`` tells them apart): peak rates, HBM, links, power and prices, plus
the efficiencies the roofline step model applies, calibrated against measured decode latencies
(:mod:`hwsim.gpu_serving.calibration`). ``gpu-mapping`` is how one model replica is laid out on
such devices (tensor and pipeline parallelism, batch, data types) and how it is paid for.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind

#: bytes per element of each data type a mapping may name
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}


@spec_kind("gpu")
@dataclass(frozen=True, kw_only=True)
class GpuSpec:
    """An HBM accelerator (GPU or TPU) and the server that houses it."""

    name: str = param(help="identifier")
    family: str = param("gpu", choices=("gpu", "tpu"), help="device family")
    peak_16bit_TFLOPS: float = param(unit="TFLOPS", gt=0,
                                     help="dense FP16/BF16 matrix peak per device")
    peak_8bit_TFLOPS: float = param(0.0, unit="TFLOPS", ge=0,
                                    help="dense FP8/INT8 matrix peak per device; 0 = none "
                                    "(8-bit weights then compute at the 16-bit peak)")
    hbm_capacity_GB: float = param(unit="GB", gt=0, help="HBM capacity per device")
    hbm_bandwidth_GBps: float = param(unit="GB/s", gt=0, help="peak HBM bandwidth per device")
    hbm_usable_fraction: float = param(0.9, gt=0, le=1,
                                       help="share of HBM a serving framework gives to weights "
                                       "and KV cache")
    interconnect_bandwidth_GBps: float = param(unit="GB/s", gt=0,
                                               help="device-to-device bandwidth per direction "
                                               "inside a server or slice (NVLink, ICI)")
    network_bandwidth_GBps: float = param(unit="GB/s", gt=0,
                                          help="per-device bandwidth between servers "
                                          "(pipeline stages that cross servers)")
    interconnect_latency_us: float = param(0.0, unit="us", ge=0,
                                           help="start-up latency of one link transfer: each of "
                                           "an all-reduce's 2 (t-1) ring steps, each "
                                           "stage-to-stage transfer")
    tdp_W: float = param(unit="W", gt=0, help="device thermal design power")
    devices_per_server: int = param(ge=1, help="devices in one server (or TPU host)")
    rental_usd_per_device_hour: float = param(unit="$/h", gt=0,
                                              help="cloud rental price per device-hour")
    server_price_usd: float = param(0.0, unit="$", ge=0,
                                    help="purchase price of one server; 0 = not published")
    server_power_W: float = param(0.0, unit="W", ge=0,
                                  help="server power at the wall; 0 = not published")
    bandwidth_efficiency: float = param(1.0, gt=0, le=1,
                                        help="achieved / peak HBM bandwidth on weight and "
                                        "KV-cache streams (calibrated)")
    compute_efficiency: float = param(1.0, gt=0, le=1,
                                      help="achieved / peak matrix throughput (calibrated)")
    interconnect_efficiency: float = param(1.0, gt=0, le=1,
                                           help="achieved / peak link bandwidth")
    layer_overhead_us: float = param(0.0, unit="us", ge=0,
                                     help="fixed time per layer and step (kernel launches, "
                                     "norms, activations)")
    # Micro-architecture, read by the SpMM kernel model (hwsim.spmm); 0 = not given.
    sms: int = param(0, ge=0, help="streaming multiprocessors (0 = not given)")
    boost_clock_MHz: float = param(0.0, unit="MHz", ge=0, help="SM boost clock (0 = not given)")
    smem_per_sm_KiB: float = param(0.0, unit="KiB", ge=0,
                                   help="largest shared-memory carve-out per SM (0 = not given)")
    smem_bytes_per_clk_per_sm: float = param(128.0, unit="B/clk", gt=0,
                                             help="shared-memory bandwidth per SM: 32 banks x "
                                             "4 B per clock (CUDA C Programming Guide, compute "
                                             "capability 5.x and later)")
    l2_MiB: float = param(0.0, unit="MiB", ge=0, help="L2 cache (0 = not given)")
    peak_fp32_TFLOPS: float = param(0.0, unit="TFLOPS", ge=0,
                                    help="FP32 CUDA-core (non-tensor) peak (0 = not given)")
    source: str = param("", help="where the figures come from")

    @property
    def owned_price_known(self) -> bool:
        """Whether the spec carries a server price and power (needed for owned TCO)."""
        return self.server_price_usd > 0 and self.server_power_W > 0


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
    kv_dtype: str = param("fp16", choices=tuple(DTYPE_BYTES), help="KV-cache data type")
    activation_dtype: str = param("fp16", choices=tuple(DTYPE_BYTES),
                                  help="activations sent over links")
    attention_sharding: str = param(
        "heads", choices=("heads", "batch"),
        help="how the tensor-parallel group splits attention and the KV cache: by heads "
        "(Megatron; at most one device per head) or by sequences (Pope et al. 2022, for "
        "multi-query attention: each device holds whole sequences' KV cache)")
    pricing: str = param("rental", choices=("rental", "owned"),
                         help="what tco_usd_per_1k_tokens reports: rented devices or owned "
                         "servers on the Chiplet Cloud TCO model")

    def __post_init__(self) -> None:
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

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
    model: str = param("roofline", choices=("roofline",),
                       help="the performance model the constants belong to")
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
    hbm_usable_fraction: float = param(0.9, gt=0, le=1,
                                       help="share of HBM the serving framework gives to weights "
                                       "and KV cache (vLLM's gpu_memory_utilization default, 0.9)")
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

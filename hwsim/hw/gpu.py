"""``gpu``: an HBM accelerator (NVIDIA GPU or Google TPU) and the server that houses it.

Only what a datasheet, a user guide or a price list states: peak rates, HBM, links, power,
prices and the micro-architecture the kernel models read. Efficiencies fitted to measurements
are not here: each model that needs them reads a calibration spec of its own (gpu-serving's
``gpu-calibration``, spmm's ``spmm-calibration``), so one device file serves every model.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("gpu")
@dataclass(frozen=True, kw_only=True)
class GpuSpec:
    """An HBM accelerator (GPU or TPU) and the server that houses it: datasheet figures."""

    name: str = param(help="identifier")
    peak_16bit_TFLOPS: float = param(unit="TFLOPS", gt=0,
                                     help="dense FP16/BF16 matrix peak per device")
    peak_8bit_TFLOPS: float = param(0.0, unit="TFLOPS", ge=0,
                                    help="dense FP8/INT8 matrix peak per device; 0 = none "
                                    "(8-bit weights then compute at the 16-bit peak)")
    hbm_capacity_GB: float = param(unit="GB", gt=0, help="HBM capacity per device")
    hbm_bandwidth_GBps: float = param(unit="GB/s", gt=0, help="peak HBM bandwidth per device")
    interconnect_bandwidth_GBps: float = param(unit="GB/s", gt=0,
                                               help="device-to-device bandwidth per direction "
                                               "inside a server or slice (NVLink, ICI)")
    network_bandwidth_GBps: float = param(unit="GB/s", gt=0,
                                          help="per-device bandwidth between servers "
                                          "(pipeline stages that cross servers)")
    tdp_W: float = param(unit="W", gt=0, help="device thermal design power")
    devices_per_server: int = param(ge=1, le=1024, help="devices in one server (or TPU host; "
                                    "<= 1024)")
    rental_usd_per_device_hour: float = param(unit="$/h", gt=0,
                                              help="cloud rental price per device-hour")
    server_price_usd: float = param(0.0, unit="$", ge=0,
                                    help="purchase price of one server; 0 = not published")
    server_power_W: float = param(0.0, unit="W", ge=0,
                                  help="server power at the wall; 0 = not published")
    # Micro-architecture, read by the SpMM kernel model (hwsim.spmm); 0 = not given.
    sms: int = param(0, ge=0, le=100_000, help="streaming multiprocessors (0 = not given; "
                     "<= 1e5: the SpMM DES simulates each)")
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
    peak_tf32_TFLOPS: float = param(0.0, unit="TFLOPS", ge=0,
                                    help="dense TF32 tensor-core peak (0 = none or not given: "
                                    "FP32 work runs at peak_fp32_TFLOPS)")
    ici_torus_dims: tuple[int, ...] = param(
        (), ge=2, le=1024,
        help="extents of the torus the devices' interconnect forms (TPU v4: 4 x 4 x 4 for "
        "64 chips); a tensor-parallel all-reduce then runs as rings along each dimension in "
        "turn (hwsim.llm.perf.torus_allreduce_s); empty = one ring over the group (NVLink, "
        "NCCL)")
    source: str = param("", help="where the figures come from")

    @property
    def owned_price_known(self) -> bool:
        """Whether the spec carries a server price and power (needed for owned TCO)."""
        return self.server_price_usd > 0 and self.server_power_W > 0

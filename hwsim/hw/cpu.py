"""``cpu``: a multi-core CPU node (one or more sockets) as its datasheet and vendor manuals say.

Cores, clocks, SIMD width, each cache level's size, sharing and latency, memory bandwidth,
latency and NUMA layout, and the cloud price where the node is a rented instance. Constants a
model fits to measurements (achieved parallelism, cycles per operation) live in that model's
calibration spec (the ``heat`` system's ``heat-calibration``), never here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.specs import param, spec_kind


@spec_kind("cpu")
@dataclass(frozen=True, kw_only=True)
class CpuSpec:
    """A CPU node: sockets of cores, their caches and memory (datasheet figures)."""

    name: str = param(help="identifier")
    sockets: int = param(1, ge=1, le=16, help="CPU sockets in the node")
    cores_per_socket: int = param(ge=1, le=1024, help="physical cores per socket (that the "
                                  "node or instance exposes)")
    threads_per_core: int = param(1, ge=1, le=8, help="hardware threads per core (SMT)")
    base_clock_GHz: float = param(gt=0, le=10, unit="GHz",
                                  help="base clock: the all-core clock at the power limit")
    boost_clock_GHz: float = param(0.0, ge=0, le=10, unit="GHz",
                                   help="highest boost clock with few cores active; 0 = no "
                                   "boost (constant clock)")
    simd_bits: int = param(ge=64, le=4096, help="SIMD register width (AVX2 256, SVE 512 ...)")
    fma_per_cycle: int = param(2, ge=1, le=16, help="SIMD fused multiply-add pipes per core")
    cache_line_B: int = param(64, ge=16, le=1024, unit="B", help="cache line size")
    l1d_KiB: float = param(gt=0, unit="KiB", help="L1 data cache per core")
    l1_latency_cycles: float = param(gt=0, le=1000, unit="cycles", help="L1 load-to-use latency")
    l2_KiB: float = param(gt=0, unit="KiB", help="one L2 cache (private or shared)")
    l2_cores_sharing: int = param(1, ge=1, le=1024, help="cores sharing one L2")
    l2_latency_cycles: float = param(gt=0, le=1000, unit="cycles", help="L2 hit latency")
    l3_MiB: float = param(0.0, ge=0, unit="MiB", help="one L3 cache (one L3 domain); 0 = none")
    l3_cores_sharing: int = param(1, ge=1, le=1024, help="cores sharing one L3")
    l3_latency_cycles: float = param(0.0, ge=0, le=10000, unit="cycles",
                                     help="L3 hit latency (0 when there is no L3)")
    memory_type: str = param("DDR4", choices=("DDR4", "DDR5", "HBM2", "HBM2e", "HBM3"),
                             help="main-memory technology")
    memory_bandwidth_GBps: float = param(gt=0, unit="GB/s", help="peak main-memory bandwidth "
                                         "per socket")
    memory_latency_ns: float = param(gt=0, le=10000, unit="ns",
                                     help="idle main-memory latency from a local NUMA node")
    memory_capacity_GB: float = param(gt=0, unit="GB", help="main memory of the whole node")
    numa_nodes_per_socket: int = param(1, ge=1, le=64, help="NUMA nodes per socket (AMD NPS "
                                       "setting, A64FX CMGs); bandwidth splits evenly")
    numa_remote_latency_factor: float = param(1.0, ge=1, le=10,
                                              help="latency from a remote NUMA node / local")
    cores_per_die: int = param(0, ge=0, le=1024, help="cores of one compute die (chiplet) "
                               "sharing one fabric link to the memory controllers; 0 = "
                               "monolithic (no per-die link)")
    die_read_bandwidth_GBps: float = param(0.0, ge=0, unit="GB/s", help="read bandwidth of "
                                           "one compute die's fabric link; 0 = no per-die limit")
    die_write_bandwidth_GBps: float = param(0.0, ge=0, unit="GB/s", help="write bandwidth of "
                                            "one compute die's fabric link; 0 = no per-die limit")
    tdp_W: float = param(0.0, ge=0, unit="W", help="thermal design power per socket "
                         "(0 = not given)")
    rental_usd_per_hour: float = param(0.0, ge=0, unit="$/h", help="cloud price of the whole "
                                       "node or instance per hour; 0 = not rented")
    source: str = param("", help="where the figures come from")

    def __post_init__(self) -> None:
        if self.boost_clock_GHz and self.boost_clock_GHz < self.base_clock_GHz:
            raise ValueError(f"boost_clock_GHz {self.boost_clock_GHz} is below base_clock_GHz "
                             f"{self.base_clock_GHz}")
        if self.l3_MiB > 0 and self.l3_latency_cycles <= 0:
            raise ValueError("an L3 (l3_MiB > 0) needs l3_latency_cycles > 0")
        if self.cores_per_die and (self.die_read_bandwidth_GBps <= 0
                                   or self.die_write_bandwidth_GBps <= 0):
            raise ValueError("a compute die (cores_per_die > 0) needs die_read_bandwidth_GBps "
                             "and die_write_bandwidth_GBps > 0")
        for key in ("l2_cores_sharing", "l3_cores_sharing", "cores_per_die"):
            if getattr(self, key) > self.cores_per_socket:
                raise ValueError(f"{key} {getattr(self, key)} exceeds cores_per_socket "
                                 f"{self.cores_per_socket}")

    @property
    def cores(self) -> int:
        """Physical cores in the node."""
        return self.sockets * self.cores_per_socket

    @property
    def hardware_threads(self) -> int:
        """Hardware threads in the node."""
        return self.cores * self.threads_per_core

    @property
    def fp32_lanes(self) -> int:
        """32-bit lanes of one SIMD register."""
        return self.simd_bits // 32

    @property
    def peak_fp32_GFLOPS(self) -> float:
        """FP32 FMA peak of the node at the base clock (2 FLOPs per lane per FMA pipe)."""
        return self.cores * self.fma_per_cycle * self.fp32_lanes * 2 * self.base_clock_GHz

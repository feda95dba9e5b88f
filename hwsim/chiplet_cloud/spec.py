"""Spec kinds of Chiplet Cloud: ``asic`` (chip and technology), ``server``, ``cc-mapping``.

The datacenter economics (``tco``) are shared with the GPU baselines: :mod:`hwsim.hw.tco`.

Defaults are the paper's v1 assumptions (Peng et al., "Chiplet Cloud: Building AI Supercomputers
for Serving Large Generative Language Models", arXiv 2307.02666 v1, 2023), whose constants the
authors' code states (reallm commit f194ed6, ``hardware_exploration/scripts/CONSTANTS.py``); the
cost substrate is ASIC Cloud's (Magaki et al., ISCA 2016) and the TCO Barroso's (*The Datacenter
as a Computer*, 3rd ed., 2018, ch. 6). The spec files under ``models/`` cite each figure again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.specs import param, spec_kind

#: the most designs the heat-sink search of one server may try (its arrays are this large, about
#: ten of them, in float64: ~300 MB); the v1 server tries ~630,000
MAX_HEATSINK_CELLS = 4_000_000


@spec_kind("asic")
@dataclass(frozen=True, kw_only=True)
class AsicSpec:
    """One chiplet: its die, the technology it is made in and its package."""

    name: str = param(help="identifier")
    technology_nm: int = param(7, ge=1, le=1000, unit="nm", help="process node (informational; "
                               "<= 1000)")
    die_area_mm2: float = param(160.0, gt=0, le=900, unit="mm2", help="die area")
    mac_area_ratio: float = param(0.1, gt=0, lt=1, help="share of the usable area given to MAC "
                                  "arrays; the rest is SRAM")
    # die floorplan
    pad_ring_mm: float = param(0.35, ge=0, unit="mm", help="width lost to the pad ring: the core "
                               "is (sqrt(area) - pad_ring)^2")
    core_usable_fraction: float = param(0.7, gt=0, le=1, help="share of the core that holds MACs "
                                        "and SRAM (the rest: wiring, control)")
    other_area_mm2: float = param(5.0, ge=0, unit="mm2", help="fixed area of other blocks")
    mac_density_mm2_per_TOPS: float = param(0.29, gt=0, unit="mm2/TOPS",
                                            help="MAC-array area per tera-op/s (BF16)")
    sram_density_mm2_per_MB: float = param(0.45, gt=0, unit="mm2/MB", help="SRAM area per MB")
    clock_GHz: float = param(1.0, gt=0, unit="GHz", help="clock of the MAC arrays")
    bytes_per_value: float = param(2.0, gt=0, unit="B", help="bytes per weight/activation (BF16)")
    # chip I/O
    io_bandwidth_GBps: float = param(25.0, gt=0, unit="GB/s", help="chip-to-chip bandwidth")
    io_cell_GBps: float = param(12.5, gt=0, unit="GB/s", help="bandwidth of one I/O cell")
    io_cell_area_mm2: float = param(0.3, ge=0, unit="mm2", help="area of one I/O cell")
    io_cell_power_W: float = param(0.125, ge=0, unit="W", help="power of one I/O cell")
    # power
    power_W_per_TOPS: float = param(1.3, gt=0, unit="W/TOPS", help="chip power per peak TOPS")
    other_power_W: float = param(1.0, ge=0, unit="W", help="fixed power of other blocks")
    max_power_density_W_per_mm2: float = param(1.0, gt=0, unit="W/mm2",
                                               help="power-density limit of the die")
    core_vdd_V: float = param(0.8, gt=0, unit="V", help="core supply (sizes the DC-DC current)")
    # wafer, yield, test, package
    wafer_cost_usd: float = param(9346.0, gt=0, unit="USD", help="processed 300 mm wafer")
    wafer_diameter_mm: float = param(300.0, gt=0, unit="mm", help="wafer diameter")
    dicing_gap_mm: float = param(0.1, ge=0, unit="mm", help="scribe lane between dies")
    defect_density_per_cm2: float = param(0.1, ge=0, unit="1/cm2", help="D0 of the yield model")
    yield_alpha: float = param(26.0, gt=0, help="clustering parameter of the negative-binomial "
                               "yield model")
    test_cost_fraction: float = param(0.01, ge=0, help="test cost as a share of good-die cost")
    package_cost_fraction: float = param(0.103, ge=0, help="package cost per $ of die cost")
    package_cost_fixed_usd: float = param(1.185, ge=0, unit="USD", help="fixed package cost")
    # CC-MEM: store-as-compressed, load-as-dense
    weight_sparsity: float = param(0.0, ge=0, lt=1, help="share of zero weights stored "
                                   "compressed (CC-MEM); 0 = dense storage")
    sparse_index_bits: float = param(8.0, ge=0, unit="bit", help="index bits stored per nonzero "
                                     "weight in the compressed format")

    @property
    def io_cells(self) -> float:
        """I/O cells: a transmitter and a receiver per ``io_cell_GBps`` of bandwidth."""
        return 2.0 * self.io_bandwidth_GBps / self.io_cell_GBps


@spec_kind("server")
@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    """A server: lanes of chiplet packages on a PCB, air-cooled; its bill of materials."""

    name: str = param(help="identifier")
    lanes: int = param(8, ge=1, le=256, help="rows of packages, each cooled by its own fan "
                       "(<= 256: the placement search tabulates every chip count of a server)")
    chips_per_lane: int = param(18, ge=1, le=1024, help="packages (one chiplet each) per lane "
                                "(<= 1024, as lanes)")
    lane_silicon_min_mm2: float = param(200.0, ge=0, unit="mm2", help="least silicon per lane")
    lane_silicon_max_mm2: float = param(6000.0, gt=0, unit="mm2", help="most silicon per lane")
    chip_power_cap_W: float = param(2000.0, gt=0, unit="W", help="cap on the chips' total power")
    # links
    chip_link_GBps: float = param(25.0, gt=0, unit="GB/s", help="package-to-package link "
                                  "within the server")
    server_link_GBps: float = param(1.25, gt=0, unit="GB/s", help="server-to-server link "
                                    "(10 GbE)")
    link_latency_us: float = param(0.0001, ge=0, unit="us", help="start-up time of a transfer")
    # bill of materials
    pcb_cost_usd: float = param(50.0, ge=0, unit="USD", help="one PCB (parts not included)")
    pcbs: int = param(2, ge=0, le=1024, help="PCBs per server (<= 1024)")
    pcb_parts_cost_usd: float = param(50.0, ge=0, unit="USD", help="PCB parts other than DC-DC")
    chassis_cost_usd: float = param(30.0, ge=0, unit="USD", help="chassis")
    dcdc_cost_usd_per_A: float = param(0.33, ge=0, unit="USD/A", help="DC-DC converter cost")
    dcdc_efficiency: float = param(0.95, gt=0, le=1, help="DC-DC efficiency")
    psu_cost_usd_per_W: float = param(0.13, ge=0, unit="USD/W", help="PSU cost per W of output")
    psu_efficiency: float = param(0.95, gt=0, le=1, help="PSU efficiency")
    fan_power_W: float = param(7.4, ge=0, unit="W", help="one lane fan")
    fan_cost_usd: float = param(15.0, ge=0, unit="USD", help="one lane fan")
    host_power_W: float = param(10.0, ge=0, unit="W", help="control processor and DRAM")
    host_cost_usd: float = param(10.0, ge=0, unit="USD", help="control processor and DRAM")
    host_cost_in_bom: bool = param(False, help="add host_cost_usd to the server cost (v1 "
                                   "counts its power only)")
    ethernet_cost_usd: float = param(100.0, ge=0, unit="USD", help="network interface")
    # air cooling: a plate-fin aluminium heat sink per package in a ducted lane
    junction_max_C: float = param(90.0, unit="C", help="highest junction temperature")
    ambient_C: float = param(30.0, unit="C", help="inlet air temperature")
    # the heat-sink search tries every base height in 1 mm steps, every fin count that fits the
    # width and every sink length in 1 mm steps: __post_init__ bounds the grid they make
    heatsink_height_mm: float = param(35.0, gt=0, le=500, unit="mm", help="base plus fin height "
                                      "(<= 500)")
    heatsink_width_mm: float = param(40.0, gt=0, le=500, unit="mm", help="heat-sink width "
                                     "(<= 500)")
    lane_length_mm: float = param(450.0, gt=0, le=10_000, unit="mm", help="length of a lane's "
                                  "duct (<= 10 m)")
    fin_thickness_mm: float = param(0.5, gt=0, le=100, unit="mm", help="fin thickness")
    min_fin_gap_mm: float = param(1.0, gt=0, le=100, unit="mm", help="smallest gap between fins")
    heatsink_base_cost_usd: float = param(1.0, ge=0, unit="USD", help="per heat sink")
    aluminium_cost_usd_per_m3: float = param(4122.68, ge=0, unit="USD/m3",
                                             help="aluminium, by volume")

    def __post_init__(self) -> None:
        heights, fins, lengths = self.heatsink_search_grid()
        cells = float(heights) * fins * lengths
        if cells > MAX_HEATSINK_CELLS:
            raise ValueError(
                f"the heat-sink search would try {cells:,.0f} designs, at most "
                f"{MAX_HEATSINK_CELLS:,}: {heights:,} base heights (heatsink_height_mm = "
                f"{self.heatsink_height_mm:g}, 1 mm steps) x {fins:,} fin counts "
                f"(heatsink_width_mm = {self.heatsink_width_mm:g}, fin_thickness_mm = "
                f"{self.fin_thickness_mm:g}, min_fin_gap_mm = {self.min_fin_gap_mm:g}) x "
                f"{lengths:,} sink lengths (lane_length_mm = {self.lane_length_mm:g}, 1 mm steps)")

    def heatsink_search_grid(self) -> tuple[int, int, int]:
        """(base heights, fin counts, sink lengths) the heat-sink search tries at most (one chip
        per lane gives the longest sinks)."""
        heights = max(round(self.heatsink_height_mm) - 1, 0)
        fins = max(math.floor((self.heatsink_width_mm + self.min_fin_gap_mm)
                              / (self.fin_thickness_mm + self.min_fin_gap_mm)) - 1, 0)
        return heights, fins, max(math.floor(self.lane_length_mm), 1)

    @property
    def chips(self) -> int:
        return self.lanes * self.chips_per_lane


@spec_kind("cc-mapping")
@dataclass(frozen=True, kw_only=True)
class CcMappingSpec:
    """How an LLM is placed on Chiplet Cloud servers, and which effects are modelled."""

    name: str = param(help="identifier")
    pp: int = param(0, ge=0, le=10_000, help="pipeline stages (<= 10,000, as llm.layers); "
                    "0 = every divisor of the layer count is "
                    "tried and the lowest TCO/token kept")
    tp: int = param(0, ge=0, le=1_000_000, help="chips per pipeline stage (tensor "
                    "parallelism; <= 1e6); 0 = the "
                    "fewest chips, in whole servers or an equal share of one, that hold a stage")
    batch: int = param(64, ge=1, le=65_536, help="sequences decoded together (<= 65,536, as "
                       "gpu-mapping's; bounds the micro-batch sizes tried)")
    micro_batch: int = param(0, ge=0, le=65_536, help="sequences per pipeline micro-batch "
                             "(<= 65,536); 0 = every "
                             "power of two up to batch is tried and the lowest TCO/token kept")
    context_tokens: int = param(0, ge=0, le=100_000_000, unit="tokens",
                                help="KV-cache length reserved per "
                                "sequence; 0 = the traffic's longest request (prompt + output)")
    attention: bool = param(True, help="time attention scores and KV-cache reads (false = the "
                            "paper's v1, which counts the KV cache's capacity only)")
    simplified_layers: bool = param(False, help="model every layer as 12 d^2 weights in four "
                                    "GEMMs (the paper's v1) instead of the spec's real shape")
    utilization_model: str = param("v1-systolic", choices=("v1-systolic", "roofline"),
                                   help="GEMM utilisation: v1's systolic occupancy or ideal")

    def __post_init__(self) -> None:
        if self.micro_batch > self.batch:
            raise ValueError(f"micro_batch {self.micro_batch} exceeds batch {self.batch}")

"""Chip, package, server and TCO models of Chiplet Cloud; vectorised over numpy arrays.

- Dies per wafer: square dies plus the scribe gap packed in rows on the wafer; every row is as
  long as the chord at its outer edge allows, and the rows' offset from the wafer's diameter is
  found by interval halving between the centred and the edge-aligned layouts (the method of the
  ASIC Cloud / Chiplet Cloud cost model, Magaki et al. ISCA 2016).
- Yield: negative binomial ``Y = (1 + D0 A / alpha)^-alpha`` (Stapper 1983; Cunningham 1990).
- Die cost: ``wafer / dies per wafer / yield x (1 + test)``; package ``0.103 die + $1.185``
  (flip-chip packaging cost, ASIC Cloud after Electroiq 2001).
- Chip: core ``(sqrt(A) - pad ring)^2``, usable share of it minus I/O and other blocks, split
  MAC : SRAM by the MAC area ratio; TOPS = MAC area / density, MB = SRAM area / density; power
  ``W/TOPS x TOPS + I/O cells + other`` (Chiplet Cloud v1, arXiv 2307.02666 sec. 4-5).
- Server: ``lanes x chips_per_lane`` packages with heat sinks, fans, DC-DC, PSU, PCBs, chassis and
  Ethernet; wall power ``((chips + host) / eta_DCDC + fans) / eta_PSU``.
- TCO: :mod:`hwsim.hw.tco` (shared with the GPU baselines).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from hwsim.chiplet_cloud.spec import AsicSpec, ServerSpec
from hwsim.chiplet_cloud.thermal import heatsink

# --------------------------------------------------------------------------------------------
# wafer and die


def _rows_fit(r: float, a: float, off: float) -> int:
    """Squares of side ``a`` in a circle of radius ``r``, one row centred ``off`` off-diameter."""
    total = 0
    for far in (a / 2 + off, 1.5 * a - off):  # outer edges of the first row each side
        while far < r:
            total += math.floor(2.0 * math.sqrt(r * r - far * far) / a)
            far += a
    return total


@functools.lru_cache(maxsize=8192)
def dies_per_wafer(die_area_mm2: float, wafer_diameter_mm: float = 300.0,
                   dicing_gap_mm: float = 0.1) -> int:
    """Whole square dies on a round wafer (see the module docstring for the packing)."""
    a = math.sqrt(die_area_mm2) + dicing_gap_mm
    r = wafer_diameter_mm / 2.0
    lo, hi = 0.0, a / 2.0
    n_lo, n_hi = _rows_fit(r, a, lo), _rows_fit(r, a, hi)
    if n_hi >= n_lo:
        return n_hi
    step, hi = a / 8.0, a / 4.0
    n_hi = _rows_fit(r, a, hi)
    while n_lo != n_hi:
        if n_lo > n_hi:
            hi -= step
        else:
            lo, n_lo = hi, n_hi
            hi += step
        n_hi = _rows_fit(r, a, hi)
        step /= 2.0
    return n_hi


def negative_binomial_yield(die_area_mm2, defects_per_cm2: float, alpha: float):
    """Fraction of good dies: (1 + D0 A / alpha)^-alpha, D0 in 1/cm2 and A in mm2."""
    return (1.0 + defects_per_cm2 / 100.0 * np.asarray(die_area_mm2) / alpha) ** -alpha


@dataclass(frozen=True)
class DieCost:
    """Cost of one good, tested die and its package (arrays where the area was)."""

    dies_per_wafer: np.ndarray
    die_yield: np.ndarray
    die_cost_usd: np.ndarray
    package_cost_usd: np.ndarray


def die_cost(asic: AsicSpec, die_area_mm2=None) -> DieCost:
    """Die, test and package cost of ``asic`` (or of the areas given)."""
    area = np.asarray(asic.die_area_mm2 if die_area_mm2 is None else die_area_mm2, dtype=float)
    flat = area.ravel()
    uniq, inv = np.unique(flat, return_inverse=True)
    dpw_u = np.array([dies_per_wafer(float(x), asic.wafer_diameter_mm, asic.dicing_gap_mm)
                      for x in uniq], dtype=float)
    dpw = dpw_u[inv].reshape(area.shape)
    y = negative_binomial_yield(area, asic.defect_density_per_cm2, asic.yield_alpha)
    cost = asic.wafer_cost_usd / dpw / y * (1.0 + asic.test_cost_fraction)
    pkg = asic.package_cost_fraction * cost + asic.package_cost_fixed_usd
    return DieCost(dies_per_wafer=dpw, die_yield=y, die_cost_usd=cost, package_cost_usd=pkg)


# --------------------------------------------------------------------------------------------
# chip


@dataclass(frozen=True)
class Chip:
    """What a die of a given area and MAC ratio provides (arrays)."""

    die_area_mm2: np.ndarray
    mac_area_mm2: np.ndarray
    sram_area_mm2: np.ndarray
    tops: np.ndarray
    sram_MB: np.ndarray
    logic_power_W: np.ndarray
    power_W: np.ndarray
    #: the floorplan leaves room for MACs and SRAM and the power density is within the limit
    valid: np.ndarray


def chip(asic: AsicSpec, die_area_mm2=None, mac_area_ratio=None) -> Chip:
    """The chip's TOPS, SRAM and power from its area split (v1 floorplan model)."""
    area = np.asarray(asic.die_area_mm2 if die_area_mm2 is None else die_area_mm2, dtype=float)
    ratio = np.asarray(asic.mac_area_ratio if mac_area_ratio is None else mac_area_ratio,
                       dtype=float)
    core_side = np.sqrt(area) - asic.pad_ring_mm
    io_area = asic.io_cells * asic.io_cell_area_mm2
    usable = np.maximum(core_side, 0.0) ** 2 * asic.core_usable_fraction - io_area \
        - asic.other_area_mm2
    ok = usable >= 0.1  # below this the floorplan has no room for arrays and SRAM
    usable = np.maximum(usable, 0.0)
    mac = usable * ratio
    sram = usable - mac
    tops = mac / asic.mac_density_mm2_per_TOPS
    logic_w = tops * asic.power_W_per_TOPS
    power = logic_w + asic.io_cells * asic.io_cell_power_W + asic.other_power_W
    ok = ok & (power / area <= asic.max_power_density_W_per_mm2) & (area <= 900.0)
    return Chip(die_area_mm2=area, mac_area_mm2=mac, sram_area_mm2=sram, tops=tops,
                sram_MB=sram / asic.sram_density_mm2_per_MB, logic_power_W=logic_w,
                power_W=power, valid=ok)


def weight_storage_factor(asic: AsicSpec) -> float:
    """Bytes stored per dense weight byte under CC-MEM's store-as-compressed format.

    A share ``s`` of zeros is dropped; each nonzero keeps its value plus ``index_bits`` of
    position (a bitmap-free, relative-index format; Chiplet Cloud v4's CC-MEM stores sparse
    weights compressed and decompresses them on load). Never more than dense storage.
    """
    s = asic.weight_sparsity
    if s <= 0:
        return 1.0
    per_nz = 1.0 + asic.sparse_index_bits / 8.0 / asic.bytes_per_value
    return min(1.0, (1.0 - s) * per_nz)


# --------------------------------------------------------------------------------------------
# server


@dataclass(frozen=True)
class Server:
    """A server of identical chiplets (arrays)."""

    chips: np.ndarray
    tops: np.ndarray
    sram_MB: np.ndarray
    chip_power_W: np.ndarray
    power_W: np.ndarray
    cost_usd: np.ndarray
    silicon_cost_usd: np.ndarray
    package_cost_usd: np.ndarray
    heatsink_cost_usd: np.ndarray
    die_yield: np.ndarray
    die_cost_usd: np.ndarray
    max_chip_power_W: np.ndarray
    #: chip valid, within the thermal limit, the chip-power cap and the lane silicon bounds
    valid: np.ndarray


def heatsink_limits(die_area_mm2, chips_per_lane, srv: ServerSpec,
                    dt_C: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(max chip power W, heat-sink cost USD) per design, from the lane thermal model."""
    a = np.asarray(die_area_mm2, dtype=float)
    n = np.asarray(chips_per_lane)
    a, n = np.broadcast_arrays(a, n)
    dt = srv.junction_max_C - srv.ambient_C if dt_C is None else dt_C
    pairs = np.stack([a.ravel(), n.ravel().astype(float)], axis=1)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    res = np.array([
        heatsink(float(x), int(k), srv.heatsink_height_mm, srv.heatsink_width_mm,
                 srv.lane_length_mm, srv.fin_thickness_mm, srv.min_fin_gap_mm, dt,
                 srv.aluminium_cost_usd_per_m3, srv.heatsink_base_cost_usd)
        for x, k in uniq
    ]).reshape(-1, 2)
    q = res[inv.ravel(), 0].reshape(a.shape)
    c = res[inv.ravel(), 1].reshape(a.shape)
    return q, c


def server(asic: AsicSpec, srv: ServerSpec, die_area_mm2=None, mac_area_ratio=None,
           chips_per_lane=None) -> Server:
    """Cost, power and validity of servers built from ``asic`` chiplets (vectorised)."""
    ch = chip(asic, die_area_mm2, mac_area_ratio)
    cpl = np.asarray(srv.chips_per_lane if chips_per_lane is None else chips_per_lane)
    area = ch.die_area_mm2
    dc = die_cost(asic, area)
    q_max, hs_cost = heatsink_limits(area, cpl, srv)
    n = srv.lanes * cpl
    chip_w = ch.power_W * n
    dcdc_in = (chip_w + srv.host_power_W) / srv.dcdc_efficiency
    wall = (dcdc_in + srv.fan_power_W * srv.lanes) / srv.psu_efficiency
    # DC-DC converters feed the compute rail at core Vdd, the host at 1 V (v1 BOM)
    amps = ch.logic_power_W * n / asic.core_vdd_V + srv.host_power_W / 1.0
    silicon = dc.die_cost_usd * n
    pkgs = dc.package_cost_usd * n
    sinks = np.where(np.isfinite(hs_cost), hs_cost, 0.0) * n
    cost = (silicon + pkgs + sinks + srv.fan_cost_usd * srv.lanes + srv.ethernet_cost_usd
            + srv.dcdc_cost_usd_per_A * amps + srv.psu_cost_usd_per_W * wall
            + srv.pcb_cost_usd * srv.pcbs + srv.pcb_parts_cost_usd + srv.chassis_cost_usd
            + (srv.host_cost_usd if srv.host_cost_in_bom else 0.0))
    lane_si = area * cpl
    valid = (ch.valid & (ch.power_W < q_max) & (chip_w <= srv.chip_power_cap_W)
             & (lane_si >= srv.lane_silicon_min_mm2) & (lane_si <= srv.lane_silicon_max_mm2)
             & (ch.tops >= 0.01))
    return Server(chips=n * np.ones_like(area), tops=ch.tops * n, sram_MB=ch.sram_MB * n,
                  chip_power_W=chip_w, power_W=wall, cost_usd=cost, silicon_cost_usd=silicon,
                  package_cost_usd=pkgs, heatsink_cost_usd=sinks, die_yield=dc.die_yield,
                  die_cost_usd=dc.die_cost_usd, max_chip_power_W=q_max, valid=valid)

"""Air cooling of a lane of packages: the largest chip power a plate-fin heat sink allows, and
the heat sink's cost.

The model is ASIC Cloud's (Magaki et al., "ASIC Clouds: Specializing the Datacenter", ISCA 2016,
sec. 4), which Chiplet Cloud reuses: a lane is a duct with ``n`` packages in a row, each under an
aluminium plate-fin heat sink, all fed by one fan. For a heat-sink geometry (base thickness, fin
count, length) the air flow is where the fan's pressure-flow curve meets the duct's pressure drop;
the junction-to-air resistance is die + TIM + base spreading + fins; air heated by the upstream
chips raises the inlet temperature of the downstream ones, so with chip power ``q``::

    T_j - T_amb = q (R_die + R_tim + R_spread + R_fins) + (n - 1) q / (c_p rho V)

The highest ``q`` over the geometries, taking the shortest heat sink that reaches 95% of what a
lane-long one would (ASIC Cloud's rule), is the chip's thermal power limit.

Correlations: pressure drop of a plate-fin channel, Muzychka & Yovanovich, "Modeling friction
factors in non-circular ducts for developing laminar flow", AIAA 1998 (and Kc, Ke after Kays &
London); fin-channel Nusselt number, Teertstra, Yovanovich & Culham, "Analytical forced
convection modeling of plate fin heat sinks", SEMI-THERM 1999; base spreading resistance, Song,
Lee & Au, "Closed-form equation for thermal constriction/spreading resistances with variable
resistance boundary condition", IEPS 1994. Fan: Sanyo Denki San Ace 40 9GA0312P3K001 (40 mm,
7.4 W), its static-pressure curve as a fifth-order fit (the fit ASIC Cloud uses).
"""

from __future__ import annotations

import functools
import math

import numpy as np

# air near 30 C (Incropera & DeWitt, Fundamentals of Heat and Mass Transfer, table A.4)
AIR_CP = 1004.9          # J/(kg K)
AIR_K = 0.02624          # W/(m K)
AIR_RHO = 1.1644         # kg/m3
AIR_MU = 1.886e-5        # kg/(m s)
K_ALUMINIUM = 200.0      # W/(m K), heat-sink alloy
K_TIM = 4.0              # W/(m K), thermal grease
TIM_THICKNESS = 0.1e-3   # m
K_SILICON = 149.0        # W/(m K)
DIE_THICKNESS = 0.7e-3   # m

#: static pressure (Pa) against flow (m3/s) of the 9GA0312P3K001 fan, valid 0..0.01 m3/s
FAN_CURVE = (1.49e14, -4.099e12, 3.833e10, -1.375e8, 70736.364, 799.481)
FAN_MAX_FLOW = 0.01


def fan_pressure(flow: np.ndarray) -> np.ndarray:
    """The fan's static pressure at ``flow`` (0 outside its curve)."""
    p = np.polyval(FAN_CURVE, flow)
    return np.where((flow >= 0) & (flow <= FAN_MAX_FLOW), p, 0.0)


def _channel(width, fins, fin_t, fin_h, flow):
    gap = (width - fins * fin_t) / (fins - 1)
    vel = flow / ((fins - 1) * gap * fin_h)
    return gap, vel


def pressure_drop(length, width, fins, fin_t, fin_h, flow) -> np.ndarray:
    """Pressure drop (Pa) of air through a plate-fin heat sink ``length`` long."""
    gap, vel = _channel(width, fins, fin_t, fin_h, flow)
    dh = 2.0 * gap
    lam = gap / fin_h
    sigma = 1.0 - fins * fin_t / width
    kc = 0.42 * (1.0 - sigma**2)
    ke = (1.0 - sigma**2) ** 2
    re = AIR_RHO * vel * dh / AIR_MU
    l_star = length / dh / re
    f_re = 24 - 32.527 * lam + 46.721 * lam**2 - 40.829 * lam**3 + 22.954 * lam**4 \
        - 6.089 * lam**5
    f_app = np.sqrt((3.44 / np.sqrt(l_star)) ** 2 + f_re**2) / re
    return (kc + 4.0 * f_app * length / dh + ke) * AIR_RHO * vel**2 / 2.0


def air_flow(duct_length, width, fins, fin_t, fin_h, iters: int = 24) -> np.ndarray:
    """Flow (m3/s) where the fan curve meets the pressure drop of ``duct_length`` of fins."""
    lo = np.full(np.broadcast(duct_length, fins, fin_h).shape, 1e-9)
    hi = np.full_like(lo, FAN_MAX_FLOW)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        ok = pressure_drop(duct_length, width, fins, fin_t, fin_h, mid) <= fan_pressure(mid)
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return lo


def fin_resistance(length, width, fins, fin_t, fin_h, flow) -> tuple[np.ndarray, np.ndarray]:
    """(R_fins in K/W, effective heat-transfer coefficient over the base in W/(m2 K))."""
    gap, vel = _channel(width, fins, fin_t, fin_h, flow)
    pr = AIR_MU * AIR_CP / AIR_K
    re_b = AIR_RHO * vel * gap**2 / (AIR_MU * length)
    nu = ((re_b * pr / 2.0) ** -3
          + (0.664 * np.sqrt(re_b) * pr ** (1 / 3) * np.sqrt(1 + 3.65 / np.sqrt(re_b))) ** -3
          ) ** (-1 / 3)
    h = nu * AIR_K / gap
    m = np.sqrt(2.0 * h / (K_ALUMINIUM * fin_t))
    eta = np.tanh(m * fin_h) / (m * fin_h)
    area = (fins - 1) * gap * length + fins * eta * 2.0 * fin_h * length
    r_fins = 1.0 / (h * area)
    return r_fins, 1.0 / (r_fins * length * width)


def spreading_resistance(die_side, length, width, base_t, h_eff) -> np.ndarray:
    """Spreading resistance (K/W) from a square die into the heat-sink base."""
    r1 = die_side / math.sqrt(math.pi)
    r2 = np.sqrt(length * width / math.pi)
    eps = r1 / r2
    tau = base_t / r2
    bi = h_eff * r2 / K_ALUMINIUM
    lam = math.pi + 1.0 / (eps * math.sqrt(math.pi))
    th = np.tanh(lam * tau)
    phi = (th + lam / bi) / (1.0 + lam / bi * th)
    psi = eps * tau / math.sqrt(math.pi) + (1.0 - eps) * phi / math.sqrt(math.pi)
    return psi / (K_ALUMINIUM * r1 * math.sqrt(math.pi))


def _geometry_grid(height: float, width: float, fin_t: float, min_gap: float):
    base = np.arange(1, round(height * 1e3)) * 1e-3  # 1 mm steps
    max_fins = int((width + min_gap) / (fin_t + min_gap))
    fins = np.arange(2, max_fins + 1, dtype=float)
    b, f = np.meshgrid(base, fins, indexing="ij")
    return b.ravel(), f.ravel()


@functools.lru_cache(maxsize=256)
def _lane_tables(lengths_mm: tuple[float, ...], duct_factor: float, cfg: tuple) -> tuple:
    """Air flow and fin resistance over (heat-sink length x geometry grid); no die dependence."""
    height, width, fin_t, min_gap = cfg[:4]
    base_t, fins = _geometry_grid(height, width, fin_t, min_gap)
    fin_h = height - base_t
    L = np.asarray(lengths_mm, dtype=float)[:, None] * 1e-3
    flow = air_flow(L * duct_factor, width, fins, fin_t, fin_h)
    r_fins, h_eff = fin_resistance(L, width, fins, fin_t, fin_h, flow)
    return L, base_t, fins, fin_h, flow, r_fins, h_eff


def _best_power(die_side, lengths_mm, duct_factor, chips, cfg) -> tuple[np.ndarray, np.ndarray]:
    """Best chip power over the geometry grid for each heat-sink length; and its cost."""
    width, fin_t, dt, al_cost, base_cost = cfg[1], cfg[2], cfg[4], cfg[5], cfg[6]
    L, base_t, fins, fin_h, flow, r_fins, h_eff = _lane_tables(tuple(lengths_mm), duct_factor,
                                                               cfg)
    area = die_side**2
    r = (DIE_THICKNESS / (K_SILICON * area) + TIM_THICKNESS / (K_TIM * area)
         + spreading_resistance(die_side, L, width, base_t, h_eff) + r_fins)
    q = dt / (r + (chips - 1) / (AIR_CP * AIR_RHO * flow))
    q = np.where(np.isfinite(q), q, 0.0)
    best = np.argmax(q, axis=1)
    rows = np.arange(q.shape[0])
    volume = L[:, 0] * (width * base_t[best] + fin_t * fin_h[best] * fins[best])
    return q[rows, best], base_cost + al_cost * volume


@functools.lru_cache(maxsize=4096)
def heatsink(die_area_mm2: float, chips_per_lane: int, height_mm: float = 35.0,
             width_mm: float = 40.0, lane_mm: float = 450.0, fin_t_mm: float = 0.5,
             min_gap_mm: float = 1.0, dt_C: float = 60.0, al_usd_per_m3: float = 4122.68,
             base_usd: float = 1.0) -> tuple[float, float]:
    """(highest chip power in W, heat-sink cost in USD) for a die in a lane of ``chips_per_lane``.

    A die wider than the heat sink, or a lane too short for the dies, gives (0, inf).
    """
    side = math.sqrt(die_area_mm2) * 1e-3
    width, lane = width_mm * 1e-3, lane_mm * 1e-3
    if side > width or side * chips_per_lane > lane:
        return 0.0, math.inf
    cfg = (height_mm * 1e-3, width, fin_t_mm * 1e-3, min_gap_mm * 1e-3, dt_C, al_usd_per_m3,
           base_usd)
    # reference: one heat sink as long as the lane, the air flow of a lane that long
    q_ref, _ = _best_power(side, (float(lane_mm),), 1.0, chips_per_lane, cfg)
    target = 0.95 * float(q_ref[0])
    all_mm = np.arange(1, math.floor(lane_mm / chips_per_lane + 1e-9) + 1, dtype=float)
    q, cost = _best_power(side, tuple(all_mm), float(chips_per_lane), chips_per_lane, cfg)
    first = max(math.ceil(side * 1e3 - 1e-9), 1) - 1
    lengths, q, cost = all_mm[first:], q[first:], cost[first:]
    chosen = -1
    for i in range(len(lengths)):  # shortest sink that gets within 95% of the reference
        if chosen < 0 or q[i] > q[chosen]:
            if chosen < 0 or q[i] <= target:
                chosen = i
            else:
                break
    if chosen < 0:
        return 0.0, math.inf
    return float(q[chosen]), float(cost[chosen])

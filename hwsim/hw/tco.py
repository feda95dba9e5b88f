"""``tco``: datacenter and economic constants, and the lifetime TCO of one server.

After Barroso, Hoelzle & Ranganathan, *The Datacenter as a Computer* (3rd ed., 2018, ch. 6), with
the constants of the Chiplet Cloud authors' code (reallm commit 4c550c3): datacenter capex per W
amortised and financed, datacenter opex per W-month, electricity at PUE, and the server's price
financed over its life plus opex. Chiplet Cloud prices its ASIC servers with it and gpu-serving
its owned GPU servers, so a cost per token means the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.specs import param, spec_kind

HOURS_PER_MONTH = 24 * 30
HOURS_PER_YEAR = 365 * 24
SECONDS_PER_YEAR = 365 * 24 * 3600


@spec_kind("tco")
@dataclass(frozen=True, kw_only=True)
class TcoSpec:
    """Datacenter and economic constants of the TCO model (Barroso et al.)."""

    name: str = param(help="identifier")
    server_life_years: float = param(1.5, gt=0, unit="year", help="server lifetime")
    dc_capex_usd_per_W: float = param(10.0, ge=0, unit="USD/W", help="datacenter build cost")
    dc_amortization_years: float = param(12.0, gt=0, unit="year", help="datacenter depreciation")
    interest_rate: float = param(0.08, ge=0, lt=1, help="annual interest rate")
    dc_opex_usd_per_W_month: float = param(0.04, ge=0, unit="USD/W/month",
                                           help="datacenter operating cost")
    electricity_usd_per_kWh: float = param(0.067, ge=0, unit="USD/kWh", help="electricity")
    pue: float = param(1.5, ge=1, help="power usage effectiveness")
    server_opex_fraction: float = param(0.05, ge=0, help="server opex per $ of server cost")
    average_power_fraction: float = param(1.0, gt=0, le=1, help="average / peak server power")
    utilization_scales_opex: bool = param(
        True, help="scale power-proportional terms and server opex by the achieved utilisation "
        "(Chiplet Cloud v1's software phase); false: every term at full power")
    nre_usd: float = param(0.0, ge=0, unit="USD", help="chip NRE (masks, design, IP) to "
                           "amortise; 0 = not counted")
    nre_volume_chips: float = param(1e6, gt=0, help="chips deployed over which NRE is amortised")


def interest_paid(principal, annual_rate: float, years: float):
    """Total interest on a loan repaid in equal monthly instalments (annuity formula)."""
    n = years * 12.0
    r = annual_rate / 12.0
    if r == 0:
        return np.zeros_like(np.asarray(principal, dtype=float))
    growth = (1.0 + r) ** n
    payment = np.asarray(principal) * r * growth / (growth - 1.0)
    return payment * n - principal


def tco_terms(power_W, cost_usd, t: TcoSpec) -> dict[str, np.ndarray]:
    """Lifetime cost of one server at full power, term by term (Barroso et al., ch. 6)."""
    p = np.asarray(power_W, dtype=float)
    c = np.asarray(cost_usd, dtype=float)
    life = t.server_life_years
    dc_share = life / t.dc_amortization_years
    electricity = (t.electricity_usd_per_kWh * t.average_power_fraction / 1000.0
                   * HOURS_PER_MONTH * p * life * 12.0)
    return {
        "dc_amortization": t.dc_capex_usd_per_W * p * dc_share,
        "dc_interest": interest_paid(t.dc_capex_usd_per_W, t.interest_rate,
                                     t.dc_amortization_years) * p * dc_share,
        "dc_opex": t.dc_opex_usd_per_W_month * p * life * 12.0,
        "server_amortization": c,
        "server_interest": interest_paid(c, t.interest_rate, life),
        "server_opex": c * t.server_opex_fraction,
        "electricity": electricity,
        "pue_overhead": electricity * (t.pue - 1.0),
    }


FIXED_TERMS = ("server_amortization", "server_interest")


def server_tco(power_W, cost_usd, t: TcoSpec, utilization=1.0) -> np.ndarray:
    """Lifetime TCO of one server. With ``utilization_scales_opex`` every term but the server's
    amortisation and interest is scaled by the achieved utilisation (Chiplet Cloud v1)."""
    terms = tco_terms(power_W, cost_usd, t)
    fixed = sum(terms[k] for k in FIXED_TERMS)
    rest = sum(v for k, v in terms.items() if k not in FIXED_TERMS)
    u = np.asarray(utilization, dtype=float) if t.utilization_scales_opex else 1.0
    return fixed + rest * u


def nre_per_chip(t: TcoSpec) -> float:
    """NRE spread over the deployed chips (0 when not counted)."""
    return t.nre_usd / t.nre_volume_chips


def average_power_W(peak_power_W, t: TcoSpec, utilization=1.0):
    """The average wall power the TCO model charges electricity for: peak power x
    ``average_power_fraction``, x the achieved utilisation when ``utilization_scales_opex``
    (Chiplet Cloud v1's accounting). Energy per token divides this by the throughput, so that
    joules and the electricity in dollars count the same watts."""
    p = np.asarray(peak_power_W, dtype=float) * t.average_power_fraction
    if t.utilization_scales_opex:
        p = p * np.asarray(utilization, dtype=float)
    return p

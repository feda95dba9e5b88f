"""What serving on GPUs/TPUs costs per hour: rented by the device-hour, or owned.

Owned cost uses the same TCO model as Chiplet Cloud (after Barroso et al., *The Datacenter as a
Computer*; constants of the Chiplet Cloud authors): the server's price and wall power go in,
the lifetime TCO comes out, spread over the hours of the server's life. A replica that uses
part of a server pays its share (the other devices serve other replicas).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from hwsim.gpu_serving.spec import GpuSpec

log = logging.getLogger(__name__)

HOURS_PER_YEAR = 365 * 24

#: (server_power_W, server_cost_usd, utilization) -> (lifetime TCO in $, life in years)
TcoFn = Callable[[float, float, float], tuple[float, float]]


def rental_usd_per_hour(gpu: GpuSpec, devices: int) -> float:
    """Renting ``devices`` devices, per hour."""
    return devices * gpu.rental_usd_per_device_hour


def _chiplet_cloud_tco() -> TcoFn | None:
    """The Chiplet Cloud TCO model, adapted to :data:`TcoFn`; None while it is not installed."""
    try:
        from hwsim.chiplet_cloud import tco as cc_tco  # the shared TCO model
    except ImportError:
        return None
    adapter = getattr(cc_tco, "server_tco_for_serving", None)
    if adapter is not None:
        return adapter
    return _adapt(cc_tco)


def _adapt(cc_tco) -> TcoFn | None:  # filled in when hwsim.chiplet_cloud.tco lands
    return None


def owned_usd_per_hour(gpu: GpuSpec, devices: int, utilization: float,
                       tco: TcoFn | None = None) -> float:
    """Owning the servers that hold ``devices`` devices, per hour of their life (NaN when the
    spec carries no server price and power, or no TCO model is available)."""
    if not gpu.owned_price_known:
        return math.nan
    tco = tco or _chiplet_cloud_tco()
    if tco is None:
        log.warning("no TCO model available (hwsim.chiplet_cloud.tco); owned cost is NaN")
        return math.nan
    total, life_years = tco(gpu.server_power_W, gpu.server_price_usd, utilization)
    share = devices / gpu.devices_per_server
    return share * total / (life_years * HOURS_PER_YEAR)

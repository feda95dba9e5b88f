"""What serving on GPUs/TPUs costs per hour: rented by the device-hour, or owned.

Owned cost uses the same TCO model as Chiplet Cloud (after Barroso et al., *The Datacenter as a
Computer*; constants of the Chiplet Cloud authors): the server's price and wall power go in,
the lifetime TCO comes out, spread over the hours of the server's life. A replica that uses
part of a server pays its share (the other devices serve other replicas).
"""

from __future__ import annotations

import math

from hwsim.chiplet_cloud.cost import server_tco
from hwsim.chiplet_cloud.spec import TcoSpec
from hwsim.gpu_serving.spec import GpuSpec

HOURS_PER_YEAR = 365 * 24



def rental_usd_per_hour(gpu: GpuSpec, devices: int) -> float:
    """Renting ``devices`` devices, per hour."""
    return devices * gpu.rental_usd_per_device_hour


def default_tco() -> TcoSpec:
    """The Chiplet Cloud TCO constants (the ``tco`` kind's defaults)."""
    return TcoSpec(name="chiplet-cloud-v1")


def owned_usd_per_hour(gpu: GpuSpec, devices: int, utilization: float,
                       tco: TcoSpec | None = None) -> float:
    """Owning the servers that hold ``devices`` devices, per hour of their life; NaN when the
    spec carries no server price and power. ``utilization`` scales the power-proportional
    terms as Chiplet Cloud does (when the TCO spec says so)."""
    if not gpu.owned_price_known:
        return math.nan
    t = tco or default_tco()
    total = float(server_tco(gpu.server_power_W, gpu.server_price_usd, t, utilization))
    share = devices / gpu.devices_per_server
    return share * total / (t.server_life_years * HOURS_PER_YEAR)

"""What serving on GPUs/TPUs costs per hour: rented by the device-hour, or owned.

Owned cost uses the same TCO model as Chiplet Cloud (after Barroso et al., *The Datacenter as a
Computer*; constants of the Chiplet Cloud authors): the server's price and wall power go in,
the lifetime TCO comes out, spread over the hours of the server's life. A replica that uses
part of a server pays its share (the other devices serve other replicas).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwsim.errors import InputError
from hwsim.hw.gpu import GpuSpec
from hwsim.hw.tco import HOURS_PER_YEAR, TcoSpec, average_power_W, server_tco
from hwsim.llm import model as llm_model
from hwsim.llm.spec import LlmSpec


def rental_usd_per_hour(gpu: GpuSpec, devices: Any) -> Any:
    """Renting ``devices`` devices, per hour (arrays broadcast)."""
    return devices * gpu.rental_usd_per_device_hour


def default_tco() -> TcoSpec:
    """The Chiplet Cloud TCO constants (the ``tco`` kind's defaults)."""
    return TcoSpec(name="chiplet-cloud-v1")


def owned_usd_per_hour(gpu: GpuSpec, devices: Any, utilization: Any,
                       tco: TcoSpec | None = None) -> Any:
    """Owning the servers that hold ``devices`` devices, per hour of their life; NaN when the
    spec carries no server price and power. ``utilization`` scales the power-proportional
    terms as Chiplet Cloud does (when the TCO spec says so)."""
    if not gpu.owned_price_known:
        return math.nan
    t = tco or default_tco()
    total = server_tco(gpu.server_power_W, gpu.server_price_usd, t, utilization)
    share = devices / gpu.devices_per_server
    out = share * total / (t.server_life_years * HOURS_PER_YEAR)
    return float(out) if np.ndim(out) == 0 else out


def peak_power_W(gpu: GpuSpec, devices: Any) -> np.ndarray:
    """Peak wall power of ``devices`` devices: their share of the server's published wall power,
    else their TDP (devices only: host, fans and power conversion not counted)."""
    d = np.asarray(devices, dtype=float)
    if gpu.server_power_W > 0:
        return d / gpu.devices_per_server * gpu.server_power_W
    return d * gpu.tdp_W


def costs(gpu: GpuSpec, llm: LlmSpec, pricing: str, devices: Any, peak_flops: Any,
          throughput: Any, tco: TcoSpec | None = None, *, rental_rate: Any = None,
          processed_per_output: Any = 1.0, decode_throughput: Any = None) -> dict[str, Any]:
    """Devices, servers, utilisation, cost and energy per output token at ``throughput``
    output tokens/s; arrays broadcast.

    ``processed_per_output``: tokens processed per output token ((prompt + output) / output),
    so that the utilisation counts the prompts' FLOPs too (2 FLOPs per weight per token over
    ``peak_flops`` per device). ``rental_rate`` overrides the spec's $/device-hour (an array
    in a batch). With ``decode_throughput`` (the decode steady state) the ``decode_*`` cost is
    reported too."""
    if pricing == "owned" and not gpu.owned_price_known:
        raise InputError(f"pricing = 'owned' needs the server price and power of {gpu.name} "
                         "(server_price_usd and server_power_W > 0); none is published",
                         key="mapping.pricing", value="owned", has_value=True)
    t = tco or default_tco()
    thr = np.asarray(throughput, dtype=float)
    per_device_flops = np.asarray(devices) * np.asarray(peak_flops)
    util = thr * np.asarray(processed_per_output) * llm_model.flops_per_token(llm) \
        / per_device_flops
    rate = gpu.rental_usd_per_device_hour if rental_rate is None else rental_rate
    rent = devices * np.asarray(rate, dtype=float)
    own = (np.asarray(owned_usd_per_hour(gpu, devices, np.minimum(util, 1.0), tco))
           if gpu.owned_price_known else np.full(np.shape(util), math.nan))
    chosen = rent if pricing == "rental" else own

    def per_1k(usd_h: np.ndarray, tokens_per_s: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(tokens_per_s > 0, usd_h / 3600.0 / tokens_per_s * 1e3, math.inf)

    watts = average_power_W(peak_power_W(gpu, devices), t, np.minimum(util, 1.0))
    out = {
        "tco_usd_per_1k_tokens": per_1k(chosen, thr),
        "rental_usd_per_1k_tokens": per_1k(rent, thr),
        "owned_usd_per_1k_tokens": per_1k(own, thr),
        "usd_per_hour": chosen,
        "energy_J_per_token": np.where(thr > 0, watts / np.where(thr > 0, thr, 1.0), math.inf),
        "chips": np.asarray(devices, dtype=float),
        "tokens_per_gpu_s": thr / np.asarray(devices, dtype=float),
        "servers": np.ceil(np.asarray(devices, dtype=float) / gpu.devices_per_server),
        "server_cost_usd": gpu.server_price_usd if gpu.server_price_usd > 0 else math.nan,
        "server_power_W": gpu.server_power_W if gpu.server_power_W > 0 else math.nan,
        "utilization": util,
    }
    if decode_throughput is not None:
        dec = np.asarray(decode_throughput, dtype=float)
        dec_util = dec * llm_model.flops_per_token(llm) / per_device_flops
        own_dec = (np.asarray(owned_usd_per_hour(gpu, devices, np.minimum(dec_util, 1.0), tco))
                   if gpu.owned_price_known else np.full(np.shape(dec), math.nan))
        out["decode_tco_usd_per_1k_tokens"] = per_1k(rent if pricing == "rental" else own_dec,
                                                     dec)
    return out

"""Closed-form evaluator of GPU/TPU serving: one replica, saturated, no queueing
(:mod:`hwsim.serving.saturation` on the roofline step model), and its costs.
"""

from __future__ import annotations

import math

from hwsim import specs
from hwsim.chiplet_cloud.spec import TcoSpec
from hwsim.errors import InputError
from hwsim.gpu_serving.cost import owned_usd_per_hour, rental_usd_per_hour
from hwsim.gpu_serving.roofline import RooflineStepModel
from hwsim.llm import model as llm_model
from hwsim.serving.des import Lengths, lengths
from hwsim.serving.saturation import saturated
from hwsim.system import Inputs, Metrics


def cost_metrics(model: RooflineStepModel, throughput: float,
                 tco: TcoSpec | None = None) -> dict[str, float]:
    """Devices, servers, utilisation and cost per 1k tokens at ``throughput`` tokens/s."""
    gpu, mapping, llm = model.gpu, model.mapping, model.llm
    devices = mapping.devices
    util = throughput * llm_model.flops_per_token(llm) / (devices * model.peak_flops)
    rent = rental_usd_per_hour(gpu, devices)
    own = owned_usd_per_hour(gpu, devices, min(util, 1.0), tco)

    def per_1k(usd_h: float) -> float:
        return usd_h / 3600.0 / throughput * 1e3 if throughput > 0 else math.inf

    if mapping.pricing == "owned" and not gpu.owned_price_known:
        raise InputError(f"pricing = 'owned' needs the server price and power of {gpu.name} "
                         "(server_price_usd and server_power_W > 0); none is published",
                         key="mapping.pricing", value="owned", has_value=True)
    chosen = rent if mapping.pricing == "rental" else own
    return {
        "tco_usd_per_1k_tokens": per_1k(chosen),
        "rental_usd_per_1k_tokens": per_1k(rent),
        "owned_usd_per_1k_tokens": per_1k(own),
        "usd_per_hour": chosen,
        "chips": float(devices),
        "servers": float(math.ceil(devices / gpu.devices_per_server)),
        "server_cost_usd": gpu.server_price_usd if gpu.server_price_usd > 0 else math.nan,
        "server_power_W": gpu.server_power_W if gpu.server_power_W > 0 else math.nan,
        "utilization": util,
    }


def traffic_lengths(inputs: Inputs) -> Lengths:
    """Mean lengths and the longest context of the inputs' traffic (trace files under
    ``models/serving/`` resolve there)."""
    return lengths(inputs["traffic"], base_dir=specs.models_dir() / "serving")


def build(inputs: Inputs) -> RooflineStepModel:
    """The step model of the inputs, checked to fit in HBM at the longest context."""
    gpu, llm, mapping = inputs["device"], inputs["llm"], inputs["mapping"]
    model = RooflineStepModel.build(gpu, llm, mapping)
    model.check_fits(mapping.batch, traffic_lengths(inputs).longest_context)
    return model


def evaluate(inputs: Inputs) -> Metrics:
    """The analytical metrics of gpu-serving."""
    model = build(inputs)
    mapping, ln = inputs["mapping"], traffic_lengths(inputs)
    sat = saturated(model, mapping.batch, mapping.micro_batch_size, ln.mean_prompt,
                    ln.mean_output)
    out = {
        "latency_ms_per_token": sat["tpot_s"] * 1e3,
        "ttft_ms": sat["ttft_s"] * 1e3,
        "throughput_tokens_per_s": sat["throughput_tokens_per_s"],
    }
    out.update(cost_metrics(model, sat["throughput_tokens_per_s"], inputs.get("tco")))
    return out

"""Closed-form evaluator of GPU/TPU serving: one replica, saturated, no queueing, and its
costs.

:func:`evaluate` is the batch evaluator (:mod:`hwsim.gpu_serving.batch`) on one point, which
raises :class:`InfeasibleDesign` with the reason where the batch gives NaN. :func:`stepwise` is
the same closed forms through the generic per-stage :mod:`hwsim.serving.saturation` on
:class:`RooflineStepModel` (what the DES runs), kept as the reference the tests hold the batch
evaluator to.
"""

from __future__ import annotations

from hwsim import specs
from hwsim.errors import InfeasibleDesign, InputError
from hwsim.gpu_serving.cost import costs
from hwsim.gpu_serving.roofline import RooflineStepModel
from hwsim.hw.tco import TcoSpec
from hwsim.serving.des import Lengths, lengths
from hwsim.serving.saturation import saturated
from hwsim.system import Inputs, Metrics


def cost_metrics(model: RooflineStepModel, throughput: float,
                 tco: TcoSpec | None = None) -> dict[str, float]:
    """Devices, servers, utilisation and cost per 1k tokens at ``throughput`` tokens/s."""
    out = costs(model.gpu, model.llm, model.mapping.pricing, model.mapping.devices,
                model.peak_flops, throughput, tco)
    return {k: float(v) for k, v in out.items()}


def traffic_lengths(inputs: Inputs) -> Lengths:
    """Mean lengths and the longest context of the inputs' traffic (trace files under
    ``models/serving/`` resolve there)."""
    return lengths(inputs["traffic"], base_dir=specs.models_dir() / "serving")


def build(inputs: Inputs) -> RooflineStepModel:
    """The step model of the inputs, checked to fit in HBM at the longest context."""
    gpu, llm, mapping = inputs["device"], inputs["llm"], inputs["mapping"]
    model = RooflineStepModel.build(gpu, inputs["calibration"], llm, mapping)
    model.check_fits(mapping.batch, traffic_lengths(inputs).longest_context)
    return model


def explain(inputs: Inputs) -> str:
    """Why the design point of ``inputs`` is infeasible, with its numbers."""
    try:
        cost_metrics(build(inputs), 1.0, inputs.get("tco"))
    except (InfeasibleDesign, InputError) as exc:
        return str(exc)
    return ""


def stepwise(inputs: Inputs) -> Metrics:
    """The same metrics through :func:`hwsim.serving.saturation.saturated` on the per-stage
    step model (the reference of the batch evaluator)."""
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

"""Closed-form evaluator of GPU/TPU serving: one replica, saturated, no queueing, and its
costs.

:func:`evaluate` is the batch evaluator (:mod:`hwsim.gpu_serving.batch`) on one point, which
raises :class:`InfeasibleDesign` with the reason where the batch gives NaN. :func:`stepwise` is
the same closed forms through the generic per-stage :mod:`hwsim.serving.saturation` on
:class:`RooflineStepModel` (what the DES runs), kept as the reference the tests hold the batch
evaluator to.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.errors import InfeasibleDesign, InputError
from hwsim.gpu_serving.cost import costs
from hwsim.gpu_serving.roofline import RooflineStepModel
from hwsim.hw.tco import TcoSpec
from hwsim.serving import load
from hwsim.serving.des import Lengths, lengths
from hwsim.serving.saturation import open_loop, saturated
from hwsim.system import Inputs, Metrics


def cost_metrics(model: RooflineStepModel, throughput: float, tco: TcoSpec | None = None, *,
                 processed_per_output: float = 1.0,
                 decode_throughput: float | None = None) -> dict[str, float]:
    """Devices, servers, utilisation, cost and energy per output token of the deployment
    (``mapping.replicas`` replicas) at ``throughput`` output tokens/s over all of them
    (``processed_per_output``: (prompt + output) / output tokens)."""
    devices = model.mapping.devices * (model.mapping.replicas + model.mapping.prefill_replicas)
    out = costs(model.gpu, model.llm, model.mapping.pricing, devices,
                model.peak_flops, throughput, tco, processed_per_output=processed_per_output,
                decode_throughput=decode_throughput)
    return {k: float(v) for k, v in out.items()}


def traffic_lengths(inputs: Inputs) -> Lengths:
    """Mean lengths and the longest context of the inputs' traffic (trace files under
    ``models/serving/`` resolve there)."""
    return lengths(inputs["traffic"])


def build(inputs: Inputs) -> RooflineStepModel:
    """The step model of the inputs, checked to fit in HBM (the batch's KV cache, or with
    ``kv_overflow = "queue"`` at least one sequence's: :meth:`RooflineStepModel.
    concurrent_sequences`)."""
    gpu, llm, mapping = inputs["device"], inputs["llm"], inputs["mapping"]
    model = RooflineStepModel.build(gpu, inputs["calibration"], llm, mapping)
    concurrent(model, inputs)
    return model


def concurrent(model: RooflineStepModel, inputs: Inputs) -> int:
    """Sequences the replica of ``inputs`` runs at once (the batch, or what fits in KV
    memory); raises InfeasibleDesign when that is none or, without queueing, not the batch."""
    ln = traffic_lengths(inputs)
    return model.concurrent_sequences(ln.mean_prompt, ln.mean_output, ln.longest_context)


def explain(inputs: Inputs, short: str = "") -> str:
    """Why the design point of ``inputs`` is infeasible, with its numbers ("" when the step
    model finds nothing more to say than the batch's ``short`` reason)."""
    try:
        cost_metrics(build(inputs), 1.0, inputs.get("tco"))
    except (InfeasibleDesign, InputError) as exc:
        return str(exc)
    return ""


def stepwise(inputs: Inputs) -> Metrics:
    """The same metrics through :mod:`hwsim.serving.saturation` on the per-stage step model
    (the reference of the batch evaluator): saturated for closed traffic, the open-loop
    occupancy of :mod:`hwsim.serving.load` for Poisson and trace arrivals."""
    model = build(inputs)
    mapping, ln = inputs["mapping"], traffic_lengths(inputs)
    if mapping.max_batch_tokens > 0:
        raise InfeasibleDesign("chunked prefill (max_batch_tokens) is modelled by the batch "
                               "evaluator only")
    b = concurrent(model, inputs)  # what fits in KV memory (kv_overflow = "queue")
    m = min(mapping.micro_batch_size, b)
    sat = dict(saturated(model, b, m, ln.mean_prompt, ln.mean_output))
    if b < mapping.batch:  # closed traffic: the batch runs in waves, later ones wait
        waves = -(-mapping.batch // b)
        behind = (waves - 1) * (mapping.batch - waves * b / 2.0) / mapping.batch
        sat["ttft_s"] += behind * (sat["fill_s"] + (ln.mean_output - 1) * sat["tpot_s"])
    rate = load.arrival_rate(inputs["traffic"])
    replicas = mapping.replicas
    run = sat
    if mapping.prefill_replicas > 0:
        run = _disaggregated(model, inputs, b, rate)
        sat["fill_s"] = run["fill_s"]
        replicas = 1  # the throughput above is the deployment's
    elif rate is not None and math.isfinite(rate):  # each replica gets 1 / replicas of them
        run = open_loop(model, b, m, ln.mean_prompt, ln.mean_output, rate / replicas)
        if not run["stable"]:
            if inputs["traffic"].arrival != "trace":
                raise InfeasibleDesign("arrivals outpace the replica: the offered output rate "
                                       "is at or above its saturated capacity")
            run = sat  # a finite burst faster than the replica: saturated
    out = {
        "latency_ms_per_token": run["tpot_s"] * 1e3,
        "ttft_ms": run["ttft_s"] * 1e3,
        "throughput_tokens_per_s": run["throughput_tokens_per_s"] * replicas,
        "batch_prefill_ms": sat["fill_s"] * 1e3,
        "decode_throughput_tokens_per_s": sat["decode_throughput_tokens_per_s"]
        * mapping.replicas,
    }
    out.update(cost_metrics(model, out["throughput_tokens_per_s"], inputs.get("tco"),
                            processed_per_output=(ln.mean_prompt + ln.mean_output)
                            / ln.mean_output,
                            decode_throughput=out["decode_throughput_tokens_per_s"]))
    out["fits_in_memory"] = fits_in_memory(model, inputs)
    return out


def fits_in_memory(model: RooflineStepModel, inputs: Inputs) -> float:
    """1 when the whole batch's KV cache fits beside the (encoded) weights in the usable HBM of
    every device, else 0 (with ``kv_overflow = "queue"`` the point still runs, in waves)."""
    ln = traffic_lengths(inputs)
    return float(bool(model.kv_plan(ln.mean_prompt, ln.mean_output, ln.longest_context)
                      .batch_fits))


def _disaggregated(model: RooflineStepModel, inputs: Inputs, batch: int,
                   rate: float | None) -> dict[str, float]:
    """Prefill/decode disaggregation on the per-stage model (one stage): the closed forms of
    :func:`hwsim.gpu_serving.batch._disaggregated` fed with this model's step times."""
    from hwsim.gpu_serving.batch import _disaggregated as forms

    mapping, ln, gpu, cal = inputs["mapping"], traffic_lengths(inputs), model.gpu, model.cal
    if model.stages > 1:
        raise InfeasibleDesign("prefill/decode disaggregation is modelled for one pipeline "
                               "stage")
    lam = None if rate is None or not math.isfinite(rate) else np.asarray(rate, dtype=float)
    thr, tpot, ttft, fill, ok, why = forms(
        model.kernels, model.llm.layers, np.asarray(float(batch)),
        np.asarray(float(mapping.replicas)), np.asarray(float(mapping.prefill_replicas)),
        np.asarray(ln.mean_prompt), np.asarray(ln.mean_output), lam,
        np.asarray(gpu.network_bandwidth_GBps * 1e9 * cal.interconnect_efficiency),
        np.asarray(cal.interconnect_latency_us * 1e-6),
        np.asarray(model.prefill_s(0, 1, ln.mean_prompt)))
    if not bool(ok):
        raise InfeasibleDesign(str(why))
    return {"throughput_tokens_per_s": float(thr), "tpot_s": float(tpot),
            "ttft_s": float(ttft), "fill_s": float(fill)}

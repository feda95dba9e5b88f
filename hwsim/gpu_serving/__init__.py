"""GPU and TPU serving baselines (Chiplet Cloud's comparison points), on the shared LLM
performance model, priced rented or owned; request-level DES on :mod:`hwsim.serving`.

System ``gpu-serving``: inputs ``device`` (kind ``gpu``, datasheet figures), ``calibration``
(``gpu-calibration``, the step model's fitted constants for that device; default
``roofline-<device>``), ``llm`` (``llm``), ``mapping`` (``gpu-mapping``), ``traffic``
(``serving``) and ``tco`` (``tco``, the TCO constants Chiplet Cloud uses too, for owned
servers). The vectorised model is :mod:`hwsim.gpu_serving.batch`; the scalar evaluator is it on
one point.
"""

from __future__ import annotations

from hwsim.batch import BatchModel
from hwsim.gpu_serving.analytical import explain
from hwsim.gpu_serving.batch import BLOCK, VECTOR_KEYS, block
from hwsim.gpu_serving.spec import GpuCalibrationSpec, GpuMappingSpec
from hwsim.system import Metric, Role, System, register_system

__all__ = ["SYSTEM", "GpuCalibrationSpec", "GpuMappingSpec"]


def _des(inputs, *, seed: int = 0, trace=None):
    from hwsim.gpu_serving.des import evaluate

    return evaluate(inputs, seed=seed, trace=trace)


def _cases():
    from hwsim.gpu_serving.calibration import held_out_cases, validation_cases

    return [*validation_cases(), *held_out_cases()]


_DES = ("des",)

SYSTEM = register_system(System(
    name="gpu-serving",
    summary="LLM serving on GPUs/TPUs (A100, H100, TPUv4), rented or owned",
    roles=(
        Role("device", "gpu", "a100-sxm-80gb", "the accelerator and its server (datasheet)"),
        Role("calibration", "gpu-calibration", "roofline-{device}",
             "the roofline model's fitted constants for the device", matches=("device",),
             fallback="roofline-uncalibrated"),
        Role("llm", "llm", "gpt3-175b", "the LLM served"),
        Role("mapping", "gpu-mapping", "tp8-b16", "parallelism, batch, data types, pricing"),
        Role("traffic", "serving", "ctx2048", "requests, batching policy, SLO"),
        Role("tco", "tco", "barroso-v1", "TCO constants for owned servers (Chiplet Cloud's)"),
    ),
    metrics=(
        Metric("tco_usd_per_1k_tokens", "cost per 1k output tokens (mapping.pricing)"),
        Metric("rental_usd_per_1k_tokens", "cost per 1k output tokens, devices rented"),
        Metric("owned_usd_per_1k_tokens", "cost per 1k output tokens, servers owned "
               "(Chiplet Cloud TCO); NaN without a server price"),
        Metric("latency_ms_per_token", "time per output token (mean)"),
        Metric("ttft_ms", "time to first token (analytical: idle replica; DES: mean)"),
        Metric("throughput_tokens_per_s", "output tokens per second of one replica"),
        Metric("chips", "devices of one replica"),
        Metric("servers", "servers the devices occupy"),
        Metric("server_cost_usd", "price of one server; NaN when not published"),
        Metric("server_power_W", "wall power of one server; NaN when not published"),
        Metric("utilization", "achieved / peak FLOPs (2 FLOPs per weight per token)"),
        Metric("usd_per_hour", "what the replica costs per hour", fidelities=("analytical",)),
        Metric("ttft_p50_ms", "median time to first token", fidelities=_DES),
        Metric("ttft_p99_ms", "99th-percentile time to first token", fidelities=_DES),
        Metric("tpot_p50_ms", "median time per output token", fidelities=_DES),
        Metric("tpot_p99_ms", "99th-percentile time per output token", fidelities=_DES),
        Metric("goodput_tokens_per_s", "output tokens/s of requests meeting the SLO",
               fidelities=_DES),
        Metric("slo_attainment", "share of requests meeting the SLO", fidelities=_DES),
        Metric("tco_at_slo_usd_per_1k_tokens", "cost per 1k tokens that meet the SLO",
               fidelities=_DES),
        Metric("stage_utilization", "busy share of the pipeline stages", fidelities=_DES),
        Metric("requests", "requests measured", fidelities=_DES),
    ),
    batch=BatchModel(VECTOR_KEYS, block, block_points=BLOCK, explain=explain),
    des=_des,
    validation=_cases,
))

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
    from hwsim.gpu_serving.sparse_cases import cases as sparse_cases

    return [*validation_cases(), *held_out_cases(), *sparse_cases()]


_DES = ("des",)
_A = ("analytical",)

SYSTEM = register_system(System(
    name="gpu-serving",
    summary="LLM serving on GPUs/TPUs (A100, H100, H200, TPUv4), rented or owned",
    roles=(
        Role("device", "gpu", "a100-sxm-80gb", "the accelerator and its server (datasheet)"),
        Role("calibration", "gpu-calibration", "roofline-{device}",
             "the step model's fitted constants for the device", matches=("device",),
             fallback="roofline-uncalibrated"),
        Role("llm", "llm", "gpt3-175b", "the LLM served"),
        Role("mapping", "gpu-mapping", "tp8-b16", "parallelism, batch, data types, pricing"),
        Role("traffic", "serving", "ctx2048", "requests, batching policy, SLO"),
        Role("tco", "tco", "barroso-v1", "TCO constants for owned servers (Chiplet Cloud's)"),
    ),
    metrics=(
        Metric("tco_usd_per_1k_tokens", "rented or owned: mapping.pricing"),
        Metric("rental_usd_per_1k_tokens", "cost per 1000 output tokens with the devices "
               "rented, at throughput_tokens_per_s"),
        Metric("owned_usd_per_1k_tokens", "cost per 1000 output tokens with the servers owned "
               "(the tco role's TCO model), at throughput_tokens_per_s; NaN without a server "
               "price"),
        Metric("latency_ms_per_token"),
        Metric("ttft_ms"),
        Metric("throughput_tokens_per_s", "every replica (mapping.replicas) together"),
        Metric("energy_J_per_token", "the server's wall power, or the devices' TDP when no "
               "server power is published"),
        Metric("utilization"),
        Metric("chips", "devices of every replica"),
        Metric("tokens_per_gpu_s"),
        Metric("fits_in_memory", "the weights in mapping.weight_format's encoded size, the "
               "usable share hbm_usable_fraction; with kv_overflow = 'queue' a 0 still runs, "
               "in waves, with 'infeasible' it is an infeasible point"),
        Metric("servers"),
        Metric("server_cost_usd"),
        Metric("server_power_W"),
        Metric("usd_per_hour", "what the replicas cost per hour", fidelities=_A),
        Metric("decode_tco_usd_per_1k_tokens", fidelities=_A),
        Metric("decode_throughput_tokens_per_s", "every replica together", fidelities=_A),
        Metric("batch_prefill_ms", fidelities=_A),
        Metric("ttft_p50_ms", fidelities=_DES),
        Metric("ttft_p99_ms", fidelities=_DES),
        Metric("tpot_p50_ms", fidelities=_DES),
        Metric("tpot_p99_ms", fidelities=_DES),
        Metric("goodput_tokens_per_s", fidelities=_DES),
        Metric("slo_attainment", fidelities=_DES),
        Metric("tco_at_slo_usd_per_1k_tokens", fidelities=_DES),
        Metric("stage_utilization", fidelities=_DES),
        Metric("requests", fidelities=_DES),
    ),
    batch=BatchModel(VECTOR_KEYS, block, block_points=BLOCK, explain=explain),
    des=_des,
    validation=_cases,
))

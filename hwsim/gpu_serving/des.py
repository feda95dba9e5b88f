"""The DES evaluator of gpu-serving: :func:`hwsim.serving.serve` on the step model."""

from __future__ import annotations

from typing import Any

from hwsim.errors import InfeasibleDesign
from hwsim.gpu_serving.analytical import (
    build,
    concurrent,
    cost_metrics,
    fits_in_memory,
    traffic_lengths,
)
from hwsim.serving.des import serve
from hwsim.system import Inputs, Metrics


def evaluate(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> Metrics:
    """Serve the traffic on ``mapping.replicas`` replicas behind the mapping's router; report
    latency percentiles, throughput and cost."""
    mapping = inputs["mapping"]
    if mapping.max_batch_tokens > 0 and (mapping.pipeline_parallel > 1
                                         or mapping.prefill_replicas):
        raise InfeasibleDesign("chunked prefill (max_batch_tokens) is modelled for one "
                               "pipeline stage without disaggregation")
    if mapping.max_batch_tokens > 0 and inputs["traffic"].batching != "continuous":
        raise InfeasibleDesign("chunked prefill (max_batch_tokens) needs continuous batching")
    model = build(inputs)
    # the KV cache bounds the sequences in flight; with kv_overflow = "queue" the rest of the
    # batch waits in the queue for a free slot (never served beyond what fits)
    batch = concurrent(model, inputs)
    disagg = {}
    if mapping.prefill_replicas:
        if model.stages > 1:
            raise InfeasibleDesign("prefill/decode disaggregation is modelled for one "
                                   "pipeline stage")
        # each device sends its shard of the KV cache over its own network link
        cal, gpu = inputs["calibration"], inputs["device"]
        disagg = {"prefill_replicas": mapping.prefill_replicas,
                  "kv_bytes_per_token": float(model.kernels.kv_bytes(model.llm.layers, 1, 1)),
                  "kv_link": (gpu.network_bandwidth_GBps * 1e9 * cal.interconnect_efficiency,
                              cal.interconnect_latency_us * 1e-6)}
    first = serve(model, inputs["traffic"], batch=batch,
                  micro_batch=min(mapping.micro_batch_size, batch), seed=seed, trace=trace,
                  replicas=mapping.replicas, router=mapping.router,
                  max_batch_tokens=mapping.max_batch_tokens, **disagg)
    ln = traffic_lengths(inputs)
    costs = cost_metrics(model, first.throughput_tokens_per_s, inputs.get("tco"),
                         processed_per_output=(ln.mean_prompt + ln.mean_output) / ln.mean_output)
    usd_h = costs["usd_per_hour"]
    out = first.metrics()
    rate, good = first.throughput_tokens_per_s, first.goodput_tokens_per_s
    out["tco_usd_per_1k_tokens"] = usd_h / 3600.0 / rate * 1e3 if rate > 0 else float("inf")
    out["tco_at_slo_usd_per_1k_tokens"] = (usd_h / 3600.0 / good * 1e3 if good > 0
                                           else float("inf"))
    for k in ("rental_usd_per_1k_tokens", "owned_usd_per_1k_tokens", "chips", "servers",
              "server_cost_usd", "server_power_W", "utilization", "energy_J_per_token",
              "tokens_per_gpu_s"):
        out[k] = costs[k]
    out["fits_in_memory"] = fits_in_memory(model, inputs)
    return out


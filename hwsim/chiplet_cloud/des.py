"""The DES evaluator of chiplet-cloud: request-level serving (:func:`hwsim.serving.serve`) on the
step times of the shared performance model (:class:`hwsim.serving.PerfStepModel`).

The design point's mapping is the one the analytical evaluator picks (the TCO-best pipeline
depth and micro-batch when the mapping spec leaves them at 0); the DES then serves the
``traffic`` spec's requests on that one deployment: arrivals, continuous or static batching,
micro-batches flowing through the pipeline stages. Stage-to-stage transfers are folded into the
stage times, as :func:`hwsim.llm.perf.decode_step` does, so at saturation without queueing the
DES reproduces the analytical decode step. TCO and energy per token use the utilisation the DES
achieved (prompt and output tokens), through the same cost function as the analytical evaluator
(:func:`hwsim.chiplet_cloud.model.deployment_cost`).
"""

from __future__ import annotations

import logging
from typing import Any

from hwsim.chiplet_cloud import cost
from hwsim.chiplet_cloud.evaluate import infeasible_reason
from hwsim.chiplet_cloud.model import deployment_cost, links
from hwsim.errors import InfeasibleDesign
from hwsim.llm.model import layer_shape
from hwsim.llm.perf import Device
from hwsim.serving import PerfStepModel, serve
from hwsim.serving.des import lengths
from hwsim.system import Inputs, Metrics

log = logging.getLogger(__name__)


def step_model(inputs: Inputs, tp: int, pp: int) -> PerfStepModel:
    """Per-stage step times of ``tp`` x ``pp`` chips of the design point."""
    llm, asic, srv, mp = inputs["llm"], inputs["chip"], inputs["server"], inputs["mapping"]
    shape = layer_shape(llm, simplified=mp.simplified_layers, bytes_per_value=asic.bytes_per_value)
    ch = cost.chip(asic)
    _, tp_bw, pp_bw = links(tp, pp, srv.chips, srv)
    dev = Device(peak_flops=float(ch.tops) * 1e12, tp_link_Bps=float(tp_bw),
                 pp_link_Bps=float(pp_bw), link_latency_s=srv.link_latency_us * 1e-6,
                 utilization_model=mp.utilization_model, clock_Hz=asic.clock_GHz * 1e9)
    return PerfStepModel(shape=shape, device=dev, tp=tp, pp=pp, attention=mp.attention,
                         fold_transfers=True)


def evaluate(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> Metrics:
    """Serve ``traffic`` on the design point; latency percentiles, throughput and TCO/token."""
    from hwsim.system import get_system

    # the deployment (mapping, chips, prices) is the analytical evaluator's, which does not
    # depend on the arrival rate; with the rate at 0 no offered load is refused, so the DES
    # serves the real traffic on it, overload included
    system = get_system("chiplet-cloud")
    res = system.analytical_batch(inputs, {"traffic.arrival_rate_per_s": 0.0})
    if res.reasons[0]:
        raise InfeasibleDesign(infeasible_reason(inputs, str(res.reasons[0])))
    a = {k: float(v[0]) for k, v in res.items()}
    traffic, mp, tco = inputs["traffic"], inputs["mapping"], inputs["tco"]
    ln = lengths(traffic)
    held = mp.context_tokens or ln.longest_context
    if ln.longest_context > held:
        log.warning("requests of up to %d tokens exceed the %d-token KV cache the mapping holds",
                    ln.longest_context, held)
    tp, pp, micro = int(a["tp"]), int(a["pp"]), int(a["micro_batch"])
    res = serve(step_model(inputs, tp, pp), traffic, batch=mp.batch, micro_batch=micro,
                seed=seed, trace=trace)
    out = res.metrics()
    rate = res.throughput_tokens_per_s
    shape = layer_shape(inputs["llm"], simplified=mp.simplified_layers)
    # the chips also worked on the prompts: (prompt + output) / output tokens per output token
    per_output = (ln.mean_prompt + ln.mean_output) / ln.mean_output
    util = rate * per_output * shape.flops_per_token / (a["chips"] * a["chip_tops"] * 1e12)
    tco_1k, energy = deployment_cost(tco, throughput=rate, utilization=util, chips=a["chips"],
                                     servers=a["servers"], server_power_W=a["server_power_W"],
                                     server_cost_usd=a["server_cost_usd"])
    good = res.goodput_tokens_per_s
    out["tco_usd_per_1k_tokens"] = float(tco_1k) if rate > 0 else float("inf")
    out["tco_at_slo_usd_per_1k_tokens"] = (float(tco_1k) * rate / good if good > 0
                                           else float("inf"))
    out["energy_J_per_token"] = float(energy) if rate > 0 else float("inf")
    out["utilization"] = util
    for k in ("chips", "servers", "tp", "pp", "micro_batch", "die_area_mm2", "chip_tops",
              "chip_sram_MB", "server_cost_usd", "server_power_W"):
        out[k] = a[k]
    return out

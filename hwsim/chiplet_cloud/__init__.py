"""Chiplet Cloud: TCO per token of chiplet-ASIC supercomputers serving LLMs.

After Peng et al., "Chiplet Cloud: Building AI Supercomputers for Serving Large Generative
Language Models" (arXiv 2307.02666). Inputs (roles): the LLM (``llm``), the chiplet (``asic``),
the server (``server``), the datacenter economics (``tco``) and the mapping (``cc-mapping``).

- :mod:`.cost`: dies per wafer, yield, die/package cost, chip area split, server BOM, TCO;
- :mod:`.thermal`: the lane air-cooling limit and heat-sink cost;
- :mod:`.model`: placing an LLM on servers and its TCO per token (performance from
  :mod:`hwsim.llm.perf`);
- :mod:`.search`: the paper's two-phase search, exhaustive and vectorised;
- :mod:`.evaluate`: the system's ``analytical`` and ``analytical_batch`` evaluators;
- :mod:`.des`: request-level serving (``hwsim.serving``) on the same per-stage step times;
- :mod:`.validation`: cases against the paper's numbers.
"""

from __future__ import annotations

from hwsim.batch import BatchModel
from hwsim.chiplet_cloud.evaluate import METRICS, VECTOR_KEYS, block, infeasible_reason
from hwsim.chiplet_cloud.spec import AsicSpec, CcMappingSpec, ServerSpec
from hwsim.system import Metric, Role, System, register_system

__all__ = ["SYSTEM", "AsicSpec", "CcMappingSpec", "ServerSpec"]


def _des(inputs, *, seed: int = 0, trace=None):
    from hwsim.chiplet_cloud.des import evaluate

    return evaluate(inputs, seed=seed, trace=trace)


BOTH = ("analytical", "des")
#: the analytical metrics the DES reports too (same names, same meanings: hwsim.metrics)
SHARED = {"tco_usd_per_1k_tokens", "latency_ms_per_token", "throughput_tokens_per_s", "ttft_ms",
          "energy_J_per_token", "utilization", "chips", "servers", "tp", "pp", "micro_batch",
          "die_area_mm2", "chip_tops", "chip_sram_MB", "server_cost_usd", "server_power_W"}
DES_METRICS = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
               "goodput_tokens_per_s", "slo_attainment", "stage_utilization", "requests",
               "tco_at_slo_usd_per_1k_tokens")


def _cases():
    from pathlib import Path

    from hwsim.chiplet_cloud.validation import cases
    from hwsim.validation import load_cases

    return cases() + load_cases("chiplet-cloud", Path(__file__).with_name("validation.toml"))


SYSTEM = register_system(System(
    name="chiplet-cloud",
    summary="chiplet-ASIC LLM serving: chip/server cost, TCO per token, two-phase search",
    roles=(
        Role("llm", "llm", "gpt3-175b", "the model served"),
        Role("chip", "asic", "cc-7nm-v1", "the chiplet: die, technology, package"),
        Role("server", "server", "cc-server-v1", "lanes of chiplets, BOM, cooling, links"),
        Role("tco", "tco", "barroso-v1", "datacenter and economic constants"),
        Role("mapping", "cc-mapping", "auto", "tensor/pipeline parallelism, batch, context"),
        Role("traffic", "serving", "ctx2048", "requests (arrivals, prompt and output lengths), "
             "batching policy, SLO"),
    ),
    metrics=tuple(Metric(name, help, fidelities=BOTH if name in SHARED else ("analytical",))
                  for name, help in METRICS)
    + tuple(Metric(name, fidelities=("des",)) for name in DES_METRICS),
    batch=BatchModel(VECTOR_KEYS, block, explain=infeasible_reason),
    des=_des,
    validation=_cases,
))

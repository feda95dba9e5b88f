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
- :mod:`.validation`: cases against the paper's numbers.
"""

from __future__ import annotations

from hwsim.chiplet_cloud.evaluate import METRICS, analytical, analytical_batch
from hwsim.chiplet_cloud.spec import AsicSpec, CcMappingSpec, ServerSpec, TcoSpec
from hwsim.system import Metric, Role, System, register_system

__all__ = ["SYSTEM", "AsicSpec", "CcMappingSpec", "ServerSpec", "TcoSpec"]


def _cases():
    from hwsim.chiplet_cloud.validation import cases

    return cases()


SYSTEM = register_system(System(
    name="chiplet-cloud",
    summary="chiplet-ASIC LLM serving: chip/server cost, TCO per token, two-phase search",
    roles=(
        Role("llm", "llm", "gpt3-175b", "the model served"),
        Role("chip", "asic", "cc-7nm-v1", "the chiplet: die, technology, package"),
        Role("server", "server", "cc-server-v1", "lanes of chiplets, BOM, cooling, links"),
        Role("tco", "tco", "barroso-v1", "datacenter and economic constants"),
        Role("mapping", "cc-mapping", "auto", "tensor/pipeline parallelism, batch, context"),
    ),
    metrics=tuple(Metric(name, help, fidelities=("analytical",)) for name, help in METRICS),
    analytical=analytical,
    analytical_batch=analytical_batch,
    validation=_cases,
))

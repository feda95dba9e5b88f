"""One LLM mapped on Chiplet Cloud servers: capacity, performance, TCO per token (vectorised).

The performance itself is :mod:`hwsim.llm.perf` (shared with the GPU/TPU baselines); this module
places the model: how many chips hold a pipeline stage, which links its collectives and its
stage-to-stage transfers cross, how many servers the mapping occupies, and what that costs.

Placement (Chiplet Cloud v1, arXiv 2307.02666 sec. 5; the authors' ``generate_mappings``): the
weights (at the CC-MEM storage factor) plus ``batch`` sequences of KV cache are split evenly over
``pp`` stages; a stage runs on ``tp`` chips, either whole servers or an equal share of one. The
tensor-parallel ring runs over package links when a stage fits in a server, else over Ethernet;
stage boundaries inside a server use package links and the others Ethernet.

TCO per token: the occupied servers' lifetime TCO (:func:`~hwsim.hw.tco.server_tco`,
the power-proportional part scaled by the achieved utilisation in the v1 accounting), plus NRE
per chip when counted, over the tokens served in the servers' life.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.chiplet_cloud.spec import AsicSpec, ServerSpec
from hwsim.hw.tco import SECONDS_PER_YEAR, TcoSpec, average_power_W, nre_per_chip, tco_terms
from hwsim.llm.model import LayerShape, embedding_params
from hwsim.llm.perf import Device, Mapping, decode_step, prefill
from hwsim.llm.spec import LlmSpec


@dataclass(frozen=True)
class Workload:
    """What placement needs from the LLM: its layer shape and the bytes it must store."""

    shape: LayerShape
    #: weights stored (after the CC-MEM storage factor), bytes
    weight_bytes: float
    #: KV cache of one sequence of one token, all layers, bytes
    kv_bytes_per_token: float


def workload(llm: LlmSpec, shape: LayerShape, storage_factor: float = 1.0,
             embeddings: bool = True) -> Workload:
    """The bytes to hold: GEMM weights (+ embeddings unless v1's simplified model) and KV."""
    w = shape.weight_bytes
    if embeddings:
        w += embedding_params(llm) * shape.bytes_per_value
    return Workload(shape=shape, weight_bytes=w * storage_factor,
                    kv_bytes_per_token=shape.layers * shape.kv_bytes_per_token)


def memory_MB(wl: Workload, batch, context) -> np.ndarray:
    """Weights plus the KV cache of ``batch`` sequences of ``context`` tokens, in MB."""
    return (wl.weight_bytes + np.asarray(batch, float) * np.asarray(context, float)
            * wl.kv_bytes_per_token) / 1e6


def links(tp, pp, chips_per_server, srv: ServerSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(servers occupied, tensor-parallel link B/s, effective stage-to-stage link B/s)."""
    tp = np.asarray(tp, float)
    pp = np.asarray(pp, float)
    c = np.asarray(chips_per_server, float)
    chip_bw = srv.chip_link_GBps * 1e9
    net_bw = srv.server_link_GBps * 1e9
    whole = tp >= c
    stages_per_server = np.where(whole, 1.0, np.floor(c / np.maximum(tp, 1.0)))
    servers = np.where(whole, np.ceil(tp / c) * pp, np.ceil(pp / stages_per_server))
    tp_bw = np.where(tp > c, net_bw, chip_bw)
    crossings = np.where(whole, pp - 1.0, servers - 1.0)
    inner = np.maximum(pp - 1.0 - crossings, 0.0)
    mixed = (pp - 1.0) / np.maximum(crossings / net_bw + inner / chip_bw, 1e-300)
    # the last stage's output leaves over the network; a single stage has only that transfer
    pp_bw = np.where(whole | (pp <= 1), net_bw, mixed)
    return servers, tp_bw, pp_bw


def evaluate(
    wl: Workload, asic: AsicSpec, srv: ServerSpec, tco: TcoSpec, *,
    chip_tops, chip_sram_MB, chips_per_server, server_power_W, server_cost_usd,
    tp, pp, batch, micro_batch, context, kv_len=None, prompt=None, attention: bool = True,
    utilization_model: str = "v1-systolic",
) -> dict[str, np.ndarray]:
    """Decode steady-state metrics of mappings (every argument may be an array; they
    broadcast): ``context`` tokens of KV cache are held per sequence, the decode step reads
    ``kv_len`` of them (default: all).

    Returns metric arrays plus ``feasible`` (the stage fits in its chips' SRAM).
    """
    tp = np.asarray(tp, float)
    pp = np.asarray(pp, float)
    mem = memory_MB(wl, batch, context)
    stage_mem = mem / pp
    feasible = stage_mem <= tp * np.asarray(chip_sram_MB) * (1 + 1e-12)
    servers, tp_bw, pp_bw = links(tp, pp, chips_per_server, srv)
    dev = Device(peak_flops=np.asarray(chip_tops) * 1e12, tp_link_Bps=tp_bw, pp_link_Bps=pp_bw,
                 link_latency_s=srv.link_latency_us * 1e-6, utilization_model=utilization_model,
                 clock_Hz=asic.clock_GHz * 1e9)
    mp = Mapping(tp=tp, pp=pp, batch=batch, micro_batch=micro_batch)
    step = decode_step(wl.shape, dev, mp, kv_len=context if kv_len is None else kv_len,
                       attention=attention)
    tput = step.throughput_tokens_per_s
    peak = servers * np.asarray(chips_per_server) * np.asarray(chip_tops) * 1e12
    util = tput * wl.shape.flops_per_token / peak
    terms = tco_terms(server_power_W, server_cost_usd, tco)
    fixed = terms["server_amortization"] + terms["server_interest"]
    rest = sum(v for k, v in terms.items() if k not in ("server_amortization", "server_interest"))
    per_server = fixed + rest * (util if tco.utilization_scales_opex else 1.0)
    total = servers * per_server + servers * np.asarray(chips_per_server) * nre_per_chip(tco)
    life_s = tco.server_life_years * SECONDS_PER_YEAR
    out = {
        "decode_tco_usd_per_1k_tokens": 1000.0 * total / life_s / tput,
        "latency_ms_per_token": step.latency_s * 1e3,
        "decode_throughput_tokens_per_s": tput,
        "utilization": util,
        "servers": servers,
        "chips": servers * np.asarray(chips_per_server),
        "tp": tp,
        "pp": pp,
        "tco_usd": total,
        "compute_ms_per_token": step.compute_s * 1e3,
        "comm_ms_per_token": step.comm_s * 1e3,
        "memory_GB": mem / 1e3,
        "feasible": feasible,
    }
    if prompt is not None:
        pf = prefill(wl.shape, dev, mp, prompt_tokens=prompt, attention=attention)
        out["prefill_ms"] = pf.latency_s * 1e3
    return out


def prefill_ms(wl: Workload, asic: AsicSpec, srv: ServerSpec, *, chip_tops, chips_per_server,
               tp, pp, batch, micro_batch, prompt, attention: bool = True,
               utilization_model: str = "v1-systolic") -> np.ndarray:
    """Prefill time of the batch's prompts on a mapping (time to first token, no queueing)."""
    _, tp_bw, pp_bw = links(tp, pp, chips_per_server, srv)
    dev = Device(peak_flops=np.asarray(chip_tops) * 1e12, tp_link_Bps=tp_bw, pp_link_Bps=pp_bw,
                 link_latency_s=srv.link_latency_us * 1e-6, utilization_model=utilization_model,
                 clock_Hz=asic.clock_GHz * 1e9)
    mp = Mapping(tp=tp, pp=pp, batch=batch, micro_batch=micro_batch)
    return prefill(wl.shape, dev, mp, prompt_tokens=prompt, attention=attention).latency_s * 1e3


def deployment_cost(tco: TcoSpec, *, throughput, utilization, chips, servers, server_power_W,
                    server_cost_usd) -> tuple[np.ndarray, np.ndarray]:
    """(TCO USD per 1K output tokens, energy J per output token) of a deployment delivering
    ``throughput`` output tokens/s at ``utilization``: the occupied servers' lifetime TCO (the
    power-proportional terms scaled by the utilisation when the TCO spec says so) plus NRE per
    chip, over the tokens of the servers' life; the energy is the average power the TCO
    charges electricity for over the throughput."""
    thr = np.asarray(throughput, dtype=float)
    util = np.asarray(utilization, dtype=float)
    terms = tco_terms(server_power_W, server_cost_usd, tco)
    fixed = terms["server_amortization"] + terms["server_interest"]
    rest = sum(v for k, v in terms.items() if k not in ("server_amortization", "server_interest"))
    per_server = fixed + rest * (util if tco.utilization_scales_opex else 1.0)
    total = np.asarray(servers) * per_server + np.asarray(chips) * nre_per_chip(tco)
    life_s = tco.server_life_years * SECONDS_PER_YEAR
    watts = average_power_W(np.asarray(servers) * np.asarray(server_power_W), tco, util)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1000.0 * total / life_s / thr, watts / thr


def end_to_end(tco: TcoSpec, *, prefill_ms_, latency_ms, batch, prompt, output, flops_per_token,
               chips, servers, chip_tops, server_power_W, server_cost_usd
               ) -> tuple[np.ndarray, np.ndarray]:
    """(output tokens/s, TCO USD per 1K output tokens) of a saturated deployment: a static
    batch prefills ``prompt`` tokens per sequence (which yields each sequence's first token),
    then decodes ``output - 1`` steps; the utilisation that scales the power-proportional TCO
    counts prompt and output tokens."""
    cycle_s = (np.asarray(prefill_ms_) + (np.asarray(output) - 1.0)
               * np.asarray(latency_ms)) / 1e3
    tput = np.asarray(batch) * np.asarray(output) / cycle_s
    peak = np.asarray(chips) * np.asarray(chip_tops) * 1e12
    util = (np.asarray(batch) * (np.asarray(prompt) + np.asarray(output)) * flops_per_token
            / cycle_s / peak)
    per_1k, _ = deployment_cost(tco, throughput=tput, utilization=util, chips=chips,
                                servers=servers, server_power_W=server_power_W,
                                server_cost_usd=server_cost_usd)
    return tput, per_1k

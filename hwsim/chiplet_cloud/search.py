"""Chiplet Cloud's two-phase design search, exhaustive and vectorised.

Phase 1 (hardware): every (die area, chips per lane, MAC area ratio) of the space is elaborated
into a server (:func:`~hwsim.chiplet_cloud.cost.server`) and the valid ones are kept: the chip's
floorplan and power density, the lane's thermal limit, the chip-power cap, the lane silicon
bounds. Phase 2 (software): for each LLM, every mapping of it onto every valid server is
evaluated: pipeline stages ``pp`` dividing the layer count, ``tp`` chips per stage (whole
servers, or an equal share of one: ``chips / k`` for ``k`` stages per server), batch and
micro-batch, context length; mappings whose stage does not fit in SRAM are dropped (Chiplet
Cloud v1, arXiv 2307.02666 sec. 5).

The whole of phase 2 is numpy over a flat table of candidates, in chunks, so the paper's v1 space
(about a thousand servers, millions of mappings) takes seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hwsim.chiplet_cloud import cost
from hwsim.chiplet_cloud.model import (
    Workload,
    end_to_end,
    evaluate,
    memory_MB,
    prefill_ms,
    workload,
)
from hwsim.chiplet_cloud.spec import AsicSpec, ServerSpec
from hwsim.errors import InfeasibleDesign
from hwsim.hw.tco import TcoSpec
from hwsim.llm.model import layer_shape
from hwsim.llm.spec import LlmSpec

log = logging.getLogger(__name__)

#: Chiplet Cloud v1's hardware space (authors' ``chiplet_system_config.py`` at f194ed6)
V1_DIE_AREAS_MM2 = tuple(float(a) for a in range(20, 801, 20))
V1_CHIPS_PER_LANE = (1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32)
V1_MAC_AREA_RATIOS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35,
                      0.4, 0.5, 0.6)
#: batch and micro-batch sizes of v1's mapping search (``opt_mapping.py``)
V1_BATCHES = tuple(2**i for i in range(11))


@dataclass(frozen=True)
class HardwareSpace:
    """The phase-1 grid."""

    die_areas_mm2: Sequence[float] = V1_DIE_AREAS_MM2
    chips_per_lane: Sequence[int] = V1_CHIPS_PER_LANE
    mac_area_ratios: Sequence[float] = V1_MAC_AREA_RATIOS


@dataclass(frozen=True)
class MappingSpace:
    """The phase-2 grid and the model options."""

    batches: Sequence[int] = V1_BATCHES
    micro_batches: Sequence[int] = V1_BATCHES
    contexts: Sequence[int] = (2048,)
    attention: bool = False
    simplified_layers: bool = True
    utilization_model: str = "v1-systolic"
    #: "decode": v1's TCO per token of decode steps; "e2e": a static batch's prefill of
    #: ``prompt_tokens`` plus ``output_tokens`` decode steps (TCO per generated token)
    objective: str = "decode"
    prompt_tokens: int = 1920
    output_tokens: int = 128

    def __post_init__(self) -> None:
        if self.objective not in ("decode", "e2e"):
            raise ValueError(f"objective {self.objective!r}: expected 'decode' or 'e2e'")


@dataclass(frozen=True)
class Servers:
    """Phase 1's result: one entry per valid server design (numpy arrays)."""

    die_area_mm2: np.ndarray
    mac_area_ratio: np.ndarray
    chips_per_lane: np.ndarray
    chips: np.ndarray
    chip_tops: np.ndarray
    chip_sram_MB: np.ndarray
    chip_power_W: np.ndarray
    power_W: np.ndarray
    cost_usd: np.ndarray
    evaluated: int

    def __len__(self) -> int:
        return len(self.chips)


def phase1(asic: AsicSpec, srv: ServerSpec, space: HardwareSpace = HardwareSpace()) -> Servers:
    """Every valid server of the hardware space."""
    a, n, r = np.meshgrid(np.asarray(space.die_areas_mm2, float),
                          np.asarray(space.chips_per_lane), np.asarray(space.mac_area_ratios,
                                                                       float), indexing="ij")
    a, n, r = a.ravel(), n.ravel(), r.ravel()
    lane = a * n
    pre = (lane >= srv.lane_silicon_min_mm2) & (lane <= srv.lane_silicon_max_mm2)
    a, n, r = a[pre], n[pre], r[pre]
    s = cost.server(asic, srv, a, r, n)
    ch = cost.chip(asic, a, r)
    v = s.valid
    log.debug("phase 1: %d of %d server designs valid", int(v.sum()), a.size)
    return Servers(die_area_mm2=a[v], mac_area_ratio=r[v], chips_per_lane=n[v],
                   chips=s.chips[v], chip_tops=ch.tops[v], chip_sram_MB=ch.sram_MB[v],
                   chip_power_W=ch.power_W[v], power_W=s.power_W[v], cost_usd=s.cost_usd[v],
                   evaluated=int(a.size))


def _divisors(n: int) -> list[int]:
    return [i for i in range(1, n + 1) if n % i == 0]


def stage_options(stage_mem_MB, server_sram_MB, chips_per_server) -> tuple[np.ndarray, ...]:
    """v1's tensor-parallel options for one stage, as (row index, tp) pairs.

    A stage larger than half a server takes ``ceil(stage / server)`` whole servers; otherwise
    ``k`` stages share a server, for every ``k`` dividing its chips with ``k`` stages fitting.
    """
    stage = np.asarray(stage_mem_MB, float)
    sram = np.asarray(server_sram_MB, float)
    chips = np.asarray(chips_per_server).astype(int)
    per_server = sram / stage
    big = per_server < 2
    rows = [np.nonzero(big)[0]]
    tps = [np.ceil(stage[big] / sram[big]) * chips[big]]
    small = np.nonzero(~big)[0]
    kmax = np.floor(per_server[small]).astype(int)
    for k in range(1, int(kmax.max(initial=0)) + 1):
        sel = small[(kmax >= k) & (chips[small] % k == 0)]
        rows.append(sel)
        tps.append(chips[sel] / k)
    return np.concatenate(rows), np.concatenate(tps)


@dataclass(frozen=True)
class SearchResult:
    """The optimum of phase 2 and the TCO-latency Pareto front (``objective`` is the TCO per
    1K tokens the search minimised: decode-only or end-to-end)."""

    best: dict[str, float]
    best_latency: dict[str, float]
    pareto: dict[str, np.ndarray]
    servers_valid: int
    servers_evaluated: int
    mappings_evaluated: int
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


_KEEP = ("decode_tco_usd_per_1k_tokens", "latency_ms_per_token", "decode_throughput_tokens_per_s",
         "utilization", "servers", "chips", "tp", "pp", "tco_usd", "objective")


def _pareto(tco: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both TCO and latency."""
    order = np.lexsort((lat, tco))
    best_lat = np.minimum.accumulate(lat[order])
    keep = np.ones(len(order), bool)
    keep[1:] = lat[order][1:] < best_lat[:-1]
    return order[keep]


def phase2(llm: LlmSpec, servers: Servers, asic: AsicSpec, srv: ServerSpec, tco: TcoSpec,
           space: MappingSpace = MappingSpace(), chunk: int = 400_000) -> SearchResult:
    """Every mapping of ``llm`` on every server of ``servers``; the TCO optimum and the front."""
    t0 = time.perf_counter()
    shape = layer_shape(llm, simplified=space.simplified_layers,
                        bytes_per_value=asic.bytes_per_value)
    wl: Workload = workload(llm, shape, cost.weight_storage_factor(asic),
                            embeddings=not space.simplified_layers)
    n_srv = len(servers)
    if n_srv == 0:
        raise InfeasibleDesign("no valid server design in the hardware space")
    sram = servers.chip_sram_MB * servers.chips
    micro = np.asarray(space.micro_batches, float)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in (*_KEEP, "server", "batch",
                                                          "micro_batch", "context")}
    n_eval = 0
    for ctx in space.contexts:
        for b in space.batches:
            mem = float(memory_MB(wl, b, ctx))
            ms = micro[micro <= b]
            for p in _divisors(llm.layers):
                rows, tp = stage_options(np.full(n_srv, mem / p), sram, servers.chips)
                if rows.size == 0:
                    continue
                step = max(chunk // len(ms), 1)
                for lo in range(0, rows.size, step):
                    r = rows[lo:lo + step][:, None]
                    t = tp[lo:lo + step][:, None]
                    m = ms[None, :]
                    out = evaluate(
                        wl, asic, srv, tco, chip_tops=servers.chip_tops[r],
                        chip_sram_MB=servers.chip_sram_MB[r], chips_per_server=servers.chips[r],
                        server_power_W=servers.power_W[r], server_cost_usd=servers.cost_usd[r],
                        tp=t, pp=float(p), batch=float(b), micro_batch=m, context=float(ctx),
                        attention=space.attention, utilization_model=space.utilization_model)
                    out["objective"] = out["decode_tco_usd_per_1k_tokens"]
                    if space.objective == "e2e":
                        pf = prefill_ms(wl, asic, srv, chip_tops=servers.chip_tops[r],
                                        chips_per_server=servers.chips[r], tp=t, pp=float(p),
                                        batch=float(b), micro_batch=m,
                                        prompt=float(space.prompt_tokens),
                                        attention=space.attention,
                                        utilization_model=space.utilization_model)
                        _, out["objective"] = end_to_end(
                            tco, prefill_ms_=pf, latency_ms=out["latency_ms_per_token"],
                            batch=float(b), prompt=float(space.prompt_tokens),
                            output=float(space.output_tokens),
                            flops_per_token=shape.flops_per_token, chips=out["chips"],
                            servers=out["servers"], chip_tops=servers.chip_tops[r],
                            server_power_W=servers.power_W[r],
                            server_cost_usd=servers.cost_usd[r])
                    n_eval += out["decode_tco_usd_per_1k_tokens"].size
                    ok = np.broadcast_to(out["feasible"], out["objective"].shape)
                    tco_v = np.where(ok, out["objective"], np.inf)
                    lat_v = np.broadcast_to(out["latency_ms_per_token"], tco_v.shape)
                    keep = _pareto(tco_v.ravel(), lat_v.ravel())
                    keep = keep[np.isfinite(tco_v.ravel()[keep])]
                    rr, mm = np.unravel_index(keep, tco_v.shape)
                    for k in _KEEP:
                        cols[k].append(np.broadcast_to(out[k], tco_v.shape)[rr, mm])
                    cols["server"].append(r[rr, 0])
                    cols["batch"].append(np.full(len(keep), float(b)))
                    cols["micro_batch"].append(ms[mm])
                    cols["context"].append(np.full(len(keep), float(ctx)))
    if not cols["decode_tco_usd_per_1k_tokens"] or not sum(len(c) for c in cols["server"]):
        raise InfeasibleDesign(f"{llm.name} fits on no server of the space")
    allc = {k: np.concatenate(v) for k, v in cols.items()}
    front = _pareto(allc["objective"], allc["latency_ms_per_token"])
    pareto = {k: v[front] for k, v in allc.items()}
    for k, v in _server_columns(servers, pareto["server"].astype(int)).items():
        pareto[k] = v
    i_tco = int(np.argmin(pareto["objective"]))
    i_lat = int(np.argmin(pareto["latency_ms_per_token"]))
    dt = time.perf_counter() - t0
    log.debug("phase 2 %s: %d mappings in %.2f s", llm.name, n_eval, dt)
    return SearchResult(
        best={k: float(v[i_tco]) for k, v in pareto.items()},
        best_latency={k: float(v[i_lat]) for k, v in pareto.items()},
        pareto=pareto, servers_valid=n_srv, servers_evaluated=servers.evaluated,
        mappings_evaluated=n_eval, seconds=dt,
    )


def _server_columns(s: Servers, idx: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "die_area_mm2": s.die_area_mm2[idx], "mac_area_ratio": s.mac_area_ratio[idx],
        "chips_per_lane": s.chips_per_lane[idx].astype(float),
        "chips_per_server": s.chips[idx], "chip_tops": s.chip_tops[idx],
        "chip_sram_MB": s.chip_sram_MB[idx], "server_power_W": s.power_W[idx],
        "server_cost_usd": s.cost_usd[idx],
    }

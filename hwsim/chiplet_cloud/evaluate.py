"""The ``chiplet-cloud`` system's analytical evaluators: one design point, or many with numpy.

:func:`block` is the system's :class:`hwsim.batch.BatchModel` block: the core groups the points
by the keys it does not vectorise, and the scalar evaluator is the batch on one point (so the
two agree by construction); :func:`infeasible_reason` explains one infeasible point with its
numbers. Keys vectorised directly: :data:`VECTOR_KEYS`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from hwsim.batch import REASON, reasons
from hwsim.chiplet_cloud import cost
from hwsim.chiplet_cloud.model import end_to_end, memory_MB, prefill_ms, workload
from hwsim.chiplet_cloud.model import evaluate as evaluate_mappings
from hwsim.llm.model import layer_shape
from hwsim.system import Inputs

VECTOR_KEYS = {
    "chip.die_area_mm2": "area",
    "chip.mac_area_ratio": "ratio",
    "server.chips_per_lane": "cpl",
    "mapping.batch": "batch",
    "mapping.micro_batch": "micro",
    "mapping.tp": "tp",
    "mapping.pp": "pp",
    "mapping.context_tokens": "ctx",
    "mapping.prompt_tokens": "prompt",
    "mapping.output_tokens": "output",
}

METRICS = (
    ("tco_usd_per_1k_tokens", "total cost of ownership per 1000 generated tokens"),
    ("latency_ms_per_token", "time between two tokens of a sequence (one decode step)"),
    ("throughput_tokens_per_s", "tokens generated per second by the whole deployment"),
    ("prefill_ms", "prefill of the batch's prompts (time to first token, no queueing)"),
    ("throughput_e2e_tokens_per_s", "generated tokens per second counting prefill: a static "
     "batch's prompts, then output_tokens decode steps"),
    ("tco_e2e_usd_per_1k_tokens", "TCO per 1000 generated tokens counting prefill time"),
    ("chips", "chips occupied"),
    ("servers", "servers occupied"),
    ("tp", "chips per pipeline stage (tensor parallelism)"),
    ("pp", "pipeline stages"),
    ("micro_batch", "sequences per pipeline micro-batch"),
    ("utilization", "achieved / peak FLOP/s of the occupied chips"),
    ("die_area_mm2", "chiplet die area"),
    ("chip_tops", "peak tera-ops/s of one chip"),
    ("chip_sram_MB", "SRAM of one chip"),
    ("chip_power_W", "power of one chip"),
    ("die_cost_usd", "cost of one good, tested die"),
    ("die_yield", "negative-binomial die yield"),
    ("chips_per_server", "chiplets per server"),
    ("server_cost_usd", "bill of materials of one server"),
    ("server_power_W", "wall power of one server at peak"),
    ("max_chip_power_W", "thermal limit of a chip in its lane"),
    ("memory_GB", "weights plus KV cache held"),
    ("compute_ms_per_token", "GEMM and attention time of one micro-batch through all stages"),
    ("comm_ms_per_token", "all-reduce and stage-transfer time of one micro-batch"),
    ("tco_usd", "lifetime TCO of the occupied servers"),
)


@functools.lru_cache(maxsize=64)
def _largest_divisor_table(chips: int) -> np.ndarray:
    """t[K] = the largest divisor of ``chips`` not above K (K = 0..chips)."""
    table = np.zeros(chips + 1)
    best = 0
    for k in range(chips + 1):
        if k and chips % k == 0:
            best = k
        table[k] = best
    return table


def _auto_tp(stage_MB, chip_sram_MB, chips) -> np.ndarray:
    """v1's fewest-chips placement of a stage: whole servers, or chips/k for k stages/server."""
    sram = chip_sram_MB * chips
    per_server = sram / stage_MB
    whole = np.ceil(stage_MB / sram) * chips
    out = whole.astype(float)
    small = per_server >= 2
    if np.any(small):
        c_int = np.broadcast_to(chips, per_server.shape).astype(int)
        k = np.zeros(per_server.shape)
        for c in np.unique(c_int[small]):
            sel = small & (c_int == c)
            kmax = np.minimum(np.floor(per_server[sel]), c).astype(int)
            k[sel] = _largest_divisor_table(int(c))[kmax]
        out = np.where(small, c_int / np.maximum(k, 1), out)
    return out


def _divisors(n: int) -> np.ndarray:
    return np.array([i for i in range(1, n + 1) if n % i == 0], dtype=float)


def block(inputs: Inputs, arrays: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Metrics of ``n`` design points (the :class:`hwsim.batch.BatchModel` block): ``arrays``
    holds the :data:`VECTOR_KEYS` that vary; infeasible points get NaN and a reason."""
    return _batch(inputs, {VECTOR_KEYS[k]: v for k, v in arrays.items()}, n)


#: candidate mappings per block: a block's temporaries stay in cache
BLOCK_CANDIDATES = 32768


def _batch(inputs: Inputs, a: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    mp, layers = inputs["mapping"], inputs["llm"].layers
    pp = a.get("pp", mp.pp)
    micro = a.get("micro", mp.micro_batch)
    batch = a.get("batch", mp.batch)
    cand = (len(_divisors(layers)) if np.any(np.asarray(pp) <= 0) else 1) * (
        int(np.log2(max(np.max(batch), 1))) + 1 if np.any(np.asarray(micro) <= 0) else 1)
    block = max(64, BLOCK_CANDIDATES // cand)
    if n <= block:
        return _block(inputs, a, n)
    parts = []
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        parts.append(_block(inputs, {k: v[lo:hi] for k, v in a.items()}, hi - lo))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _block(inputs: Inputs, a: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    llm, asic, srv, tco, mp = (inputs[r] for r in ("llm", "chip", "server", "tco", "mapping"))

    def get(name: str, default: Any) -> np.ndarray:
        v = a.get(name)
        return np.broadcast_to(np.asarray(default if v is None else v, float), (n,))

    area = get("area", asic.die_area_mm2)
    ratio = get("ratio", asic.mac_area_ratio)
    cpl = get("cpl", srv.chips_per_lane)
    batch = get("batch", mp.batch)
    micro = get("micro", mp.micro_batch)
    tp_in = get("tp", mp.tp)
    pp_in = get("pp", mp.pp)
    ctx = get("ctx", mp.context_tokens)
    output = get("output", mp.output_tokens)
    prompt = get("prompt", mp.prompt_tokens)
    prompt = np.where(prompt <= 0, np.maximum(ctx - output, 1.0), prompt)
    s = cost.server(asic, srv, area, ratio, cpl)
    ch = cost.chip(asic, area, ratio)
    shape = layer_shape(llm, simplified=mp.simplified_layers,
                        bytes_per_value=asic.bytes_per_value)
    wl = workload(llm, shape, cost.weight_storage_factor(asic),
                  embeddings=not mp.simplified_layers)
    mem = memory_MB(wl, batch, ctx)

    # candidate pipeline depths: the one asked, or every divisor of the layer count
    # candidates: the pipeline depth asked, or every divisor of the layer count; the micro-batch
    # asked, or every power of two up to the batch; the lowest TCO per token is kept
    pp_c = pp_in[:, None] if np.all(pp_in > 0) else np.where(
        pp_in[:, None] > 0, pp_in[:, None], _divisors(llm.layers)[None, :])
    if np.all(micro > 0):
        mb_c = micro[:, None]
    else:
        pow2 = 2.0 ** np.arange(int(np.log2(max(batch.max(), 1))) + 1)
        mb_c = np.where(micro[:, None] > 0, micro[:, None], pow2[None, :])
    mb_c = np.where(mb_c <= batch[:, None], mb_c, np.nan)  # micro-batch > batch: infeasible
    pp = np.repeat(pp_c, mb_c.shape[1], axis=1)
    mb = np.tile(mb_c, (1, pp_c.shape[1]))
    stage = mem[:, None] / pp
    tp_auto = _auto_tp(stage, ch.sram_MB[:, None], s.chips[:, None])
    tp = np.where(tp_in[:, None] > 0, tp_in[:, None], tp_auto)
    col = (slice(None), None)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        m = evaluate_mappings(
            wl, asic, srv, tco, chip_tops=ch.tops[col], chip_sram_MB=ch.sram_MB[col],
            chips_per_server=s.chips[col], server_power_W=s.power_W[col],
            server_cost_usd=s.cost_usd[col], tp=tp, pp=pp, batch=batch[col],
            micro_batch=mb, context=ctx[col], attention=mp.attention,
            utilization_model=mp.utilization_model)
    fits = np.broadcast_to(m["feasible"], pp.shape) & np.isfinite(m["tco_usd_per_1k_tokens"])
    fits = fits & np.isfinite(mb)
    score = np.where(fits, m["tco_usd_per_1k_tokens"], np.inf)
    best = np.argmin(score, axis=1)
    rows = np.arange(n)
    ok = s.valid & fits[rows, best]
    out: dict[str, np.ndarray] = {}
    for k in ("tco_usd_per_1k_tokens", "latency_ms_per_token", "throughput_tokens_per_s",
              "chips", "servers", "tp", "pp", "utilization", "memory_GB",
              "compute_ms_per_token", "comm_ms_per_token", "tco_usd", "micro_batch"):
        v = mb[rows, best] if k == "micro_batch" else np.broadcast_to(m[k], pp.shape)[rows, best]
        out[k] = np.where(ok, v, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pf = prefill_ms(wl, asic, srv, chip_tops=ch.tops, chips_per_server=s.chips,
                        tp=np.where(ok, out["tp"], 1.0), pp=np.where(ok, out["pp"], 1.0),
                        batch=batch, micro_batch=np.where(ok, out["micro_batch"], 1.0),
                        prompt=prompt, attention=mp.attention,
                        utilization_model=mp.utilization_model)
    out["prefill_ms"] = np.where(ok, pf, np.nan)
    # end to end: a static batch prefills its prompts, then decodes output_tokens steps
    out["throughput_e2e_tokens_per_s"], out["tco_e2e_usd_per_1k_tokens"] = end_to_end(
        tco, prefill_ms_=out["prefill_ms"], latency_ms=out["latency_ms_per_token"], batch=batch,
        prompt=prompt, output=output, flops_per_token=shape.flops_per_token,
        chips=out["chips"], servers=out["servers"], chip_tops=ch.tops,
        server_power_W=s.power_W, server_cost_usd=s.cost_usd)
    out.update({
        "die_area_mm2": area.astype(float),
        "chip_tops": ch.tops, "chip_sram_MB": ch.sram_MB, "chip_power_W": ch.power_W,
        "die_cost_usd": s.die_cost_usd, "die_yield": s.die_yield,
        "chips_per_server": s.chips.astype(float), "server_cost_usd": s.cost_usd,
        "server_power_W": s.power_W, "max_chip_power_W": s.max_chip_power_W,
    })
    out[REASON] = _reasons(asic, srv, ch, s, ok)
    return out


def _reasons(asic: Any, srv: Any, ch: cost.Chip, s: cost.Server, ok: np.ndarray) -> np.ndarray:
    """Why each infeasible point is infeasible (the first check it fails), "" for the rest."""
    area = ch.die_area_mm2
    with np.errstate(divide="ignore", invalid="ignore"):
        lane = area * s.chips / srv.lanes
        return reasons(len(ok), [
            (ok, ""),
            (ch.mac_area_mm2 + ch.sram_area_mm2 < 0.1,
             "the die leaves no room for MAC arrays and SRAM"),
            (ch.power_W / area > asic.max_power_density_W_per_mm2,
             "chip power density above the die's limit"),
            (~(ch.power_W < s.max_chip_power_W), "chip power above the lane's air-cooling limit"),
            (s.chip_power_W > srv.chip_power_cap_W, "chips' total power above the server cap"),
            ((lane < srv.lane_silicon_min_mm2) | (lane > srv.lane_silicon_max_mm2),
             "lane silicon outside its bounds"),
            (ch.tops < 0.01, "less than 0.01 TOPS per chip"),
            (True, "the LLM and its KV cache do not fit the SRAM of any allowed mapping"),
        ])


def infeasible_reason(inputs: Inputs) -> str:
    """Why the design point of ``inputs`` cannot serve its LLM."""
    asic, srv, mp, llm = inputs["chip"], inputs["server"], inputs["mapping"], inputs["llm"]
    ch = cost.chip(asic)
    s = cost.server(asic, srv)
    area = asic.die_area_mm2
    core = (np.sqrt(area) - asic.pad_ring_mm) ** 2 * asic.core_usable_fraction
    if float(core) - asic.io_cells * asic.io_cell_area_mm2 - asic.other_area_mm2 < 0.1:
        return f"a {area:g} mm2 die leaves no room for MAC arrays and SRAM"
    if float(ch.power_W) / area > asic.max_power_density_W_per_mm2:
        return (f"chip power {float(ch.power_W):.3g} W on {area:g} mm2 exceeds "
                f"{asic.max_power_density_W_per_mm2:g} W/mm2")
    if not float(ch.power_W) < float(s.max_chip_power_W):
        return (f"chip power {float(ch.power_W):.3g} W exceeds the lane's air-cooling limit "
                f"{float(s.max_chip_power_W):.3g} W with {srv.chips_per_lane} chips per lane")
    if float(s.chip_power_W) > srv.chip_power_cap_W:
        return (f"chips draw {float(s.chip_power_W):.4g} W, above the server cap "
                f"{srv.chip_power_cap_W:g} W")
    lane = area * srv.chips_per_lane
    if not srv.lane_silicon_min_mm2 <= lane <= srv.lane_silicon_max_mm2:
        return (f"lane silicon {lane:g} mm2 outside [{srv.lane_silicon_min_mm2:g}, "
                f"{srv.lane_silicon_max_mm2:g}] mm2")
    return (f"{llm.name} with batch {mp.batch} x {mp.context_tokens} tokens of KV cache does not "
            f"fit the SRAM of the requested mapping (tp={mp.tp}, pp={mp.pp}; 0 = automatic)")




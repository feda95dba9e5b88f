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
from hwsim.chiplet_cloud.model import (
    deployment_cost,
    end_to_end,
    links,
    memory_MB,
    prefill_ms,
    workload,
)
from hwsim.chiplet_cloud.model import evaluate as evaluate_mappings
from hwsim.llm.model import layer_shape
from hwsim.llm.perf import Device, decode_step
from hwsim.llm.perf import Mapping as PerfMapping
from hwsim.serving import load
from hwsim.serving.des import lengths, longest_context
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
    "traffic.prompt_tokens": "prompt",
    "traffic.output_tokens": "output",
    "traffic.arrival_rate_per_s": "rate",
}

#: the analytical metrics: the names shared with other systems mean what hwsim.metrics says
METRICS = (
    ("tco_usd_per_1k_tokens", ""),
    ("throughput_tokens_per_s", ""),
    ("latency_ms_per_token", ""),
    ("ttft_ms", ""),
    ("energy_J_per_token", ""),
    ("decode_tco_usd_per_1k_tokens", ""),
    ("decode_throughput_tokens_per_s", ""),
    ("batch_prefill_ms", ""),
    ("utilization", ""),
    ("chips", ""),
    ("servers", ""),
    ("tp", ""),
    ("pp", ""),
    ("micro_batch", ""),
    ("die_area_mm2", "chiplet die area"),
    ("chip_tops", "peak tera-ops/s of one chip"),
    ("chip_sram_MB", "SRAM of one chip"),
    ("chip_power_W", "power of one chip"),
    ("die_cost_usd", "cost of one good, tested die"),
    ("die_yield", "negative-binomial die yield"),
    ("chips_per_server", "chiplets per server"),
    ("server_cost_usd", ""),
    ("server_power_W", ""),
    ("max_chip_power_W", "thermal limit of a chip in its lane"),
    ("memory_GB", "weights plus the KV cache held (context_tokens per sequence)"),
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
    traffic = inputs["traffic"]

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
    # the requests: lengths from the traffic (the one place they are read), the KV cache held
    # per sequence from the mapping (0: the traffic's longest context)
    if traffic.arrival == "trace":
        ln = lengths(traffic)
        prompt, output = get("prompt", ln.mean_prompt), get("output", ln.mean_output)
        longest = np.full(n, float(ln.longest_context))
    else:
        prompt = get("prompt", traffic.prompt_tokens)
        output = get("output", traffic.output_tokens)
        longest = longest_context(prompt, output, traffic.length_distribution)
    ctx_in = get("ctx", mp.context_tokens)
    ctx = np.where(ctx_in > 0, ctx_in, longest)
    kv = prompt + (output - 2.0) / 2.0  # the mean cached context of a decode step
    s = cost.server(asic, srv, area, ratio, cpl)
    ch = cost.chip(asic, area, ratio)
    shape = layer_shape(llm, simplified=mp.simplified_layers,
                        bytes_per_value=asic.bytes_per_value)
    wl = workload(llm, shape, cost.weight_storage_factor(asic),
                  embeddings=not mp.simplified_layers)
    mem = memory_MB(wl, batch, ctx)

    # candidates: the pipeline depth asked, or every divisor of the layer count; the micro-batch
    # asked, or every power of two up to the batch; the lowest TCO per token (prefill included,
    # saturated) is kept
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
    perf = dict(attention=mp.attention, utilization_model=mp.utilization_model)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        m = evaluate_mappings(
            wl, asic, srv, tco, chip_tops=ch.tops[col], chip_sram_MB=ch.sram_MB[col],
            chips_per_server=s.chips[col], server_power_W=s.power_W[col],
            server_cost_usd=s.cost_usd[col], tp=tp, pp=pp, batch=batch[col],
            micro_batch=mb, context=ctx[col], kv_len=kv[col], **perf)
        pf_c = prefill_ms(wl, asic, srv, chip_tops=ch.tops[col], chips_per_server=s.chips[col],
                          tp=tp, pp=pp, batch=batch[col], micro_batch=mb, prompt=prompt[col],
                          **perf)
        _, e2e = end_to_end(
            tco, prefill_ms_=pf_c, latency_ms=m["latency_ms_per_token"], batch=batch[col],
            prompt=prompt[col], output=output[col], flops_per_token=shape.flops_per_token,
            chips=m["chips"], servers=m["servers"], chip_tops=ch.tops[col],
            server_power_W=s.power_W[col], server_cost_usd=s.cost_usd[col])
    fits = np.broadcast_to(m["feasible"], pp.shape) & np.isfinite(e2e) & np.isfinite(mb)
    score = np.where(fits, e2e, np.inf)
    best = np.argmin(score, axis=1)
    rows = np.arange(n)
    ok = s.valid & fits[rows, best]
    out: dict[str, Any] = {}
    for k in ("decode_tco_usd_per_1k_tokens", "latency_ms_per_token",
              "decode_throughput_tokens_per_s", "chips", "servers", "tp", "pp", "memory_GB",
              "compute_ms_per_token", "comm_ms_per_token", "tco_usd", "micro_batch"):
        v = mb[rows, best] if k == "micro_batch" else np.broadcast_to(m[k], pp.shape)[rows, best]
        out[k] = np.where(ok, v, np.nan)
    out["batch_prefill_ms"] = np.where(ok, np.broadcast_to(pf_c, pp.shape)[rows, best], np.nan)
    sel = {k: np.where(ok, out[k], 1.0) for k in ("tp", "pp", "micro_batch")}

    def prefill_of(seqs: np.ndarray) -> np.ndarray:
        """One micro-batch of ``seqs`` requests prefilled through every stage, idle replica."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return prefill_ms(wl, asic, srv, chip_tops=ch.tops, chips_per_server=s.chips,
                              tp=sel["tp"], pp=sel["pp"], batch=seqs, micro_batch=seqs,
                              prompt=prompt, **perf)

    # the traffic: closed saturates the static batch; open arrivals set the occupancy
    cycle_s = (out["batch_prefill_ms"] + (output - 1.0) * out["latency_ms_per_token"]) / 1e3
    capacity = batch * output / cycle_s
    rate = load.arrival_rate(traffic)
    if rate is None or not np.isfinite(rate):
        thr, ttft = capacity, prefill_of(sel["micro_batch"])
        latency = out["latency_ms_per_token"]
    else:
        lam = get("rate", rate)
        lanes = np.ceil(batch / sel["micro_batch"])
        _, tp_bw, pp_bw = links(sel["tp"], sel["pp"], s.chips, srv)
        dev = Device(peak_flops=ch.tops * 1e12, tp_link_Bps=tp_bw, pp_link_Bps=pp_bw,
                     link_latency_s=srv.link_latency_us * 1e-6,
                     utilization_model=mp.utilization_model, clock_Hz=asic.clock_GHz * 1e9)

        ttft = prefill_of(np.ones(n))
        stretch = load.interference(lam, ttft / 1e3)

        def round_at(occ: np.ndarray) -> np.ndarray:
            _, size = load.spread(occ, lanes)
            step = decode_step(shape, dev, PerfMapping(tp=sel["tp"], pp=sel["pp"], batch=occ,
                                                       micro_batch=size),
                               kv_len=kv, attention=mp.attention)
            return load.per_token_s(step.latency_s, lam, ttft / 1e3, output)

        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            occ = load.occupancy(lam, output, batch, round_at)
            latency = round_at(occ) * 1e3
            _, size = load.spread(occ, lanes)
            step_s = decode_step(shape, dev, PerfMapping(tp=sel["tp"], pp=sel["pp"], batch=occ,
                                                         micro_batch=size),
                                 kv_len=kv, attention=mp.attention).latency_s
            ttft = load.first_token_s(ttft / 1e3, lam, step_s, output) * 1e3
        thr = lam * output
        stable = (lam * output < capacity) & np.isfinite(stretch)
        if traffic.arrival == "trace":  # a finite burst faster than the deployment: saturated
            thr = np.where(stable, thr, capacity)
            latency = np.where(stable, latency, out["latency_ms_per_token"])
            ttft = np.where(stable, ttft, prefill_of(sel["micro_batch"]))
        else:  # an endless stream faster than the deployment: the queue grows forever
            ok = ok & stable
            unstable = ~stable & s.valid & fits[rows, best]
    peak = out["chips"] * ch.tops * 1e12
    # every output token carries (prompt + output) / output processed tokens
    util = thr * (prompt + output) / output * shape.flops_per_token / peak
    tco_1k, energy = deployment_cost(tco, throughput=thr, utilization=util, chips=out["chips"],
                                     servers=out["servers"], server_power_W=s.power_W,
                                     server_cost_usd=s.cost_usd)
    out.update({
        "tco_usd_per_1k_tokens": tco_1k, "throughput_tokens_per_s": thr,
        "latency_ms_per_token": latency, "ttft_ms": ttft, "utilization": util,
        "energy_J_per_token": energy,
        "die_area_mm2": area.astype(float),
        "chip_tops": ch.tops, "chip_sram_MB": ch.sram_MB, "chip_power_W": ch.power_W,
        "die_cost_usd": s.die_cost_usd, "die_yield": s.die_yield,
        "chips_per_server": s.chips.astype(float), "server_cost_usd": s.cost_usd,
        "server_power_W": s.power_W, "max_chip_power_W": s.max_chip_power_W,
    })
    out = {k: np.where(ok, v, np.nan) for k, v in out.items()}
    reason = _reasons(asic, srv, ch, s, ok)
    if rate is not None and np.isfinite(rate) and traffic.arrival != "trace":
        reason[unstable] = ("arrivals outpace the deployment: the offered output rate is at or "
                            "above its saturated capacity")
    out[REASON] = reason
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


#: the short reasons :func:`infeasible_reason` details (the hardware and capacity checks)
_HARDWARE_REASONS = ("the die leaves", "chip power", "chips' total power", "lane silicon",
                     "less than 0.01 TOPS", "the LLM and its KV cache")


def infeasible_reason(inputs: Inputs, short: str = "") -> str:
    """Why the design point of ``inputs`` cannot serve its LLM, with the numbers (``short``:
    the block's reason; one that is not about the hardware is kept as it is)."""
    if short and not short.startswith(_HARDWARE_REASONS):
        return short
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
    held = mp.context_tokens or "the traffic's longest request's"
    return (f"{llm.name} with batch {mp.batch} x {held} tokens of KV cache does not fit the "
            f"SRAM of the requested mapping (tp={mp.tp}, pp={mp.pp}; 0 = automatic)")




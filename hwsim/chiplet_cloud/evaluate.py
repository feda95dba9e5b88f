"""The ``chiplet-cloud`` system's analytical evaluators: one design point, or many with numpy.

:func:`analytical_batch` is the evaluator; :func:`analytical` is it on one point (so the two
agree by construction) and turns an infeasible point into :class:`InfeasibleDesign` with the
reason. Keys vectorised directly: ``chip.die_area_mm2``, ``chip.mac_area_ratio``,
``server.chips_per_lane``, ``mapping.batch``, ``mapping.micro_batch``, ``mapping.tp``,
``mapping.pp``, ``mapping.context_tokens``, ``mapping.prompt_tokens``; any other key is handled
by grouping the points by its values and re-validating the specs for each group.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.chiplet_cloud import cost
from hwsim.chiplet_cloud.model import end_to_end, memory_MB, prefill_ms, workload
from hwsim.chiplet_cloud.model import evaluate as evaluate_mappings
from hwsim.errors import InfeasibleDesign, InputError
from hwsim.llm.model import layer_shape
from hwsim.system import Inputs, Metrics

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


ROLE_KINDS = {"llm": "llm", "chip": "asic", "server": "server", "tco": "tco",
              "mapping": "cc-mapping", "traffic": "serving"}


def _fixed(inputs: Inputs, groups: Mapping[str, Any]) -> Inputs:
    """Inputs with the non-vectorised keys of one group applied (re-validated).

    A bare role (``chip``) chooses a spec file by name or path; ``role.key`` overrides a key.
    """
    per_role: dict[str, dict[str, Any]] = {}
    out = dict(inputs)
    for key, v in groups.items():
        role, _, rest = key.partition(".")
        if role not in ROLE_KINDS:
            raise InputError(f"no input '{role}' in system chiplet-cloud", key=key)
        v = v.item() if hasattr(v, "item") else v
        if not rest:
            kind = ROLE_KINDS[role]
            out[role] = specs.load_spec(specs.find_spec_file(kind, str(v)), kind)
        else:
            per_role.setdefault(role, {})[rest] = v
    for role, ov in per_role.items():
        out[role] = specs.with_overrides(out[role], ov)
    return out


def analytical_batch(inputs: Inputs, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Metrics of many design points; infeasible points get NaN and ``feasible`` = 0."""
    arrs = {k: np.asarray(v) for k, v in arrays.items()}
    n = int(np.broadcast(*arrs.values()).size) if arrs else 1
    arrs = {k: np.broadcast_to(v, (n,)) if v.ndim <= 1 else v.ravel() for k, v in arrs.items()}
    other = [k for k in arrs if k not in VECTOR_KEYS]
    if not other:
        return _batch(inputs, {VECTOR_KEYS[k]: v for k, v in arrs.items()}, n)
    # group the points by the values of the keys that need re-validated specs
    keys = np.stack([arrs[k].astype(object) for k in other], axis=1)
    uniq: dict[tuple, list[int]] = {}
    for i, row in enumerate(map(tuple, keys)):
        uniq.setdefault(row, []).append(i)
    out: dict[str, np.ndarray] = {}
    for row, idx in uniq.items():
        sub_inputs = _fixed(inputs, dict(zip(other, row, strict=True)))
        ix = np.asarray(idx)
        part = _batch(sub_inputs, {VECTOR_KEYS[k]: v[ix] for k, v in arrs.items()
                                   if k in VECTOR_KEYS}, len(ix))
        for k, v in part.items():
            out.setdefault(k, np.full(n, np.nan))[ix] = v
    return out


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
    if np.any(batch < 1) or np.any(micro < 0) or np.any(ctx < 1) or np.any(output < 1):
        raise InputError("mapping: batch >= 1, micro_batch >= 0, context_tokens >= 1 and "
                         "output_tokens >= 1 are required")
    if np.any((area <= 0) | (area > 900)) or np.any((ratio <= 0) | (ratio >= 1)) \
            or np.any(cpl < 1):
        raise InputError("chip.die_area_mm2 in (0, 900], chip.mac_area_ratio in (0, 1) and "
                         "server.chips_per_lane >= 1 are required")

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
        "feasible": ok.astype(float),
    })
    return out


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


def analytical(inputs: Inputs) -> Metrics:
    """One design point (the batch evaluator on one point)."""
    out = analytical_batch(inputs, {})
    if not out["feasible"][0]:
        raise InfeasibleDesign(infeasible_reason(inputs))
    return {k: float(v[0]) for k, v in out.items() if k != "feasible"}

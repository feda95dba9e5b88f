"""The ``gpu-serving`` analytical evaluator over many design points at once (numpy).

:func:`analytical_batch` takes the fixed inputs and ``{"role.key": array}`` and returns
``{metric: array}``, NaN in every metric of an infeasible point (the model does not fit, more
devices than heads or stages than layers, ``micro_batch > batch``). The scalar evaluator
(:func:`hwsim.gpu_serving.analytical.evaluate`) is this on one point.

The step model is :class:`hwsim.gpu_serving.roofline.Kernels`, the one the DES's per-stage
:class:`~hwsim.gpu_serving.roofline.RooflineStepModel` uses. The saturated-replica closed forms
are those of :mod:`hwsim.serving.saturation`, specialised to this step model: stages differ only
in their layer count (the first ``layers % pp`` hold one more) and the LM head on the last one,
lanes only in the last one's size (``batch % micro_batch``), so each maximum over stages and
lanes has a few candidates, and the pipeline fill (a flow shop of identical lanes but the last)
has the closed form ``max_a [prefix(a) + (lanes - 2) max_{j <= a} t_j + suffix'(a)]`` over
machines ``a`` (stages and links), plus the links' latencies. Tests check the two paths agree
point by point.

Keys vectorised directly: :data:`VECTOR_KEYS`. Any other key (a data type, the pricing, a spec
file chosen by name with a bare role) is handled by grouping the points by its values and
re-validating the specs for each group.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.errors import InputError
from hwsim.gpu_serving.cost import costs
from hwsim.gpu_serving.roofline import Kernels, crosses_servers, stage_link_Bps
from hwsim.gpu_serving.spec import GpuMappingSpec, GpuSpec
from hwsim.serving.des import lengths, longest_context
from hwsim.serving.spec import ServingSpec
from hwsim.system import Inputs

log = logging.getLogger(__name__)

#: keys evaluated as arrays (anything else is grouped); their spec classes, for range checks
VECTOR_KEYS: dict[str, type] = {
    **{f"mapping.{k}": GpuMappingSpec
       for k in ("tensor_parallel", "pipeline_parallel", "batch", "micro_batch")},
    **{f"traffic.{k}": ServingSpec for k in ("prompt_tokens", "output_tokens")},
    **{f"device.{k}": GpuSpec for k in (
        "bandwidth_efficiency", "compute_efficiency", "interconnect_efficiency",
        "layer_overhead_us", "hbm_bandwidth_GBps", "hbm_capacity_GB", "hbm_usable_fraction",
        "interconnect_bandwidth_GBps", "network_bandwidth_GBps", "interconnect_latency_us",
        "peak_16bit_TFLOPS", "peak_8bit_TFLOPS", "rental_usd_per_device_hour")},
}

METRICS = ("tco_usd_per_1k_tokens", "rental_usd_per_1k_tokens", "owned_usd_per_1k_tokens",
           "latency_ms_per_token", "ttft_ms", "throughput_tokens_per_s", "chips", "servers",
           "server_cost_usd", "server_power_W", "utilization", "usd_per_hour")

ROLE_KINDS = {"device": "gpu", "llm": "llm", "mapping": "gpu-mapping", "traffic": "serving",
              "tco": "tco"}

#: design points per block (bounds the (points x machines) temporaries)
BLOCK = 65536


def analytical_batch(inputs: Inputs, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Metrics of many design points: the fixed ``inputs`` with ``arrays`` (``role.key`` ->
    values, broadcast together) applied; NaN in every metric of an infeasible point."""
    arrs = {k: np.asarray(v) for k, v in arrays.items()}
    n = int(np.broadcast(*arrs.values()).size) if arrs else 1
    arrs = {k: np.broadcast_to(v, (n,)) if v.ndim <= 1 else v.ravel() for k, v in arrs.items()}
    other = [k for k in arrs if k not in VECTOR_KEYS]
    vec = {k: v for k, v in arrs.items() if k in VECTOR_KEYS}
    if not other:
        return _blocks(inputs, vec, n)
    keys = np.stack([arrs[k].astype(object) for k in other], axis=1)
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(map(tuple, keys)):
        groups.setdefault(row, []).append(i)
    out = {k: np.full(n, np.nan) for k in METRICS}
    for row, idx in groups.items():
        ix = np.asarray(idx)
        try:
            sub = _fixed(inputs, dict(zip(other, row, strict=True)))
            part = _blocks(sub, {k: v[ix] for k, v in vec.items()}, len(ix))
        except InputError as exc:  # e.g. owned pricing of a device without a server price
            log.info("gpu-serving batch: %d points rejected: %s", len(ix), exc)
            continue
        for k, v in part.items():
            out[k][ix] = v
    return out


def _fixed(inputs: Inputs, groups: Mapping[str, Any]) -> Inputs:
    """Inputs with one group's non-vectorised keys applied (re-validated); a bare role picks a
    spec file by name or path."""
    out = dict(inputs)
    per_role: dict[str, dict[str, Any]] = {}
    for key, v in groups.items():
        role, _, rest = key.partition(".")
        if role not in ROLE_KINDS:
            raise InputError(f"no input '{role}' in system gpu-serving", key=key)
        v = v.item() if hasattr(v, "item") else v
        if rest:
            per_role.setdefault(role, {})[rest] = v
        else:
            kind = ROLE_KINDS[role]
            out[role] = specs.load_spec(specs.find_spec_file(kind, str(v)), kind)
    for role, ov in per_role.items():
        out[role] = specs.with_overrides(out[role], ov)
    return out


def _check_range(key: str, cls: type, values: np.ndarray) -> None:
    """InputError unless every value passes the spec field's bounds (and is whole for ints)."""
    name = key.partition(".")[2]
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    v = np.asarray(values, dtype=float)
    meta = f.metadata
    bad = ~np.isfinite(v)
    if f.type in (int, "int"):
        bad |= v != np.round(v)
    for op, lim in (("ge", np.less), ("gt", np.less_equal), ("le", np.greater),
                    ("lt", np.greater_equal)):
        if meta.get(op) is not None:
            bad |= lim(v, meta[op])
    if np.any(bad):
        first = values[np.flatnonzero(bad)[0]]
        bounds = ", ".join(f"{op} {meta[op]}" for op in ("ge", "gt", "le", "lt")
                           if meta.get(op) is not None)
        raise InputError(f"expected {f.type} ({bounds})", key=key, value=first, has_value=True)


def _blocks(inputs: Inputs, vec: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    for k, v in vec.items():
        _check_range(k, VECTOR_KEYS[k], v)
    if n <= BLOCK:
        return _evaluate(inputs, vec, n)
    parts = [_evaluate(inputs, {k: v[lo:lo + BLOCK] for k, v in vec.items()},
                       min(BLOCK, n - lo)) for lo in range(0, n, BLOCK)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _view(spec: Any, vec: Mapping[str, np.ndarray], role: str) -> Any:
    """``spec`` with its vectorised keys replaced by arrays (a look-alike, not validated)."""
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    for k, v in vec.items():
        r, _, rest = k.partition(".")
        if r == role:
            fields[rest] = v
    return SimpleNamespace(**fields)


def _evaluate(inputs: Inputs, vec: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The closed forms of :mod:`hwsim.serving.saturation` on :class:`Kernels`, per point."""
    llm, mp_spec, traffic = inputs["llm"], inputs["mapping"], inputs["traffic"]
    gpu_spec = inputs["device"]
    gpu, mp = _view(gpu_spec, vec, "device"), _view(mp_spec, vec, "mapping")

    def arr(x: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(x, dtype=float), (n,))

    tp, pp, b = arr(mp.tensor_parallel), arr(mp.pipeline_parallel), arr(mp.batch)
    micro = arr(mp.micro_batch)
    m = np.where(micro > 0, micro, np.ceil(b / pp))
    if traffic.arrival == "trace":
        ln = lengths(traffic, base_dir=specs.models_dir() / "serving")
        prompt, output, longest = arr(ln.mean_prompt), arr(ln.mean_output), arr(
            ln.longest_context)
    else:  # as hwsim.serving.des.lengths, per point
        prompt = arr(vec.get("traffic.prompt_tokens", traffic.prompt_tokens))
        output = arr(vec.get("traffic.output_tokens", traffic.output_tokens))
        longest = longest_context(prompt, output, traffic.length_distribution)

    ok = (m <= b) & (pp <= llm.layers) & ((tp <= llm.heads) | (mp.attention_sharding == "batch"))
    pp = np.where(ok, pp, 1.0)  # keep the arithmetic of rejected points harmless
    m = np.where(ok, m, 1.0)
    k = Kernels.build(gpu, llm, SimpleNamespace(**{**vars(mp), "tensor_parallel": tp}))
    dev = k.device
    per = gpu.devices_per_server

    # stages: the first `extra` hold one layer more; the last adds the LM head
    base, extra = np.floor(llm.layers / pp), np.mod(llm.layers, pp)
    n_first = base + (extra > 0)

    # capacity: stage 0 (embeddings, most layers) and the last stage (LM head) are the largest
    cap = arr(gpu.hbm_capacity_GB) * 1e9 * arr(gpu.hbm_usable_fraction)
    need = np.maximum(k.device_bytes(n_first, True, pp == 1, pp, b, longest),
                      k.device_bytes(np.where(pp == 1, n_first, base), pp == 1, True, pp, b,
                                     longest))
    ok &= need <= cap

    # lanes: `full` of m sequences, then one of `rest` (if any)
    full, rest = np.floor(b / m), np.mod(b, m)
    lanes = full + (rest > 0)
    last = np.where(rest > 0, rest, m)

    # links: how many of the pp - 1 leave the server; bytes per token-row
    n_links = pp - 1
    groups = np.maximum(np.floor(per / tp), 1.0)
    n_cross = np.where(tp > per, n_links, np.floor(n_links / groups))
    n_local = n_links - n_cross
    bw_net = stage_link_Bps(gpu, True, tp)
    bw_local = stage_link_Bps(gpu, False, tp)
    lat = arr(gpu.interconnect_latency_us) * 1e-6
    row_bytes = float(llm.d_model * k.act_bytes)

    def links_s(rows: np.ndarray) -> np.ndarray:
        return n_cross * (rows * row_bytes / bw_net) + n_local * (rows * row_bytes / bw_local)

    # decode round at the mean cached context
    kv = prompt + (output - 2) / 2.0

    def lane_decode(size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return k.layer_s(size, 1.0, kv), k.head_s(size)

    d_m, h_m = lane_decode(m)
    d_r, h_r = lane_decode(last)
    d_sum = full * d_m + (rest > 0) * d_r
    h_sum = full * h_m + (rest > 0) * h_r
    stage_busy = np.maximum(n_first * d_sum + (pp == 1) * h_sum, base * d_sum + h_sum)
    link_busy = np.maximum(np.where(n_cross > 0, b * row_bytes / bw_net, 0.0),
                           np.where(n_local > 0, b * row_bytes / bw_local, 0.0))
    trip = np.maximum(llm.layers * d_m + h_m + links_s(m),
                      llm.layers * d_r + h_r + links_s(last)) + n_links * lat
    round_s = np.where(output > 1, np.maximum(np.maximum(stage_busy, link_busy), trip), 0.0)

    # prefill: a flow shop over machines S0, L0, S1, ..., S_{pp-1}
    fill = _pipeline_fill(k, per, tp, pp, base, extra, m, last, lanes, prompt,
                          row_bytes / bw_net, row_bytes / bw_local) + n_links * lat
    ttft = k.layer_s(m, prompt, 0.0) * llm.layers + k.head_s(m) \
        + links_s(np.floor(m * prompt)) + n_links * lat
    batch_s = fill + (output - 1) * round_s
    thr = b * output / batch_s

    out = costs(gpu_spec, llm, mp_spec.pricing, tp * pp, dev.peak_flops, thr,
                inputs.get("tco"), rental_rate=gpu.rental_usd_per_device_hour)
    out.update({"latency_ms_per_token": round_s * 1e3, "ttft_ms": ttft * 1e3,
                "throughput_tokens_per_s": thr})
    return {key: np.where(ok, arr(v), np.nan) for key, v in out.items()}


def _pipeline_fill(k: Kernels, per: int, tp: np.ndarray, pp: np.ndarray, base: np.ndarray,
                   extra: np.ndarray, m: np.ndarray, last: np.ndarray, lanes: np.ndarray,
                   prompt: np.ndarray, row_s_net: np.ndarray, row_s_local: np.ndarray
                   ) -> np.ndarray:
    """Makespan of the prefill flow shop without the links' latencies (every path from the
    first lane's first stage to the last lane's last stage crosses each link once, so they add
    ``(pp - 1) x latency``): lanes ``1 .. N-1`` of ``m`` sequences, lane ``N`` of ``last``;
    ``row_s_*``: seconds per activation row on a link leaving the server or staying in it."""
    pmax = int(pp.max())
    stage = np.arange(pmax)[None, :]
    pcol = pp[:, None]
    layers = base[:, None] + (stage < extra[:, None])
    is_last = stage == pcol - 1
    row_s = np.where(crosses_servers(stage, tp[:, None], per), row_s_net[:, None],
                     row_s_local[:, None])

    def machines(size: np.ndarray) -> np.ndarray:
        s = np.where(stage < pcol, layers * k.layer_s(size, prompt, 0.0)[:, None]
                     + is_last * k.head_s(size)[:, None], 0.0)
        link = np.where(stage < pcol - 1,
                        np.floor(size * prompt)[:, None] * row_s, 0.0)
        t = np.empty((len(size), 2 * pmax))
        t[:, 0::2], t[:, 1::2] = s, link
        return t

    t, t_last = machines(m), machines(last)
    prefix = np.cumsum(t, axis=1)
    suffix = np.cumsum(t_last[:, ::-1], axis=1)[:, ::-1]
    many = np.max(prefix + (lanes[:, None] - 2) * np.maximum.accumulate(t, axis=1) + suffix,
                  axis=1)
    return np.where(lanes > 1, many, t_last.sum(axis=1))

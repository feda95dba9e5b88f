"""The ``gpu-serving`` analytical evaluator over many design points at once (numpy).

:func:`block` takes the fixed inputs and ``{"role.key": array}`` and returns ``{metric:
array}``, NaN in every metric of an infeasible point (the model does not fit, more devices than
heads or stages than layers, ``micro_batch > batch``) and a reason. The scalar evaluator is
this on one point (:func:`hwsim.batch.evaluate_one`).

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
file chosen by name with a bare role) is grouped by the core (:mod:`hwsim.batch`), which
re-resolves the inputs of each group.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.batch import REASON, reasons
from hwsim.gpu_serving.cost import costs
from hwsim.gpu_serving.roofline import Kernels, crosses_servers, stage_link_Bps
from hwsim.serving.des import lengths, longest_context
from hwsim.system import Inputs

log = logging.getLogger(__name__)

#: keys evaluated as arrays (anything else is grouped by the core, :mod:`hwsim.batch`)
VECTOR_KEYS: frozenset[str] = frozenset(
    [f"mapping.{k}" for k in ("tensor_parallel", "pipeline_parallel", "batch", "micro_batch",
                              "hbm_usable_fraction")]
    + [f"traffic.{k}" for k in ("prompt_tokens", "output_tokens")]
    + [f"calibration.{k}" for k in ("bandwidth_efficiency", "compute_efficiency",
                                    "interconnect_efficiency", "interconnect_latency_us",
                                    "layer_overhead_us")]
    + [f"device.{k}" for k in ("hbm_bandwidth_GBps", "hbm_capacity_GB",
                               "interconnect_bandwidth_GBps", "network_bandwidth_GBps",
                               "peak_16bit_TFLOPS", "peak_8bit_TFLOPS",
                               "rental_usd_per_device_hour")])

#: design points per block (bounds the (points x machines) temporaries)
BLOCK = 65536


def block(inputs: Inputs, vec: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Metrics of ``n`` design points (the :class:`hwsim.batch.BatchModel` block): the fixed
    ``inputs`` with ``vec`` (:data:`VECTOR_KEYS` -> arrays) applied; NaN in every metric of an
    infeasible point, with a reason."""
    return _evaluate(inputs, vec, n)


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
    cal = _view(inputs["calibration"], vec, "calibration")

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

    heads_ok = (tp <= llm.heads) | (mp.attention_sharding == "batch")
    ok = (m <= b) & (pp <= llm.layers) & heads_ok
    pp = np.where(ok, pp, 1.0)  # keep the arithmetic of rejected points harmless
    m = np.where(ok, m, 1.0)
    k = Kernels.build(gpu, cal, llm, SimpleNamespace(**{**vars(mp), "tensor_parallel": tp}))
    dev = k.device
    per = gpu.devices_per_server

    # stages: the first `extra` hold one layer more; the last adds the LM head
    base, extra = np.floor(llm.layers / pp), np.mod(llm.layers, pp)
    n_first = base + (extra > 0)

    # capacity: stage 0 (embeddings, most layers) and the last stage (LM head) are the largest
    cap = arr(gpu.hbm_capacity_GB) * 1e9 * arr(mp.hbm_usable_fraction)
    need = np.maximum(k.device_bytes(n_first, True, pp == 1, pp, b, longest),
                      k.device_bytes(np.where(pp == 1, n_first, base), pp == 1, True, pp, b,
                                     longest))
    fits = need <= cap
    reason = reasons(n, [
        (~(m <= b), "micro_batch exceeds batch"),
        (~(pp <= llm.layers), f"more pipeline stages than the {llm.layers} layers"),
        (~heads_ok, f"tensor_parallel exceeds the {llm.heads} heads (attention_sharding = "
                    "'batch' lifts this)"),
        (~fits, "weights and KV cache exceed the usable HBM of a device"),
    ])
    ok &= fits

    # lanes: `full` of m sequences, then one of `rest` (if any)
    full, rest = np.floor(b / m), np.mod(b, m)
    lanes = full + (rest > 0)
    last = np.where(rest > 0, rest, m)

    # links: how many of the pp - 1 leave the server; bytes per token-row
    n_links = pp - 1
    groups = np.maximum(np.floor(per / tp), 1.0)
    n_cross = np.where(tp > per, n_links, np.floor(n_links / groups))
    n_local = n_links - n_cross
    bw_net = stage_link_Bps(gpu, cal, True, tp)
    bw_local = stage_link_Bps(gpu, cal, False, tp)
    lat = arr(cal.interconnect_latency_us) * 1e-6
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
    res = {key: np.where(ok, arr(v), np.nan) for key, v in out.items()}
    res[REASON] = reason
    return res


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

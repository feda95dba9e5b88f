"""The analytical model of one frame, vectorised over design points (numpy).

**Per layer** (arrays of shape ``(points, layers)``):

- *compute cycles*: a MAC layer's ``groups`` GEMMs on the ``R x C`` array (or its partition)
  by :mod:`hwsim.systolic.timing` (SCALE-Sim's model: ``ceil(S_R / R) * ceil(S_C / C)`` folds of
  ``2 R + C + T - 2`` cycles, fill and drain per fold); a vector layer's
  ``beats + LATENCY`` cycles on the vector / fusion unit (:func:`hwsim.rtl.fusion.stream_cycles`);
- *DRAM traffic* with half of each buffer holding the tile being computed (double buffering),
  ``I``, ``W``, ``O`` the layer's input, weight and output bytes, ``Bi``, ``Bw``, ``Bo`` the
  half-buffers: weights-outer reads the weights once and the inputs once if ``I <= Bi`` else once
  per weight block (``ceil(W / Bw)`` blocks); inputs-outer the reverse; ``auto`` takes the order
  with less traffic, per layer; outputs are written once (activations go to DRAM between
  layers: a layer's output is the next one's input);
- *tiles*: the DMA moves a layer in ``n = max(1, ceil(in / Bi), ceil(w / Bw), ceil(O / Bo),
  ceil(psum / Bo))`` equal tiles (``in``, ``w`` the traffic of each operand; ``psum`` the
  partial sums at ``acc_width`` of a ``ws``/``is`` layer whose reduction spans several folds),
  each tile a share of the layer's compute;
- *time*: load, compute and store of the tiles double-buffered, the link carrying a tile's
  load and store in series: ``t_in + t_c + t_out + (n - 1) * max(t_c, t_in + t_out)``, with
  ``t_c`` the tile's compute and ``t_in``, ``t_out`` its DRAM time at the board's bandwidth
  (times ``dram_efficiency``). Layers are separated by a barrier (a layer reads what the
  previous one wrote). A MAC layer also waits :data:`SEQUENCER_LATENCY` cycle for the tile
  sequencer's first buffer read before its first fold (:mod:`hwsim.a3fusion.rtl`: the RTL's
  command-to-idle time is ``compute_cycles + SEQUENCER_LATENCY``; commands of a layer's tiles
  overlap, so once per layer). A layer's *stall* is its time minus its compute.

**Per frame**: ``shared`` runs every layer on the whole array, the branches alternating layer
by layer until the fusion (their arrival times follow from that order); ``partitioned`` gives
the camera branch ``camera_cols`` columns (and that share of each buffer) and LiDAR the rest,
running both at once on one DRAM (:func:`contended`: a fluid model of the two sharing it);
``camera_cols = 0`` picks the split with the earliest fusion among the 33 around the
MAC-proportional one (every split, for arrays of up to 34 columns): the branches *aligned* at
the fusion layer. The fused layers run on the whole array. Compute and stall cycles are counted
on the critical path (both branches when shared; the later branch when partitioned), so
``latency = (compute_cycles + stall_cycles) / clock``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwsim.a3fusion.layers import Layer, Network
from hwsim.systolic import timing

#: split candidates around the MAC-proportional one (offsets), for camera_cols = 0
SPLIT_OFFSETS = np.arange(-16, 17)
#: cycles from a MAC layer's first command to its first operand in the array: the tile
#: sequencer's buffer read (measured on the RTL, :mod:`hwsim.a3fusion.rtl`), once per layer
SEQUENCER_LATENCY = 1


def _latency_cycles() -> int:
    from hwsim.rtl.fusion import LATENCY

    return LATENCY


@dataclass(frozen=True)
class Segment:
    """Per-layer constants of a run of layers (a branch, or the fused part)."""

    layers: tuple[Layer, ...]
    is_mac: np.ndarray
    m: np.ndarray
    n: np.ndarray
    k: np.ndarray
    groups: np.ndarray
    in_elems: np.ndarray
    w_elems: np.ndarray
    out_elems: np.ndarray
    beat_elems: np.ndarray
    beat_div: np.ndarray
    macs: np.ndarray

    @classmethod
    def of(cls, layers: Sequence[Layer]) -> Segment:
        def arr(f: Any) -> np.ndarray:
            return np.array([f(layer) for layer in layers], dtype=float)

        return cls(
            layers=tuple(layers),
            is_mac=np.array([layer.is_mac for layer in layers], dtype=bool),
            m=arr(lambda x: x.m), n=arr(lambda x: x.n), k=arr(lambda x: x.k),
            groups=arr(lambda x: x.groups), in_elems=arr(lambda x: x.in_elems),
            w_elems=arr(lambda x: x.weight_elems), out_elems=arr(lambda x: x.out_elems),
            beat_elems=arr(lambda x: x.in_elems if x.op in ("maxpool", "avgpool")
                           else x.out_elems),
            beat_div=arr(lambda x: 2.0 if x.op == "concat" else 1.0),
            macs=arr(lambda x: x.macs))

    def __len__(self) -> int:
        return len(self.layers)


def layer_model(seg: Segment, dataflow: str, loop_order: str, rows: np.ndarray,
                cols: np.ndarray, p: Mapping[str, np.ndarray],
                share: np.ndarray | float = 1.0) -> dict[str, np.ndarray]:
    """Every per-layer quantity of ``seg`` on ``rows x cols`` (arrays of points); ``share`` of
    each buffer is this segment's. Returns ``(points, layers)`` arrays."""
    npts = len(rows)
    if len(seg) == 0:
        z = np.zeros((npts, 0))
        return {k: z for k in ("cycles", "scalesim", "tiles", "load", "store", "t_c", "t_in",
                               "t_out", "time", "compute_s", "inputs_outer", "sram_pJ", "folds")}
    R, C = rows[:, None].astype(float), cols[:, None].astype(float)
    share = np.broadcast_to(np.asarray(share, dtype=float), (npts,))[:, None]
    wb, accb = p["operand_bytes"][:, None], p["acc_bytes"]
    bi, bw_, bo = (p[f"{b}_half_B"][:, None] * share for b in ("ifmap", "filter", "ofmap"))
    mac = seg.is_mac[None, :]
    s_r, s_c, t = timing.mapping(dataflow, seg.m, seg.n, seg.k)
    folds = timing.folds(R, C, s_r[None, :], s_c[None, :]) * seg.groups[None, :]
    fold_len = timing.fold_cycles(R, C, t[None, :])
    arr_cycles = np.where(mac, folds * fold_len, 0.0)
    # what SCALE-Sim would report for each of the groups' GEMMs (its last cycle's index)
    scalesim = np.where(mac, seg.groups[None, :] * timing.scalesim_cycles(
        dataflow, R, C, seg.m[None, :], seg.n[None, :], seg.k[None, :]), 0.0)
    lanes = p["lanes"][:, None]
    beats = np.ceil(seg.beat_elems[None, :] / (seg.beat_div[None, :] * lanes))
    cycles = arr_cycles + np.where(mac, 0.0, beats + _latency_cycles())

    i_b = seg.in_elems[None, :] * wb
    w_b = seg.w_elems[None, :] * wb
    o_b = seg.out_elems[None, :] * wb
    n_wb = np.maximum(np.ceil(w_b / bw_), 1.0)
    n_ib = np.maximum(np.ceil(i_b / bi), 1.0)
    wo_in, wo_w = np.where(i_b <= bi, 1.0, n_wb) * i_b, w_b
    io_in, io_w = i_b, np.where(w_b <= bw_, 1.0, n_ib) * w_b
    if loop_order == "inputs-outer":
        use_io = np.ones_like(i_b, dtype=bool)
    elif loop_order == "weights-outer":
        use_io = np.zeros_like(i_b, dtype=bool)
    else:
        use_io = io_in + io_w < wo_in + wo_w
    in_tr, w_tr = np.where(use_io, io_in, wo_in), np.where(use_io, io_w, wo_w)
    split_k = mac & (dataflow != "os") & (seg.k[None, :] > R)
    psum = np.where(split_k, seg.m * seg.n * seg.groups * accb, 0.0)
    tiles = np.maximum.reduce([np.ones_like(i_b), np.ceil(in_tr / bi), np.ceil(w_tr / bw_),
                               np.ceil(o_b / bo), np.ceil(psum / bo)])
    load, store = in_tr + w_tr, o_b
    hz, bw = p["clock_Hz"][:, None], p["dram_Bps"][:, None]
    t_c, t_in, t_out = cycles / hz / tiles, load / tiles / bw, store / tiles / bw
    time = (t_in + t_c + t_out + (tiles - 1.0) * np.maximum(t_c, t_in + t_out)
            + np.where(mac, SEQUENCER_LATENCY / hz, 0.0))

    # bytes between the array and the buffers, per fold (partial folds zero-padded)
    if dataflow == "os":
        a_fold, b_fold, o_fold = R * t * wb, t * C * wb, R * C * accb
    elif dataflow == "ws":
        a_fold, b_fold, o_fold = t * R * wb, R * C * wb, t * C * accb
    else:  # is: the inputs stationary, the weights streamed
        a_fold, b_fold, o_fold = R * C * wb, t * R * wb, t * C * accb
    e = p["energy"]
    sram_i = np.where(mac, folds * a_fold, i_b) + in_tr
    sram_w = np.where(mac, folds * b_fold, 0.0) + w_tr
    sram_o = np.where(mac, folds * o_fold, o_b) + store
    sram_pJ = (sram_i * e["sram_ifmap"][:, None] * 1.0 + sram_w * e["sram_filter"][:, None]
               + sram_o * e["sram_ofmap"][:, None])
    return {"cycles": cycles, "scalesim": scalesim, "tiles": tiles, "load": load,
            "store": store, "t_c": t_c, "t_in": t_in, "t_out": t_out, "time": time,
            "compute_s": cycles / hz, "inputs_outer": use_io.astype(float), "sram_pJ": sram_pJ,
            "folds": folds}


def _arrivals_shared(tc: np.ndarray, tl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times of the two branches at the fusion when they alternate layer by layer on
    one array (camera first), FIFO: ``c1, l1, c2, l2, ...`` (the DES's order)."""
    npts = tc.shape[0]
    ccum = np.concatenate([np.zeros((npts, 1)), np.cumsum(tc, axis=1)], axis=1)
    lcum = np.concatenate([np.zeros((npts, 1)), np.cumsum(tl, axis=1)], axis=1)
    nc, nl = tc.shape[1], tl.shape[1]
    cam = ccum[:, nc] + lcum[:, min(nl, nc - 1)] if nc else np.zeros(npts)
    lid = lcum[:, nl] + ccum[:, min(nc, nl)] if nl else np.zeros(npts)
    return cam, lid


def contended(tc: np.ndarray, tl: np.ndarray, dc: np.ndarray,
              dl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times of two concurrent branches sharing one DRAM (a fluid approximation).

    Alone, branch ``b`` takes ``t_b`` and keeps the DRAM busy ``d_b`` of it (``u_b = d_b /
    t_b``). While both run, a demand ``u_c + u_l > 1`` slows both by that factor (the DRAM
    shared fairly, the demand spread evenly over each branch); once the first finishes, the
    other goes on alone. With ``u_c + u_l <= 1`` nothing is slowed; the later arrival is never
    before ``(d_c + d_l)``, the DRAM time of both.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(tc > 0, dc / tc, 0.0) + np.where(tl > 0, dl / tl, 0.0)
    s = np.maximum(u, 1.0)
    fast = np.minimum(tc, tl)
    first = fast * s
    second = first + (np.maximum(tc, tl) - fast)
    second = np.maximum(second, dc + dl)
    cam_first = tc <= tl
    return np.where(cam_first, first, second), np.where(cam_first, second, first)


def frame(net: Network, dataflow: str, loop_order: str, branch_mode: str,
          p: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The whole frame for every point: per-segment layer results and the frame figures."""
    rows, cols = p["rows"], p["cols"]
    npts = len(rows)
    segs = {b: Segment.of(net.branch(b)) for b in ("camera", "lidar", "fused")}
    bw = p["dram_Bps"]
    partitioned = branch_mode == "partitioned" and len(segs["camera"]) and len(segs["lidar"])
    if partitioned:
        fixed = p["camera_cols"]
        mc, ml = segs["camera"].macs.sum(), segs["lidar"].macs.sum()
        prop = np.clip(np.round(cols * mc / max(mc + ml, 1.0)), 1, cols - 1)
        best_phase = np.full(npts, np.inf)
        split = np.where(fixed > 0, fixed, prop)
        small = cols <= len(SPLIT_OFFSETS) + 1  # every split is a candidate
        for j, off in enumerate(SPLIT_OFFSETS if not np.all(fixed > 0) else SPLIT_OFFSETS[:1]):
            c = np.where(small, np.minimum(j + 1, cols - 1), np.clip(prop + off, 1, cols - 1))
            c = np.where(fixed > 0, fixed, c)
            rc = layer_model(segs["camera"], dataflow, loop_order, rows, c, p, c / cols)
            rl = layer_model(segs["lidar"], dataflow, loop_order, rows, cols - c, p,
                             1.0 - c / cols)
            traffic = (rc["load"] + rc["store"]).sum(1) + (rl["load"] + rl["store"]).sum(1)
            phase = np.maximum(*contended(rc["time"].sum(1), rl["time"].sum(1),
                                          (rc["load"] + rc["store"]).sum(1) / bw,
                                          (rl["load"] + rl["store"]).sum(1) / bw))
            better = phase < best_phase
            best_phase = np.where(better, phase, best_phase)
            split = np.where(better, c, split)
        cam_cols, lid_cols = split, cols - split
        res = {"camera": layer_model(segs["camera"], dataflow, loop_order, rows, cam_cols, p,
                                     cam_cols / cols),
               "lidar": layer_model(segs["lidar"], dataflow, loop_order, rows, lid_cols, p,
                                    lid_cols / cols)}
    else:
        cam_cols = np.zeros(npts)
        res = {b: layer_model(segs[b], dataflow, loop_order, rows, cols, p)
               for b in ("camera", "lidar")}
    res["fused"] = layer_model(segs["fused"], dataflow, loop_order, rows, cols, p)
    t = {b: res[b]["time"].sum(1) for b in res}
    comp = {b: res[b]["cycles"].sum(1) for b in res}
    traffic = {b: (res[b]["load"] + res[b]["store"]).sum(1) for b in res}
    if partitioned:
        arr_c, arr_l = contended(t["camera"], t["lidar"], traffic["camera"] / bw,
                                 traffic["lidar"] / bw)
        phase = np.maximum(arr_c, arr_l)
        later_cam = arr_c >= arr_l
        path_cycles = np.where(later_cam, comp["camera"], comp["lidar"]) + comp["fused"]
    else:
        arr_c, arr_l = _arrivals_shared(res["camera"]["time"], res["lidar"]["time"])
        phase = t["camera"] + t["lidar"]
        path_cycles = comp["camera"] + comp["lidar"] + comp["fused"]
    latency = phase + t["fused"]
    hz = p["clock_Hz"]
    two = bool(len(segs["camera"]) or len(segs["lidar"]))
    first = np.minimum(arr_c, arr_l) if two else phase
    return {"segments": segs, "layers": res, "latency_s": latency, "phase_s": phase,
            "camera_s": arr_c, "lidar_s": arr_l, "align_wait_s": phase - first,
            "compute_cycles": path_cycles, "stall_cycles": latency * hz - path_cycles,
            "traffic_B": sum(traffic.values()), "camera_cols": cam_cols,
            "partitioned": bool(partitioned)}

"""The discrete-event evaluator of ``a3fusion`` on :mod:`hwsim.des`: one event per DMA tile.

Each layer is a :class:`hwsim.des.Pipeline` of its tiles (the analytical model's tiles:
:mod:`hwsim.a3fusion.model`): load (a DRAM transfer), compute (the tile's share of the layer's
cycles), store (a DRAM transfer), double-buffered. All transfers share one
:class:`hwsim.des.Link` (the board's DRAM), fairly. The two branches are concurrent processes:

- ``shared``: one array (a ``simpy.Resource``) the branches take layer by layer, first come
  first served (camera first), so they alternate;
- ``partitioned``: each branch on its own columns (the analytical model's aligned split), at
  the same time, contending only for DRAM.

They meet at the fusion layer (the later arrival starts it); the fused layers follow on the
whole array. With a ``TraceRecorder`` the timeline shows, per branch: each layer, each tile's
compute on ``<branch>.array``, the array's DRAM stalls (``stall: DRAM``: the array idle within
a layer, waiting for a load, for room for a store, or for the last store; a MAC layer's first
stall also holds the tile sequencer's one-cycle buffer read), the wait for the
array held by the other branch (``wait: array``, shared) and the wait at the fusion layer
(``wait: fusion``); every DRAM transfer on the ``dram[i]`` lanes.

Without DRAM contention between the branches (shared mode, or a compute-bound frame) the DES
and the analytical model agree: each layer's pipeline on an idle link takes exactly the
analytical ``t_in + t_c + t_out + (n - 1) max(t_c, t_in + t_out)`` when compute-bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.a3fusion import model
from hwsim.a3fusion.evaluate import SYSTEM, params
from hwsim.a3fusion.layers import build_layers
from hwsim.system import Inputs, Metrics


def simulate(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> Metrics:
    """One frame through the DES; the metrics the analytical model also reports, measured."""
    import simpy

    from hwsim.des import Link, Pipeline, Stage

    base = SYSTEM.analytical(inputs)  # feasibility, resources, energy, accuracy, the split
    a = inputs["accel"]
    p = params(a, inputs["board"], inputs["energy"], lambda k, d: np.asarray([d]))
    network = build_layers(inputs["network"])
    fr = model.frame(network, a.dataflow, a.loop_order, a.branch_mode, p)
    hz = float(p["clock_Hz"][0])
    env = simpy.Environment()
    dram = Link(env, float(p["dram_Bps"][0]), name="dram", recorder=trace)
    array = simpy.Resource(env, capacity=1) if not fr["partitioned"] else None
    compute_s = {"camera": 0.0, "lidar": 0.0, "fused": 0.0}
    arrival: dict[str, float] = {}

    def span(name: str, t0: float, thread: str, **args: Any) -> None:
        if trace is not None and env.now > t0:
            trace.complete(name, t0, env.now - t0, thread=thread, cat="a3fusion",
                           args=args or None)

    def run_layer(branch: str, i: int):
        layer = fr["segments"][branch].layers[i]
        r = fr["layers"][branch]
        tiles = int(r["tiles"][0, i])
        t_c = float(r["t_c"][0, i])
        load_b = float(r["load"][0, i]) / tiles
        store_b = float(r["store"][0, i]) / tiles
        track = f"{branch}.array"
        last_end = [env.now]

        def compute(_tile: int) -> float:
            now = env.now
            if trace is not None:
                if now > last_end[0]:
                    trace.complete("stall: DRAM", last_end[0], now - last_end[0],
                                   thread=track, cat="stall", args={"layer": layer.name})
                trace.complete(layer.name, now, t_c, thread=track, cat="compute")
            last_end[0] = now + t_c
            return t_c

        t0 = env.now
        if layer.is_mac:  # the sequencer's first buffer read (model.SEQUENCER_LATENCY): in
            yield env.timeout(model.SEQUENCER_LATENCY / hz)  # the trace, part of the first stall
        pipe = Pipeline(env, [
            Stage("load", lambda _t: dram.transfer(load_b, label=f"load {layer.name}")),
            Stage("compute", compute),
            Stage("store", lambda _t: dram.transfer(store_b, label=f"store {layer.name}")),
        ], name=f"{branch}.{layer.name}")
        yield pipe.run(range(tiles))
        if trace is not None and env.now > last_end[0]:  # the last tile's store
            trace.complete("stall: DRAM", last_end[0], env.now - last_end[0], thread=track,
                           cat="stall", args={"layer": layer.name})
        compute_s[branch] += pipe.busy_s["compute"]
        span(layer.name, t0, branch, op=layer.op, tiles=tiles,
             compute_cycles=float(r["cycles"][0, i]))

    def branch_proc(branch: str):
        for i in range(len(fr["segments"][branch])):
            if array is None:
                yield from run_layer(branch, i)
                continue
            t0 = env.now
            with array.request() as req:
                yield req
                span("wait: array", t0, branch)
                yield from run_layer(branch, i)
        arrival[branch] = env.now

    def frame_proc():
        procs = [env.process(branch_proc(b)) for b in ("camera", "lidar")]
        yield env.all_of(procs)
        for b in ("camera", "lidar"):
            if trace is not None and env.now > arrival[b]:
                other = "lidar" if b == "camera" else "camera"
                trace.complete(f"wait: fusion (for {other})", arrival[b], env.now - arrival[b],
                               thread=b, cat="wait")
        for i in range(len(fr["segments"]["fused"])):
            yield from run_layer("fused", i)

    env.run(env.process(frame_proc()))
    latency = env.now
    if fr["partitioned"]:
        later = "camera" if arrival["camera"] >= arrival["lidar"] else "lidar"
        path_s = compute_s[later] + compute_s["fused"]
    else:
        path_s = sum(compute_s.values())
    first = min(arrival.values()) if len(fr["segments"]["camera"]) or len(
        fr["segments"]["lidar"]) else max(arrival.values())
    path_cycles = path_s * hz
    phase = max(arrival.values())
    out = {k: v for k, v in base.items() if k != "memory_bound"}
    out.update({
        "latency_ms": latency * 1e3,
        "latency_s": latency,
        "fps": 1.0 / latency,
        "compute_cycles": path_cycles,
        "stall_cycles": latency * hz - path_cycles,
        "utilization": base["gmac_per_frame"] * 1e9 / (base["pes"] * latency * hz),
        "camera_ms": arrival["camera"] * 1e3,
        "lidar_ms": arrival["lidar"] * 1e3,
        "align_wait_ms": (phase - first) * 1e3,
    })
    return out

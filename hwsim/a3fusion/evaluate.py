"""The ``a3fusion`` system: its roles, metrics, vectorised analytical block and validation.

Inputs: ``network`` (``cnn``), ``accuracy`` (``cnn-accuracy``), ``accel`` (``a3fusion-accel``),
``board`` (the shared ``fpga-board``), ``energy`` (``op-energy``). The analytical model is
:mod:`hwsim.a3fusion.model`, the DES :mod:`hwsim.a3fusion.des`, the per-layer table
:func:`layer_rows` (``python -m hwsim.a3fusion``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwsim import specs
from hwsim.a3fusion import energy as E
from hwsim.a3fusion import model, resources
from hwsim.a3fusion.accuracy import accuracy
from hwsim.a3fusion.layers import build_layers
from hwsim.a3fusion.spec import AccelSpec, AccuracySpec, CnnSpec, OpEnergySpec
from hwsim.batch import REASON, BatchModel, reasons
from hwsim.hw.fpga import FpgaBoardSpec
from hwsim.system import Inputs, Metric, Metrics, Role, System, register_system

__all__ = ["SYSTEM", "block", "layer_rows", "params"]

ACCEL_VECTOR = ("rows", "cols", "clock_MHz", "operand_width", "ifmap_buffer_KiB",
                "filter_buffer_KiB", "ofmap_buffer_KiB", "camera_cols", "vector_lanes",
                "dram_efficiency")
BOARD_VECTOR = ("dsp", "lut", "ff", "bram36", "uram", "dram_bandwidth_GBps")
#: keys the block takes as arrays; the network, the dataflow, the loop order, the branch mode
#: and the accumulator width (which fit of the resource table) are grouped by the core
VECTOR_KEYS: frozenset[str] = frozenset([f"accel.{k}" for k in ACCEL_VECTOR]
                                        + [f"board.{k}" for k in BOARD_VECTOR])


def params(a: AccelSpec, b: FpgaBoardSpec, e: OpEnergySpec,
           get: Callable[[str, Any], np.ndarray]) -> dict[str, Any]:
    """The per-point parameters of the model (``get(key, default)`` gives the arrays)."""
    v = {k: np.asarray(get(f"accel.{k}", getattr(a, k)), dtype=float) for k in ACCEL_VECTOR}
    bd = {k: np.asarray(get(f"board.{k}", getattr(b, k)), dtype=float) for k in BOARD_VECTOR}
    half = {n: v[f"{n}_buffer_KiB"] * 1024 / 2 for n in ("ifmap", "filter", "ofmap")}
    return {
        "rows": v["rows"], "cols": v["cols"], "camera_cols": v["camera_cols"],
        "clock_Hz": v["clock_MHz"] * 1e6, "operand_width": v["operand_width"],
        "operand_bytes": v["operand_width"] / 8, "acc_bytes": a.acc_width / 8,
        "lanes": v["vector_lanes"],
        "dram_Bps": bd["dram_bandwidth_GBps"] * 1e9 * v["dram_efficiency"],
        **{f"{n}_half_B": h for n, h in half.items()},
        "buffer_KiB": {n: v[f"{n}_buffer_KiB"] for n in ("ifmap", "filter", "ofmap")},
        "board": bd,
        "energy": {f"sram_{n}": E.sram_pJ_per_byte(e, h) for n, h in half.items()},
    }


def _metrics(inputs: Inputs, p: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every metric of the points in ``p`` (before feasibility), and the frame model."""
    a: AccelSpec = inputs["accel"]
    net: CnnSpec = inputs["network"]
    acc: AccuracySpec = inputs["accuracy"]
    e: OpEnergySpec = inputs["energy"]
    network = build_layers(net)
    fr = model.frame(network, a.dataflow, a.loop_order, a.branch_mode, p)
    hz = p["clock_Hz"]
    lat = fr["latency_s"]
    pes = p["rows"] * p["cols"]
    macs = float(network.macs)
    mac_pJ = macs * (E.mult_pJ(e, p["operand_width"]) + E.add_pJ(e, a.acc_width))
    vec_elems = sum(float(sum(x.in_elems for x in seg.layers if not x.is_mac))
                    for seg in fr["segments"].values())
    vec_pJ = vec_elems * E.add_pJ(e, p["operand_width"])
    sram_pJ = sum(r["sram_pJ"].sum(1) for r in fr["layers"].values())
    dram_pJ = fr["traffic_B"] * E.dram_pJ_per_byte(e)
    res = resources.estimate(a.dataflow, p["rows"], p["cols"], fr["camera_cols"],
                             p["operand_width"], a.acc_width, p["lanes"], p["buffer_KiB"],
                             p["board"]["uram"] > 0, fr["partitioned"],
                             family=inputs["board"].family)
    bd = p["board"]
    fits = ((res["dsp"] <= bd["dsp"]) & (res["lut"] <= bd["lut"]) & (res["ff"] <= bd["ff"])
            & (res["bram"] <= bd["bram36"]) & (res["uram"] <= bd["uram"]))
    out = {
        "latency_ms": lat * 1e3,
        "latency_s": lat,
        "fps": 1.0 / lat,
        "compute_cycles": fr["compute_cycles"],
        "stall_cycles": fr["stall_cycles"],
        "utilization": macs / (pes * lat * hz),
        "memory_bound": (fr["traffic_B"] / p["dram_Bps"] > fr["compute_cycles"] / hz)
        .astype(float),
        "camera_ms": fr["camera_s"] * 1e3,
        "lidar_ms": fr["lidar_s"] * 1e3,
        "align_wait_ms": fr["align_wait_s"] * 1e3,
        "camera_cols": fr["camera_cols"],
        "dram_traffic_MB": fr["traffic_B"] / 1e6,
        "gmac_per_frame": np.full(len(lat), macs / 1e9),
        "pes": pes,
        "dsp": res["dsp"], "lut": res["lut"], "ff": res["ff"], "bram": res["bram"],
        "uram": res["uram"],
        "fits_board": fits.astype(float),
        "energy_mJ_per_frame": (mac_pJ + vec_pJ + sram_pJ + dram_pJ) * 1e-9,
        "accuracy_proxy": np.full(len(lat), accuracy(acc, net)),
    }
    return out, fr


def block(inputs: Inputs, arrays: Mapping[str, np.ndarray], n: int) -> dict[str, Any]:
    """Every metric of ``n`` design points (the :class:`hwsim.batch.BatchModel` block)."""
    a: AccelSpec = inputs["accel"]
    b: FpgaBoardSpec = inputs["board"]
    e: OpEnergySpec = inputs["energy"]

    def get(key: str, default: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(arrays.get(key, default)), (n,))

    p = params(a, b, e, get)
    pes = p["rows"] * p["cols"]
    bad_split = (p["camera_cols"] >= p["cols"]) & (a.branch_mode == "partitioned")
    p["camera_cols"] = np.where(bad_split, 0, p["camera_cols"])
    out, _ = _metrics(inputs, p)
    too_big = pes > p["board"]["dsp"]
    no_acc = ~np.isfinite(out["accuracy_proxy"]) & (inputs["accuracy"].model == "table")
    reason = reasons(n, [
        (too_big, f"the array needs one DSP slice per PE, more than the {b.dsp} of board "
                  f"'{b.name}' ({b.device})"),
        (bad_split, "accel.camera_cols leaves the LiDAR branch no columns"),
        (no_acc, "the network configuration is outside the measured accuracy table"),
    ])
    bad = reason != ""
    res: dict[str, Any] = {k: np.where(bad, np.nan, np.asarray(v, dtype=float))
                           for k, v in out.items()}
    res[REASON] = reason
    return res


def _file_of(kind: str, name: str) -> str:
    """The spec file of ``name`` (relative to the repository when it is under it)."""
    try:
        p = specs.find_spec_file(kind, name)
    except Exception:  # a spec built in code, or its file gone: name it by kind and name
        return f"{kind} '{name}'"
    try:
        return str(p.resolve().relative_to(specs.models_dir().resolve().parent))
    except ValueError:
        return str(p)


def explain(inputs: Inputs, short: str = "") -> str:
    """Why one design point cannot run, with the file, key and value where an input says it."""
    a: AccelSpec = inputs["accel"]
    b: FpgaBoardSpec = inputs["board"]
    if a.rows * a.cols > b.dsp:
        return (f"{_file_of('a3fusion-accel', a.name)}: key 'accel.cols' = {a.cols}: a "
                f"{a.rows} x {a.cols} array needs {a.rows * a.cols} DSP slices (one per PE), "
                f"more than the {b.dsp} of board '{b.name}' ({_file_of('fpga-board', b.name)}, "
                f"{b.device})")
    if inputs["accuracy"].model == "table" and "accuracy" in short:
        acc = inputs["accuracy"]
        return (f"{_file_of('cnn-accuracy', acc.name)}: key 'table_file' = "
                f"{acc.table_file!r}: network '{inputs['network'].name}' is outside the "
                "measured configurations (the table is interpolated, never extrapolated)")
    return short


# ----------------------------------------------------------------------------------------------
# per-layer figures


#: a layer whose DRAM stall is more than this share of its compute cycles is flagged
#: ``memory-bound`` in :func:`layer_rows`
STALL_FLAG_SHARE = 0.1


def layer_rows(inputs: Inputs) -> list[dict[str, Any]]:
    """One row per layer of one design point (the analytical model's): shape, GEMM, cycles,
    tiles, traffic, time, and ``flag``: ``memory-bound`` where the DRAM stall exceeds
    :data:`STALL_FLAG_SHARE` of the compute cycles, ``vector`` for a layer of the vector unit,
    else empty."""
    a: AccelSpec = inputs["accel"]
    p = params(a, inputs["board"], inputs["energy"], lambda k, d: np.asarray([d]))
    fr = model.frame(build_layers(inputs["network"]), a.dataflow, a.loop_order,
                     a.branch_mode, p)
    hz = float(p["clock_Hz"][0])
    cam_cols = int(fr["camera_cols"][0])
    rows = []
    for branch in ("camera", "lidar", "fused"):
        seg, r = fr["segments"][branch], fr["layers"][branch]
        cols = a.cols if branch == "fused" or not fr["partitioned"] else (
            cam_cols if branch == "camera" else a.cols - cam_cols)
        for i, layer in enumerate(seg.layers):
            t, c = float(r["time"][0, i]), float(r["cycles"][0, i])
            rows.append({
                "layer": layer.name, "branch": branch, "op": layer.op,
                "shape": layer.describe(), "array": f"{a.rows}x{cols}" if layer.is_mac else
                f"vector x{int(p['lanes'][0])}",
                "m": layer.m, "n": layer.n, "k": layer.k, "groups": layer.groups,
                "macs": layer.macs, "compute_cycles": int(c),
                "scalesim_cycles": int(r["scalesim"][0, i]) if layer.is_mac else None,
                "tiles": int(r["tiles"][0, i]),
                "loop_order": ("inputs-outer" if r["inputs_outer"][0, i] else "weights-outer")
                if layer.is_mac else "",
                "dram_bytes": int(r["load"][0, i] + r["store"][0, i]),
                "time_us": t * 1e6, "stall_cycles": round(t * hz - c),
            })
            stall = rows[-1]["stall_cycles"]
            rows[-1]["flag"] = ("memory-bound" if stall > STALL_FLAG_SHARE * max(c, 1.0) else
                                "" if layer.is_mac else "vector")
    return rows


# ----------------------------------------------------------------------------------------------
# validation: SCALE-Sim 3.0.0's own compute cycles of conv and GEMM layers

SCALESIM_TABLE = Path(__file__).with_name("data") / "scalesim_3_conv_cycles.csv"


def scalesim_reference() -> list[dict[str, str]]:
    """The rows of ``data/scalesim_3_conv_cycles.csv``."""
    lines = [ln for ln in SCALESIM_TABLE.read_text().splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(lines))


def predict_scalesim(row: Mapping[str, str]) -> int:
    """The compute cycles SCALE-Sim reports for a reference row, by hwsim's own path: the row
    read as a SCALE-Sim topology row (:func:`hwsim.a3fusion.importers.scalesim_row`), mapped
    to its GEMMs, timed by :func:`hwsim.systolic.timing.scalesim_cycles` (SCALE-Sim reports
    the last cycle's index, and overlaps an ``os`` fold's drain with the next fill)."""
    from hwsim.a3fusion.importers import scalesim_row
    from hwsim.a3fusion.model import Segment, layer_model

    if row["form"] == "gemm":
        cells = [row["layer"], row["m"], row["n"], row["k"]]
    else:
        cells = [row["layer"], *(row[c] for c in ("ifmap_h", "ifmap_w", "filter_h", "filter_w",
                                                  "channels", "num_filter", "stride"))]
    layer = scalesim_row(cells, row["form"], "fused")
    one = np.ones(1)
    p = {"operand_bytes": one, "acc_bytes": 4.0, "lanes": 8 * one, "clock_Hz": 1e8 * one,
         "dram_Bps": 1e12 * one, "ifmap_half_B": 1e9 * one, "filter_half_B": 1e9 * one,
         "ofmap_half_B": 1e9 * one,
         "energy": {f"sram_{n}": one for n in ("ifmap", "filter", "ofmap")}}
    out = layer_model(Segment.of([layer]), row["dataflow"], "auto", int(row["rows"]) * one,
                      int(row["cols"]) * one, p)
    return int(out["scalesim"][0, 0])


def _cases() -> list[Any]:
    """Held-out, exact: nothing was fitted on SCALE-Sim's numbers."""
    from hwsim.validation import Case

    out = []
    for r in scalesim_reference():
        if (r["rows"], r["cols"]) != ("8", "8"):
            continue  # the 4 x 8 rows are checked by tests/test_a3fusion.py
        what = (f"GEMM {r['m']}x{r['n']}x{r['k']}" if r["form"] == "gemm" else
                f"IFMAP {r['ifmap_h']}x{r['ifmap_w']}x{r['channels']}, filter "
                f"{r['filter_h']}x{r['filter_w']}, {r['num_filter']} filters, stride "
                f"{r['stride']}")
        out.append(Case(
            system="a3fusion", case=f"{r['dataflow']} {r['rows']}x{r['cols']} {r['layer']}",
            metric="scalesim_compute_cycles", reference=float(r["scalesim_cycles"]),
            tolerance=0.0, group="conv-layer compute cycles vs SCALE-Sim", role="held-out",
            source="SCALE-Sim 3.0.0 (pip), COMPUTE_REPORT Total Cycles of a full run without "
                   "stalls (hwsim/a3fusion/data/scalesim_conv_reference.py)",
            conditions=f"{what}; {r['scalesim_layers']} SCALE-Sim layer(s) summed; hwsim's "
                       "conv-to-GEMM mapping and hwsim.systolic.timing",
            predict=lambda r=r: float(predict_scalesim(r))))
    from hwsim.validation import load_cases

    return out + load_cases("a3fusion", Path(__file__).with_name("validation.toml"))


def _des(inputs: Inputs, *, seed: int = 0, trace: Any = None) -> Metrics:
    from hwsim.a3fusion.des import simulate

    return simulate(inputs, seed=seed, trace=trace)


def _tables(inputs: Inputs, fidelity: str, *, seed: int = 0,
            trace: Any = None) -> tuple[Metrics, dict[str, list[dict[str, Any]]]]:
    """The metrics of either evaluator and the per-layer table (``layers``, the analytical
    model's cycles, traffic and flag of each layer)."""
    metrics = SYSTEM.evaluate(inputs, fidelity, seed=seed, trace=trace)
    return metrics, {"layers": layer_rows(inputs)}


_A = ("analytical",)
SYSTEM = register_system(System(
    name="a3fusion",
    summary="camera-LiDAR fusion segmentation network on an FPGA systolic accelerator",
    roles=(
        Role("network", "cnn", "fusion-seg-kitti", "the two-branch network"),
        Role("accuracy", "cnn-accuracy", "accuracy-proxy", "where its accuracy comes from"),
        Role("accel", "a3fusion-accel", "default", "PE array, buffers, clock, branch mode"),
        Role("board", "fpga-board", "zcu102", "the FPGA device and its DRAM"),
        Role("energy", "op-energy", "horowitz-45nm", "energy per operation"),
    ),
    metrics=(
        Metric("latency_ms", "time for one frame, both branches, the fusion and the decoder"),
        Metric("latency_s", "one frame"),
        Metric("fps", "frames per second, one frame at a time (1000 / latency_ms)"),
        Metric("compute_cycles", "one frame's critical path: both branches when shared, the "
               "later one when partitioned, then the fused layers"),
        Metric("stall_cycles", "cycles on the critical path the array waits for DRAM (the "
               "first load and last store of every layer, and any tile whose DMA outlasts its "
               "compute): latency x clock - compute_cycles"),
        Metric("utilization", "the frame's MACs / (PEs x latency x clock)"),
        Metric("memory_bound", "the frame's DRAM traffic at the board's bandwidth outlasts its "
               "critical-path compute", _A),
        Metric("camera_ms", "when the camera branch reaches the fusion layer"),
        Metric("lidar_ms", "when the LiDAR branch reaches the fusion layer"),
        Metric("align_wait_ms", "how long the branch that arrives first waits at the fusion "
               "layer (0 when aligned)"),
        Metric("camera_cols", "PE columns of the camera branch when partitioned (0: shared)"),
        Metric("dram_traffic_MB", "bytes read and written from DRAM per frame / 1e6"),
        Metric("gmac_per_frame", "multiply-accumulates of one frame / 1e9"),
        Metric("pes", "processing elements, rows x cols"),
        Metric("dsp", "the PE array (one per PE)"),
        Metric("lut", "the PE array and the fusion unit(s)"),
        Metric("ff", "the PE array and the fusion unit(s)"),
        Metric("bram", "36 Kb block RAMs: the buffers (and the array's, none measured)"),
        Metric("uram", "288 Kb UltraRAM blocks: buffers of 64 KiB or more, on boards with URAM"),
        Metric("fits_board", "1 when DSP, LUT, FF, BRAM and URAM are all within the board's "
               "(the DMA, interconnect and control are not counted), else 0"),
        Metric("energy_mJ_per_frame", "dynamic energy of one frame: MACs, vector ops, buffer "
               "accesses and DRAM bytes at the op-energy spec's figures"),
        Metric("accuracy_proxy", "the accuracy model's value for the network: the documented "
               "proxy (not a measured accuracy) or the user's table interpolated; NaN for "
               "networks that are not generated"),
    ),
    batch=BatchModel(VECTOR_KEYS, block, block_points=8192, explain=explain),
    des=_des,
    tables=_tables,
    validation=_cases,
))


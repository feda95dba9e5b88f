"""a3fusion: SCALE-Sim's own cycle counts exactly, the DES against the analytical model, the
bounds every metric keeps, the aligned branch split, the CLI contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hwsim.a3fusion import model
from hwsim.a3fusion.evaluate import (
    SYSTEM,
    layer_rows,
    params,
    predict_scalesim,
    scalesim_reference,
)
from hwsim.a3fusion.layers import build_layers, make_layer
from hwsim.cli import main
from hwsim.des.trace import TraceRecorder
from hwsim.errors import InfeasibleDesign
from hwsim.systolic import timing

TINY = ["network=fusion-seg-tiny"]
REQUIRED = ("latency_ms", "fps", "compute_cycles", "stall_cycles", "utilization", "dsp", "bram",
            "lut", "ff", "fits_board", "energy_mJ_per_frame", "accuracy_proxy")


def _eval(specs=(), sets=(), fidelity="analytical", trace=None):
    inputs = SYSTEM.resolve(list(specs), list(sets))
    return SYSTEM.evaluate(inputs, fidelity, trace=trace)


# ----------------------------------------------------------------------------------------------
# SCALE-Sim 3.0.0's numbers, exactly


@pytest.mark.parametrize("row", scalesim_reference(),
                         ids=lambda r: f"{r['dataflow']}-{r['rows']}x{r['cols']}-{r['layer']}")
def test_layer_cycles_are_scalesims(row):
    """Every conv (stride, padding, odd sizes, non-square, depthwise) and GEMM row of the
    committed SCALE-Sim 3.0.0 table, read as a topology row and mapped by hwsim."""
    assert predict_scalesim(row) == int(row["scalesim_cycles"])


def test_conv_maps_to_gemm_as_im2col():
    layer = make_layer("c", "conv", "fused", [(10, 12, 4)], out_c=8, kernel_h=3, kernel_w=3,
                       stride=2, pad=1)
    ho, wo = (10 + 2 - 3) // 2 + 1, (12 + 2 - 3) // 2 + 1
    assert (layer.out_h, layer.out_w) == (ho, wo)
    assert (layer.m, layer.k, layer.n, layer.groups) == (ho * wo, 3 * 3 * 4, 8, 1)
    assert layer.macs == ho * wo * 3 * 3 * 4 * 8  # SCALE-Sim's num_mac
    dw = make_layer("d", "dwconv", "fused", [(8, 8, 6)], kernel_h=3, kernel_w=3, pad=1)
    assert (dw.m, dw.k, dw.n, dw.groups) == (64, 9, 1, 6)
    up = make_layer("u", "deconv", "fused", [(4, 5, 16)], out_c=8, kernel_h=2, kernel_w=2,
                    stride=2)
    assert (up.out_h, up.out_w, up.m, up.k, up.n) == (8, 10, 20, 16, 32)
    assert up.macs == 4 * 5 * 16 * 8 * 4


def test_hwsim_counts_working_cycles():
    """compute_cycles is SCALE-Sim's number + 1 per GEMM (ws, is), + 1 + R per fold (os)."""
    layer = make_layer("c", "conv", "fused", [(10, 10, 4)], out_c=8, kernel_h=3, kernel_w=3)
    for df in ("ws", "is", "os"):
        rows = layer_rows(SYSTEM.resolve(TINY, [f'accel.dataflow="{df}"',
                                                 'accel.branch_mode="shared"']))
        for r in rows:
            if r["scalesim_cycles"] is None:
                continue
            s_r, s_c, _ = timing.mapping(df, r["m"], r["n"], r["k"])
            folds = int(timing.folds(32, 32, s_r, s_c)) * r["groups"]
            extra = r["groups"] + (32 * folds if df == "os" else 0)
            assert r["compute_cycles"] == r["scalesim_cycles"] + extra, (df, r["layer"])
    assert layer.m == 64


# ----------------------------------------------------------------------------------------------
# the analytical model: its definitions and bounds


@pytest.mark.parametrize("sets", [
    [], ['accel.branch_mode="shared"'], ['accel.dataflow="os"'], ['accel.dataflow="is"'],
    ["board.dram_bandwidth_GBps=0.5"], ['accel.loop_order="inputs-outer"']])
def test_metrics_keep_their_definitions(sets):
    m = _eval(TINY, sets)
    clock = SYSTEM.resolve(TINY, sets)["accel"].clock_MHz * 1e6
    assert m["latency_ms"] * m["fps"] == pytest.approx(1000.0)
    assert m["latency_s"] == pytest.approx(m["latency_ms"] / 1e3)
    assert m["compute_cycles"] + m["stall_cycles"] == pytest.approx(m["latency_s"] * clock)
    assert m["stall_cycles"] >= 0
    assert 0 < m["utilization"] <= 1
    assert m["utilization"] == pytest.approx(m["gmac_per_frame"] * 1e9
                                             / (m["pes"] * m["latency_s"] * clock))
    assert max(m["camera_ms"], m["lidar_ms"]) <= m["latency_ms"]
    assert m["align_wait_ms"] == pytest.approx(abs(m["camera_ms"] - m["lidar_ms"]), abs=1e-9)
    assert m["dsp"] == m["pes"] and m["fits_board"] == 1.0
    assert 0.5 <= m["accuracy_proxy"] <= 0.95


def test_latency_bounded_by_compute_and_by_dram():
    inputs = SYSTEM.resolve(TINY, ['accel.branch_mode="shared"', "board.dram_bandwidth_GBps=0.2"])
    m = SYSTEM.evaluate(inputs)
    assert m["memory_bound"] == 1.0
    assert m["latency_s"] >= m["dram_traffic_MB"] * 1e6 / 0.2e9
    fast = _eval(TINY, ['accel.branch_mode="shared"', "board.dram_bandwidth_GBps=1000"])
    assert fast["memory_bound"] == 0.0
    assert fast["compute_cycles"] == m["compute_cycles"]
    assert fast["stall_cycles"] < m["stall_cycles"]


def test_traffic_at_least_inputs_weights_outputs_once():
    inputs = SYSTEM.resolve(TINY)
    net = build_layers(inputs["network"])
    once = sum(x.in_elems + x.weight_elems + x.out_elems for x in net.layers)  # int8: bytes
    assert _eval(TINY)["dram_traffic_MB"] * 1e6 >= once
    # buffers big enough for every layer: each operand read once
    big = _eval(TINY, ["accel.ifmap_buffer_KiB=4096", "accel.filter_buffer_KiB=4096",
                       "accel.ofmap_buffer_KiB=4096"])
    assert big["dram_traffic_MB"] * 1e6 == pytest.approx(once)


def test_energy_is_at_least_the_macs_and_grows_with_traffic():
    m = _eval(TINY)
    e = SYSTEM.resolve(TINY)["energy"]
    mac_mJ = m["gmac_per_frame"] * 1e9 * (e.mult_8bit_pJ + e.add_32bit_pJ) * 1e-9
    dram_mJ = m["dram_traffic_MB"] * 1e6 * e.dram_pJ_per_64bit / 8 * 1e-9
    assert m["energy_mJ_per_frame"] > mac_mJ + dram_mJ
    small = _eval(TINY, ["accel.ifmap_buffer_KiB=8", "accel.filter_buffer_KiB=8",
                         "accel.ofmap_buffer_KiB=8"])
    assert small["dram_traffic_MB"] >= m["dram_traffic_MB"]


def test_aligned_split_is_the_best_one():
    """camera_cols = 0 picks the split whose later branch reaches the fusion layer first."""
    inputs = SYSTEM.resolve(TINY, ["accel.rows=16", "accel.cols=16"])
    a = inputs["accel"]
    chosen = SYSTEM.evaluate(inputs)
    arrivals = []
    for c in range(1, a.cols):
        m = SYSTEM.evaluate(SYSTEM.resolve(TINY, ["accel.rows=16", "accel.cols=16",
                                                  f"accel.camera_cols={c}"]))
        arrivals.append(max(m["camera_ms"], m["lidar_ms"]))
    assert max(chosen["camera_ms"], chosen["lidar_ms"]) == pytest.approx(min(arrivals))
    assert 1 <= chosen["camera_cols"] <= a.cols - 1


def test_shared_arrivals_follow_the_alternation():
    inputs = SYSTEM.resolve(TINY, ['accel.branch_mode="shared"'])
    a = inputs["accel"]
    p = params(a, inputs["board"], inputs["energy"], lambda k, d: np.asarray([d]))
    fr = model.frame(build_layers(inputs["network"]), a.dataflow, a.loop_order, "shared", p)
    cam, lid = fr["layers"]["camera"]["time"][0], fr["layers"]["lidar"]["time"][0]
    t, order = 0.0, []
    for i in range(max(len(cam), len(lid))):  # c1, l1, c2, l2, ...
        for name, seq in (("camera", cam), ("lidar", lid)):
            if i < len(seq):
                t += seq[i]
                order.append((name, t))
    last = {name: tt for name, tt in order}
    assert fr["camera_s"][0] == pytest.approx(last["camera"])
    assert fr["lidar_s"][0] == pytest.approx(last["lidar"])


def test_batch_equals_scalar_and_marks_too_large_arrays():
    inputs = SYSTEM.resolve([*TINY, "board=ultra96-v2"])
    rows = np.array([8, 16, 32])
    out = SYSTEM.analytical_batch(inputs, {"accel.rows": rows, "accel.cols": rows})
    assert out.feasible.tolist() == [True, True, False]  # 1024 PEs > 360 DSPs
    assert "DSP" in out.reasons[2] and math.isnan(out["latency_ms"][2])
    for i, r in enumerate(rows[:2]):
        one = SYSTEM.evaluate(SYSTEM.resolve([*TINY, "board=ultra96-v2"],
                                             [f"accel.rows={r}", f"accel.cols={r}"]))
        assert out["latency_ms"][i] == pytest.approx(one["latency_ms"], rel=1e-12)
        assert out["energy_mJ_per_frame"][i] == pytest.approx(one["energy_mJ_per_frame"])


def test_array_larger_than_the_boards_dsps_names_file_key_value():
    with pytest.raises(InfeasibleDesign) as ei:
        _eval([*TINY, "board=ultra96-v2"])  # the default 32 x 32 array on 360 DSPs
    msg = str(ei.value)
    assert "models/a3fusion/default.toml" in msg and "key 'accel.cols' = 32" in msg
    assert "1024 DSP" in msg and "360" in msg and "\n" not in msg


def test_buffers_past_the_board_do_not_fit():
    m = _eval([*TINY, "board=ultra96-v2"], ["accel.rows=16", "accel.cols=16",
                                            "accel.ifmap_buffer_KiB=2048"])
    assert m["fits_board"] == 0.0 and m["bram"] > 216
    uram = _eval([*TINY, "board=zcu104"], ["accel.ifmap_buffer_KiB=1024"])
    assert uram["uram"] > 0 and uram["bram"] < m["bram"]


# ----------------------------------------------------------------------------------------------
# the DES against the analytical model


def _close(a, d, names, rel):
    off = {k: (a[k], d[k]) for k in names if d[k] != pytest.approx(a[k], rel=rel, abs=1e-9)}
    assert not off, off


TIMES = ("latency_ms", "fps", "compute_cycles", "utilization", "camera_ms", "lidar_ms")


@pytest.mark.parametrize("specs,sets", [
    (TINY, ["board.dram_bandwidth_GBps=1000"]), (TINY, ['accel.branch_mode="shared"']),
    (TINY, ['accel.branch_mode="shared"', 'accel.dataflow="os"']),
    ([], []), ([], ['accel.dataflow="os"']),
    ([], ['accel.branch_mode="shared"', 'accel.dataflow="is"'])])
def test_des_equals_analytical_when_dram_is_not_the_bottleneck(specs, sets):
    """Shared: exact (one layer's DMA at a time); partitioned: the default network on the
    ZCU102, or the tiny one with ample bandwidth (its layers are so short that the two
    branches' first loads and last stores collide: 3 % at the ZCU102's 17 GB/s)."""
    inputs = SYSTEM.resolve(specs, sets)
    a, d = SYSTEM.evaluate(inputs), SYSTEM.evaluate(inputs, "des")
    assert set(d) == set(SYSTEM.metric_names("des"))
    _close(a, d, TIMES, 0.02)
    same = [k for k in d if k not in (*TIMES, "stall_cycles", "latency_s", "align_wait_ms")]
    _close(a, d, same, 1e-12)  # resources, energy, accuracy: the same model


def test_des_is_slower_by_the_stall_when_dram_is_the_bottleneck():
    sets = ['accel.branch_mode="shared"', "board.dram_bandwidth_GBps=0.3"]
    inputs = SYSTEM.resolve(TINY, sets)
    trace = TraceRecorder()
    a, d = SYSTEM.evaluate(inputs), SYSTEM.evaluate(inputs, "des", trace=trace)
    clock = inputs["accel"].clock_MHz * 1e6
    assert a["memory_bound"] == 1.0
    assert d["stall_cycles"] > d["compute_cycles"]
    assert d["latency_s"] == pytest.approx((d["compute_cycles"] + d["stall_cycles"]) / clock)
    assert d["stall_cycles"] == pytest.approx(a["stall_cycles"], rel=0.02)
    stalls = [e for e in trace.events if e.get("name") == "stall: DRAM"]
    # one array, the branches in turn: the array is idle exactly while it stalls
    assert stalls and sum(e["dur"] for e in stalls) / 1e6 * clock == pytest.approx(
        d["stall_cycles"], rel=1e-6)
    assert any(e.get("name") == "wait: array" for e in trace.events)


def test_partitioned_trace_shows_the_wait_at_the_fusion_layer(tmp_path):
    sets = ["accel.rows=16", "accel.cols=16", "accel.camera_cols=4"]  # the camera starved
    trace = TraceRecorder()
    d = _eval(TINY, sets, "des", trace=trace)
    assert d["camera_ms"] > d["lidar_ms"]
    waits = [e for e in trace.events if e.get("name", "").startswith("wait: fusion")]
    assert len(waits) == 1 and waits[0]["dur"] / 1e3 == pytest.approx(d["align_wait_ms"])
    path = tmp_path / "t.json"
    trace.write(path)
    assert json.loads(path.read_text())["traceEvents"]


def test_partitioned_dram_contention_is_bounded():
    """Both branches on one DRAM: the analytical fluid model against the DES."""
    inputs = SYSTEM.resolve(TINY, ["board.dram_bandwidth_GBps=0.5"])
    a, d = SYSTEM.evaluate(inputs), SYSTEM.evaluate(inputs, "des")
    assert d["latency_ms"] == pytest.approx(a["latency_ms"], rel=0.05)
    assert d["latency_ms"] >= a["dram_traffic_MB"] * 1e6 / 0.5e9 * 1e3


# ----------------------------------------------------------------------------------------------
# the command line


def test_simulate_json_reports_the_required_metrics(capsys):
    assert main(["simulate", "a3fusion", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok"
    for k in REQUIRED:
        assert isinstance(out["metrics"][k], float), k
    # per-layer cycles with a flag, in hwsim simulate's own object
    layers = out["layers"]
    assert layers and all(r["compute_cycles"] > 0 for r in layers if r["op"] == "conv")
    assert all(r["flag"] in ("", "memory-bound", "vector") for r in layers)


def test_layer_flag_marks_the_dram_bound_layers(capsys):
    """On a starved DDR the flag marks exactly the layers stalled past 10% of their compute."""
    from hwsim.a3fusion.evaluate import STALL_FLAG_SHARE

    assert main(["simulate", "a3fusion", "--json", "--set",
                 "board.dram_bandwidth_GBps=2"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    bound = [r for r in layers if r["flag"] == "memory-bound"]
    assert bound and len(bound) < len(layers)
    for r in layers:
        assert (r["flag"] == "memory-bound") == (
            r["stall_cycles"] > STALL_FLAG_SHARE * max(r["compute_cycles"], 1))


def test_per_layer_json(capsys):
    from hwsim.a3fusion.__main__ import run

    assert run(["--json", "--spec", "network=fusion-seg-tiny", "--set",
                'accel.branch_mode="shared"']) == 0
    out = json.loads(capsys.readouterr().out)
    layers, m = out["layers"], out["metrics"]
    assert len(layers) == len(build_layers(SYSTEM.resolve(TINY)["network"]).layers)
    assert sum(r["compute_cycles"] for r in layers) == m["compute_cycles"]
    assert sum(r["time_us"] for r in layers) == pytest.approx(m["latency_ms"] * 1e3)
    assert sum(r["dram_bytes"] for r in layers) == pytest.approx(m["dram_traffic_MB"] * 1e6)
    assert all(r["scalesim_cycles"] is not None for r in layers if r["op"] == "conv")


def test_per_layer_text_and_bad_input(capsys):
    from hwsim.a3fusion.__main__ import run

    assert run(["--spec", "network=fusion-seg-tiny"]) == 0
    assert "scalesim_cycles" in capsys.readouterr().out
    assert run(["--set", "network.fusion_stage=9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


@pytest.mark.parametrize("sets,needles", [
    (["network.fusion_stage=6"], ["fusion-seg-kitti.toml", "fusion_stage", "= 6",
                                  "past the last stage"]),
    (["network.height_px=4"], ["key 'stages' = 4", "too small"]),
    (["accel.dataflow=\"xs\""], ["dataflow", "'xs'"]),
])
def test_bad_input_is_one_line_with_file_key_value(capsys, sets, needles):
    argv = ["simulate", "a3fusion"] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for n in needles:
        assert n in err, (n, err)


@pytest.mark.parametrize("study", ["a3fusion_ultra96", "a3fusion_zcu102"])
def test_studies_validate(study, tmp_path, capsys):
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "explore" / f"{study}.toml"
    assert main(["sweep", str(path), "--validate-only", "--out", str(tmp_path)]) == 0
    assert "ok (12 parameters, 2 objectives, 2 constraints" in capsys.readouterr().out


def test_the_rtl_blocks_of_a_design():
    """The next slice's entry point: the shared generators' specs of the chosen design."""
    from hwsim.a3fusion.hardware import array_specs, fusion_spec
    from hwsim.systolic.array import SystolicArray

    inputs = SYSTEM.resolve(TINY)
    m = SYSTEM.evaluate(inputs)
    arrays = array_specs(inputs)
    assert [s.cols for s in arrays] == [m["camera_cols"], 32 - m["camera_cols"]]
    for s in arrays:
        assert SystolicArray(s).fold_cycles(10) == timing.fold_cycles(s.rows, s.cols, 10)
    assert fusion_spec(inputs).lanes == inputs["accel"].vector_lanes
    shared = SYSTEM.resolve(TINY, ['accel.branch_mode="shared"'])
    assert [s.cols for s in array_specs(shared)] == [32]
    # input-stationary designs have RTL too (the ws structure, tests/test_rtl_systolic.py)
    assert {s.dataflow for s in array_specs(SYSTEM.resolve(TINY, ['accel.dataflow="is"']))} \
        == {"is"}

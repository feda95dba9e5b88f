"""a3fusion's inputs: generated networks, layer tables, SCALE-Sim CSVs, ONNX models, the
accuracy model and its CSV, the boards; every bad input one error naming file, key, value."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from hwsim import specs
from hwsim.a3fusion.accuracy import accuracy, proxy
from hwsim.a3fusion.evaluate import SYSTEM
from hwsim.a3fusion.layers import build_layers
from hwsim.a3fusion.spec import AccuracySpec, CnnSpec
from hwsim.cli import main
from hwsim.errors import InfeasibleDesign, InputError


def _net(name: str = "fusion-seg-tiny") -> CnnSpec:
    return specs.load_spec(specs.find_spec_file("cnn", name), "cnn")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------------------------
# the generated network


@pytest.mark.parametrize("stage", range(0, 5))
@pytest.mark.parametrize("op", ["add", "concat"])
def test_every_fusion_point_and_operator_builds(stage, op):
    net = dataclasses.replace(_net(), fusion_stage=stage, fusion_op=op, lidar_width=4)
    layers = build_layers(net).layers
    fused = [x for x in layers if x.branch == "fused"]
    assert fused[0].op == op and fused[0].name.startswith("fusion_")
    assert layers[-1].out_c == net.classes
    assert (layers[-1].out_h, layers[-1].out_w) == (64, 64)
    if op == "add" and stage <= net.stages:  # the narrower LiDAR branch projected
        assert any(x.name == "lid_project" for x in layers)
    per_branch = {b: [x for x in layers if x.branch == b] for b in ("camera", "lidar")}
    if stage == 0:
        assert not per_branch["camera"]
    if stage == net.stages + 1:  # late: each branch has its own classifier
        assert per_branch["camera"][-1].name == "cam_classifier"


def test_wider_deeper_later_means_more_macs():
    base = _net()
    macs = build_layers(base).macs
    wider = dataclasses.replace(base, camera_width=16)
    deeper = dataclasses.replace(base, lidar_depth=2)
    assert build_layers(wider).macs > macs and build_layers(deeper).macs > macs
    sep = dataclasses.replace(base, camera_block="separable")
    assert any(x.op == "dwconv" for x in build_layers(sep).layers)


def test_fusion_point_past_the_last_stage(tmp_path):
    text = specs.find_spec_file("cnn", "fusion-seg-tiny").read_text().replace(
        "fusion_stage = 2", "fusion_stage = 5")
    path = _write(tmp_path, "late.toml", text.replace('name = "fusion-seg-tiny"',
                                                       'name = "late"'))
    with pytest.raises(InputError) as ei:
        specs.load_spec(path, "cnn")
    msg = _one_line(ei.value)
    assert str(path) in msg and "key 'fusion_stage' = 5" in msg and "stages = 3" in msg


# ----------------------------------------------------------------------------------------------
# layer tables

TABLE = """kind = "cnn"
name = "t"
source = "table"
[[layers]]
name = "c1"
op = "conv"
branch = "camera"
in_h = 16
in_w = 16
in_c = 3
out_c = 8
kernel = 3
pad = 1
[[layers]]
name = "l1"
op = "conv"
branch = "lidar"
in_h = 16
in_w = 16
in_c = 2
out_c = 8
kernel = 3
pad = 1
[[layers]]
name = "fuse"
op = "add"
branch = "fused"
[[layers]]
name = "head"
op = "conv"
branch = "fused"
in_c = {in_c}
out_c = 2
"""


def test_layer_table_chains():
    net = specs.load_spec(specs.find_spec_file("cnn", "table-example"), "cnn")
    layers = build_layers(net).layers
    assert [x.branch for x in layers].count("fused") == 4
    m = SYSTEM.evaluate(SYSTEM.resolve(["network=table-example"]))
    assert m["latency_ms"] > 0 and math.isnan(m["accuracy_proxy"])  # no proxy for a table


def test_layer_table_with_a_mismatched_channel_count(tmp_path):
    ok = _write(tmp_path, "t.toml", TABLE.format(in_c=8))
    assert len(build_layers(specs.load_spec(ok, "cnn")).layers) == 4
    bad = _write(tmp_path, "bad.toml", TABLE.format(in_c=16))
    with pytest.raises(InputError) as ei:
        specs.load_spec(bad, "cnn")
    msg = _one_line(ei.value)
    assert str(bad) in msg and "key 'layers[3].in_c' = 16" in msg
    assert "expected 8" in msg and "'fuse'" in msg


@pytest.mark.parametrize("edit,needle", [
    (('name = "l1"', 'name = "c1"'), "key 'layers[1].name' = 'c1'"),
    (("in_c = 2\n", ""), "key 'layers[1].in_c' = 0"),
    (('branch = "fused"\n[[layers]]', 'branch = "fused"\ninputs = ["c1", "zz"]\n[[layers]]'),
     "no earlier layer named 'zz'"),
    (("kernel = 3\npad = 1\n[[layers]]\nname = \"l1\"",
      "kernel = 31\npad = 1\n[[layers]]\nname = \"l1\""), "key 'layers[0].kernel'"),
])
def test_layer_table_errors(tmp_path, edit, needle):
    bad = _write(tmp_path, "bad.toml", TABLE.format(in_c=8).replace(*edit, 1))
    with pytest.raises(InputError) as ei:
        specs.load_spec(bad, "cnn")
    assert needle in _one_line(ei.value) and str(bad) in str(ei.value)


# ----------------------------------------------------------------------------------------------
# SCALE-Sim topology files


def test_scalesim_files_network():
    net = specs.load_spec(specs.find_spec_file("cnn", "scalesim-example"), "cnn")
    layers = build_layers(net).layers
    names = [x.name for x in layers]
    assert names[:4] == ["cam_conv1", "cam_conv2", "DPcam_dw3", "cam_pw3"]
    assert "fusion_concat" in names and names[-1] == "head_fc"
    dw = layers[2]
    assert dw.op == "dwconv" and dw.groups == 16 and (dw.m, dw.k, dw.n) == (32 * 32, 9, 1)
    head = layers[-1]
    assert (head.m, head.n, head.k) == (1024, 2, 32)
    m = SYSTEM.evaluate(SYSTEM.resolve(["network=scalesim-example"]))
    assert m["gmac_per_frame"] * 1e9 == pytest.approx(sum(x.macs for x in layers))


@pytest.mark.parametrize("row,needle", [
    ("c1, 10, 10, 3, 3, four, 8, 1,", "key 'line 2, column Channels' = 'four'"),
    ("c1, 10, 10, 3, 3, 4, 8,", "expected 8 columns"),
    ("c1, 2, 2, 3, 3, 4, 8, 1,", "column Filter Height"),
    ("c1, 10, 10, 3, 3, 4, 8, 1, 2:4,", "sparsity"),
])
def test_scalesim_csv_errors(tmp_path, row, needle):
    header = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
              "Num Filter, Strides,\n")
    csv = _write(tmp_path, "cam.csv", header + row + "\n")
    toml = _write(tmp_path, "n.toml", f'kind = "cnn"\nname = "n"\nsource = "files"\n'
                  f'fused_file = "{csv}"\n')
    with pytest.raises(InputError) as ei:
        specs.load_spec(toml, "cnn")
    msg = _one_line(ei.value)
    assert str(csv) in msg and needle in msg


# ----------------------------------------------------------------------------------------------
# ONNX


def _onnx_model(path: Path, extra_op: str | None = None) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w2")
    w3 = numpy_helper.from_array(rng.standard_normal((16, 8, 1, 1)).astype(np.float32), "w3")
    wf = numpy_helper.from_array(rng.standard_normal((16 * 8 * 8, 10)).astype(np.float32), "wf")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a2"], name="relu1"),
        helper.make_node("Conv", ["a2", "w2"], ["b"], name="dw2", pads=[1, 1, 1, 1], group=8),
        helper.make_node("Conv", ["b", "w3"], ["c"], name="pw3"),
        helper.make_node("MaxPool", ["c"], ["d"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["d"], ["e"], name="flat"),
        helper.make_node("MatMul", ["e", "wf"], ["y"], name="fc"),
    ]
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["y"], ["z"], name="odd"))
    out = "z" if extra_op else "y"
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        initializer=[w1, w2, w3, wf])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_onnx_conv_and_gemm_layers(tmp_path):
    model = _onnx_model(tmp_path / "small.onnx")
    toml = _write(tmp_path, "n.toml", f'kind = "cnn"\nname = "n"\nsource = "files"\n'
                  f'fused_file = "{model}"\n')
    layers = build_layers(specs.load_spec(toml, "cnn")).layers
    assert [x.op for x in layers] == ["conv", "dwconv", "conv", "maxpool", "gemm"]
    conv1, dw, pw, pool, fc = layers
    assert (conv1.m, conv1.k, conv1.n) == (256, 27, 8)
    assert (dw.groups, dw.m, dw.k, dw.n) == (8, 256, 9, 1)
    assert (pw.m, pw.k, pw.n) == (256, 8, 16)
    assert (pool.out_h, pool.out_w, pool.out_c) == (8, 8, 16)
    assert (fc.m, fc.k, fc.n) == (1, 1024, 10)


def test_onnx_operator_that_cannot_be_mapped(tmp_path, capsys):
    model = _onnx_model(tmp_path / "odd.onnx", extra_op="Erf")
    toml = _write(tmp_path, "odd.toml", f'kind = "cnn"\nname = "odd"\nsource = "files"\n'
                  f'fused_file = "{model}"\n')
    with pytest.raises(InputError) as ei:
        specs.load_spec(toml, "cnn")
    msg = _one_line(ei.value)
    assert str(model) in msg and "key 'node odd' = 'Erf'" in msg and "'Erf'" in msg
    assert main(["simulate", "a3fusion", "--spec", f"network={toml}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'Erf'" in err


# ----------------------------------------------------------------------------------------------
# accuracy


def _acc(**kw) -> AccuracySpec:
    base = specs.load_spec(specs.find_spec_file("cnn-accuracy", "accuracy-proxy"),
                           "cnn-accuracy")
    return dataclasses.replace(base, **kw)


def test_proxy_is_monotone_and_saturating():
    acc = _acc()
    f = {"camera_width": 16, "camera_depth": 1, "lidar_width": 8, "lidar_depth": 1,
         "fusion_stage": 1, "stages": 4, "fusion_op": "add"}
    base = proxy(acc, f)
    for key, more in (("camera_width", 64), ("camera_depth", 3), ("lidar_width", 64),
                      ("lidar_depth", 3), ("fusion_stage", 5), ("fusion_op", "concat")):
        assert proxy(acc, {**f, key: more}) > base, key
    huge = proxy(acc, {**f, "camera_width": 10**6})
    assert acc.floor < base < huge <= acc.ceiling


TABLE_CSV = """camera_width,lidar_width,fusion_stage,fusion_op,accuracy
8,8,2,concat,0.70
32,8,2,concat,0.80
8,32,2,concat,0.74
32,32,2,concat,0.86
8,8,2,add,0.68
32,32,2,add,0.84
"""


def test_accuracy_table_is_interpolated(tmp_path):
    csv = _write(tmp_path, "acc.csv", "# measured (made up for the test)\n" + TABLE_CSV)
    acc = _acc(model="table", table_file=str(csv))
    net = _net()  # camera 8, lidar 8, stage 2, concat
    assert accuracy(acc, net) == pytest.approx(0.70)
    mid = dataclasses.replace(net, camera_width=20)
    assert accuracy(acc, mid) == pytest.approx(0.75)
    assert accuracy(acc, dataclasses.replace(net, fusion_op="add")) == pytest.approx(0.68)
    out = dataclasses.replace(net, camera_width=64)
    assert math.isnan(accuracy(acc, out))
    other = dataclasses.replace(net, fusion_stage=1)
    assert math.isnan(accuracy(acc, other))  # fusion_stage 1 is not in the table
    inputs = SYSTEM.resolve(["network=fusion-seg-tiny"],
                            ['accuracy.model="table"', f'accuracy.table_file="{csv}"',
                             "network.camera_width=64"])
    with pytest.raises(InfeasibleDesign, match="outside the measured"):
        SYSTEM.evaluate(inputs)


@pytest.mark.parametrize("text,needle", [
    ("camera_width,accuracy\n8,0.7\n8,0.8\n", "a second row"),
    ("camera_width,accuracy\n8,1.7\n", "fraction"),
    ("camera_width,accuracy\neight,0.7\n", "key 'line 2, column camera_width' = 'eight'"),
    ("camera_widht,accuracy\n8,0.7\n", "key 'column camera_widht'"),
    ("camera_width\n8\n", "missing column 'accuracy'"),
])
def test_accuracy_table_errors(tmp_path, text, needle):
    csv = _write(tmp_path, "acc.csv", text)
    with pytest.raises(InputError) as ei:
        accuracy(_acc(model="table", table_file=str(csv)), _net())
    msg = _one_line(ei.value)
    assert str(csv) in msg and needle in msg


# ----------------------------------------------------------------------------------------------
# boards


@pytest.mark.parametrize("name,dsp,uram", [("zcu102", 2520, 0), ("zcu104", 1728, 96),
                                           ("ultra96-v2", 360, 0), ("alveo-u250", 12288, 1280),
                                           ("zc706", 900, 0), ("pynq-z1", 220, 0)])
def test_boards(name, dsp, uram):
    b = specs.load_spec(specs.find_spec_file("fpga-board", name), "fpga-board")
    assert (b.dsp, b.uram) == (dsp, uram)
    assert b.dram_bandwidth_GBps > 0 and b.lut > 0 and b.ff >= b.lut
    if name.startswith(("zc7", "pynq")):  # the earlier files, unchanged, load with defaults
        assert b.dsp_slice == "" and b.typical_clock_MHz == 0.0
    else:
        assert b.dsp_slice == "DSP48E2" and b.typical_clock_MHz == 300.0

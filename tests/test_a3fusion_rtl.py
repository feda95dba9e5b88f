"""RTL in the loop for a3fusion: the generated datapath against numpy and the timing model,
its synthesis against the resource model, and a study's designs re-checked."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.a3fusion import model
from hwsim.a3fusion.evaluate import SYSTEM
from hwsim.a3fusion.hardware import design as design_of
from hwsim.a3fusion.rtl import (
    SEQUENCER_LATENCY,
    A3FusionCore,
    A3FusionDesign,
    conv_reference,
    gemm_reference,
    im2col,
    plan_gemm,
    probe_layer,
    simulate,
    verify,
)
from hwsim.cli import main
from hwsim.systolic import timing

FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = dict(ifmap_buffer_KiB=4.0, filter_buffer_KiB=4.0, ofmap_buffer_KiB=4.0)
YOSYS = shutil.which("yosys") is not None
needs_yosys = pytest.mark.skipif(not YOSYS, reason="yosys not installed: no synthesis")
TINY_RTL = ["--spec", "network=fusion-seg-tiny", "--spec", "board=ultra96-v2",
            "--set", "accel.rows=4", "--set", "accel.cols=4",
            "--set", "accel.ifmap_buffer_KiB=4", "--set", "accel.filter_buffer_KiB=4",
            "--set", "accel.ofmap_buffer_KiB=4", "--set", "accel.vector_lanes=2"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@st.composite
def gemm_cases(draw):
    rows, cols = draw(st.integers(2, 4)), draw(st.integers(2, 5))
    split = draw(st.sampled_from([0, *range(1, cols)]))
    d = A3FusionDesign(rows=rows, cols=cols, camera_cols=split,
                       dataflow=draw(st.sampled_from(["ws", "os", "is"])),
                       acc_width=draw(st.sampled_from([16, 32])), **SMALL)
    part = draw(st.sampled_from([None, *range(len(d.part_cols))]))
    m, n, k = (draw(st.integers(1, 7)) for _ in range(3))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    a = rng.integers(-128, 127, (m, k), endpoint=True)
    b = rng.integers(-128, 127, (k, n), endpoint=True)
    fold_cols = d.cols if part is None else d.part_cols[part]
    _, s_c, _ = timing.mapping(d.dataflow, m, n, k)
    blocks = draw(st.integers(1, -(-s_c // fold_cols)))
    return d, part, a, b, blocks


@FEW
@given(gemm_cases())
def test_gemm_bit_and_cycle_exact(case) -> None:
    """Any GEMM on any partition (or the chained pair), in any number of back-to-back blocks:
    numpy's product (sums wrapped at 16 or 32 bits), the array busy exactly the timing model's
    cycles, one sequencer cycle before it."""
    d, part, a, b, blocks = case
    plan = plan_gemm(d, a, b, part=part, blocks=blocks)
    assert len(plan.commands) == blocks
    res = simulate(d, [plan])
    assert (res.products[0] == gemm_reference(a, b, d.acc_width)).all()
    cols = d.cols if part is None else d.part_cols[part]
    m, k = a.shape
    expect = timing.compute_cycles(d.dataflow, d.rows, cols, m, b.shape[1], k)
    first = min(res.first_in[p] for p in plan.parts)
    last = max(res.last_out[p] for p in plan.parts)
    assert first == res.accepted[0] + SEQUENCER_LATENCY
    assert last - first + 1 == expect
    assert res.cycles == expect + SEQUENCER_LATENCY
    assert not res.error


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_conv_layers_of_a_partitioned_design(dataflow: str) -> None:
    """Small conv layers (im2col as the timing model maps them, against a direct loop
    convolution): camera and LiDAR at once on their partitions, then a fused layer on the
    chained pair; the fusion units' streams against fuse_reference."""
    d = A3FusionDesign(rows=4, cols=6, camera_cols=2, dataflow=dataflow, vector_lanes=2,
                       fusion_op="add", **SMALL)
    v = verify(d, seed=3)
    assert v["passed"], v["checks"]
    layers = [c for c in v["checks"] if c["layer"].startswith("probe")]
    assert [c["layer"] for c in layers] == ["probe_camera", "probe_lidar", "probe_fused"]
    for c in layers:
        assert c["array_span_cycles"] == c["model_cycles"]
        assert c["command_to_idle_cycles"] == c["model_cycles"] + SEQUENCER_LATENCY
    assert sum(c["layer"].startswith("fusion unit") for c in v["checks"]) == 2
    # the probe layers really take several folds in both spatial dimensions
    layer = probe_layer(d, "p", "fused", d.cols)
    s_r, s_c, _ = timing.mapping(dataflow, layer.m, layer.n, layer.k)
    assert s_r > d.rows and s_c > d.cols


def test_im2col_is_the_models_gemm_and_a_convolution() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(-8, 8, (5, 4, 3)).astype(object)
    w = rng.integers(-8, 8, (3, 3, 3, 2)).astype(object)
    for stride, pad in ((1, 1), (2, 0), (2, 1)):
        a = im2col(x, 3, 3, stride, pad)
        out = conv_reference(x, w, stride, pad, 32)
        assert (a @ w.reshape(-1, 2) == out.reshape(-1, 2)).all()


def test_dma_ports_write_the_buffers() -> None:
    """Operands written through the wa/wb streams (not preloaded) give the same product."""
    d = A3FusionDesign(rows=3, cols=3, dataflow="ws", **SMALL)
    rng = np.random.default_rng(2)
    a, b = rng.integers(-128, 127, (4, 5)), rng.integers(-128, 127, (5, 4))
    res = simulate(d, [plan_gemm(d, a, b)], preload=False)
    assert (res.products[0] == gemm_reference(a, b, 32)).all()


def test_a_block_that_does_not_fit_is_refused() -> None:
    d = A3FusionDesign(rows=2, cols=2, dataflow="ws", **SMALL)
    with pytest.raises(ValueError, match="buffer"):
        plan_gemm(d, np.ones((5000, 2), dtype=int), np.ones((2, 2), dtype=int))


def test_design_of_a_design_point() -> None:
    """The generator's spec comes from the system: the model's split, the board's family."""
    inputs = SYSTEM.resolve(["network=fusion-seg-tiny", "board=ultra96-v2"],
                            {"accel.rows": 8, "accel.cols": 16})
    d = design_of(inputs)
    assert d.camera_cols == SYSTEM.evaluate(inputs)["camera_cols"] > 0
    assert d.part_cols == [d.camera_cols, 16 - d.camera_cols]
    assert (d.family, d.board_dsp, d.uram) == ("xcup", 360, False)
    shared = design_of(SYSTEM.resolve(["network=fusion-seg-tiny"],
                                      {"accel.branch_mode": "shared"}))
    assert shared.part_cols == [32]
    assert SYSTEM.resolve(["board=zc706"])["board"].family == "xc7"
    zcu104 = design_of(SYSTEM.resolve(["board=zcu104"]))
    assert zcu104.uram and zcu104.family == "xcup"
    # each partition's buffers are its share of the accel spec's
    bits = sum(d.depth(p, "o") * d.word_bits(p, "o") for p in range(2))
    assert bits == pytest.approx(inputs["accel"].ofmap_buffer_KiB * 8192, rel=0.01)
    core = A3FusionCore(d)
    for e in [core, *core.arrays, *core.writers, *core.fusion,
              *(r for rs in core.readers for r in rs.values()),
              *(m for ms in core.memories for m in ms.values())]:
        e._MustUse__silence = True  # inspected, never elaborated
    assert {"cmd", "wa0", "wb1", "rq1", "rd0", "fa1", "fo0", "idle", "error"} <= set(
        dict(core.signature.members))


def test_the_model_counts_the_sequencer_cycle(monkeypatch) -> None:
    """Shared mode: every MAC layer adds SEQUENCER_LATENCY cycles to the frame's latency."""
    inputs = SYSTEM.resolve(["network=fusion-seg-tiny"], {"accel.branch_mode": "shared"})
    with_seq = SYSTEM.evaluate(inputs)
    monkeypatch.setattr(model, "SEQUENCER_LATENCY", 0)
    without = SYSTEM.evaluate(inputs)
    from hwsim.a3fusion.layers import build_layers

    macs = sum(layer.is_mac for layer in build_layers(inputs["network"]).layers)
    clock = inputs["accel"].clock_MHz * 1e6
    assert (with_seq["latency_s"] - without["latency_s"]) * clock == pytest.approx(macs)
    assert with_seq["compute_cycles"] == without["compute_cycles"]


def test_generator_writes_verilog_and_a_check_without_synthesis(tmp_path, capsys) -> None:
    code, out, _ = run(capsys, "rtl", "a3fusion", *TINY_RTL, "--out", str(tmp_path),
                       "--no-synth")
    assert code == 0, out
    assert "bit-exact" in out and "CYCLES DIFFER" not in out and "MISMATCH" not in out
    text = (tmp_path / "a3fusion.v").read_text()
    assert "module a3fusion(" in text
    desc = json.loads((tmp_path / "a3fusion.json").read_text())
    assert desc["parameters"]["board"] == "ultra96-v2"
    assert desc["timing"]["sequencer_latency_cycles"] == SEQUENCER_LATENCY
    check = json.loads((tmp_path / "a3fusion.check.json").read_text())
    assert check["verification"]["passed"] and check["comparison"] is None


TINY_STUDY = """
name = "tiny_rtl"
system = "a3fusion"
trials = 6
seed = 1
sampler = { name = "random" }
specs = { network = "fusion-seg-tiny", board = "ultra96-v2" }
set = ["accel.ifmap_buffer_KiB=4", "accel.filter_buffer_KiB=4", "accel.ofmap_buffer_KiB=4",
       "accel.vector_lanes=1", "accel.rows=2"]
exhaustive = false

[space]
"accel.cols" = { choices = [2, 3] }
"network.camera_width" = { choices = [4, 8] }
"accel.branch_mode" = { choices = ["shared", "partitioned"] }

[[objectives]]
metric = "accuracy_proxy"
direction = "maximize"

[[objectives]]
metric = "latency_ms"
direction = "minimize"
"""


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    spec = root / "tiny_rtl.toml"
    spec.write_text(TINY_STUDY)
    out = root / "results"
    assert main(["sweep", str(spec), "--out", str(out), "--no-progress", "--no-figures"]) == 0
    return out


def test_a_trial_of_a_study(tiny_study, tmp_path, capsys) -> None:
    import csv

    rows = list(csv.DictReader((tiny_study / "trials.csv").open()))
    trial = next(r for r in rows if r["state"] == "COMPLETE")
    code, out, _ = run(capsys, "rtl", "a3fusion", "--study", str(tiny_study), "--trial",
                       trial["trial"], "--out", str(tmp_path), "--no-synth")
    assert code == 0, out
    d = json.loads((tmp_path / "a3fusion.check.json").read_text())["design"]
    assert d["cols"] == int(trial["accel.cols"]) and d["rows"] == 2
    assert float(trial["camera_cols"]) == d["camera_cols"]
    assert f"trial {trial['trial']}" in d["source"]


@pytest.mark.parametrize("argv,needle", [
    (["--trial", "999"], "key '--trial' = 999: no trial 999"),
    (["--trial", "0", "--set", "accel.rows=8"], "drop --spec and --set"),
])
def test_bad_study_arguments(tiny_study, tmp_path, capsys, argv, needle) -> None:
    code, _, err = run(capsys, "rtl", "a3fusion", "--study", str(tiny_study), *argv, "--out",
                       str(tmp_path))
    assert code == 2 and needle in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv,needle", [
    (["rtl", "a3fusion", "--study", "nowhere", "--trial", "0", "--out", "x"],
     "no study.journal"),
    (["rtl", "a3fusion", "--trial", "0", "--out", "x"], "go together"),
    (["rtl", "systolic", "--study", "nowhere", "--trial", "0", "--out", "x"], "no study"),
    (["rtl", "systolic", "--spec", "default", "--spec", "os-8x8", "--out", "x"],
     "takes one spec file"),
    (["rtl", "a3fusion", "--set", "accel.rows=1", "--out", "x"], "accel.rows"),
    (["rtl-check", "nowhere", "--top", "0"], "--top"),
])
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, argv, needle) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1, err


@needs_yosys
def test_rtl_check_marks_the_pareto_designs(tiny_study, tmp_path, capsys) -> None:
    """The top Pareto design of the tiny study generated, simulated and synthesised for the
    board's family (UltraScale+): one DSP48E2 per PE as the model says, block RAMs for the
    buffers, every resource beside the estimate, the table in the report."""
    import csv

    out_dir = tmp_path / "check"
    shutil.copytree(tiny_study, out_dir)
    code, out, _ = run(capsys, "rtl-check", str(out_dir), "--top", "1")
    assert code == 0, out
    rows = list(csv.DictReader((out_dir / "rtl_check.csv").open()))
    pareto = list(csv.DictReader((out_dir / "pareto.csv").open()))
    assert len(rows) == 1
    best = max(pareto, key=lambda r: (float(r["accuracy_proxy"]), -float(r["latency_ms"])))
    assert rows[0]["trial"] == best["trial"]
    assert rows[0]["simulated"] == "bit- and cycle-exact"
    check = json.loads((out_dir / "rtl_check" / f"trial_{best['trial']}" /
                        "a3fusion.check.json").read_text())
    syn = check["synthesis"]
    assert syn["family"] == "xcup" and "-family xcup" in syn["script"]
    assert syn["dsp_cell"] == "DSP48E2" and syn["latches"] == 0
    res = {r["resource"]: r for r in check["comparison"]["resources"]}
    pes = 2 * int(best["accel.cols"])
    assert res["dsp"]["measured"] == res["dsp"]["estimated"] == pes
    assert float(rows[0]["dsp_measured"]) == pes
    assert res["bram"]["measured"] > 0 and res["uram"]["measured"] == 0
    for r in res.values():
        if r["estimated"]:
            assert r["relative_difference"] == pytest.approx(
                (r["measured"] - r["estimated"]) / r["estimated"])
    assert rows[0]["fits_after_synthesis"] == str(check["comparison"]["fits_after_synthesis"])
    report = (out_dir / "report.md").read_text()
    assert report.count("RTL check") == 1 and "fits after synthesis" in report
    assert report.index("RTL check") < report.index("## Files")
    assert "RTL check" in (out_dir / "report.html").read_text()


@needs_yosys
def test_a_study_option_checks_its_pareto_designs(tmp_path, capsys) -> None:
    """``[rtl_check]`` in a study: ``hwsim sweep`` synthesises its top Pareto design after the
    trials and writes the table into the results and the report."""
    import csv

    spec = tmp_path / "tiny_rtl.toml"
    spec.write_text(TINY_STUDY + "\n[rtl_check]\ntop = 1\nverify = false\n")
    out = tmp_path / "results"
    code, text, _ = run(capsys, "sweep", str(spec), "--out", str(out), "--no-progress",
                        "--no-figures")
    assert code == 0, text
    rows = list(csv.DictReader((out / "rtl_check.csv").open()))
    assert len(rows) == 1 and rows[0]["simulated"] != "bit- and cycle-exact"  # verify = false
    assert "rtl check:" in text and f"trial {int(rows[0]['trial']):5d}" in text
    assert "RTL check" in (out / "report.md").read_text()


@pytest.mark.parametrize("extra,needle", [
    ("[rtl_check]\ntop = 0\n", "key 'rtl_check.top' = 0: expected a whole number in [1, 100]"),
    ("[rtl_check]\ntops = 2\n", "key 'rtl_check.tops'"),
    ("[rtl_check]\nverify = 1\n", "key 'rtl_check.verify'"),
])
def test_bad_rtl_check_options(tmp_path, capsys, extra, needle) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(TINY_STUDY + "\n" + extra)
    code, _, err = run(capsys, "sweep", str(spec), "--out", str(tmp_path / "r"),
                       "--validate-only")
    assert code == 2 and needle in err and "bad.toml" in err and err.count("\n") == 1, err


def test_rtl_check_needs_a_system_with_a_study_checker(tmp_path, capsys) -> None:
    spec = tmp_path / "q.toml"
    spec.write_text('name = "q"\nsystem = "queue"\ntrials = 2\n[space]\n'
                    '"queue.arrival_rate_per_s" = { low = 0.1, high = 0.5 }\n[[objectives]]\n'
                    'metric = "mean_wait_s"\ndirection = "minimize"\n[rtl_check]\ntop = 1\n')
    code, _, err = run(capsys, "sweep", str(spec), "--validate-only")
    assert code == 2 and "no RTL generator that checks" in err, err


def test_rtl_check_section_is_replaced_not_repeated(tmp_path) -> None:
    from hwsim.a3fusion.rtlcheck import write_table

    (tmp_path / "report.md").write_text("# Study s\n\n## Figures\n\nx\n\n## Files\n\ny\n")
    (tmp_path / "report.html").write_text("<html><body><h2>Figures</h2><p>Files beside this "
                                          "report: ...</p></body></html>\n")
    row = {"trial": 3, "array": "2x2", "dataflow": "ws", "board": "b", "family": "xcup",
           **{f"{r}_{k}": 1.0 for r in ("lut", "ff", "dsp", "bram", "uram")
              for k in ("estimated", "measured", "diff")},
           "fits_estimated": True, "fits_after_synthesis": False, "simulated": "not run",
           "synthesis_s": 1.0}
    for _ in range(2):
        write_table(tmp_path, "s", [row], 1)
    md = (tmp_path / "report.md").read_text()
    assert md.count("RTL check") == 1
    assert md.index("## Figures") < md.index("RTL check") < md.index("## Files")
    assert "| 3 | 2x2 |" in md and "| no |" in md
    assert (tmp_path / "report.html").read_text().count("RTL check") == 1


def test_is_design_replace_keeps_shapes() -> None:
    """An input-stationary design reads its streamed words from the filter buffer."""
    d = A3FusionDesign(rows=4, cols=4, dataflow="is", ifmap_buffer_KiB=4, filter_buffer_KiB=8,
                       ofmap_buffer_KiB=4)
    assert d.roles() == ("filter", "ifmap")
    assert d.depth(0, "a") == 2 * replace(d, filter_buffer_KiB=4).depth(0, "a")


def test_resource_estimate_tracks_the_synthesised_cores() -> None:
    """The whole estimate (array + fusion units + control) against the ten synthesised cores of
    data/a3fusion_core_xcup.csv, each predicted with the control fitted on the other nine:
    LUTs within 5%, FFs within 10%; without the control term it would under-count every one."""
    from hwsim.a3fusion import resources

    checks = resources.check_control("xcup")
    assert len(checks) == 10
    for c in checks:
        assert abs(c["lut_err"]) < 0.05 and abs(c["ff_err"]) < 0.10, c
    d = resources.control("xcup", 16, 16, 8, 32, False)
    assert d["lut"] > 1000 and d["ff"] > 0
    assert resources.control("xc7", 16, 16, 8, 32, False)["lut"] == 0  # no xc7 core table

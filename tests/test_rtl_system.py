"""systolic-fpga: measured resources (table + fit) and the shared timing model."""

from __future__ import annotations

import numpy as np
import pytest

from hwsim.errors import InfeasibleDesign, InputError
from hwsim.system import get_system
from hwsim.systolic import resources, timing


def test_default_point_uses_measured_numbers() -> None:
    system = get_system("systolic-fpga")
    inputs = system.resolve([], [])
    m = system.evaluate(inputs)
    row = next(r for r in resources.table()
               if (r["dataflow"], r["rows"], r["cols"], r["operand_width"], r["acc_width"])
               == ("ws", 8, 8, 8, 32))
    assert m["dsp"] == row["dsp"] == 64
    assert m["lut"] == row["lut"] and m["ff"] == row["ff"]
    w = inputs["workload"]
    assert m["compute_cycles"] == timing.compute_cycles("ws", 8, 8, w.m, w.n, w.k)
    assert m["compute_s"] == pytest.approx(m["compute_cycles"] / 200e6)
    assert m["latency_s"] >= m["compute_s"]
    assert m["throughput_gops"] <= m["peak_gops"]
    assert m["utilization"] == pytest.approx(m["throughput_gops"] / m["peak_gops"])


def test_batch_matches_point_by_point() -> None:
    system = get_system("systolic-fpga")
    inputs = system.resolve([], [])
    rows = np.array([2, 6, 8, 10, 16, 12])
    cols = np.array([2, 10, 8, 4, 16, 3])
    width = np.array([8, 16, 12, 8, 16, 8])
    flows = np.array(["ws", "os", "ws", "os", "os", "ws"], dtype=object)
    batch = system.analytical_batch(inputs, {"array.rows": rows, "array.cols": cols,
                                             "array.operand_width": width,
                                             "array.dataflow": flows})
    for i in range(len(rows)):
        one = system.evaluate(system.resolve([], [
            f"array.rows={rows[i]}", f"array.cols={cols[i]}",
            f"array.operand_width={width[i]}", f"array.dataflow=\"{flows[i]}\""]))
        for k, v in one.items():
            assert batch[k][i] == pytest.approx(v), (k, i)


def test_fit_tracks_measurements() -> None:
    """Leave-one-out over the table: DSPs exact; LUTs and FFs close for arrays >= 4 x 4."""
    report = resources.check()
    assert report
    for e in report:
        assert abs(e["dsp_err"]) < 1e-6
        if min(e["rows"], e["cols"]) >= 4 and max(e["rows"], e["cols"]) < 16:
            assert abs(e["lut_err"]) < 0.05, e
            assert abs(e["ff_err"]) < 0.15, e


def test_ultrascale_fit_tracks_its_own_measurements() -> None:
    """The UltraScale+ table: DSPs exact; LUTs within 5% and FFs within 10% leave-one-out for
    arrays of 6 x 6 and more (below that the 8-bit ws fit is poor: docs/rtl.md)."""
    report = resources.check(resources.TABLES["xcup"])
    assert len(report) >= 40
    for e in report:
        assert abs(e["dsp_err"]) < 1e-6
        if min(e["rows"], e["cols"]) >= 6:
            assert abs(e["lut_err"]) < 0.05, e
            assert abs(e["ff_err"]) < 0.10, e


def test_each_family_is_costed_with_its_own_table() -> None:
    """Yosys packs the accumulate into the DSP48E1 but not into the DSP48E2: the same 8 x 8 ws
    array has many more fabric LUTs and FFs on UltraScale+, the same DSPs; a board's family
    picks the table, and systolic-fpga on an UltraScale+ board reports the xcup counts."""
    xc7 = resources.estimate("ws", 8, 8, 8, 32)
    xcup = resources.estimate("ws", 8, 8, 8, 32, family="xcup")
    assert xc7["dsp"] == xcup["dsp"] == 64
    assert xcup["lut"] > 10 * xc7["lut"] and xcup["ff"] > 2 * xc7["ff"]
    with pytest.raises(InputError, match="family 'xcv'"):
        resources.estimate("ws", 8, 8, 8, 32, family="xcv")
    from hwsim.systolic_fpga import SYSTEM as S

    one = S.evaluate(S.resolve(["board=zcu102"], ["array.rows=8", "array.cols=8",
                                                  'array.dataflow="ws"']))
    assert S.resolve(["board=zcu102"])["board"].family == "xcup"
    assert one["lut"] == xcup["lut"]


def test_resources_grow_with_the_array() -> None:
    est = resources.estimate("os", np.array([4, 8, 12, 16]), np.array([4, 8, 12, 16]), 8, 32)
    for res in ("lut", "ff", "dsp"):
        assert (np.diff(est[res]) > 0).all(), res


def test_outside_the_table_is_an_input_error() -> None:
    with pytest.raises(InputError, match="operand_width outside"):
        resources.estimate("ws", 8, 8, 4, 32)
    with pytest.raises(InputError, match="acc_width"):
        resources.estimate("ws", 8, 8, 8, 48)


def test_study_runs(tmp_path) -> None:
    """explore/systolic_fpga.toml runs end to end (few trials, no figures)."""
    from pathlib import Path

    from hwsim.cli import main

    study = Path(__file__).resolve().parent.parent / "explore" / "systolic_fpga.toml"
    code = main(["sweep", str(study), "--out", str(tmp_path), "--trials", "6", "--no-figures",
                 "--no-progress"])
    assert code == 0
    assert (tmp_path / "trials.csv").is_file()


@pytest.mark.parametrize("bandwidth", [1000.0, 0.05])
def test_des_agrees_with_closed_form(bandwidth: float) -> None:
    """Compute-bound (1000 GB/s) and DRAM-bound (0.05 GB/s): the fold pipeline on the DES
    kernel gives the closed form's latency (fair sharing of the DRAM between a load and a
    store only shifts the first and last folds)."""
    system = get_system("systolic-fpga")
    inputs = system.resolve([], [f"board.dram_bandwidth_GBps={bandwidth}"])
    ana = system.evaluate(inputs, "analytical")
    des = system.evaluate(inputs, "des")
    assert ana["memory_bound"] == (bandwidth < 1)
    assert des["latency_s"] == pytest.approx(ana["latency_s"], rel=1e-4)
    if bandwidth > 1:
        assert des["compute_busy_ratio"] == pytest.approx(1.0, abs=1e-3)
        assert ana["latency_s"] == pytest.approx(ana["compute_s"], rel=1e-3)
    else:
        assert des["compute_busy_ratio"] < 0.1


def test_device_limits() -> None:
    system = get_system("systolic-fpga")
    big = system.resolve(["board=pynq-z1"], ["array.rows=16", "array.cols=16"])
    with pytest.raises(InfeasibleDesign, match="220"):
        system.evaluate(big)
    batch = system.analytical_batch(big, {"array.rows": np.array([8, 16]),
                                          "array.cols": np.array([8, 16])})
    assert np.isfinite(batch["dsp"][0]) and np.isnan(batch["dsp"][1])


def test_spec_files_load() -> None:
    from hwsim import specs

    for kind in ("systolic", "sparse-decoder", "fusion-unit", "fpga-board", "gemm"):
        files = specs.spec_files(kind)
        assert files, kind
        for path in files:
            specs.load_spec(path, kind=kind)

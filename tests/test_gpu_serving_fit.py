"""gpu-serving's kernels calibration: the committed files carry the fits, and the generator
writes them as they are."""

from __future__ import annotations

import dataclasses

import pytest

from hwsim.gpu_serving import calfiles, calibration, measured

ROOT = calfiles.OUT


@pytest.mark.parametrize("gpu", ["a100-sxm-80gb", "h100-sxm-80gb"])
def test_operator_tables_are_the_fit(gpu):
    fit = calibration.operator_fit(gpu)
    for name, (device, _) in calibration.FILES.items():
        if device != gpu:
            continue
        tables = calibration.operator_tables(calibration.load_calibration_file(name))
        for table in calibration.OPERATOR_TABLES:
            for key, value in fit[table].items():
                assert tables[table][key] == pytest.approx(value, rel=2e-3, abs=1e-6), (
                    name, table, key)


#: absolute tolerance per framework field (a fit at a bound of a flat direction moves a little)
FRAMEWORK_ABS = {"step_overhead_us": 2.0, "allreduce_latency_us": 0.5,
                 "allreduce_bandwidth_share": 0.01, "elementwise_share": 0.01,
                 "fp8_speedup": 0.01}


@pytest.mark.parametrize("name", ["lmdeploy-a100-sxm-80gb", "roofline-h100-sxm-80gb"])
def test_framework_table_is_the_fit(name):
    fw = calibration.load_calibration_file(name).framework
    for key, value in measured.fit_framework(name).items():
        assert getattr(fw, key) == pytest.approx(value, abs=FRAMEWORK_ABS[key]), (name, key)


@pytest.mark.parametrize("name", list(calibration.FILES))
def test_generator_writes_the_committed_file(name):
    """``python -m hwsim.gpu_serving.calfiles`` would write each file as committed (from the
    file's own tables: the fits themselves are checked above)."""
    cal = calibration.load_calibration_file(name)
    tables = calibration.operator_tables(cal)
    fw = {f: float(getattr(cal.framework, f)) for f in calfiles.FRAMEWORK_FIELDS}
    assert calfiles.file_text(name, tables, fw) == (ROOT / f"{name}.toml").read_text()


def test_h200_takes_the_h100_constants_unfitted():
    h100 = calibration.load_calibration_file("roofline-h100-sxm-80gb")
    h200 = calibration.load_calibration_file("roofline-h200-sxm-141gb")
    assert h200.device == "h200-sxm-141gb" and h200.fitted_on.startswith("not fitted")
    assert calibration.operator_tables(h200) == calibration.operator_tables(h100)
    same = {f.name for f in dataclasses.fields(h100.framework)} - {"name", "fitted_on"}
    for f in same:
        assert getattr(h200.framework, f) == getattr(h100.framework, f), f
    fw = {f: float(getattr(h100.framework, f)) for f in calfiles.FRAMEWORK_FIELDS}
    assert calfiles.h200_text(calibration.operator_tables(h100), fw) == (
        ROOT / "roofline-h200-sxm-141gb.toml").read_text()

"""The spmm system: analytical model, batch evaluator, DES, calibration and CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwsim.cli import main
from hwsim.errors import InfeasibleDesign, InputError
from hwsim.spmm import calibration
from hwsim.system import get_system

SPMM = get_system("spmm")
ROOT = Path(__file__).resolve().parents[1]


def inputs(kernel: str = "flash-llm", **overrides):
    return SPMM.resolve([f"kernel={kernel}"], overrides)


def _sweep(n_points: int = 400, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "workload.m": rng.choice([1024, 4096, 7168, 21504, 28672], n_points),
        "workload.k": rng.choice([1024, 7168, 28672], n_points),
        "workload.n": rng.choice([8, 16, 32, 64, 128, 256], n_points),
        "workload.sparsity": rng.uniform(0.5, 0.99, n_points),
    }


@pytest.mark.parametrize("kernel", ["flash-llm", "cublas", "sputnik", "cusparse", "sparta"])
def test_never_faster_than_the_roofline(kernel):
    pts = _sweep()
    out = SPMM.analytical_batch(inputs(kernel), pts)
    gpu = inputs(kernel)["device"]
    lat = out["latency_us"] * 1e-6
    ok = np.isfinite(lat)
    assert ok.mean() > 0.9
    m, k, n = (pts[f"workload.{x}"].astype(float) for x in ("m", "k", "n"))
    t_bytes = out["hbm_bytes"] / (gpu.hbm_bandwidth_GBps * 1e9)
    if kernel in ("flash-llm", "cublas"):  # dense MMAs on the tensor cores
        t_flops = 2 * m * n * k / (gpu.peak_16bit_TFLOPS * 1e12)
    elif kernel == "sparta":
        t_flops = m * n * k / (gpu.peak_16bit_TFLOPS * 1e12)  # 2:4 half at twice the rate
    else:
        nnz = (1 - pts["workload.sparsity"]) * m * k
        t_flops = 2 * nnz * n / (gpu.peak_fp32_TFLOPS * 1e12)
    assert np.all(lat[ok] >= np.maximum(t_bytes, t_flops)[ok] * (1 - 1e-12))


@pytest.mark.parametrize("kernel", ["flash-llm", "cublas", "sputnik", "cusparse", "sparta"])
def test_batch_matches_scalar(kernel):
    pts = _sweep(12, seed=2)
    base = inputs(kernel)
    batch = SPMM.analytical_batch(base, pts)
    for i in range(12):
        over = {key: v[i].item() for key, v in pts.items()}
        try:
            one = SPMM.evaluate(inputs(kernel, **over))
        except InfeasibleDesign:
            assert np.isnan(batch["latency_us"][i])
            continue
        for metric, value in one.items():
            assert batch[metric][i] == pytest.approx(value, rel=1e-12, nan_ok=True), metric


def test_batch_can_vary_device_and_kernel_fields():
    out = SPMM.analytical_batch(inputs(), {"device.hbm_bandwidth_GBps": np.array([1000, 4000]),
                                           "kernel.split_k": np.array([1, 5])})
    assert out["latency_us"].shape == (2,)
    grouped = SPMM.analytical_batch(inputs(), {"workload.dtype": np.array(["fp16", "bf16"]),
                                               "calibration.hbm_efficiency": [0.5, 0.9]})
    assert grouped["latency_us"][0] > grouped["latency_us"][1]
    with pytest.raises(InputError, match=r"workload\.dtype"):
        SPMM.analytical_batch(inputs(), {"workload.dtype": np.array(["fp8"])})


def test_speedup_over_cublas_grows_with_sparsity_when_memory_bound():
    s = np.linspace(0.5, 0.95, 10)
    out = SPMM.analytical_batch(inputs(), {"workload.sparsity": s, "workload.n": np.full(10, 8)})
    sp = out["speedup_vs_cublas"]
    assert np.all(np.diff(sp) > 0)
    assert out["memory_bound"][0] == 1.0  # at 50% sparsity HBM binds
    # the on-chip extraction cost caps the gain well below the byte ratio 1 / (2 (1 - s))
    assert sp[-1] < 1 / (2 * (1 - s[-1]))


def test_tflops_is_dense_equivalent():
    m = SPMM.evaluate(inputs())
    w = inputs()["workload"]
    assert m["tflops"] == pytest.approx(2 * w.m * w.n * w.k / (m["latency_us"] * 1e-6) / 1e12)
    assert m["arithmetic_intensity_flop_per_byte"] == pytest.approx(
        2 * w.m * w.n * w.k / m["hbm_bytes"])


def test_density_cap_is_infeasible_for_flash_llm_only():
    with pytest.raises(InfeasibleDesign, match="50%"):
        SPMM.evaluate(inputs(**{"workload.sparsity": 0.4}))
    assert SPMM.evaluate(inputs("cublas", **{"workload.sparsity": 0.4}))["latency_us"] > 0


def test_random_mask_close_to_expected():
    exp = SPMM.evaluate(inputs())
    rnd = SPMM.evaluate(inputs(**{"workload.seed": 7}))
    assert rnd["latency_us"] == pytest.approx(exp["latency_us"], rel=0.01)
    assert rnd == SPMM.evaluate(inputs(**{"workload.seed": 7}))


# --- DES -----------------------------------------------------------------------------------


@pytest.mark.parametrize("over", [
    {"workload.m": 256, "workload.k": 1024, "kernel.split_k": 1},          # one thread block
    {"kernel.max_threads_per_sm": 128, "kernel.split_k": 7},  # one CTA per SM, equal K slices
    {"kernel.max_threads_per_sm": 128, "device.hbm_bandwidth_GBps": 1e6},  # bandwidth no limit
    {"kernel.max_threads_per_sm": 128, "workload.m": 7168, "workload.n": 32,
     "workload.sparsity": 0.9},  # K / (64 split_k) whole: every CTA takes the same steps
])
def test_des_matches_analytical_without_contention(over):
    inp = inputs(**over)
    a, d = SPMM.evaluate(inp), SPMM.evaluate(inp, "des")
    assert d["latency_us"] == pytest.approx(a["latency_us"], rel=0.02)
    assert d["hbm_bytes"] == pytest.approx(a["hbm_bytes"], rel=0.02)


def test_des_shows_contention():
    """Where the analytical lock-step waves are an approximation the DES resolves the dynamics:
    unequal K slices (SplitK 5 does not divide 112 K tiles) desynchronise CTAs, so one's load
    overlaps another's extraction and the launch is faster; two co-resident CTAs that start in
    phase contend for shared memory, which the analytical interleave bound does not charge;
    starving HBM slows a memory-bound launch."""
    desync = inputs(**{"kernel.max_threads_per_sm": 128})
    assert SPMM.evaluate(desync, "des")["latency_us"] < SPMM.evaluate(desync)["latency_us"]
    inp = inputs()
    a, d = SPMM.evaluate(inp), SPMM.evaluate(inp, "des")
    assert d["latency_us"] == pytest.approx(a["latency_us"], rel=0.05)
    slow = SPMM.evaluate(inputs(**{"device.hbm_bandwidth_GBps": 500}), "des")
    assert slow["latency_us"] > 2 * d["latency_us"]
    assert slow["hbm_utilization"] > d["hbm_utilization"]


def test_des_is_deterministic():
    inp = inputs(**{"workload.seed": 3, "workload.m": 7168, "workload.n": 8})
    assert SPMM.evaluate(inp, "des") == SPMM.evaluate(inp, "des")
    other = SPMM.evaluate(inputs(**{"workload.seed": 4, "workload.m": 7168, "workload.n": 8}),
                          "des")
    assert other["latency_us"] == pytest.approx(SPMM.evaluate(inp, "des")["latency_us"],
                                                rel=0.02)


def test_des_rejects_baselines(capsys):
    code = main(["simulate", "spmm", "--spec", "kernel=cublas", "--fidelity", "des"])
    assert code == 2


# --- calibration and validation ------------------------------------------------------------


@pytest.mark.parametrize(("name", "free", "ref"), [
    ("flash-llm", calibration.FLASH_LLM_FREE, "flash_llm_tflops"),
    ("cublas", calibration.CUBLAS_FREE, "cublas_tflops"),
])
def test_spec_files_carry_the_fit(name, free, ref):
    kernel, cal = calibration.load_kernel(name), calibration.load_calibration(name)
    fitted = calibration.fit(kernel, cal, free, ref)
    for key, value in fitted.items():
        assert getattr(cal, key) == pytest.approx(value, abs=1.5e-3), key
    assert "N = 16" in cal.fitted_on and cal.device == "a100-sxm-80gb" and cal.kernel == name


def test_known_deviations_are_documented_and_real():
    doc = (ROOT / "docs" / "spmm.md").read_text()
    names = {c.case for c in calibration.all_cases()}
    assert names >= set(calibration.KNOWN_DEVIATIONS)
    for case in calibration.KNOWN_DEVIATIONS:
        assert f"| {case} |" in doc, case
    # that each still misses its tolerance is checked for every system in test_validation.py
    flagged = {c.case for c in calibration.validation_cases() if c.known_deviation}
    assert flagged == set(calibration.KNOWN_DEVIATIONS)


# --- CLI -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "needle"), [
    ("workload.sparsity=1", "sparsity"),
    ("workload.sparsity=1.5", "sparsity"),
    ("workload.n=0", "workload.n"),
    ("workload.n=-8", "workload.n"),
])
def test_bad_inputs_exit_2(capsys, setting, needle):
    code = main(["simulate", "spmm", "--set", setting])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and needle in err


def test_cli_json(capsys):
    code = main(["simulate", "spmm", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    text = json.dumps(doc)
    for metric in ("latency_us", "tflops", "speedup_vs_cublas", "bound"):
        assert metric in text

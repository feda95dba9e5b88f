"""gpu-serving's vectorised analytical evaluator: agreement with the scalar evaluator and the
per-stage reference, infeasible points, input errors, and the explore study on it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hwsim.errors import InfeasibleDesign, InputError
from hwsim.gpu_serving.analytical import stepwise
from hwsim.gpu_serving.batch import VECTOR_KEYS
from hwsim.system import get_system

METRICS = get_system("gpu-serving").metric_names("analytical")

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-9


@pytest.fixture(scope="module")
def system():
    return get_system("gpu-serving")


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= REL * max(abs(a), abs(b))


def _random_points(n: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded random design points over the vectorised keys and a few grouped ones."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(1, 300, n)
    micro = np.where(rng.random(n) < 0.5, 0, rng.integers(1, 300, n))
    micro = np.where(rng.random(n) < 0.9, np.minimum(micro, batch), micro)  # some > batch
    return {
        "device": rng.choice(["a100-sxm-80gb", "h100-sxm-80gb", "tpuv4"], n),
        "llm": rng.choice(["llama3-70b", "llama3-8b", "gpt3-175b"], n),
        "mapping.tensor_parallel": rng.choice([1, 2, 3, 4, 8, 16, 32, 128], n),
        "mapping.pipeline_parallel": rng.choice([1, 2, 3, 4, 7, 8, 16], n),
        "mapping.batch": batch,
        "mapping.micro_batch": micro,
        "mapping.weight_dtype": rng.choice(["fp16", "fp8"], n),
        "mapping.attention_sharding": rng.choice(["heads", "batch"], n),
        "mapping.pricing": rng.choice(["rental", "owned"], n),
        "traffic.prompt_tokens": rng.integers(1, 4000, n),
        "traffic.output_tokens": rng.integers(1, 400, n),
        "traffic.length_distribution": rng.choice(["fixed", "uniform"], n),
        "calibration.bandwidth_efficiency": rng.uniform(0.2, 1.0, n),
        "calibration.compute_efficiency": rng.uniform(0.2, 1.0, n),
        "calibration.interconnect_efficiency": rng.uniform(0.3, 1.0, n),
        "calibration.layer_overhead_us": rng.uniform(0.0, 20.0, n),
        "calibration.interconnect_latency_us": rng.uniform(0.0, 10.0, n),
        "device.hbm_capacity_GB": rng.choice([40.0, 80.0, 141.0], n),
        # slow networks make the links the pipeline's bottleneck
        "device.network_bandwidth_GBps": rng.choice([0.05, 1.0, 25.0], n),
    }


def _point_inputs(system, point: dict):
    roles = [f"{r}={point[r]}" for r in ("device", "llm")]
    sets = {k: v for k, v in point.items() if "." in k}
    return system.resolve(roles, sets)


def test_batch_agrees_with_scalar_point_by_point(system):
    pts = _random_points(160, seed=7)
    base = system.resolve()
    got = system.analytical_batch(base, pts)
    assert set(got) == set(METRICS)
    kinds = {"ok": 0, "infeasible": 0, "rejected": 0}
    for i in range(160):
        point = {k: v[i].item() for k, v in pts.items()}
        try:
            inputs = _point_inputs(system, point)
        except InputError:  # micro_batch > batch: the spec rejects it, the batch gives NaN
            kinds["rejected"] += 1
            assert all(math.isnan(got[k][i]) for k in METRICS)
            continue
        try:
            ref = system.analytical(inputs)
            kinds["ok"] += 1
        except (InfeasibleDesign, InputError):
            kinds["infeasible"] += 1
            assert all(math.isnan(got[k][i]) for k in METRICS), point
            with pytest.raises((InfeasibleDesign, InputError)):
                stepwise(inputs)
            continue
        step = stepwise(inputs)
        for k in METRICS:
            assert _close(got[k][i], ref[k]), (k, point, got[k][i], ref[k])
            assert _close(got[k][i], step[k]), (k, point, got[k][i], step[k])
    assert min(kinds.values()) > 0, kinds


def test_vectorised_keys_match_grouped_keys(system):
    """A key evaluated as an array gives what re-validating the spec per value gives."""
    base = system.resolve(["device=h100-sxm-80gb", "llm=llama3-70b"])
    rng = np.random.default_rng(3)
    tp = rng.choice([1, 2, 4, 8], 50)
    batch = rng.integers(1, 200, 50)
    eff = rng.uniform(0.3, 1.0, 50)
    vec = system.analytical_batch(base, {"mapping.tensor_parallel": tp, "mapping.batch": batch,
                                         "calibration.bandwidth_efficiency": eff})
    for i in range(0, 50, 7):
        one = system.analytical_batch(base, {"mapping.tensor_parallel": tp[i],
                                             "mapping.batch": batch[i],
                                             "calibration.bandwidth_efficiency": eff[i]})
        for k in METRICS:
            assert _close(vec[k][i], one[k][0])


def test_trace_traffic(system):
    inputs = system.resolve(["llm=llama3-8b", "traffic=trace-example"],
                            {"mapping.tensor_parallel": 2, "mapping.batch": 8})
    got = system.analytical_batch(inputs, {"mapping.pipeline_parallel": np.array([1, 2, 4])})
    for i, pp in enumerate((1, 2, 4)):
        ref = stepwise(system.resolve(["llm=llama3-8b", "traffic=trace-example"], {
            "mapping.tensor_parallel": 2, "mapping.batch": 8, "mapping.pipeline_parallel": pp}))
        for k in METRICS:
            assert _close(got[k][i], ref[k])


def test_infeasible_points_are_nan_in_every_metric(system):
    base = system.resolve(["device=a100-sxm-80gb", "llm=llama3-70b"])
    # tp 1 cannot hold 70B in FP16; tp 128 exceeds 64 heads; pp 81 exceeds 80 layers
    got = system.analytical_batch(base, {"mapping.tensor_parallel": np.array([1, 128, 8, 8]),
                                         "mapping.pipeline_parallel": np.array([1, 1, 81, 1])})
    for k in METRICS:
        assert np.isnan(got[k][:3]).all() and np.isfinite(got[k][3]), k
    with pytest.raises(InfeasibleDesign, match="does not fit"):
        system.analytical(system.resolve(["device=a100-sxm-80gb", "llm=llama3-70b"],
                                         {"mapping.tensor_parallel": 1}))


@pytest.mark.parametrize("key, value", [("mapping.tensor_parallel", 0),
                                        ("mapping.batch", 2.5),
                                        ("calibration.bandwidth_efficiency", 1.5),
                                        ("traffic.prompt_tokens", -3)])
def test_out_of_range_values_are_input_errors(system, key, value):
    with pytest.raises(InputError, match=key):
        system.analytical_batch(system.resolve(), {key: np.array([1, value])})


def test_owned_tpu_is_infeasible_in_a_batch_and_alone(system):
    """One rule: a TPU has no published server price, so owned pricing is infeasible there,
    with the reason, whether it is one point of a batch or evaluated alone."""
    base = system.resolve(["llm=llama3-70b"], {"mapping.pricing": "owned"})
    got = system.analytical_batch(base, {"device": np.array(["tpuv4", "h100-sxm-80gb"])})
    assert np.isnan(got["tco_usd_per_1k_tokens"][0])
    assert "owned" in got.reasons[0] and got.reasons[1] == ""
    assert np.isfinite(got["tco_usd_per_1k_tokens"][1])
    with pytest.raises(InfeasibleDesign, match="owned"):
        system.analytical(system.resolve(["llm=llama3-70b", "device=tpuv4"],
                                         {"mapping.pricing": "owned"}))


def test_every_vector_key_is_a_spec_field(system):
    inputs = system.resolve()
    for key in VECTOR_KEYS:
        role, _, name = key.partition(".")
        assert hasattr(inputs[role], name), key


def test_study_exhaustive_uses_the_batch_evaluator():
    from hwsim.explore.exhaustive import _loop, run_exhaustive
    from hwsim.explore.study import InputCache, load_study

    study = load_study(ROOT / "explore" / "gpu_serving_llama3.toml")
    assert study.enumerable()
    res = run_exhaustive(study)
    assert res.method == "analytical_batch"
    assert len(res.table) == study.space_size()
    front = res.front
    slo = study.constraints[0].max
    assert len(front) > 0 and (front["latency_ms_per_token"] <= slo).all()
    # a sample of designs, point by point, agrees with the enumeration
    sample = res.table.sample(40, random_state=0)
    loop = _loop(study.get_system(), InputCache(study), sample)
    for k in ("tco_usd_per_1k_tokens", "latency_ms_per_token"):
        a, b = sample[k].to_numpy(float), loop[k].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(a)
        np.testing.assert_allclose(a[ok], b[ok], rtol=REL)


@pytest.mark.parametrize("specs", [["device=h100-sxm-80gb", "llm=llama3-70b"],
                                   ["device=a100-sxm-80gb", "llm=llama2-7b",
                                    "traffic=poisson-chat"]])
def test_distinct_points_evaluation_is_the_direct_one(system, specs, monkeypatch):
    """The step model evaluated once per distinct point and scattered back gives the same
    numbers, bit for bit, as evaluating every point (a grid that repeats the step model's
    inputs: the pipeline depth and the output length do not enter it)."""
    from hwsim.gpu_serving import batch as gb

    inputs = system.resolve(specs)
    axes = np.meshgrid([1, 2, 4], [1, 2], np.arange(1, 41), [64, 256], [2000.0, 3350.0],
                       indexing="ij")
    keys = ("mapping.tensor_parallel", "mapping.pipeline_parallel", "mapping.batch",
            "traffic.output_tokens", "device.hbm_bandwidth_GBps")
    pts = {k: a.ravel() for k, a in zip(keys, axes, strict=True)}
    grouped = system.analytical_batch(inputs, pts)
    monkeypatch.setattr(gb._Distinct, "DENSE", 2.0)  # never group: every point directly
    direct = system.analytical_batch(inputs, pts)
    assert np.isfinite(direct["latency_ms_per_token"]).sum() > 100
    for name in METRICS:
        assert np.array_equal(np.asarray(grouped[name]), np.asarray(direct[name]),
                              equal_nan=True), name


def test_group_codes_number_equal_rows_alike():
    from hwsim.gpu_serving.batch import _group_codes

    a = np.array([1.0, 2.0, 1.0, 2.0, np.nan, np.nan])
    b = np.array([5.0, 5.0, 5.0, 6.0, 7.0, 7.0])
    assert _group_codes([a, b], 6).tolist() == [0, 1, 0, 2, 3, 3]
    assert _group_codes([np.ones(3)], 3).tolist() == [0, 0, 0]

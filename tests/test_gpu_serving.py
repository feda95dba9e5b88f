"""gpu-serving: specs, the roofline step model, calibration, costs and the analytical evaluator."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim import specs
from hwsim.errors import InfeasibleDesign, InputError
from hwsim.gpu_serving import calibration
from hwsim.gpu_serving.cost import owned_usd_per_hour
from hwsim.gpu_serving.roofline import RooflineStepModel
from hwsim.gpu_serving.spec import GpuCalibrationSpec, GpuMappingSpec
from hwsim.hw.gpu import GpuSpec
from hwsim.hw.tco import HOURS_PER_YEAR, server_tco
from hwsim.system import get_system
from hwsim.validation import run_case

GPUS = ("a100-sxm-80gb", "h100-sxm-80gb", "h200-sxm-141gb", "tpuv4")
REQUIRED = ("tco_usd_per_1k_tokens", "latency_ms_per_token", "throughput_tokens_per_s",
            "chips", "servers", "server_cost_usd", "server_power_W", "utilization")


def gpu(name: str) -> GpuSpec:
    return specs.load_spec(specs.find_spec_file("gpu", name), "gpu")


def cal(name: str):
    return calibration.load_calibration(name)


def model(name: str, llm_spec, mapping) -> RooflineStepModel:
    return RooflineStepModel.build(gpu(name), cal(name), llm_spec, mapping)


def llm(name: str):
    return specs.load_spec(specs.find_spec_file("llm", name), "llm")


@pytest.fixture(scope="module")
def system():
    return get_system("gpu-serving")


# ------------------------------------------------------------------------------------------------
# specs


@pytest.mark.parametrize("name", GPUS)
def test_gpu_specs_load(name):
    g = gpu(name)
    assert g.hbm_bandwidth_GBps > 0 and g.peak_16bit_TFLOPS > 0
    c = cal(name)
    assert c.device == name and 0 < c.bandwidth_efficiency <= 1 and c.fitted_on


def test_negative_price_is_an_input_error(system):
    with pytest.raises(InputError, match="rental_usd_per_device_hour"):
        system.resolve([], {"device.rental_usd_per_device_hour": -1.0})


def test_zero_batch_is_an_input_error(system):
    with pytest.raises(InputError, match="batch"):
        system.resolve([], {"mapping.batch": 0})


def test_micro_batch_above_batch_is_an_input_error(system):
    with pytest.raises(InputError, match="micro_batch"):
        system.resolve([], {"mapping.batch": 4, "mapping.micro_batch": 8})


# ------------------------------------------------------------------------------------------------
# the step model


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(GPUS),
    model=st.sampled_from(["gpt3-175b", "llama3-70b", "llama3-8b", "palm-540b"]),
    tp=st.sampled_from([1, 2, 4, 8]),
    batch=st.integers(1, 512),
    kv=st.integers(0, 8192),
    dtype=st.sampled_from(["fp16", "fp8"]),
    sharding=st.sampled_from(["heads", "batch"]),
)
def test_decode_never_below_roofline(name, model, tp, batch, kv, dtype, sharding):
    m = RooflineStepModel.build(gpu(name), cal(name), llm(model), GpuMappingSpec(
        name="t", tensor_parallel=tp, batch=batch, weight_dtype=dtype, kv_dtype=dtype,
        attention_sharding=sharding))
    step = m.decode_s(0, batch, kv)
    assert step >= m.decode_roofline_s(batch, kv) * (1 - 1e-9)


def test_decode_is_bandwidth_bound_at_batch_one():
    """Roofline model: at batch 1 the step is the weights over the achieved bandwidth, within a
    few percent."""
    g = gpu("a100-sxm-80gb")
    c = GpuCalibrationSpec(name="t", device="", fitted_on="test", bandwidth_efficiency=0.6)
    m = RooflineStepModel.build(g, c, llm("llama3-8b"), GpuMappingSpec(name="t"))
    weights = m.decode_roofline_s(1, 0) * g.hbm_bandwidth_GBps * 1e9
    ideal = weights / (g.hbm_bandwidth_GBps * 1e9 * c.bandwidth_efficiency)
    assert m.decode_s(0, 1, 0) == pytest.approx(ideal, rel=0.03)


@pytest.mark.parametrize("name", ["a100-sxm-80gb", "h100-sxm-80gb", "h200-sxm-141gb"])
def test_kernels_decode_at_batch_one_is_the_weights_over_the_gemm_bandwidth(name):
    """Kernels model: at batch 1 the GEMMs read the weights at the fitted GEMM bandwidth; the
    attention, element-wise kernels and launch costs add at most a half (the H200's fast HBM
    leaves them the largest share: 44% at Llama-3-8B)."""
    g, c = gpu(name), cal(name)
    assert c.model == "kernels"
    m = RooflineStepModel.build(g, c, llm("llama3-8b"), GpuMappingSpec(name="t"))
    weights = m.decode_roofline_s(1, 0) * g.hbm_bandwidth_GBps * 1e9
    ideal = weights / (g.hbm_bandwidth_GBps * 1e9 * c.gemm.bandwidth_efficiency)
    assert ideal * 0.97 <= m.decode_s(0, 1, 0) <= ideal * 1.5


def test_pipeline_stages_split_layers():
    m = model("a100-sxm-80gb", llm("gpt3-175b"),
              GpuMappingSpec(name="t", tensor_parallel=2, pipeline_parallel=5))
    assert sum(m.stage_layers) == 96 and max(m.stage_layers) - min(m.stage_layers) <= 1


def test_model_that_does_not_fit_is_infeasible(system):
    inputs = system.resolve([], {"mapping.tensor_parallel": 1})
    with pytest.raises(InfeasibleDesign, match="does not fit"):
        system.evaluate(inputs)


def test_tensor_parallel_beyond_heads_is_infeasible(system):
    inputs = system.resolve(["llm=llama3-8b"], {"mapping.tensor_parallel": 64})
    with pytest.raises(InfeasibleDesign, match="heads"):
        system.evaluate(inputs)


# ------------------------------------------------------------------------------------------------
# calibration


@pytest.mark.parametrize("case", calibration.validation_cases(), ids=lambda c: c.case)
def test_measured_cases_pass_or_are_known_deviations(case):
    """Operator groups, serving rows and decode points: within tolerance, or a known deviation
    within its ceiling (and a known deviation that passes drops its flag)."""
    result = run_case(case)
    assert not result.counts_as_failure, (result.predicted, result.reference, result.error)
    if case.known_deviation:
        assert not result.ok, "a known deviation that passes: drop its flag"


def test_a100_calibration_has_two_cases():
    a100 = [c for c in calibration.measured_cases() if c.gpu == "a100-sxm-80gb"]
    assert {c.case for c in a100} == {"R1", "R3"}


# ------------------------------------------------------------------------------------------------
# costs and the analytical evaluator


def test_analytical_reports_chiplet_cloud_metrics(system):
    m = system.evaluate(system.resolve())
    for k in REQUIRED:
        assert k in m and m[k] > 0, k
    assert m["chips"] == 8 and m["servers"] == 1
    assert 0 < m["utilization"] < 1


def test_rental_cost_is_device_hours_over_tokens(system):
    inputs = system.resolve()
    m = system.evaluate(inputs)
    g = inputs["device"]
    expect = 8 * g.rental_usd_per_device_hour / 3600 / m["throughput_tokens_per_s"] * 1e3
    assert m["tco_usd_per_1k_tokens"] == pytest.approx(expect, rel=1e-12)


def test_owned_cost_uses_chiplet_cloud_tco(system):
    inputs = system.resolve([], {"mapping.pricing": "owned"})
    m = system.evaluate(inputs)
    g, t = inputs["device"], inputs["tco"]
    life_h = t.server_life_years * HOURS_PER_YEAR
    usd_h = float(server_tco(g.server_power_W, g.server_price_usd, t, m["utilization"])) / life_h
    expect = usd_h / 3600 / m["throughput_tokens_per_s"] * 1e3
    assert m["tco_usd_per_1k_tokens"] == pytest.approx(expect, rel=1e-9)
    assert m["owned_usd_per_1k_tokens"] == m["tco_usd_per_1k_tokens"]


def test_owned_share_of_a_server():
    g = gpu("h100-sxm-80gb")
    assert owned_usd_per_hour(g, 2, 0.5) == pytest.approx(owned_usd_per_hour(g, 8, 0.5) / 4)


def test_owned_tpu_needs_a_price(system):
    inputs = system.resolve(["device=tpuv4", "llm=llama3-8b"],
                            {"mapping.pricing": "owned", "mapping.tensor_parallel": 4})
    with pytest.raises(InfeasibleDesign, match="server price"):
        system.evaluate(inputs)
    m = system.evaluate(system.resolve(["device=tpuv4", "llm=llama3-8b"],
                                       {"mapping.tensor_parallel": 4}))
    assert math.isnan(m["owned_usd_per_1k_tokens"]) and math.isnan(m["server_cost_usd"])


def test_bigger_batch_more_throughput_more_latency(system):
    small = system.evaluate(system.resolve([], {"mapping.batch": 4}))
    big = system.evaluate(system.resolve([], {"mapping.batch": 16}))
    assert big["throughput_tokens_per_s"] > small["throughput_tokens_per_s"]
    assert big["latency_ms_per_token"] > small["latency_ms_per_token"]


def test_h100_faster_than_a100(system):
    a = system.evaluate(system.resolve())
    h = system.evaluate(system.resolve(["device=h100-sxm-80gb"]))
    assert h["latency_ms_per_token"] < a["latency_ms_per_token"]


def test_cli_json(capsys):
    from hwsim.cli import main

    assert main(["simulate", "gpu-serving", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok"
    for k in REQUIRED:
        assert k in out["metrics"]


def test_with_overrides_keeps_calibration_valid():
    c = specs.with_overrides(cal("a100-sxm-80gb"), {"bandwidth_efficiency": 0.5})
    assert dataclasses.replace(c, name="x").bandwidth_efficiency == 0.5


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 256), kv=st.floats(0, 8000), tp=st.sampled_from([1, 2, 8]),
       pp=st.sampled_from([1, 3]), sharding=st.sampled_from(["heads", "batch"]))
def test_memoised_decode_equals_direct_model(batch, kv, tp, pp, sharding):
    m = model("h100-sxm-80gb", llm("llama3-70b"), GpuMappingSpec(
        name="t", tensor_parallel=tp, pipeline_parallel=pp, attention_sharding=sharding))
    for stage in range(pp):
        direct = m.stage_layers[stage] * m.layer_decode_s(batch, kv)
        if stage == pp - 1:
            direct += m.head_s(batch)
        assert m.decode_s(stage, batch, kv) == pytest.approx(direct, rel=1e-9)


def test_owned_cost_follows_the_tco_role(system):
    short = system.evaluate(system.resolve([], {"mapping.pricing": "owned"}))
    long = system.evaluate(system.resolve([], {"mapping.pricing": "owned",
                                              "tco.server_life_years": 4.0}))
    assert long["tco_usd_per_1k_tokens"] < short["tco_usd_per_1k_tokens"]


def test_rental_prices_and_arithmetic_match_chiplet_cloud_baselines():
    """The A100 and TPUv4 rental prices are Chiplet Cloud's, and the rental cost function turns
    the paper's throughputs into the paper's $/1k tokens (chiplet_cloud_baselines.csv)."""
    import csv
    from pathlib import Path

    import hwsim.chiplet_cloud
    from hwsim.gpu_serving.cost import rental_usd_per_hour

    path = Path(hwsim.chiplet_cloud.__file__).parent / "data" / "chiplet_cloud_baselines.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    names = {"A100": "a100-sxm-80gb", "TPUv4": "tpuv4"}
    for r in rows:
        g = gpu(names[r["baseline"].split()[0]])
        assert g.rental_usd_per_device_hour == float(r["price_usd_per_device_hour"])
        usd_h = rental_usd_per_hour(g, int(r["devices"]))
        per_1k = usd_h / 3600 / float(r["tokens_per_s"]) * 1e3
        assert per_1k == pytest.approx(float(r["usd_per_1k_tokens"]), rel=1e-3)


def test_batch_sharded_attention_splits_the_kv_cache():
    """Multi-query PaLM: head sharding replicates its one KV head on every device; batch
    sharding (Pope et al. 2022) splits the cache by sequences and allows tp > heads."""
    palm = llm("palm-540b")
    heads = model("tpuv4", palm, GpuMappingSpec(name="h", tensor_parallel=32, batch=64))
    batch = model("tpuv4", palm, GpuMappingSpec(
        name="b", tensor_parallel=32, batch=64, attention_sharding="batch"))
    kv_heads = heads.device_bytes(0, 64, 2048) - heads.device_bytes(0, 0, 2048)
    kv_batch = batch.device_bytes(0, 64, 2048) - batch.device_bytes(0, 0, 2048)
    assert kv_heads == pytest.approx(32 * kv_batch)
    with pytest.raises(InfeasibleDesign, match="attention_sharding"):
        model("tpuv4", palm, GpuMappingSpec(name="x", tensor_parallel=64))
    wide = model("tpuv4", palm, GpuMappingSpec(
        name="w", tensor_parallel=64, batch=512, attention_sharding="batch"))
    assert wide.decode_s(0, 512, 2000) >= wide.decode_roofline_s(512, 2000)


@pytest.mark.parametrize("case", calibration.held_out_cases(), ids=lambda c: c.case)
def test_held_out_cases(case):
    result = run_case(case)
    assert not result.counts_as_failure, (result.predicted, result.reference, result.error)
    assert result.ok or case.known_deviation

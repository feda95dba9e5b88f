"""The rlhf system: the iteration adds up, the memory check picks the largest batch that fits,
more GPUs are faster, the DES reproduces the analytical iteration, bad input is one error line,
the calibration files carry their fit and the memory cases reproduce the blog's tables."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from hwsim import specs
from hwsim.llm import model as llm_model
from hwsim.rlhf import calibration
from hwsim.rlhf.search import largest_actor_cases
from hwsim.system import get_system
from hwsim.validation import run_case


def _inputs(*args: str, sets: tuple[str, ...] = ()):
    s = get_system("rlhf")
    return s, s.resolve(list(args), list(sets))


def test_iteration_adds_up_and_costs_follow():
    s, inp = _inputs("actor=opt-6.7b")
    m = s.evaluate(inp)
    assert m["iteration_s"] == pytest.approx(m["generation_s"] + m["scoring_s"]
                                             + m["training_s"])
    assert 0 < m["generation_share"] < 1
    assert m["iterations"] == np.ceil(264_292 / (8 * m["per_device_batch"]))
    assert m["step3_hours"] == pytest.approx(m["iterations"] * m["iteration_s"] / 3600)
    assert m["step3_cost_usd"] == pytest.approx(m["step3_gpu_hours"] * 4.0215)
    assert m["per_device_batch"] * 8 <= 1024
    assert m["memory_per_gpu_GB"] <= 80 - 1.0 + 1e-9
    assert m["step1_hours"] > 0 and m["step2_hours"] > 0


def test_decode_is_memory_bound_and_never_below_the_weight_stream():
    s, inp = _inputs("actor=opt-13b", "calibration=rlhf-uncalibrated",
                     sets=("run.inference_tp_size=2",))
    m = s.evaluate(inp)
    gpu = inp["device"]
    weights = 2.0 * llm_model.params(inp["actor"]) / 2          # bytes per GPU at TP 2
    assert m["generation_s"] >= 255 * weights / (gpu.hbm_bandwidth_GBps * 1e9)


def test_largest_batch_is_the_edge_of_memory():
    s, inp = _inputs("actor=opt-13b", sets=("run.inference_tp_size=2",))
    m = s.evaluate(inp)
    b = int(m["max_per_device_batch"])
    res = s.analytical_batch(inp, {"run.per_device_batch": [b, b + 1]})
    assert res.feasible.tolist() == [True, False]
    assert "does not fit" in str(res.reasons[1])


def test_more_gpus_and_vectorised_points():
    s, inp = _inputs("actor=opt-13b", sets=("run.gpus_per_node=8",))
    g = np.array([8, 16, 32, 64])
    res = s.analytical_batch(inp, {"run.gpus": g})
    h = res["step3_hours"]
    assert np.all(np.diff(h) < 0)                       # faster with more GPUs
    # ZeRO-3 partitions the states: less per GPU with more GPUs
    assert np.all(np.diff(res["model_states_GB"]) < 0)
    one = s.evaluate(s.with_choices(inp, {"run.gpus": 32}))
    assert one["step3_hours"] == pytest.approx(h[2])


def test_does_not_fit_has_a_reason():
    s, inp = _inputs("actor=opt-66b", "device=a100-sxm-40gb")
    res = s.analytical_batch(inp, {})
    assert not res.feasible[0]
    assert "opt-66b" in str(res.reasons[0]) and "GB available" in str(res.reasons[0])


def test_des_reproduces_the_analytical_iteration(tmp_path):
    from hwsim.des.trace import TraceRecorder

    s, inp = _inputs("actor=opt-6.7b")
    a = s.evaluate(inp)
    rec = TraceRecorder()
    d = s.evaluate(inp, "des", trace=rec)
    for k in ("step3_hours", "iteration_s", "generation_s", "generation_share",
              "per_device_batch", "inference_tp"):
        assert d[k] == pytest.approx(a[k], rel=1e-9), k
    assert d["events"] > 0
    out = rec.write(tmp_path / "t.json")
    names = {e.get("name") for e in json.loads(out.read_text())["traceEvents"]}
    assert {"generation", "scoring", "actor training"} <= names


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from hwsim.cli import main

    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("sets, needle", [
    (["--set", "run.gpus=16", "--set", "run.gpus_per_node=16",
      "--set", "run.inference_tp_size=16"], "does not divide the 40 heads"),
    (["--set", "run.per_device_batch=-1"], "per_device_batch"),
    (["--set", "run.gpus=0"], "gpus"),
    (["--set", "run.lora_rank=0"], "frozen_base"),
])
def test_bad_input_is_one_error_line(capsys, sets, needle):
    rc, _, err = _cli(capsys, "simulate", "rlhf", *sets)
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err


def test_simulate_json_carries_metrics_and_phases(capsys):
    rc, stdout, err = _cli(capsys, "simulate", "rlhf", "--spec", "actor=opt-6.7b", "--json")
    assert rc == 0, err
    out = json.loads(stdout)
    assert out["metrics"]["step3_hours"] > 0
    assert out["phases"][0]["phase"] == "generation"


@pytest.mark.parametrize("device", ["a100-sxm-40gb", "a100-sxm-80gb"])
def test_calibration_file_carries_its_fit(device):
    base = specs.load_spec(specs.find_spec_file("rlhf-calibration", f"rlhf-{device}"),
                           "rlhf-calibration")
    cells = calibration.calibration_cells(device)
    assert len(cells) >= 2 and {r["actor"] for r in cells} == {"opt-6.7b", "opt-13b"}
    assert calibration.fit(base, cells).compute_efficiency == pytest.approx(
        base.compute_efficiency, abs=2e-4)
    assert device in base.fitted_on or "device" in base.fitted_on


def test_memory_cases_reproduce_the_blog_tables():
    for case in largest_actor_cases():
        r = run_case(case)
        assert r.ok, (case.case, r.predicted, r.error)


def test_largest_actor_script_table():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "explore" / "rlhf_largest_actor.py"
    spec = importlib.util.spec_from_file_location("rlhf_largest_actor", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.table(["a100-sxm-80gb"], [1, 8])
    assert [r["largest_actor"] for r in rows] == ["opt-13b", "opt-66b"]
    assert all(r["memory_per_gpu_GB"] <= 79.0 + 1e-9 for r in rows)


def test_offload_moves_states_to_the_host():
    s, inp = _inputs("actor=opt-13b", sets=("run.frozen_base=false", "run.lora_rank=0",
                                            "run.inference_tp_size=8"))
    on = s.evaluate(s.with_choices(inp, {"run.offload": True}))
    off = s.evaluate(inp)
    assert on["model_states_GB"] < off["model_states_GB"]
    assert on["training_s"] / on["per_device_batch"] > off["training_s"] / off["per_device_batch"]


def test_flops_shares_add_up():
    from hwsim.rlhf.analytical import step3_flops_per_pair

    s, inp = _inputs("actor=opt-13b")
    f = step3_flops_per_pair(inp["actor"], inp["critic"], inp["run"])
    p = llm_model.params(inp["actor"])
    # generation is about one forward over 511 tokens: 2 P per token plus attention
    assert 2 * p * 511 < f["generation"] < 2.2 * p * 511
    m = s.evaluate(inp)
    assert m["generation_flops_share"] == pytest.approx(f["generation"] / sum(f.values()))
    assert m["generation_share"] > m["generation_flops_share"]   # decode is HBM-bound


def test_inference_workspace_follows_deepspeeds_sizing():
    """GenWorkSpace: n e (10 H' r + r (a/t) n + 2 L r H'/t) for r = t x b rows, n = 512 tokens;
    the head size is padded to 128 (OPT-2.7B: 80); its KV part is the 16-bit cache at e = 2."""
    from hwsim.rlhf.analytical import inference_workspace_bytes

    _, inp = _inputs("actor=opt-13b")
    a, run = inp["actor"], inp["run"]
    one = float(inference_workspace_bytes(a, run, np.array(1.0), np.array(1.0)))
    assert one == 512 * 4 * (10 * 5120 + 40 * 512 + 2 * 40 * 5120)
    # TP 8 at 2 pairs: 16 rows; activations unsplit, scores and cache over the 8 GPUs
    t8 = float(inference_workspace_bytes(a, run, np.array(8.0), np.array(2.0)))
    assert t8 == 512 * 4 * (10 * 5120 * 16 + 16 * 5 * 512 + 2 * 40 * 16 * 5120 / 8)
    _, inp2 = _inputs("actor=opt-2.7b")
    padded = float(inference_workspace_bytes(inp2["actor"], inp2["run"], np.array(1.0),
                                             np.array(1.0)))
    assert padded == 512 * 4 * (10 * 32 * 128 + 32 * 512 + 2 * 32 * 32 * 128)
    half = replace(run, workspace_bytes_per_value=2)
    kv_part = 512 * 2 * (2 * 40 * 5120)
    assert float(inference_workspace_bytes(a, half, np.array(1.0), np.array(1.0))) == one / 2
    assert kv_part == pytest.approx(512 * llm_model.kv_bytes_per_token(a))


def test_opt66b_one_node_runs_at_the_scripts_batch():
    """With the OPT-66B script's gather group of 4 layers the 80 GB node fits 4 pairs per GPU at
    TP 8, the script's per-device batch (multi_node/run_66b.sh)."""
    s, inp = _inputs("actor=opt-66b", sets=("run.tp_gather_partition_size=4",))
    m = s.evaluate(inp)
    assert (m["per_device_batch"], m["inference_tp"]) == (4, 8)
    assert m["inference_workspace_GB"] > m["kv_cache_GB"]

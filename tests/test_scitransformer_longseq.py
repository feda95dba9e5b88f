"""The long-sequence GPT family of the scitransformer system: the old configuration runs out of
memory at 8k and the new fits to 32k, Megatron-DS's TFLOPS convention, the Korthikanti
activations under SP, the longest trainable sequence, the cross-server TP link, the fitted
constant's file, and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hwsim import specs
from hwsim.cli import main
from hwsim.llm.model import params
from hwsim.llm.training import (
    attention_mask_bytes,
    nccl_inter_channel_Bps,
    nccl_ring_collective_s,
    nccl_ring_step_latency_s,
    tp_link_Bps,
)
from hwsim.scitransformer import calibration
from hwsim.scitransformer.longseq import SEQ_GRID, llm_of, tp_bus_Bps
from hwsim.scitransformer.validation import NEW_DEVIATIONS
from hwsim.system import get_system

TABLE = [2048, 4096, 8192, 16384, 32768]


def _batch(workload: str, points: dict, *sets: str):
    s = get_system("scitransformer")
    inputs = s.resolve([f"workload={workload}", "device=a100-sxm-40gb"], list(sets))
    return s.analytical_batch(inputs, points)


def test_old_runs_out_of_memory_from_8k_and_new_fits_to_32k():
    old = _batch("genslm-25b-longseq-old", {"workload.seq_len": TABLE})
    assert old.feasible.tolist() == [True, True, False, False, False]
    assert "40.0 GB available" in old.reasons[2]
    new = _batch("genslm-25b-longseq", {"workload.seq_len": TABLE})
    assert new.feasible.all()
    assert np.all(np.diff(new["longseq_memory_per_gpu_GB"]) > 0)
    # the old stack's s^2 scores make its memory grow faster than linearly, the new's linearly
    o = old["longseq_activations_GB"]
    assert o[1] / o[0] > 2.2
    n = new["longseq_activations_GB"]
    assert n[4] / n[3] == pytest.approx(2.0, rel=0.01)


def test_tflops_follow_megatron_ds_convention():
    spec = llm_of(specs.load_spec(specs.find_spec_file("scitransformer-workload",
                                                       "genslm-25b-longseq")))
    out = _batch("genslm-25b-longseq", {"workload.seq_len": TABLE})
    s = np.array(TABLE, dtype=float)
    L, h, V = spec.layers, spec.d_model, spec.vocab
    # throughput_calculator: 24 x f x B s L h^2 (1 + s/(6h) + V/(16 L h)), f = 4 with
    # --checkpoint-activations (the example's args.sh), 3 without
    for f, rc in ((4, "true"), (3, "false")):
        run = _batch("genslm-25b-longseq", {"workload.seq_len": TABLE},
                     f"workload.checkpointing={rc}")
        megatron = 24.0 * f * s * L * h ** 2 * (1 + s / (6 * h) + V / (16 * L * h))
        ours = run["longseq_tflops_per_gpu"] * 1e12 * run["longseq_step_s"] * 32
        assert ours == pytest.approx(megatron, rel=0.01)
    assert out["longseq_tokens_per_s"] == pytest.approx(s / out["longseq_step_s"])
    # longer sequences: more attention FLOPs per collective byte (and the fixed optimizer
    # update a smaller share), so TFLOPS rise and the collectives' share falls from 4k on
    assert np.all(np.diff(out["longseq_tflops_per_gpu"]) > 0)
    assert np.all(np.diff(out["longseq_tp_comm_share"][1:]) < 0)
    # the script's active GPT25B key: 64 x 6,144, learned positions sized for 32k
    assert (L, h, spec.heads, spec.learned_positions) == (64, 6144, 64, True)
    assert params(spec) == pytest.approx(12 * L * h ** 2 + (V + 32768) * h, rel=0.01)


def test_sequence_parallel_activations_are_korthikanti_over_t():
    out = _batch("genslm-25b-longseq", {"workload.seq_len": [32768]},
                 "workload.checkpointing=false")
    s, h, L, t, V = 32768, 6144, 64, 32, 50257
    acts = L * s * h * 34 / t + 4 * s * V / t        # FlashAttention: no 5 a s^2 term
    assert out["longseq_activations_GB"][0] * 1e9 == pytest.approx(acts)
    # full recompute (the workload's default): each layer's input, 2 s h / t, and one layer
    rec = _batch("genslm-25b-longseq", {"workload.seq_len": [32768]})
    acts = L * 2 * s * h / t + s * h * 34 / t + 4 * s * V / t
    assert rec["longseq_activations_GB"][0] * 1e9 == pytest.approx(acts)
    old = _batch("genslm-25b-longseq-old", {"workload.seq_len": [4096]})
    s, h = 4096, 5760
    acts = L * s * h * (10 + 24 / t + 5 * 64 * s / (h * t)) + 4 * s * V / t + s * s
    assert old["longseq_activations_GB"][0] * 1e9 == pytest.approx(acts)
    assert attention_mask_bytes(s, False) == 0


def test_longest_sequence_is_the_edge_of_the_memory_model():
    gpus = [16, 32, 64]
    out = _batch("genslm-25b-longseq", {"workload.gpus": gpus}, "workload.tensor_parallel=0",
                 "workload.checkpointing=false")
    longest = out["longseq_max_seq_len"]
    assert out["longseq_tensor_parallel"].tolist() == gpus
    assert np.all(np.diff(longest) > 0)
    for g, n in zip(gpus, longest, strict=True):
        edge = _batch("genslm-25b-longseq", {"workload.seq_len": [n, n + 512]},
                      f"workload.gpus={g}", "workload.tensor_parallel=0",
                      "workload.checkpointing=false")
        assert edge.feasible.tolist() == [True, False]
    # the old configuration stops between 4k and 8k on 32 GPUs; recompute and offload go further
    old = _batch("genslm-25b-longseq-old", {})
    assert 4096 <= old["longseq_max_seq_len"][0] < 8192
    more = _batch("genslm-25b-longseq", {"workload.offload": [False, True]},
                  "workload.checkpointing=true")
    assert more["longseq_max_seq_len"][1] > more["longseq_max_seq_len"][0] > 8 * longest[1]
    assert more["longseq_max_seq_len"].max() <= SEQ_GRID[-1]


def test_tensor_parallel_must_divide_heads_and_gpus():
    out = _batch("genslm-33b-longseq", {"workload.tensor_parallel": [32, 16, 20]})
    assert "80 heads" in out.reasons[0]
    assert out.feasible.tolist() == [False, True, False]
    assert "divide the GPUs" in out.reasons[2]


def test_cross_server_tp_runs_at_the_servers_nics():
    link = tp_link_Bps(np.array([8, 16, 32]), 8, 300e9, 25e9, 8)
    assert link.tolist() == [300e9, 200e9, 200e9]
    out = _batch("genslm-25b-longseq", {"workload.tensor_parallel": [8, 32]},
                 "workload.gpus=32", "workload.seq_len=8192")
    assert out["longseq_tp_comm_share"][1] > out["longseq_tp_comm_share"][0]


def test_calibration_file_carries_the_fit_on_two_cells():
    cal = specs.load_spec(specs.find_spec_file("longseq-calibration", "longseq-a100-sxm-40gb"))
    cells = calibration.calibration_cells()
    assert [int(r["seq_len"]) for r in cells] == [2048, 32768]
    assert calibration.fit(cal, cells).compute_efficiency == pytest.approx(
        cal.compute_efficiency, abs=2e-4)
    with pytest.raises(ValueError):
        calibration.fit(cal, cells[:1])
    # cells of the new column within the 15% the model claims, except the known deviations,
    # each within the ceiling its reason gives
    new = [r for r in calibration.rows() if r["workload"] == "genslm-25b-longseq"]
    pred = calibration.predict_tflops("genslm-25b-longseq", [int(r["seq_len"]) for r in new])
    ref = np.array([float(r["tflops_per_gpu"]) for r in new])
    for r, err in zip(new, np.abs(pred / ref - 1), strict=True):
        ceiling, _ = NEW_DEVIATIONS.get(int(r["seq_len"]), (0.15, ""))
        assert err <= ceiling
    assert cal.collective_latency == "nccl"
    # the shared NCCL-derived latency of the table's group: 32 ranks on 4 DGX A100 nodes
    assert nccl_ring_step_latency_s(32, 8, allreduce=False) == pytest.approx(
        2 * (8.4 + 28 * 3.4 + 3 * 14.0) / 62 * 1e-6)


def test_collectives_at_the_protocol_nccl_picks():
    # the table's all-gathers / reduce-scatters: s x 6,144 x 2 B over 32 ranks on 4 nodes at
    # NCCL's bus bandwidth (8 channels x 24 GB/s, LL128 capped at 8 x 20 GB/s); LL128 (lower
    # latency) for 2k and 4k, Simple (full bandwidth) from 8k
    seq = np.array([2048, 4096, 8192, 16384, 32768])
    act = seq * 6144 * 2.0
    kw = {"allreduce": False, "ll128_cap_Bps": 160e9}
    best = nccl_ring_collective_s(act, 32, 8, 192e9, **kw)
    simple = nccl_ring_collective_s(act, 32, 8, 192e9, protocols=("Simple",), **kw)
    ll128 = nccl_ring_collective_s(act, 32, 8, 192e9, protocols=("LL128",), **kw)
    assert np.allclose(best[:2], ll128[:2]) and np.all(ll128[:2] < simple[:2])
    assert np.allclose(best[2:], simple[2:])
    # LL128 at 2k: 79.2 us of latency + 31/32 x 25.2 MB at 160 GB/s
    assert ll128[0] == pytest.approx(79.2e-6 + act[0] * 31 / 32 / 160e9)
    # the cap only binds LL128
    uncapped = nccl_ring_collective_s(act, 32, 8, 192e9, allreduce=False, protocols=("Simple",))
    assert np.allclose(uncapped, simple)
    # protocol choice lifts the collective-bound 2k cell against Simple everywhere; 32k is equal
    out = {m: _batch("genslm-25b-longseq", {"workload.seq_len": [2048, 32768]},
                     f"calibration.collective_latency={m}")["longseq_tflops_per_gpu"]
           for m in ("nccl", "nccl-simple")}
    assert out["nccl"][0] > 1.1 * out["nccl-simple"][0]
    assert out["nccl"][1] == pytest.approx(out["nccl-simple"][1])


def test_cross_server_bus_bandwidth_is_nccls_channels_at_its_search_speed():
    # search.cc speedArrayInter: an HDR NIC of 25 GB/s carries a 24 GB/s channel
    assert nccl_inter_channel_Bps(np.array([25e9, 50e9, 12.5e9])).tolist() == [24e9, 48e9, 12e9]
    cal = specs.load_spec(specs.find_spec_file("longseq-calibration", "longseq-a100-sxm-40gb"))
    gpu = specs.load_spec(specs.find_spec_file("gpu", "a100-sxm-40gb"))
    bus, cap = tp_bus_Bps(gpu, cal, np.array([8.0, 32.0]))
    assert bus.tolist() == [300e9 * 0.75, 192e9] and cap.tolist() == [np.inf, 160e9]
    from dataclasses import replace
    old, old_cap = tp_bus_Bps(gpu, replace(cal, inter_node_bandwidth="link-efficiency"),
                              np.array([32.0]))
    assert old.tolist() == [200e9 * 0.75] and np.isinf(old_cap).all()
    # even at the full tensor peak the model's 2k and 4k steps stay under the table's 68 and
    # 80 TFLOPS: the collectives, not the compute efficiency, bound those cells
    peak = _batch("genslm-25b-longseq", {"workload.seq_len": [2048, 4096]},
                  "calibration.compute_efficiency=1.0")["longseq_tflops_per_gpu"]
    assert peak[0] < 68 and peak[1] < 80


def test_evoformer_family_is_unchanged_and_longseq_nan(capsys):
    s = get_system("scitransformer")
    m = s.evaluate(s.resolve())
    assert math.isnan(m["longseq_tflops_per_gpu"])
    assert m["extra_msa_row_logits_GB"] == pytest.approx(5120 * 8 * 384 * 384 * 2 / 1e9)
    assert main(["simulate", "scitransformer", "--spec", "workload=genslm-25b-longseq",
                 "--spec", "device=a100-sxm-40gb", "--set", "workload.seq_len=32768",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metrics"]["longseq_fits"] == 1
    assert doc["metrics"]["longseq_tflops_per_gpu"] == pytest.approx(
        float(calibration.predict_tflops("genslm-25b-longseq", [32768])[0]))


def test_bad_workload_is_one_input_error(capsys):
    args = ["simulate", "scitransformer", "--spec", "workload=genslm-25b-longseq",
            "--spec", "device=a100-sxm-40gb"]
    assert main([*args, "--set", "workload.llm=nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "genslm-25b-longseq.toml" in err and "'nope'" in err
    assert main([*args, "--set", "workload.seq_len=0"]) == 2
    assert "seq_len" in capsys.readouterr().err

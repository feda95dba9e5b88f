"""The Tiled-CSL sparse-to-dense decoder: bit-exact tiles and the cycle model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.spmm.rtl import (
    decode_reference,
    encode_tile,
    position,
    simulate_tiles,
    tile_cycles,
)
from hwsim.spmm.spec import SparseDecoderSpec

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random_tile(rng, spec: SparseDecoderSpec, density: float) -> np.ndarray:
    vals = rng.integers(1, 1 << spec.value_width, (spec.tile_rows, spec.tile_cols))
    return vals * (rng.random((spec.tile_rows, spec.tile_cols)) < density)


@st.composite
def cases(draw):
    spec = SparseDecoderSpec(
        tile_rows=draw(st.integers(1, 4)), tile_cols=draw(st.integers(2, 6)),
        value_width=draw(st.integers(1, 16)), lanes=draw(st.integers(1, 4)),
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    densities = draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0]), min_size=1, max_size=3))
    tiles = [_random_tile(rng, spec, d) for d in densities]
    shuffle = draw(st.booleans())
    records = []
    for t in tiles:
        nnz = int((t != 0).sum())
        records.append(encode_tile(spec, t, rng.permutation(nnz) if shuffle else None))
    return spec, tiles, records


@FAST
@given(cases())
def test_random_tiles_bit_and_cycle_exact(case) -> None:
    spec, tiles, records = case
    out, trace = simulate_tiles(spec, records)
    for got, dense, recs in zip(out, tiles, records, strict=True):
        assert (got == dense).all()
        assert (got == decode_reference(spec, recs)).all()
    assert trace.span_cycles == sum(tile_cycles(spec, len(r)) for r in records)


def test_empty_full_and_max_values() -> None:
    spec = SparseDecoderSpec(tile_rows=3, tile_cols=4, value_width=16, lanes=4)
    full = np.full((3, 4), (1 << 16) - 1)  # every element, maximum value
    empty = np.zeros((3, 4), dtype=np.int64)
    tiles = [empty, full, empty, empty]
    out, trace = simulate_tiles(spec, [encode_tile(spec, t) for t in tiles])
    for got, want in zip(out, tiles, strict=True):
        assert (got == want).all()
    # an empty tile still takes one (masked) vector and tile_rows output cycles
    assert tile_cycles(spec, 0) == 1 + 3
    assert trace.span_cycles == 3 * (1 + 3) + (3 + 3)


def test_later_lane_wins_on_duplicate_positions() -> None:
    spec = SparseDecoderSpec(tile_rows=2, tile_cols=2, value_width=8, lanes=4)
    recs = [(5, 3), (6, 3), (7, 0), (9, 3)]  # position 3 three times in one vector
    out, _ = simulate_tiles(spec, [recs])
    assert out[0].tolist() == [[7, 0], [0, 9]]
    assert (out[0] == decode_reference(spec, recs)).all()


def test_flash_llm_swizzle() -> None:
    spec = SparseDecoderSpec(tile_rows=2, tile_cols=64, value_width=16, lanes=4, swizzle=True)
    # Flash-LLM: position = row * 64 + (col ^ ((row % 8) << 3))
    assert position(spec, 1, 0) == 64 + 8
    assert position(spec, 1, 9) == 64 + 1
    rng = np.random.default_rng(3)
    dense = _random_tile(rng, spec, 0.2)
    out, _ = simulate_tiles(spec, [encode_tile(spec, dense)])
    assert (out[0] == dense).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_backpressure(seed: int) -> None:
    spec = SparseDecoderSpec(tile_rows=4, tile_cols=4, value_width=12, lanes=3)
    rng = np.random.default_rng(seed)
    tiles = [_random_tile(rng, spec, d) for d in (0.3, 0.0, 0.9)]
    recs = [encode_tile(spec, t, rng.permutation(int((t != 0).sum()))) for t in tiles]
    out, trace = simulate_tiles(spec, recs, p_valid=0.5, p_ready=0.3, seed=seed)
    for got, want in zip(out, tiles, strict=True):
        assert (got == want).all()
    assert trace.span_cycles > sum(tile_cycles(spec, len(r)) for r in recs)


def test_swizzle_needs_64_columns() -> None:
    with pytest.raises(ValueError, match="multiple of 64"):
        SparseDecoderSpec(tile_cols=16, swizzle=True)

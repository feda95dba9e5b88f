"""The ``sparse-decoder`` RTL generator: a Tiled-CSL tile decoder, registered by this package.

The component is :class:`hwsim.spmm.rtl.SparseDecoder` (imported when first built).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hwsim.rtl.registry import Generator, check_demo, register_generator
from hwsim.spmm.spec import SparseDecoderSpec


def component(spec: SparseDecoderSpec) -> Any:
    from hwsim.spmm.rtl import SparseDecoder

    return SparseDecoder(spec)


def describe_timing(spec: SparseDecoderSpec) -> dict[str, Any]:
    """Latency and initiation interval of the decoder (for its JSON description)."""
    from hwsim.spmm.rtl import tile_cycles

    return {
        "model": "hwsim.spmm.rtl.tile_cycles",
        "tile_cycles": "max(1, ceil(nnz / lanes)) + tile_rows",
        "latency_cycles": 1,
        "latency_note": "first dense row leaves the cycle after the tile's last vector",
        "initiation_interval_cycles": 1,
        "ii_note": "one vector of `lanes` records per cycle while filling",
        "tile_cycles_dense": tile_cycles(spec, spec.tile_rows * spec.tile_cols),
    }


def demo(spec: SparseDecoderSpec, vcd: Path) -> None:
    """A random sparse tile and an empty one through the decoder, checked against numpy."""
    from hwsim.spmm.rtl import encode_tile, simulate_tiles

    rng = np.random.default_rng(0)
    dense = rng.integers(1, 1 << spec.value_width, (spec.tile_rows, spec.tile_cols),
                         endpoint=False) * (rng.random((spec.tile_rows, spec.tile_cols)) < 0.25)
    out, _ = simulate_tiles(spec, [encode_tile(spec, dense), []], vcd=vcd)
    check_demo(bool((out[0] == dense).all() and not out[1].any()), "sparse-decoder demo")


GENERATOR = register_generator(Generator(
    "sparse-decoder", "sparse-decoder", "Tiled-CSL sparse-to-dense tile decoder",
    component, describe_timing, demo))

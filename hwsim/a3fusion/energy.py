"""Energy per frame from per-operation energies (an ``op-energy`` spec).

- a MAC: one multiply at the operand width and one add at the accumulator width;
- a vector-layer element (pooling compare, add, upsample copy): one add at the operand width;
- an on-chip buffer access: a 64-bit SRAM access at the size of one half-buffer (the bank being
  read or written), per 8 bytes; every byte a fold streams between the array and the buffers
  (:func:`hwsim.systolic.timing.fold_traffic_bytes`'s tiles, partial folds zero-padded), every
  byte a vector layer reads and writes, and every byte the DMA writes into or reads out of them;
- a DRAM byte: the 64-bit DRAM access per 8 bytes.

Energies between and beyond the table's widths and sizes come from a straight line through
the neighbouring two in log-log coordinates (multiplier energy grows about with width squared:
Horowitz's 8- and 32-bit figures are 15.5x apart, where width squared gives 16x). Dynamic
energy only: FPGA static power and clocking are not modelled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.a3fusion.spec import OpEnergySpec


def _loglog(x: Any, xs: tuple[float, ...], ys: tuple[float, ...]) -> Any:
    """Piecewise log-log interpolation through ``(xs, ys)``, extrapolated by the end segments."""
    lx = np.log(np.asarray(x, dtype=float))
    lxs, lys = np.log(np.asarray(xs)), np.log(np.asarray(ys))
    seg = np.clip(np.searchsorted(lxs, lx) - 1, 0, len(xs) - 2)
    slope = (lys[seg + 1] - lys[seg]) / (lxs[seg + 1] - lxs[seg])
    return np.exp(lys[seg] + slope * (lx - lxs[seg]))


def mult_pJ(e: OpEnergySpec, width: Any) -> Any:
    """One integer multiply of ``width`` bits."""
    return _loglog(width, (8.0, 32.0), (e.mult_8bit_pJ, e.mult_32bit_pJ))


def add_pJ(e: OpEnergySpec, width: Any) -> Any:
    """One integer add of ``width`` bits."""
    return _loglog(width, (8.0, 32.0), (e.add_8bit_pJ, e.add_32bit_pJ))


def sram_pJ_per_byte(e: OpEnergySpec, size_bytes: Any) -> Any:
    """One byte of a 64-bit access of an SRAM of ``size_bytes``."""
    return _loglog(np.maximum(size_bytes, 1.0), (8192.0, 32768.0, 1048576.0),
                   (e.sram_8KiB_pJ_per_64bit, e.sram_32KiB_pJ_per_64bit,
                    e.sram_1MiB_pJ_per_64bit)) / 8.0


def dram_pJ_per_byte(e: OpEnergySpec) -> float:
    """One byte of DRAM traffic."""
    return e.dram_pJ_per_64bit / 8.0

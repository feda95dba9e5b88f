"""``systolic-fpga``: a systolic GEMM accelerator on an FPGA, its timing, resources and RTL.

- :mod:`.spec`: the ``systolic`` (array) and ``gemm`` (workload) kinds; the board is the shared
  ``fpga-board`` (:mod:`hwsim.hw.fpga`);
- :mod:`.timing`: the systolic timing model (SCALE-Sim's compute cycles) every evaluator and
  the RTL are held to;
- :mod:`.array`: the Amaranth component, its numpy model and simulation driver;
- :mod:`.generator`: the ``systolic`` RTL generator (``hwsim rtl systolic``);
- :mod:`.resources`: FPGA resources measured by synthesis on a grid, fitted;
- :mod:`.evaluate`: the system (analytical batch and DES) and its validation cases.
"""

from __future__ import annotations

from hwsim.systolic_fpga import generator as _generator  # noqa: F401  (registers "systolic")
from hwsim.systolic_fpga.evaluate import SYSTEM
from hwsim.systolic_fpga.spec import GemmSpec, SystolicSpec

__all__ = ["SYSTEM", "GemmSpec", "SystolicSpec"]

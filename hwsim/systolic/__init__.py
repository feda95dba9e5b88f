"""The systolic MAC array, shared by every accelerator system built on one.

- :mod:`.spec`: the ``systolic`` kind (rows, cols, widths, dataflow, clock);
- :mod:`.timing`: the systolic timing model (SCALE-Sim's compute cycles, checked against
  SCALE-Sim 3.0.0's own numbers in ``data/``), the one every evaluator and the RTL are held to;
- :mod:`.resources`: FPGA resources measured by synthesis of the generated array, fitted;
- :mod:`.array`: the Amaranth component, its numpy model and simulation driver;
- :mod:`.generator`: the ``systolic`` RTL generator (``hwsim rtl systolic``).

Importing this package registers the kind and the generator (Amaranth is imported only when a
component is built).
"""

from __future__ import annotations

from hwsim.systolic import generator as _generator  # noqa: F401  (registers "systolic")
from hwsim.systolic.spec import SystolicSpec

__all__ = ["SystolicSpec"]

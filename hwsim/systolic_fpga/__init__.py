"""``systolic-fpga``: a systolic GEMM accelerator on an FPGA, for the explorer.

The array, its timing, its resources and its RTL are the shared :mod:`hwsim.systolic`; this
package is the system on them (:mod:`.evaluate`: the analytical batch, the DES and the
validation cases) and its workload kind (:mod:`.spec`: ``gemm``).
"""

from __future__ import annotations

from hwsim.systolic_fpga.evaluate import SYSTEM
from hwsim.systolic_fpga.spec import GemmSpec

__all__ = ["SYSTEM", "GemmSpec"]

"""Spec kinds that more than one system uses, and the models that belong to them.

- :mod:`.gpu`: ``gpu``, an HBM accelerator (GPU or TPU) and its server, as its datasheet says;
- :mod:`.tco`: ``tco``, datacenter and economic constants, and the lifetime TCO of a server;
- :mod:`.fpga`: ``fpga-board``, an FPGA device's resources and the DRAM beside it;
- :mod:`.gemm`: tile and wave quantisation of a tensor-core GEMM over a GPU's SMs (the compute
  side; gpu-serving's kernel model and the diffusion latency model both call it);
- :mod:`.link`: ``link``, a road-side-unit-to-vehicle radio link (channel, rate, latency, loss,
  handover) and its vectorised models.

A device file holds published figures only; constants fitted to measurements live in the
calibration spec of the model that uses them (for example ``gpu-calibration``), which names the
data it was fitted on. No module here imports a system package.
"""

from __future__ import annotations

from hwsim.hw.cpu import CpuSpec
from hwsim.hw.fpga import FpgaBoardSpec
from hwsim.hw.gpu import GpuSpec
from hwsim.hw.link import LinkSpec
from hwsim.hw.tco import TcoSpec

__all__ = ["CpuSpec", "FpgaBoardSpec", "GpuSpec", "LinkSpec", "TcoSpec"]

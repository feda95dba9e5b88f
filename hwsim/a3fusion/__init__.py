"""``a3fusion``: camera-LiDAR middle-fusion segmentation on an FPGA, co-searched with its network.

Inputs: ``network`` (kind ``cnn``: a two-branch segmentation network, generated, a layer table,
SCALE-Sim CSVs or ONNX), ``accuracy`` (``cnn-accuracy``), ``accel`` (``a3fusion-accel``: the
PE array on the shared systolic timing model, buffers, loop order, branch mode), ``board``
(the shared ``fpga-board``) and ``energy`` (``op-energy``). The analytical model is
:mod:`.model` (vectorised; the system's block in :mod:`.evaluate`), the DES :mod:`.des`,
resources :mod:`.resources`, energy :mod:`.energy`, accuracy :mod:`.accuracy`. Per-layer
figures: ``python -m hwsim.a3fusion``. See docs/a3fusion.md.
"""

from __future__ import annotations

from hwsim.a3fusion import generator as _generator  # noqa: F401  (registers "a3fusion")
from hwsim.a3fusion.evaluate import SYSTEM
from hwsim.a3fusion.spec import AccelSpec, AccuracySpec, CnnSpec, OpEnergySpec

__all__ = ["SYSTEM", "AccelSpec", "AccuracySpec", "CnnSpec", "OpEnergySpec"]

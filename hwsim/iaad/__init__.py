"""``iaad``: infrastructure-augmented autonomous driving. Road-side units sense the road and
send their perception to passing vehicles over a wireless link; the vehicle fuses it by
intra-frame, inter-frame or planning fusion, or by an adaptive policy choosing among them.

Inputs: ``link`` (the shared ``link`` kind, :mod:`hwsim.hw.link`: LTE, 5G NR sub-6 GHz and
mmWave, DSRC/802.11p, C-V2X PC5, Wi-Fi, a fixed rate, or a measured trace) and ``scenario``
(``iaad-scenario``, :mod:`.spec`). Modules: :mod:`.channel` (the link along the road),
:mod:`.radio` (packets, queue, loss, ARQ in the DES), :mod:`.des` (the drives and the four
methods), :mod:`.fusion` (what the vehicle fuses, the accuracy and displacement proxies),
:mod:`.analytical` (the vectorised twin), :mod:`.trace` (trace files), :mod:`.checks` (the
queueing-theory check), :mod:`.evaluate` (the system). Per-segment table and figure:
``python -m hwsim.iaad``. See docs/iaad.md.
"""

from __future__ import annotations

from hwsim.iaad.evaluate import SYSTEM
from hwsim.iaad.spec import ScenarioSpec

__all__ = ["SYSTEM", "ScenarioSpec"]

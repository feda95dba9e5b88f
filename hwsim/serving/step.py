"""The interface between a hardware performance model and the serving DES.

A step model says how long one pipeline stage takes for one batched step of a replica; the
DES (:func:`hwsim.serving.des.serve`) turns those step times into request-level latencies.
Any hardware can be served: the GPU/TPU roofline (:class:`hwsim.gpu_serving.roofline.
RooflineStepModel`) implements it, and so can Chiplet Cloud's performance model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class StepModel(Protocol):
    """Per-stage step latencies of one model replica (seconds)."""

    @property
    def stages(self) -> int:
        """Pipeline stages of the replica (1 = no pipeline)."""
        ...

    def prefill_s(self, stage: int, batch: int, prompt_tokens: float) -> float:
        """Time of ``stage`` to prefill ``batch`` prompts of mean length ``prompt_tokens``."""
        ...

    def decode_s(self, stage: int, batch: int, context_tokens: float) -> float:
        """Time of ``stage`` for one decode step of ``batch`` sequences whose mean context
        (prompt plus tokens generated so far) is ``context_tokens``."""
        ...

    def transfer_bytes(self, stage: int, tokens: int) -> float:
        """Bytes of the activations of ``tokens`` tokens sent from ``stage`` to ``stage + 1``
        (0: no separate transfer, e.g. when the stage time already includes it)."""
        ...

    def link(self, stage: int) -> tuple[float, float]:
        """(bandwidth in bytes/s, latency in s) of the link from ``stage`` to ``stage + 1``."""
        ...


def transfer_s(model: StepModel, stage: int, tokens: int) -> float:
    """Time of one stage-to-stage transfer on an idle link (0 after the last stage)."""
    if stage >= model.stages - 1:
        return 0.0
    nbytes = model.transfer_bytes(stage, tokens)
    if nbytes <= 0:
        return 0.0
    bw, lat = model.link(stage)
    return nbytes / bw + lat

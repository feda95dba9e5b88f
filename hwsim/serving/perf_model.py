"""A :class:`~hwsim.serving.step.StepModel` straight from the shared performance model
:mod:`hwsim.llm.perf`, for any system that describes its hardware as a ``perf.Device`` (Chiplet
Cloud does): the serving DES then runs on exactly the per-stage times the analytical evaluator
uses.

Stages are ``ceil(layers / pp)`` layers each, as in :func:`hwsim.llm.perf.decode_step`. With
``fold_transfers=True`` the stage-to-stage transfer is part of the stage time (``perf``'s own
schedule, so the DES at saturation reproduces ``decode_step`` and ``prefill`` exactly); with
``False`` the transfer runs on a link of its own and overlaps the next micro-batch's compute,
which the closed forms of :mod:`hwsim.serving.saturation` account for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hwsim.llm import perf
from hwsim.llm.model import LayerShape


@dataclass(frozen=True)
class PerfStepModel:
    """Per-stage step times of a ``tp`` x ``pp`` mapping of ``shape`` on ``device`` (scalars)."""

    shape: LayerShape
    device: perf.Device
    tp: int = 1
    pp: int = 1
    attention: bool = True
    fold_transfers: bool = False
    _memo: dict[int, tuple[float, float]] = field(default_factory=dict, init=False,
                                                  repr=False, compare=False)

    @property
    def stages(self) -> int:
        return self.pp

    @property
    def uniform_stages(self) -> bool:
        """Every stage takes the same time (``ceil(layers / pp)`` layers each): the serving DES
        asks for one stage's time per step."""
        return True

    @property
    def layers_per_stage(self) -> int:
        return math.ceil(self.shape.layers / self.pp)

    def _act_bytes(self, rows: float) -> float:
        return rows * self.shape.d_model * self.shape.bytes_per_value

    def _transfer_s(self, rows: float) -> float:
        return float(perf.transfer_s(self._act_bytes(rows), self.device.pp_link_Bps,
                                     self.device.link_latency_s))

    def _layer_s(self, seqs: float, q_len: float, kv_len: float, attention: bool) -> float:
        sh, dev, tp = self.shape, self.device, self.tp
        rows = seqs * q_len
        t = sum(float(perf.gemm_s(g, rows, tp, dev, sh.bytes_per_value)) for g in sh.gemms)
        if attention:
            t += float(perf.attention_s(sh, seqs, q_len, kv_len, tp, dev))
        t += sh.allreduces * float(perf.ring_allreduce_s(self._act_bytes(rows), tp,
                                                         dev.tp_link_Bps, dev.link_latency_s))
        return t

    def prefill_s(self, stage: int, batch: int, prompt_tokens: float) -> float:
        t = self.layers_per_stage * self._layer_s(batch, prompt_tokens, 0.0, self.attention)
        return t + (self._transfer_s(batch * prompt_tokens) if self.fold_transfers else 0.0)

    def decode_s(self, stage: int, batch: int, kv_tokens: float) -> float:
        # one new token per sequence: attention FLOPs and KV bytes are proportional to
        # kv_tokens + 1 (perf.attention_s), so a decode step is fixed + slope x (kv + 1)
        parts = self._memo.get(batch)
        if parts is None:
            fixed = self._layer_s(batch, 1.0, 0.0, False)
            attn = (float(perf.attention_s(self.shape, batch, 1.0, 0.0, self.tp, self.device))
                    if self.attention else 0.0)
            fixed = self.layers_per_stage * fixed + (
                self._transfer_s(batch) if self.fold_transfers else 0.0)
            parts = self._memo[batch] = (fixed, self.layers_per_stage * attn)
        return parts[0] + parts[1] * (kv_tokens + 1.0)

    def transfer_bytes(self, stage: int, tokens: int) -> float:
        return 0.0 if self.fold_transfers else self._act_bytes(tokens)

    def link(self, stage: int) -> tuple[float, float]:
        return float(self.device.pp_link_Bps), float(self.device.link_latency_s)

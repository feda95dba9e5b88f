"""The one batch path: many design points of a system evaluated at once with numpy.

A system with a vectorised analytical model gives a :class:`BatchModel`: the keys its *block*
evaluator takes as arrays, and the block itself, ``block(inputs, {key: array}, n) -> {metric:
array}`` over ``n`` points whose other inputs are fixed. Everything else is done here, once, for
every system:

1. the arrays are broadcast together and flattened;
2. every key is checked against the schema of its role's kind (``role.key``, or a bare ``role``
   choosing a spec file by name or path) and every value against the field's type and range:
   a value no spec could hold is bad input (:class:`~hwsim.errors.InputError`), as with
   ``--set``;
3. the points are grouped by the values of the keys the block does not vectorise; each group's
   inputs are re-resolved (spec files loaded, overrides applied and validated, defaults that
   depend on another input re-derived) and its block evaluated;
4. the groups are scattered back into one :class:`BatchResult`.

**The rule for infeasible points**: a point that cannot run gets NaN in every metric and a
reason (``BatchResult.reasons``; empty for feasible points). A block marks its own infeasible
points with NaN, and may say why in a :data:`REASON` entry (an object array of strings); a group
whose inputs fail a cross-field check (``micro_batch > batch``) or whose model raises
:class:`~hwsim.errors.InfeasibleDesign` or :class:`~hwsim.errors.InputError` is infeasible as a
whole, with that message. The scalar evaluator of such a system is this on one point
(:func:`evaluate_one`): it raises :class:`~hwsim.errors.InfeasibleDesign` with the reason.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsim import specs
from hwsim.errors import InfeasibleDesign, InputError

if TYPE_CHECKING:
    from hwsim.system import Inputs, Metrics, System

log = logging.getLogger(__name__)

#: the block's optional entry of per-point reasons (object array of str, "" = feasible)
REASON = "infeasible_reason"

Block = Callable[["Inputs", Mapping[str, np.ndarray], int], Mapping[str, Any]]


@dataclass(frozen=True)
class BatchModel:
    """A system's vectorised analytical model: the keys it takes as arrays, and its block."""

    #: ``role.key`` paths the block evaluates as arrays; any other key is grouped
    vector_keys: Collection[str]
    #: ``(inputs, {key: array of n}, n) -> {metric: array of n}``; NaN where infeasible
    block: Block
    #: points per call of the block (bounds the size of its temporaries); 0 = no limit
    block_points: int = 0
    #: ``(inputs, short reason) -> reason``: a detailed reason for one infeasible point (with
    #: its numbers), for the scalar evaluator; the block itself gives a short one per point
    explain: Callable[[Inputs, str], str] | None = None


class BatchResult(dict):
    """``{metric: float array}`` of every point, and ``reasons`` (object array of str: why a
    point is infeasible, "" where it is feasible)."""

    reasons: np.ndarray

    @property
    def feasible(self) -> np.ndarray:
        return self.reasons == ""


def evaluate_batch(system: System, inputs: Inputs, arrays: Mapping[str, Any]) -> BatchResult:
    """Metrics of many design points of ``system``: the fixed ``inputs`` with ``arrays``
    (``role.key`` or ``role`` -> values, broadcast together) applied."""
    model = system.batch
    if model is None:
        raise InputError(f"system '{system.name}' has no vectorised analytical evaluator")
    arrs = {k: np.asarray(v) for k, v in arrays.items()}
    n = int(np.broadcast(*arrs.values()).size) if arrs else 1
    arrs = {k: np.broadcast_to(v, np.broadcast_shapes(v.shape, (n,)) if v.ndim <= 1
                               else v.shape).ravel() for k, v in arrs.items()}
    for key, values in arrs.items():
        _check_key(system, key, values)
    vector = {k: v for k, v in arrs.items() if k in model.vector_keys}
    other = [k for k in arrs if k not in model.vector_keys]
    metrics = [m.name for m in system.metrics if "analytical" in m.fidelities]
    out = BatchResult({m: np.full(n, np.nan) for m in metrics})
    out.reasons = np.full(n, "", dtype=object)
    if not other:
        groups: list[tuple[tuple[Any, ...], np.ndarray]] = [((), np.arange(n))]
    else:
        rows = list(zip(*(arrs[k].tolist() for k in other), strict=True))
        index: dict[tuple[Any, ...], list[int]] = {}
        for i, row in enumerate(rows):
            index.setdefault(row, []).append(i)
        groups = [(row, np.asarray(ix)) for row, ix in index.items()]
    for row, ix in groups:
        try:
            sub = system.with_choices(inputs, dict(zip(other, row, strict=True))) \
                if other else inputs
            part = _blocks(model, sub, {k: v[ix] for k, v in vector.items()}, len(ix))
        except (InfeasibleDesign, InputError) as exc:
            log.debug("%s batch: %d points infeasible: %s", system.name, len(ix), exc)
            out.reasons[ix] = str(exc) or type(exc).__name__
            continue
        reason = part.pop(REASON, None)
        for k, v in part.items():
            if k in out:
                out[k][ix] = v
            else:
                out.setdefault(k, np.full(n, np.nan))[ix] = v
        # a point the block gave NaN in every metric is infeasible (a feasible point may still
        # have a NaN metric: a price that is not published)
        values = [np.asarray(v, dtype=float) for v in part.values()]
        bad = np.all(np.isnan(values), axis=0) if values else np.zeros(len(ix), dtype=bool)
        if reason is not None:
            reason = np.broadcast_to(np.asarray(reason, dtype=object), (len(ix),))
            given = np.array([bool(r) for r in reason])
            out.reasons[ix[given]] = reason[given]
            bad &= ~given
        if np.any(bad):
            out.reasons[ix[bad]] = "infeasible (the model gave no reason)"
    # one rule: an infeasible point has NaN in every metric
    infeasible = out.reasons != ""
    if np.any(infeasible):
        for v in out.values():
            v[infeasible] = np.nan
    return out


def _blocks(model: BatchModel, inputs: Inputs, vector: Mapping[str, np.ndarray],
            n: int) -> dict[str, Any]:
    size = model.block_points
    if not size or n <= size:
        return _one_block(model, inputs, vector, n)
    parts = [_one_block(model, inputs, {k: v[lo:lo + size] for k, v in vector.items()},
                        min(size, n - lo)) for lo in range(0, n, size)]
    return {k: np.concatenate([np.broadcast_to(np.asarray(p[k]), (min(size, n - i * size),))
                               for i, p in enumerate(parts)]) for k in parts[0]}


def _one_block(model: BatchModel, inputs: Inputs, vector: Mapping[str, np.ndarray],
               n: int) -> dict[str, Any]:
    res = model.block(inputs, vector, n)
    out: dict[str, Any] = {}
    for k, v in res.items():
        if k == REASON:
            out[k] = v
        else:
            out[k] = np.broadcast_to(np.asarray(v, dtype=float), (n,))
    return out


def reasons(n: int, checks: list[tuple[Any, str]]) -> np.ndarray:
    """Per-point reasons: for each of ``n`` points the text of the first check whose mask is
    true there ("" where none is), as an object array (for a block's :data:`REASON`)."""
    out = np.full(n, "", dtype=object)
    unset = np.ones(n, dtype=bool)
    for mask, text in checks:
        hit = unset & np.broadcast_to(np.asarray(mask, dtype=bool), (n,))
        out[hit] = text
        unset &= ~hit
    return out


def evaluate_one(system: System, inputs: Inputs) -> Metrics:
    """The batch on one point: the metrics, or InfeasibleDesign with the reason."""
    res = evaluate_batch(system, inputs, {})
    if res.reasons[0]:
        reason = str(res.reasons[0])
        explain = system.batch.explain if system.batch is not None else None
        if explain is not None:
            try:
                reason = explain(inputs, reason) or reason
            except (InfeasibleDesign, InputError) as exc:
                reason = str(exc)
        raise InfeasibleDesign(reason)
    return {k: float(v[0]) for k, v in res.items()}


# --------------------------------------------------------------------------------------------
# checking keys and values against the schemas


def _check_key(system: System, key: str, values: np.ndarray) -> None:
    role_name, dot, rest = key.partition(".")
    role = system.role(role_name)
    if not dot:
        return  # a spec file chosen by name or path: found (or not) when the group loads it
    cls = specs.kind_schema(role.kind)
    fld = {f.name: f for f in dataclasses.fields(cls) if f.init}.get(rest)
    if fld is None:
        raise InputError(f"system '{system.name}' input '{role_name}' (kind {role.kind}) has "
                         f"no key '{rest}'", key=key)
    tp = typing.get_type_hints(cls)[rest]
    meta = fld.metadata
    if tp in (int, float) and values.dtype.kind in "biuf":
        v = values.astype(float)
        bad = ~np.isfinite(v) | (values.dtype.kind == "b")
        if tp is int:
            bad |= v != np.round(v)
        for op, fails in (("ge", np.less), ("gt", np.less_equal), ("le", np.greater),
                          ("lt", np.greater_equal)):
            if meta.get(op) is not None:
                bad |= fails(v, meta[op])
        if np.any(bad):
            first = values[np.flatnonzero(bad)[0]].item()
            what = "an integer" if tp is int else "a number"
            rng = specs.range_text(meta)
            raise InputError(f"expected {what}" + (f" {rng}" if rng else "")
                             + (f" in {meta['unit']}" if meta.get("unit") else ""),
                             key=key, value=first, has_value=True)
        return
    for value in dict.fromkeys(v.item() if hasattr(v, "item") else v for v in values):
        specs.check_value(cls, rest, value, where=key)

"""The accuracy of a network configuration: a documented proxy, or a user's measured table.

**Proxy** (``model = "proxy"``; not a measured accuracy). For a generated network with branch
widths ``w`` (stage-1 channels), depths ``d`` (convs per stage), fusion after stage ``k`` of
``S`` and the fusion operator::

    capacity = (w_cam * d_cam + lidar_weight * w_lid * d_lid)
               * (1 + fusion_gain * k / (S + 1)) * (1 + concat_gain * [concat])
    accuracy = floor + (ceiling - floor) * (1 - exp(-capacity / capacity_scale))

It is monotone (more channels, more convolutions, a later fusion and concat never lower it) and
saturating (it never passes ``ceiling``), the qualitative shape of accuracy against model size.
Its limits: it knows nothing of the data set, the training, the input resolution or the
classes; the constants in ``models/cnn/accuracy-proxy.toml`` are assumptions, not fits; it
rewards late fusion monotonically, where measured results (e.g. Caltagirone et al., arXiv
1809.07941, KITTI road) can favour a middle fusion. Networks that are not generated (tables,
SCALE-Sim, ONNX) have no proxy: NaN.

**Table** (``model = "table"``): a CSV of measured accuracies, one row per network
configuration, with an ``accuracy`` column (a fraction in [0, 1]) and any of the key columns
:data:`KEY_COLUMNS`. ``fusion_op`` must match exactly; a numeric column with one value in the
table must match exactly; the remaining numeric columns are interpolated linearly (one column:
``numpy.interp``; several: ``scipy.interpolate.LinearNDInterpolator`` over the rows with the same
``fusion_op``). A configuration outside the table's range is not extrapolated: the design is
infeasible with that reason.
"""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.a3fusion.spec import AccuracySpec, CnnSpec
from hwsim.errors import InputError

NUMERIC_COLUMNS = ("camera_width", "camera_depth", "lidar_width", "lidar_depth",
                   "fusion_stage", "stages")
KEY_COLUMNS = (*NUMERIC_COLUMNS, "fusion_op")


def features(net: CnnSpec) -> dict[str, Any] | None:
    """The key columns of a generated network (None for other sources)."""
    if net.source != "generated":
        return None
    return {k: getattr(net, k) for k in KEY_COLUMNS}


def proxy(acc: AccuracySpec, f: dict[str, Any]) -> float:
    """The documented proxy (module docstring)."""
    cap = (f["camera_width"] * f["camera_depth"]
           + acc.lidar_weight * f["lidar_width"] * f["lidar_depth"])
    cap *= 1.0 + acc.fusion_gain * f["fusion_stage"] / (f["stages"] + 1)
    cap *= 1.0 + (acc.concat_gain if f["fusion_op"] == "concat" else 0.0)
    return acc.floor + (acc.ceiling - acc.floor) * (1.0 - math.exp(-cap / acc.capacity_scale))


def _resolve(name: str) -> Path:
    from hwsim.specs import find_model_file, model_dirs

    p = Path(name)
    if p.is_file():
        return p
    beside = find_model_file(Path("cnn") / name)
    if beside is not None:
        return beside
    where = ", ".join(str(d.path / "cnn") for d in model_dirs())
    raise InputError(f"accuracy table not found (looked in the working directory and "
                     f"{where})", key="accuracy.table_file", value=name, has_value=True)


@functools.lru_cache(maxsize=16)
def _table(path: str, _mtime: float) -> tuple[tuple[str, ...], tuple[dict[str, Any], ...]]:
    lines = Path(path).read_text().splitlines()
    body = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not body:
        raise InputError("empty accuracy table", file=path)
    reader = csv.DictReader(body)
    cols = tuple(c.strip() for c in (reader.fieldnames or ()))
    unknown = [c for c in cols if c not in (*KEY_COLUMNS, "accuracy")]
    if unknown:
        raise InputError(f"unknown column; expected accuracy and any of {', '.join(KEY_COLUMNS)}",
                         file=path, key=f"column {unknown[0]}", value=unknown[0],
                         has_value=True)
    if "accuracy" not in cols:
        raise InputError("missing column 'accuracy'", file=path, key="line 1")
    keys = tuple(c for c in cols if c != "accuracy")
    rows, seen = [], set()
    first_line = next(i for i, ln in enumerate(lines, 1) if ln.strip()
                      and not ln.lstrip().startswith("#"))
    for i, raw in enumerate(reader):
        lineno = first_line + 1 + i
        row: dict[str, Any] = {}
        for c in cols:
            text = (raw.get(c) or "").strip()
            where = f"line {lineno}, column {c}"
            if c == "fusion_op":
                if text not in ("add", "concat"):
                    raise InputError("expected add or concat", file=path, key=where, value=text,
                                     has_value=True)
                row[c] = text
                continue
            try:
                v = float(text)
            except ValueError:
                raise InputError("expected a number", file=path, key=where, value=text,
                                 has_value=True) from None
            if c == "accuracy" and not 0.0 <= v <= 1.0:
                raise InputError("expected a fraction in [0, 1]", file=path, key=where,
                                 value=text, has_value=True)
            row[c] = v
        ident = tuple(row[k] for k in keys)
        if ident in seen:
            raise InputError("a second row for the same configuration", file=path,
                             key=f"line {lineno}", value=dict(zip(keys, ident, strict=True)),
                             has_value=True)
        seen.add(ident)
        rows.append(row)
    return keys, tuple(rows)


def from_table(acc: AccuracySpec, f: dict[str, Any]) -> float:
    """The measured accuracy of configuration ``f``, interpolated; NaN outside the table."""
    path = _resolve(acc.table_file)
    keys, rows = _table(str(path), path.stat().st_mtime)
    cand = [r for r in rows if "fusion_op" not in keys or r["fusion_op"] == f["fusion_op"]]
    num = [k for k in keys if k != "fusion_op"]
    fixed = [k for k in num if len({r[k] for r in cand}) == 1]
    cand = [r for r in cand if all(r[k] == f[k] for k in fixed)]
    free = [k for k in num if k not in fixed]
    if not cand:
        return math.nan
    if not free:
        return float(cand[0]["accuracy"])
    pts = np.array([[r[k] for k in free] for r in cand], dtype=float)
    vals = np.array([r["accuracy"] for r in cand], dtype=float)
    x = np.array([float(f[k]) for k in free])
    if len(free) == 1:
        order = np.argsort(pts[:, 0])
        xs, ys = pts[order, 0], vals[order]
        if not xs[0] <= x[0] <= xs[-1]:
            return math.nan
        return float(np.interp(x[0], xs, ys))
    from scipy.interpolate import LinearNDInterpolator

    try:
        out = LinearNDInterpolator(pts, vals)(x[None, :])[0]
    except Exception:  # too few or degenerate points (qhull): no interpolation possible
        hit = [v for p, v in zip(pts, vals, strict=True) if np.array_equal(p, x)]
        return float(hit[0]) if hit else math.nan
    return float(out)


def accuracy(acc: AccuracySpec, net: CnnSpec) -> float:
    """The accuracy model's value for a network (NaN: no value for it)."""
    f = features(net)
    if f is None:
        return math.nan
    return proxy(acc, f) if acc.model == "proxy" else from_table(acc, f)

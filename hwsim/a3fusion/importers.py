"""Users' own networks: SCALE-Sim topology CSVs (conv and GEMM forms) and ONNX models.

**SCALE-Sim topology CSV** (``scalesim/topology_utils.py``, v2 and 3.0.0): a header line, then
one layer per line, each ending in a comma.

- conv form: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides,`` (an optional ``N:M`` sparsity column must be ``1:1``: sparsity is not
  modelled). There is no padding column: the IFMAP is the padded input, and the output size
  is SCALE-Sim's ``ceil((H - R + S) / S)`` (kept, so that hwsim counts what SCALE-Sim
  counts). A layer whose name contains ``DP`` is depthwise, SCALE-Sim's convention: one GEMM
  per channel with ``Num Filter`` filters each.
- GEMM form: ``Layer, M, N, K,`` (input ``M x K``, weights ``K x N``).

Rows are independent layers (SCALE-Sim does not chain them), so no channel check is made
between consecutive rows.

**ONNX** (the ``onnx`` package): the conv and GEMM layers of a model with static shapes
(``onnx.shape_inference`` fills the intermediate ones), in graph order. Mapped: ``Conv``
(depthwise when ``group`` equals the input channels; other groups as that many GEMMs),
``ConvTranspose`` (group 1), ``Gemm`` and ``MatMul`` with a constant weight, ``MaxPool``,
``AveragePool``, ``GlobalAveragePool``, ``Add`` of two activations, ``Concat`` on channels,
``Upsample``/``Resize``. Folded into the layer that produces their input (no cost of their own):
activations, batch norm, bias adds, reshapes and the like (:data:`FREE_OPS`). Anything else is
an error naming the file, the node and its operator.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hwsim.a3fusion.layers import Layer, make_layer
from hwsim.errors import InputError

CONV_COLUMNS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
                "Channels", "Num Filter", "Strides")
GEMM_COLUMNS = ("Layer", "M", "N", "K")

#: ONNX operators folded into the producing layer (elementwise or shape-only)
FREE_OPS = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Elu", "Selu", "BatchNormalization", "Identity", "Dropout", "Flatten", "Reshape",
    "Squeeze", "Unsqueeze", "Constant", "Cast", "QuantizeLinear", "DequantizeLinear",
    "Softmax", "ArgMax",
})
#: ONNX operators mapped onto the array or the vector unit
MAPPED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "MaxPool", "AveragePool",
              "GlobalAveragePool", "Add", "Concat", "Upsample", "Resize")


def read_layers(path: Path, branch: str) -> tuple[Layer, ...]:
    """The layers of a SCALE-Sim CSV or an ONNX file, all in ``branch``."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return read_onnx(path, branch)
    if suffix == ".csv":
        return read_scalesim_csv(path, branch)
    raise InputError("expected a SCALE-Sim topology (.csv) or an ONNX model (.onnx)",
                     file=str(path))


# ----------------------------------------------------------------------------------------------
# SCALE-Sim topology CSVs


def _cells(line: str) -> list[str]:
    cells = [c.strip() for c in line.strip().split(",")]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def _positive(path: Path, lineno: int, column: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.lstrip("+"):
        raise InputError("expected a positive integer", file=str(path),
                         key=f"line {lineno}, column {column}", value=text, has_value=True)
    return value


def scalesim_row(cells: list[str], form: str, branch: str, *, path: Path = Path("<row>"),
                 lineno: int = 0) -> Layer:
    """One SCALE-Sim topology row (its cells) as a :class:`Layer`."""
    columns = CONV_COLUMNS if form == "conv" else GEMM_COLUMNS
    if len(cells) < len(columns):
        raise InputError(f"expected {len(columns)} columns ({', '.join(columns)})",
                         file=str(path), key=f"line {lineno}", value=",".join(cells),
                         has_value=True)
    extra = cells[len(columns):]
    if extra and (len(extra) > 1 or extra[0].replace(" ", "") != "1:1"):
        raise InputError("a sparsity column other than 1:1 is not modelled (dense layers only)",
                         file=str(path), key=f"line {lineno}, column Sparsity",
                         value=",".join(extra), has_value=True)
    name = cells[0]
    nums = [_positive(path, lineno, c, t) for c, t in zip(columns[1:], cells[1:], strict=False)]
    if form == "gemm":
        m, n, k = nums
        return make_layer(name, "gemm", branch, [(m, 1, k)], gemm=(m, n, k))
    h, w, fh, fw, c, nf, s = nums
    if fh > h or fw > w:
        raise InputError(f"a {fh} x {fw} filter is larger than the {h} x {w} IFMAP (SCALE-Sim "
                         "topologies give the padded input)", file=str(path),
                         key=f"line {lineno}, column Filter Height", value=fh, has_value=True)
    if "DP" in name:  # SCALE-Sim's depthwise convention: one layer per channel
        return make_layer(name, "dwconv", branch, [(h, w, c)], out_c=c * nf, kernel_h=fh,
                          kernel_w=fw, stride=s, ceil_mode=True)
    return make_layer(name, "conv", branch, [(h, w, c)], out_c=nf, kernel_h=fh, kernel_w=fw,
                      stride=s, ceil_mode=True)


def read_scalesim_csv(path: Path, branch: str) -> tuple[Layer, ...]:
    """The layers of a SCALE-Sim topology file (conv or GEMM form, told by its header)."""
    lines = path.read_text().splitlines()
    if not lines:
        raise InputError("empty topology file", file=str(path))
    header = _cells(lines[0])
    if [h.lower() for h in header[:4]] == [c.lower() for c in GEMM_COLUMNS]:
        form = "gemm"
    elif len(header) >= len(CONV_COLUMNS) and header[0].lower() == "layer name":
        form = "conv"
    else:
        raise InputError("not a SCALE-Sim topology header; expected 'Layer name, IFMAP Height, "
                         "...' (conv) or 'Layer, M, N, K' (GEMM)", file=str(path),
                         key="line 1", value=lines[0], has_value=True)
    out = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            out.append(scalesim_row(_cells(line), form, branch, path=path, lineno=lineno))
        except ValueError as exc:  # a shape make_layer rejects
            raise InputError(str(exc), file=str(path), key=f"line {lineno}") from None
    if not out:
        raise InputError("no layers", file=str(path))
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# ONNX


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def read_onnx(path: Path, branch: str) -> tuple[Layer, ...]:
    """The conv and GEMM layers (and the vector layers between them) of an ONNX model."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:  # pragma: no cover - onnx is a dependency
        raise InputError("reading ONNX models needs the onnx package (pip install onnx)",
                         file=str(path)) from None
    try:
        model = onnx.load(str(path))
        model = shape_inference.infer_shapes(model)
    except Exception as exc:  # onnx raises its own error types for a damaged file
        raise InputError(f"not a readable ONNX model: {exc}", file=str(path)) from None
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    alias: dict[str, str] = {}  # a free op's output is its input

    def src(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def shape(node: Any, name: str) -> tuple[int, ...]:
        s = shapes.get(name) or shapes.get(src(name))
        if s is None or any(d < 1 for d in s):
            raise InputError("needs static tensor shapes (fix the input shape, then run "
                             "onnx.shape_inference)", file=str(path),
                             key=f"node {node.name or node.op_type}", value=name,
                             has_value=True)
        return s

    def chw(node: Any, name: str) -> tuple[int, int, int]:
        s = shape(node, name)
        if len(s) == 4:
            if s[0] != 1:
                raise InputError("batch size must be 1 (one frame at a time)", file=str(path),
                                 key=f"node {node.name or node.op_type}", value=s[0],
                                 has_value=True)
            return s[2], s[3], s[1]
        if len(s) == 2:
            return s[0], 1, s[1]
        raise InputError(f"expected an NCHW or a 2-D tensor, got shape {list(s)}",
                         file=str(path), key=f"node {node.name or node.op_type}", value=name,
                         has_value=True)

    out: list[Layer] = []
    for i, node in enumerate(g.node):
        op, name = node.op_type, node.name or f"{node.op_type}_{i}"
        acts = [x for x in node.input if x and x not in consts]
        try:
            if op in FREE_OPS or (op == "Add" and len(acts) < 2):
                if op == "Constant":
                    consts[node.output[0]] = None  # type: ignore[assignment]
                elif acts:
                    alias[node.output[0]] = acts[0]
                continue
            if op not in MAPPED_OPS:
                raise InputError("operator cannot be mapped onto the PE array or the vector "
                                 f"unit; mapped: {', '.join(MAPPED_OPS)}; folded: activations, "
                                 "batch norm, reshapes", file=str(path), key=f"node {name}",
                                 value=op, has_value=True)
            a = _attrs(node)
            ins = chw(node, acts[0])
            outs = chw(node, node.output[0])
            if op == "Conv":
                w = consts.get(node.input[1])
                if w is None:
                    raise InputError("a Conv needs constant weights", file=str(path),
                                     key=f"node {name}", value=op, has_value=True)
                if any(d != 1 for d in a.get("dilations", [1, 1])):
                    raise InputError("dilated convolution cannot be mapped", file=str(path),
                                     key=f"node {name} dilations", value=a["dilations"],
                                     has_value=True)
                group = int(a.get("group", 1))
                cout, _cin_g, kh, kw = w.shape
                layer = _conv(name, branch, ins, outs, cout, kh, kw, a, group)
            elif op == "ConvTranspose":
                w = consts.get(node.input[1])
                if w is None or int(a.get("group", 1)) != 1:
                    raise InputError("only a group-1 ConvTranspose with constant weights is "
                                     "mapped", file=str(path), key=f"node {name}", value=op,
                                     has_value=True)
                _cin, cout_g, kh, kw = w.shape
                stride = int(a.get("strides", [1, 1])[0])
                pads = list(a.get("pads", [0, 0, 0, 0]))
                lay = make_layer(name, "deconv", branch, [ins], out_c=cout_g, kernel_h=kh,
                                 kernel_w=kw, stride=stride, pad=int(pads[0]))
                layer = _with_out(lay, outs)
            elif op in ("Gemm", "MatMul"):
                wname = node.input[1]
                if wname not in consts:
                    raise InputError(f"a {op} of two activations (attention) cannot be mapped; "
                                     "the second input must be a constant weight",
                                     file=str(path), key=f"node {name}", value=op,
                                     has_value=True)
                w = consts[wname]
                trans_b = bool(a.get("transB", 0)) if op == "Gemm" else False
                k, n = (w.shape[1], w.shape[0]) if trans_b else (w.shape[0], w.shape[-1])
                s_in = shape(node, acts[0])
                m = math.prod(s_in[:-1]) if op == "MatMul" else s_in[0]
                layer = make_layer(name, "gemm", branch, [(m, 1, k)], gemm=(m, n, k))
            elif op in ("MaxPool", "AveragePool", "GlobalAveragePool"):
                kind = "maxpool" if op == "MaxPool" else "avgpool"
                kh, kw = (ins[0], ins[1]) if op == "GlobalAveragePool" else tuple(
                    a["kernel_shape"])
                stride = 1 if op == "GlobalAveragePool" else int(a.get("strides", [1, 1])[0])
                lay = make_layer(name, kind, branch, [ins], kernel_h=kh, kernel_w=kw,
                                 stride=stride)
                layer = _with_out(lay, outs)
            elif op == "Add":
                layer = make_layer(name, "add", branch, [chw(node, x) for x in acts[:2]])
            elif op == "Concat":
                if int(a.get("axis", 1)) != 1:
                    raise InputError("only a channel Concat (axis 1) is mapped", file=str(path),
                                     key=f"node {name} axis", value=a.get("axis"),
                                     has_value=True)
                layer = make_layer(name, "concat", branch, [chw(node, x) for x in acts])
            else:  # Upsample, Resize
                scale = max(1, outs[0] // max(ins[0], 1))
                layer = _with_out(make_layer(name, "upsample", branch, [ins], scale=scale), outs)
        except ValueError as exc:
            raise InputError(str(exc), file=str(path), key=f"node {name}", value=op,
                             has_value=True) from None
        out.append(layer)
    if not out:
        raise InputError("no conv, GEMM or vector layers to map", file=str(path))
    return tuple(out)


def _conv(name: str, branch: str, ins: tuple[int, int, int], outs: tuple[int, int, int],
          cout: int, kh: int, kw: int, a: dict[str, Any], group: int) -> Layer:
    stride = int(a.get("strides", [1, 1])[0])
    h, w, cin = ins
    ho, wo, _ = outs
    if group == 1:
        return Layer(name=name, op="conv", branch=branch, in_h=h, in_w=w, in_c=cin, out_h=ho,
                     out_w=wo, out_c=cout, kernel_h=kh, kernel_w=kw, stride=stride,
                     in_elems=h * w * cin, m=ho * wo, k=kh * kw * cin, n=cout)
    if cin % group or cout % group:
        raise ValueError(f"group = {group} does not divide {cin} inputs and {cout} outputs")
    op = "dwconv" if group == cin else "conv"
    return Layer(name=name, op=op, branch=branch, in_h=h, in_w=w, in_c=cin, out_h=ho, out_w=wo,
                 out_c=cout, kernel_h=kh, kernel_w=kw, stride=stride, in_elems=h * w * cin,
                 m=ho * wo, k=kh * kw * (cin // group), n=cout // group, groups=group)


def _with_out(layer: Layer, outs: tuple[int, int, int]) -> Layer:
    """``layer`` with the output shape ONNX inferred (pads, ceil mode and scales included)."""
    from dataclasses import replace

    ho, wo, co = outs
    if layer.op == "deconv" and layer.m == layer.in_h * layer.in_w:  # the GEMM form
        return replace(layer, out_h=ho, out_w=wo, out_c=co)
    if layer.op == "deconv":
        return replace(layer, out_h=ho, out_w=wo, out_c=co, m=ho * wo)
    return replace(layer, out_h=ho, out_w=wo, out_c=co)

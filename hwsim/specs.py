"""Spec files: TOML under ``models/`` loaded into validated, frozen dataclasses.

A *kind* (``llm``, ``gpu``, ``asic``, ...) is a frozen dataclass registered with
:func:`spec_kind`. Its fields are declared with :func:`param`, which records the unit, the
valid range and a one-line help; units also live in the key names (``clock_MHz``).

Loading checks everything and raises :class:`~hwsim.errors.InputError` naming the file, the key
path, the value and what was expected: unknown keys, wrong types, values out of range and
missing files are all errors. ``--set key.path=value`` overrides go through the same checks.

Example::

    @spec_kind("gpu")
    @dataclass(frozen=True, kw_only=True)
    class GpuSpec:
        name: str = param(help="identifier")
        hbm_bandwidth_GBps: float = param(unit="GB/s", gt=0, help="peak HBM bandwidth")
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import inspect
import math
import os
import stat
import tomllib
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, TypeVar

from hwsim.errors import InputError
from hwsim.registry import Registry

T = TypeVar("T")

#: kind name -> dataclass (the registry of spec kinds)
KINDS: Registry[type] = Registry("spec kind")

_SPEC_VERSION_KEY = "version"


# --------------------------------------------------------------------------------------------
# declaring kinds


def param(
    default: Any = MISSING,
    *,
    unit: str = "",
    help: str = "",
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Iterable[Any] | None = None,
    default_factory: Any = MISSING,
    path: bool = False,
) -> Any:
    """A spec field with its unit, range and help, checked on load.

    ``path=True`` marks a string naming a file: a relative value written in a spec file is
    resolved against that file's folder when the file is loaded (a value given with ``--set``
    or built directly stays relative to the working folder).
    """
    meta = {
        "unit": unit,
        "help": help,
        "ge": ge,
        "gt": gt,
        "le": le,
        "lt": lt,
        "choices": tuple(choices) if choices is not None else None,
        "path": path,
    }
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def spec_kind(kind: str, *, version: int = 1, folder: str | None = None):
    """Register a frozen dataclass as the schema of spec files of ``kind``.

    ``folder`` is the sub-folder of ``models/`` holding files of this kind (default: ``kind``).
    Every object of the class is checked when it is built, however it is built (from TOML,
    directly, or by ``dataclasses.replace``): types and ranges of every field, then the class's
    own ``__post_init__`` cross-field checks.
    """

    def deco(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        cls.spec_kind = kind  # type: ignore[attr-defined]
        cls.spec_version = version  # type: ignore[attr-defined]
        cls.spec_folder = folder or kind  # type: ignore[attr-defined]
        _check_on_build(cls)
        KINDS.add(kind, cls)
        return cls

    return deco


def _check_on_build(cls: type) -> None:
    """Make every construction of ``cls`` run :func:`check_fields` before ``__post_init__``."""
    if cls.__dict__.get("_hwsim_checked"):
        return
    type.__setattr__(cls, "_hwsim_checked", True)
    post = cls.__dict__.get("__post_init__")
    if post is not None:  # the dataclass __init__ calls self.__post_init__(): check first

        def __post_init__(self: Any) -> None:
            check_fields(self)
            post(self)

        __post_init__.__doc__ = post.__doc__
        type.__setattr__(cls, "__post_init__", __post_init__)
        return
    init = cls.__init__  # type: ignore[misc]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        check_fields(self)

    __init__.__doc__ = init.__doc__
    __init__.__signature__ = inspect.signature(init)  # type: ignore[attr-defined]
    type.__setattr__(cls, "__init__", __init__)


def check_fields(obj: Any) -> None:
    """Check (and normalise: ints to floats, lists to tuples) every field of a spec object.

    The same checks as loading a file; the error names the class, the key and the value.
    """
    cls = type(obj)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(value, tp):
            if not type(value).__dict__.get("_hwsim_checked"):
                check_fields(value)  # a nested table's class is not checked on build
            continue
        out = _convert(tp, value, f.metadata, f.name, cls.__name__, set())
        if out is not value:
            object.__setattr__(obj, f.name, out)


def check_value(cls: type, key: str, value: Any, *, where: str | None = None) -> Any:
    """``value`` checked (and normalised) as field ``key`` of spec class ``cls``; the error
    names ``where`` (default: the key) as the key path."""
    fld = {f.name: f for f in dataclasses.fields(cls) if f.init}[key]
    return _convert(_hints(cls)[key], value, fld.metadata, where or key, cls.__name__, set())


def kind_schema(kind: str) -> type:
    """The dataclass registered for ``kind``; an InputError names the known kinds otherwise."""
    return KINDS.get(kind)


# --------------------------------------------------------------------------------------------
# where spec files live


#: folders given with ``--models DIR`` (searched first); set by :func:`use_model_dirs`
_OPTION_DIRS: list[Path] = []


@dataclass(frozen=True)
class ModelDir:
    """One folder of spec files on the search path and where it came from."""

    path: Path
    origin: str  # "--models", "HWSIM_MODELS" or "bundled"


def use_model_dirs(dirs: Iterable[str | os.PathLike[str]]) -> None:
    """Search ``dirs`` (``--models DIR``) before ``$HWSIM_MODELS`` and the bundled specs.

    Each must be an existing folder (an InputError names it otherwise). They are also put at
    the front of ``$HWSIM_MODELS`` so that worker processes search the same folders.
    """
    paths = [Path(d) for d in dirs]
    for p in paths:
        if not p.is_dir():
            raise InputError("not a folder of spec files", key="--models", value=str(p),
                             has_value=True)
    _OPTION_DIRS[:] = paths
    if paths:
        env = os.environ.get("HWSIM_MODELS", "")
        os.environ["HWSIM_MODELS"] = os.pathsep.join([str(p.resolve()) for p in paths]
                                                     + ([env] if env else []))


def bundled_models_dir() -> Path:
    """The spec files shipped with hwsim: the package data ``hwsim/models`` of an installed
    wheel (read with :mod:`importlib.resources`), else the repository's top-level ``models/``
    beside the package (a source checkout or an editable install)."""
    data = importlib.resources.files("hwsim") / "models"
    if isinstance(data, Path) and data.is_dir():
        return data
    return Path(__file__).resolve().parent.parent / "models"


def model_dirs() -> list[ModelDir]:
    """The spec search path, first match wins: ``--models`` folders, then ``$HWSIM_MODELS``
    (a list separated by ``os.pathsep``), then the bundled specs. A folder appears once."""
    out: list[ModelDir] = []
    seen: set[Path] = set()

    def add(p: Path, origin: str) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(ModelDir(p, origin))

    for p in _OPTION_DIRS:
        add(p, "--models")
    for part in os.environ.get("HWSIM_MODELS", "").split(os.pathsep):
        if part.strip():
            add(Path(part), "HWSIM_MODELS")
    add(bundled_models_dir(), "bundled")
    return out


def models_dir() -> Path:
    """The bundled ``models/`` folder (the last entry of :func:`model_dirs`)."""
    return bundled_models_dir()


def find_model_file(rel: str | os.PathLike[str]) -> Path | None:
    """The first file ``rel`` (a path relative to a models folder, e.g. ``cnn/x.csv``) on the
    search path, or None."""
    for d in model_dirs():
        cand = d.path / rel
        if cand.is_file():
            return cand
    return None


def _file_kind(p: Path) -> str | None:
    """The ``kind`` a spec file declares ("" when none); None when it cannot be parsed."""
    try:
        with p.open("rb") as fh:
            head = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    kind = head.get("kind")
    return kind if isinstance(kind, str) else ""


def spec_files_with_origin(kind: str) -> list[tuple[Path, str]]:
    """Spec files of ``kind`` on the search path with the origin of their folder, sorted by
    name; a file shadows those of the same kind and name in later folders."""
    cls = kind_schema(kind)
    found: dict[str, tuple[Path, str]] = {}
    for d in model_dirs():
        folder = d.path / cls.spec_folder  # type: ignore[attr-defined]
        if not folder.is_dir():
            continue
        for p in sorted(folder.glob("*.toml")):
            k = _file_kind(p)
            if (k is None or k == kind) and p.stem not in found:
                found[p.stem] = (p, d.origin)  # an unreadable file is listed; loading reports
    return [found[name] for name in sorted(found)]


def spec_files(kind: str) -> list[Path]:
    """Spec files of ``kind`` on the search path (:func:`model_dirs`), sorted by name."""
    return [p for p, _ in spec_files_with_origin(kind)]


def find_spec_file(kind: str, name_or_path: str | os.PathLike[str]) -> Path:
    """Resolve a spec file given as a path or as a name under ``<models>/<folder>/``, searching
    :func:`model_dirs` in order."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or os.sep in str(name_or_path):
        if p.is_dir():
            raise InputError("is a folder; expected a spec file (.toml)", file=str(p))
        if not p.exists():
            raise InputError(f"spec file not found: {p}", file=str(p))
        return p  # read_toml rejects what is not a regular file
    cls = kind_schema(kind)
    dirs = model_dirs()
    for d in dirs:
        cand = d.path / cls.spec_folder / f"{name_or_path}.toml"  # type: ignore[attr-defined]
        if cand.is_file() and _file_kind(cand) in (kind, "", None):  # loading reports ""
            return cand
    names = [f.stem for f in spec_files(kind)]
    hint = difflib.get_close_matches(str(name_or_path), names, n=3)
    where = ", ".join(str(d.path / cls.spec_folder) for d in dirs)  # type: ignore[attr-defined]
    raise InputError(
        f"no {kind} spec named {str(name_or_path)!r} in {where}"
        + (f"; did you mean {', '.join(hint)}?" if hint else f"; available: {', '.join(names)}")
    )


# --------------------------------------------------------------------------------------------
# loading and validating


#: the largest TOML input file read (bytes); spec and study files are a few kB
MAX_TOML_BYTES = 16 * 1024 * 1024


def read_input_bytes(path: str | os.PathLike[str], limit: int, what: str = "file") -> bytes:
    """The bytes of an input file: a regular file (not a folder, a device or a pipe) of at
    most ``limit`` bytes, else an InputError naming the file."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{what} not found: {p}", file=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read the {what}: {exc.strerror or exc}", file=str(p)) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"is a folder; expected a {what}", file=str(p))
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"is not a regular file (a device, pipe or socket); expected a {what}",
                         file=str(p))
    if st.st_size > limit:
        raise InputError(f"{what} of {st.st_size:,} bytes; at most {limit:,} are read",
                         file=str(p))
    try:
        with p.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read the {what}: {exc.strerror or exc}", file=str(p)) from None
    if len(data) > limit:  # grew while we read it
        raise InputError(f"{what} of more than {limit:,} bytes; at most {limit:,} are read",
                         file=str(p))
    return data


def decode_utf8(data: bytes, file: str) -> str:
    """``data`` as UTF-8 text; an InputError names the file, line and byte otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not valid UTF-8: byte {data[exc.start]:#04x} on line {line} "
                         f"(offset {exc.start})", file=file) from None


class CheckedCsv:
    """The rows of a CSV text whose header line names exactly ``columns`` (in any order), for
    the trace files: comment (``#``) and blank lines skipped; a header with an unknown, repeated
    or missing column, or a row with the wrong number of values, is an InputError naming
    ``file:line``. Iterating yields ``(row, where, cells, line)``: the row's number (from 1),
    ``file:line``, its stripped cells by column and the raw line; :attr:`header` is None after
    the loop when the text had no header line."""

    def __init__(self, text: str, file: str, columns: Iterable[str]) -> None:
        self.text, self.file, self.columns = text, file, tuple(columns)
        self.header: list[str] | None = None

    def __iter__(self) -> Iterator[tuple[int, str, dict[str, str], str]]:
        import csv
        import io

        expected = ", ".join(self.columns)
        cols: dict[str, int] = {}
        row = 0
        for line_no, line in enumerate(io.StringIO(self.text, newline=None), start=1):
            if line.startswith("#") or not line.strip():
                continue
            values = next(csv.reader([line]))
            where = f"{self.file}:{line_no}"
            raw = line.rstrip("\r\n")
            if self.header is None:
                header = [h.strip() for h in values]
                for h in header:
                    if h not in self.columns:
                        raise InputError(f"unexpected column in the header line; expected "
                                         f"exactly the columns {expected}", file=where,
                                         key="column", value=h, has_value=True)
                    if h in cols:
                        raise InputError("the header line names this column twice",
                                         file=where, key="column", value=h, has_value=True)
                    cols[h] = len(cols)
                missing = [c for c in self.columns if c not in cols]
                if missing:
                    raise InputError(f"the header line lacks column {', '.join(missing)}; "
                                     f"expected exactly the columns {expected}", file=where,
                                     key="header", value=raw, has_value=True)
                self.header = header
                continue
            row += 1
            if len(values) != len(self.header):
                raise InputError(f"row {row}: expected {len(self.header)} values "
                                 f"({', '.join(self.header)}), got {len(values)}", file=where,
                                 key="row", value=raw, has_value=True)
            yield row, where, {c: values[i].strip() for c, i in cols.items()}, raw


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file; a syntax error, invalid UTF-8, a folder, a device or a file larger
    than :data:`MAX_TOML_BYTES` becomes an InputError naming the file (and the line)."""
    text = decode_utf8(read_input_bytes(path, MAX_TOML_BYTES, "TOML file"), str(path))
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=str(path)) from None
    except RecursionError:
        raise InputError("not valid TOML: arrays or tables nested too deeply",
                         file=str(path)) from None


def load_spec(
    path: str | os.PathLike[str],
    kind: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    override_prefix: str = "",
) -> Any:
    """Load one spec file into its frozen object, applying ``overrides`` (key path -> value).

    ``override_prefix`` (e.g. ``chip.``) is how the overrides were written on the command line,
    so that errors quote them as the user typed them.
    """
    path = Path(path)
    raw = read_toml(path)
    file_kind = raw.get("kind")
    if file_kind is None:
        raise InputError("missing key 'kind' (the spec's kind, e.g. 'gpu')", file=str(path))
    if kind is not None and file_kind != kind:
        raise InputError(
            f"expected a spec of kind '{kind}'", file=str(path), key="kind", value=file_kind,
            has_value=True,
        )
    cls = kind_schema(file_kind)
    return build_spec(cls, raw, file=str(path), overrides=overrides,
                      override_prefix=override_prefix, base_dir=path.parent)


def build_spec(
    cls: type[T],
    raw: Mapping[str, Any],
    *,
    file: str = "<spec>",
    overrides: Mapping[str, Any] | None = None,
    override_prefix: str = "",
    base_dir: Path | None = None,
) -> T:
    """Validate a raw mapping (as read from TOML) against ``cls`` and build the frozen object.

    ``base_dir`` is the folder of the file ``raw`` was read from: relative values of fields
    declared ``param(path=True)`` are resolved against it (not those set by ``overrides``).
    """
    data = {k: v for k, v in raw.items()}
    version = data.pop(_SPEC_VERSION_KEY, None)
    data.pop("kind", None)
    want = getattr(cls, "spec_version", 1)
    if version is not None and version != want:
        raise InputError(
            f"unsupported spec version; this hwsim reads version {want}", file=file,
            key=_SPEC_VERSION_KEY, value=version, has_value=True,
        )
    set_paths = _SetPaths(override_prefix, base_dir)
    for key, value in (overrides or {}).items():
        _set_path(data, key, value, file=file, prefix=override_prefix)
        set_paths.add(key)
    return _convert_dataclass(cls, data, "", file, set_paths)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.path=value``; the value is read as a TOML value, else kept as a string."""
    if "=" not in text:
        raise InputError(f"--set {text!r}: expected key.path=value")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key:
        raise InputError(f"--set {text!r}: empty key")
    return key, parse_value(value.strip())


def parse_value(text: str) -> Any:
    """A command-line value as TOML (numbers, booleans, arrays, quoted strings), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_path(data: dict[str, Any], key: str, value: Any, *, file: str,
              prefix: str = "") -> None:
    parts = key.split(".")
    cur = data
    for i, part in enumerate(parts[:-1]):
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        elif not isinstance(nxt, dict):
            raise InputError(
                "is not a table, so it has no sub-key", file=f"{file} (--set {prefix}{key})",
                key=".".join(parts[: i + 1]), value=nxt, has_value=True,
            )
        cur = nxt
    cur[parts[-1]] = value


class _SetPaths(set):
    """The key paths set by overrides, and the prefix they were written with."""

    def __init__(self, prefix: str = "", base_dir: Path | None = None) -> None:
        super().__init__()
        self.prefix = prefix
        self.base_dir = base_dir  # the spec file's folder, for relative path fields


def _from_override(path: str, set_paths: set[str]) -> bool:
    return any(path == s or path.startswith(s + ".") for s in set_paths)


def _where(file: str, path: str, set_paths: set[str]) -> str:
    if _from_override(path, set_paths):
        return f"{file} (--set {getattr(set_paths, 'prefix', '')}{path})"
    return file


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is tuple:
        return f"an array of {_describe(typing.get_args(tp)[0])}"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "a table"
    return str(tp)


def _hints(cls: type) -> dict[str, Any]:
    cached = cls.__dict__.get("_hwsim_hints")
    if cached is None:
        cached = typing.get_type_hints(cls)
        type.__setattr__(cls, "_hwsim_hints", cached)
    return cached


def _convert_dataclass(
    cls: type[T], data: Any, prefix: str, file: str, set_paths: set[str]
) -> T:
    if not isinstance(data, Mapping):
        raise InputError(
            "expected a table", file=_where(file, prefix, set_paths), key=prefix or None,
            value=data, has_value=True,
        )
    hints = _hints(cls)
    flds = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in flds:
            path = f"{prefix}.{key}" if prefix else key
            close = difflib.get_close_matches(key, list(flds), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(flds)}"
            raise InputError(
                f"unknown key; {hint}",
                file=_where(file, path, set_paths), key=path, value=data[key], has_value=True,
            )
    kwargs = {}
    for name, f in flds.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise InputError(
                    f"missing key; expected {_describe(hints[name])}"
                    + (f" in {f.metadata['unit']}" if f.metadata.get("unit") else ""),
                    file=file, key=path,
                )
            continue
        kwargs[name] = _convert(hints[name], data[name], f.metadata, path, file, set_paths)
    try:
        return cls(**kwargs)
    except InputError:
        raise
    except (TypeError, ValueError) as exc:  # __post_init__ cross-field checks
        raise InputError(str(exc), file=file, key=prefix or None) from None


def _convert(
    tp: Any, value: Any, meta: Mapping[str, Any], path: str, file: str, set_paths: set[str]
) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(value, tp):
        return value  # already a spec object (built, and checked, by its class)
    where = _where(file, path, set_paths)

    def bad(expected: str) -> InputError:
        return InputError(f"expected {expected}", file=where, key=path, value=value,
                          has_value=True)

    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        errors = []
        for a in args:
            try:
                return _convert(a, value, meta, path, file, set_paths)
            except InputError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else bad(_describe(tp))
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path, file, set_paths)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise bad(_describe(tp))
        (item_tp, *_rest) = typing.get_args(tp)
        items = tuple(
            _convert(item_tp, v, meta, f"{path}[{i}]", file, set_paths)
            for i, v in enumerate(value)
        )
        return items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad("a table")
        _k, v_tp = typing.get_args(tp)
        return types.MappingProxyType(
            {k: _convert(v_tp, v, meta, f"{path}.{k}", file, set_paths) for k, v in value.items()}
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        out: Any = value
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise bad("an integer" + _unit(meta))
        out = value
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number" + _unit(meta))
        out = float(value)
        if not math.isfinite(out):
            raise bad("a finite number" + _unit(meta))
    elif tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        out = value
        base_dir = getattr(set_paths, "base_dir", None)
        if (meta.get("path") and out and base_dir is not None
                and not Path(out).is_absolute() and not _from_override(path, set_paths)):
            out = str(Path(base_dir) / out)  # relative to the spec file that wrote it
    elif tp is Any:
        out = value
    else:  # pragma: no cover - a schema bug, not user input
        raise TypeError(f"unsupported spec field type {tp!r} at {path}")
    _check_range(out, meta, bad)
    return out


def _unit(meta: Mapping[str, Any]) -> str:
    return f" in {meta['unit']}" if meta.get("unit") else ""


def range_text(meta: Mapping[str, Any]) -> str:
    """The valid range of a field, as people write it ("> 0", "[1, 64]", "one of a, b")."""
    if meta.get("choices"):
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    lo = hi = ""
    if meta.get("ge") is not None:
        lo = f">= {meta['ge']:g}"
    if meta.get("gt") is not None:
        lo = f"> {meta['gt']:g}"
    if meta.get("le") is not None:
        hi = f"<= {meta['le']:g}"
    if meta.get("lt") is not None:
        hi = f"< {meta['lt']:g}"
    return " and ".join(x for x in (lo, hi) if x)


def _check_range(value: Any, meta: Mapping[str, Any], bad: Any) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise bad("one of " + ", ".join(repr(c) for c in choices))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    ok = True
    if meta.get("ge") is not None and not value >= meta["ge"]:
        ok = False
    if meta.get("gt") is not None and not value > meta["gt"]:
        ok = False
    if meta.get("le") is not None and not value <= meta["le"]:
        ok = False
    if meta.get("lt") is not None and not value < meta["lt"]:
        ok = False
    if not ok:
        raise bad(f"a value {range_text(meta)}{_unit(meta)}")


# --------------------------------------------------------------------------------------------
# using specs


def to_dict(spec: Any) -> dict[str, Any]:
    """A spec as plain nested dicts and lists (TOML-able), without kind and version."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        v = getattr(spec, f.name)
        out[f.name] = _plain(v)
    return out


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return to_dict(v)
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


def with_overrides(spec: T, overrides: Mapping[str, Any], *, file: str = "<override>") -> T:
    """A copy of ``spec`` with key paths replaced, validated like a file."""
    if not overrides:
        return spec
    return build_spec(type(spec), to_dict(spec), file=file, overrides=overrides)


@dataclass(frozen=True)
class FieldInfo:
    """One key of a schema, for ``hwsim schema`` and ``hwsim show``."""

    key: str
    type: str
    unit: str
    default: Any
    range: str
    help: str
    required: bool


def schema_rows(cls: type, prefix: str = "") -> Iterator[FieldInfo]:
    """Every key of a kind's schema (nested tables flattened to dotted paths)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from schema_rows(tp, key + ".")
            continue
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = _plain(f.default_factory())
        else:
            default = None
        yield FieldInfo(
            key=key,
            type=_describe(tp),
            unit=f.metadata.get("unit", ""),
            default=default,
            range=range_text(f.metadata),
            help=f.metadata.get("help", ""),
            required=f.default is MISSING and f.default_factory is MISSING,
        )


def flatten(spec: Any, prefix: str = "") -> dict[str, Any]:
    """A spec's values keyed by dotted path (nested tables flattened)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        v = getattr(spec, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            out.update(flatten(v, key + "."))
        else:
            out[key] = _plain(v)
    return out

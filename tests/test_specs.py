"""Spec loading: every kind of bad input is an InputError naming the file, key and value."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwsim import specs
from hwsim.errors import InputError
from hwsim.registry import load_builtins
from hwsim.specs import param


@dataclass(frozen=True, kw_only=True)
class _Inner:
    bandwidth_GBps: float = param(100.0, unit="GB/s", gt=0)
    ports: int = param(2, ge=1, le=64)


@dataclass(frozen=True, kw_only=True)
class _Thing:
    name: str = param(help="identifier")
    clock_MHz: float = param(unit="MHz", gt=0)
    lanes: int = param(8, ge=1)
    mode: str = param("fast", choices=("fast", "slow"))
    enabled: bool = param(True)
    sizes_KiB: tuple[float, ...] = param((1.0, 2.0), unit="KiB")
    link: _Inner = param(default_factory=_Inner)


def _write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_build_valid_and_frozen():
    s = specs.build_spec(_Thing, {"name": "a", "clock_MHz": 1000, "link": {"ports": 4}})
    assert s.clock_MHz == 1000.0 and isinstance(s.clock_MHz, float)
    assert s.link.ports == 4 and s.link.bandwidth_GBps == 100.0
    assert s.sizes_KiB == (1.0, 2.0)
    with pytest.raises(FrozenInstanceError):
        s.lanes = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "key", "needle"),
    [
        ({"name": "a", "clock_MHz": 1, "bogus": 1}, "bogus", "unknown key"),
        ({"name": "a", "clock_MHz": -5}, "clock_MHz", "> 0"),
        ({"name": "a", "clock_MHz": "fast"}, "clock_MHz", "a number"),
        ({"name": "a", "clock_MHz": 1, "lanes": 2.5}, "lanes", "integer"),
        ({"name": "a", "clock_MHz": 1, "lanes": True}, "lanes", "integer"),
        ({"name": "a", "clock_MHz": 1, "mode": "medium"}, "mode", "one of"),
        ({"name": "a", "clock_MHz": 1, "enabled": 1}, "enabled", "true or false"),
        ({"name": "a"}, "clock_MHz", "missing key"),
        ({"name": "a", "clock_MHz": 1, "link": {"ports": 0}}, "link.ports", ">= 1"),
        ({"name": "a", "clock_MHz": 1, "link": {"portz": 3}}, "link.portz", "did you mean"),
        ({"name": "a", "clock_MHz": 1, "link": 3}, "link", "table"),
        ({"name": "a", "clock_MHz": 1, "sizes_KiB": [1, "x"]}, "sizes_KiB[1]", "a number"),
    ],
)
def test_bad_values_name_key_and_value(raw, key, needle):
    with pytest.raises(InputError) as ei:
        specs.build_spec(_Thing, raw, file="models/thing/a.toml")
    msg = str(ei.value)
    assert "models/thing/a.toml" in msg
    assert f"'{key}'" in msg
    assert needle in msg
    assert "\n" not in msg
    e = ei.value  # the parts, for callers that re-raise under their own file and key
    assert e.file == "models/thing/a.toml" and e.key == key
    assert needle in e.message and "a.toml" not in e.message and msg.endswith(": " + e.message)


def test_overrides_are_validated_and_quoted():
    raw = {"name": "a", "clock_MHz": 1000}
    s = specs.build_spec(_Thing, raw, overrides={"link.ports": 8, "lanes": 4})
    assert (s.link.ports, s.lanes) == (8, 4)
    with pytest.raises(InputError, match=r"--set chip\.lanes"):
        specs.build_spec(_Thing, raw, overrides={"lanes": 0}, override_prefix="chip.")


def test_with_overrides_round_trip():
    s = specs.build_spec(_Thing, {"name": "a", "clock_MHz": 1000})
    t = specs.with_overrides(s, {"link.bandwidth_GBps": 50})
    assert t.link.bandwidth_GBps == 50 and s.link.bandwidth_GBps == 100
    assert specs.with_overrides(s, {}) is s
    assert specs.build_spec(_Thing, specs.to_dict(s)) == s


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", 3), ("2.5", 2.5), ("true", True), ("[1, 2]", [1, 2]), ("'a b'", "a b"),
     ("gpt3", "gpt3"), ("a100-sxm", "a100-sxm")],
)
def test_parse_value(text, expected):
    assert specs.parse_value(text) == expected


def test_parse_override_needs_equals():
    with pytest.raises(InputError, match=r"key\.path=value"):
        specs.parse_override("chip.die_area_mm2")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_range_check_property(x):
    raw = {"name": "a", "clock_MHz": x}
    if x > 0:
        assert specs.build_spec(_Thing, raw).clock_MHz == x
    else:
        with pytest.raises(InputError):
            specs.build_spec(_Thing, raw)


def test_load_spec_file_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        specs.load_spec(tmp_path / "missing.toml")
    bad = _write(tmp_path, "kind = 'queue'\nname = = 3\n")
    with pytest.raises(InputError, match="not valid TOML"):
        specs.load_spec(bad)
    nokind = _write(tmp_path, "name = 'x'\n", "nokind.toml")
    with pytest.raises(InputError, match="missing key 'kind'"):
        specs.load_spec(nokind)
    unknown = _write(tmp_path, "kind = 'warp-drive'\nname = 'x'\n", "unk.toml")
    with pytest.raises(InputError, match="unknown spec kind"):
        specs.load_spec(unknown)
    wrong = _write(tmp_path, "kind = 'queue'\nversion = 99\nname='x'\n", "ver.toml")
    with pytest.raises(InputError, match="version"):
        specs.load_spec(wrong)


def test_every_model_file_loads():
    """Every spec file shipped under models/ is valid against its kind's schema."""
    load_builtins()
    n = 0
    for kind in specs.KINDS:
        for path in specs.spec_files(kind):
            spec = specs.load_spec(path, kind=kind)
            assert getattr(spec, "name", path.stem) == path.stem, path
            n += 1
    assert n > 0


def test_schema_rows_cover_nested():
    rows = {r.key: r for r in specs.schema_rows(_Thing)}
    assert rows["link.bandwidth_GBps"].unit == "GB/s"
    assert rows["clock_MHz"].required and rows["clock_MHz"].range == "> 0"
    assert rows["mode"].range == "one of fast, slow"


# ------------------------------------------------------------------------------------------------
# ranges hold however a spec is built


def _violations(meta) -> list[float]:
    out = []
    if meta.get("gt") is not None:
        out.append(meta["gt"])
    if meta.get("ge") is not None:
        out.append(meta["ge"] - 1)
    if meta.get("lt") is not None:
        out.append(meta["lt"])
    if meta.get("le") is not None:
        out.append(meta["le"] + 1)
    return out


def test_every_kind_checks_ranges_when_built_directly():
    """For every spec kind shipped with a file: replacing any bounded number with a value out of
    its range, by ``dataclasses.replace``, is an InputError naming the key."""
    import dataclasses
    import typing

    load_builtins()
    checked = 0
    for kind in specs.KINDS:
        files = specs.spec_files(kind)
        if not files:
            continue
        spec = specs.load_spec(files[0], kind)
        hints = typing.get_type_hints(type(spec))
        for f in dataclasses.fields(spec):
            if hints[f.name] not in (int, float):
                continue
            for bad in _violations(f.metadata):
                value = int(bad) if hints[f.name] is int else float(bad)
                with pytest.raises(InputError, match=f.name):
                    dataclasses.replace(spec, **{f.name: value})
                checked += 1
    assert checked > 100


def test_direct_construction_is_checked():
    import dataclasses

    from hwsim.hw.gpu import GpuSpec
    from hwsim.rtl.spec import FusionUnitSpec

    with pytest.raises(InputError, match="lanes"):
        FusionUnitSpec(lanes=-3)
    gpu = specs.load_spec(specs.find_spec_file("gpu", "a100-sxm-80gb"), "gpu")
    with pytest.raises(InputError, match="hbm_bandwidth_GBps"):
        dataclasses.replace(gpu, hbm_bandwidth_GBps=-1)
    with pytest.raises(InputError, match="sms"):
        dataclasses.replace(gpu, sms=1.5)
    with pytest.raises(InputError, match="name"):
        dataclasses.replace(gpu, name=3)
    same = dataclasses.replace(gpu, hbm_bandwidth_GBps=2000)
    assert isinstance(same.hbm_bandwidth_GBps, float) and isinstance(same, GpuSpec)
    # cross-field checks still run, after the ranges
    from hwsim.gpu_serving.spec import GpuMappingSpec

    with pytest.raises(ValueError, match="micro_batch"):
        GpuMappingSpec(name="m", batch=4, micro_batch=8)

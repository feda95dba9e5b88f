"""The ``hwsim`` command.

Exit codes (every error is one line starting ``error:``, no traceback):

- 0 success;
- 1 the run failed on valid input: a validation case out of tolerance, or another
  :class:`~hwsim.errors.HwsimError` that is neither of the two below;
- 2 bad input (:class:`~hwsim.errors.InputError`: the line names the file, key and value);
- 3 a tool or the environment failed (:class:`~hwsim.errors.ToolError`): Yosys or iverilog
  missing or failing on generated Verilog, a generator's simulation disagreeing with numpy.
  No Yosys under an explicit ``--synth`` is 3 too: the command is well formed and works as it
  stands once Yosys is installed, so the fix is in the environment, not the arguments;
- 4 an internal error: an exception hwsim did not expect (a bug). The one ``error:`` line
  names the exception and the file the full traceback was written to: ``$HWSIM_CRASH_DIR``
  if set, else the system's temporary folder, as ``hwsim-crash-<time>-<pid>.txt``;
- 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hwsim import __version__, specs
from hwsim.errors import HwsimError, InfeasibleDesign, InputError
from hwsim.registry import load_builtins

log = logging.getLogger("hwsim")

EXIT_OK, EXIT_VALIDATION, EXIT_INPUT, EXIT_TOOL, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
SEED_MAX = 2**32 - 1  # what numpy's and Optuna's generators take


def seed_arg(text: str) -> int:
    """``--seed``: a whole number in [0, 2**32 - 1] (argparse reports anything else)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected a whole number in [0, {SEED_MAX}], got "
                                         f"{text!r}")
    return value


def _positive(text: str) -> int:
    """A whole number >= 1 (argparse reports anything else)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def output_file(path: str, option: str) -> Path:
    """Check that ``path`` (given with ``option``) can be written as a file, before the work
    that produces it: an existing folder, a parent that cannot be made or a place that cannot
    be written is an InputError naming the option and the path."""
    p = Path(path)
    if p.is_dir():
        raise InputError("is a folder; expected a file to write", key=option, value=path,
                         has_value=True)
    existed = p.exists()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("a"):
            pass
    except OSError as exc:
        raise InputError(f"cannot write here: {exc.strerror or exc}", key=option, value=path,
                         has_value=True) from None
    if not existed:
        p.unlink(missing_ok=True)
    return p


def output_dir(path: str | Path, option: str) -> Path:
    """Make (if needed) and check the folder ``path`` (given with ``option``) for writing: a
    file in its place, a folder that cannot be made or written is an InputError naming it."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError("is a file; expected a folder to write into", key=option,
                         value=str(path), has_value=True)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as exc:
        raise InputError(f"cannot write here: {exc.strerror or exc}", key=option,
                         value=str(path), has_value=True) from None
    return p


def crash_report(exc: BaseException) -> Path | None:
    """Write the traceback of an unexpected exception to a file; its path, or None."""
    folder = Path(os.environ.get("HWSIM_CRASH_DIR") or tempfile.gettempdir())
    name = f"hwsim-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(f"hwsim {__version__}\ncommand: {shlex.join(sys.argv)}\n\n"
                        + "".join(traceback.format_exception(exc)), encoding="utf-8")
    except OSError:
        return None
    return path


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(EXIT_INPUT)


#: the width text tables are wrapped to (``--wide``: None, no wrapping)
TABLE_WIDTH: int | None = 100


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str],
           width: int | None = None, *, wrap: bool = True) -> str:
    """A text table; when wider than ``width`` (default :data:`TABLE_WIDTH`), its columns of
    words (meanings, summaries) wrap onto continuation lines; keys and numbers stay whole.
    ``wrap=False``: a data table (a system's per-item table) keeps one line per row."""
    import textwrap

    width = (TABLE_WIDTH if width is None else width) if wrap else None
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    n = len(header)
    widths = [max(len(r[i]) for r in cells) for i in range(n)]
    if width is not None and sum(widths) + 2 * (n - 1) > width:
        # shrink only columns of words (a meaning, a summary, a list; never the first, a
        # key): the last to 24 first, then the widest, to 12
        text = [i for i in range(1, n) if any(" " in r[i] for r in cells[1:])]
        while text and sum(widths) + 2 * (n - 1) > width:
            i = text[-1] if widths[text[-1]] > 24 else max(text, key=lambda k: widths[k])
            if widths[i] <= 12:
                break
            widths[i] -= 1
        # still too wide: the widest other column too (names break at hyphens)
        while sum(widths) + 2 * (n - 1) > width:
            i = max(range(1, n), key=lambda k: widths[k])
            if widths[i] <= 12:
                break
            widths[i] -= 1
    out = []
    for k, r in enumerate(cells):
        parts = [textwrap.wrap(c, w) or [""] if len(c) > w else [c]
                 for c, w in zip(r, widths, strict=True)]
        for line in range(max(len(x) for x in parts)):
            out.append("  ".join((x[line] if line < len(x) else "").ljust(w)
                                 for x, w in zip(parts, widths, strict=True)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _num(x: Any) -> str:
    """A value for a table: 6 significant digits; NaN (a metric with no value here, e.g. an
    owned cost without a server price) as ``n/a``. JSON output keeps the number."""
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        return f"{x:.6g}"
    return str(x)


# ------------------------------------------------------------------------------------------------
# subcommands


def cmd_list(args: argparse.Namespace) -> int:
    from hwsim.system import all_systems

    load_builtins()
    if args.kind is None:
        print("systems:")
        rows = [[s.name, ", ".join(f"{r.name}:{r.kind}" for r in s.roles), s.summary]
                for s in all_systems()]
        print(_table(rows, ["system", "inputs (role:kind)", "summary"]))
        print()
    kinds = [args.kind] if args.kind else specs.KINDS.names()
    rows = []
    for kind in kinds:
        specs.kind_schema(kind)
        for p, origin in specs.spec_files_with_origin(kind):
            rows.append([kind, p.stem, origin, f"{p.parent.name}/{p.name}"])
    if args.kind is None:
        from hwsim.rtl.registry import GENERATORS

        print("RTL generators (hwsim rtl NAME):")
        print(_table([[g.name, g.kind, g.summary] for g in GENERATORS.values()],
                     ["generator", "spec kind", "summary"]))
        print()
        studies = _studies()
        print("studies (hwsim sweep FILE):")
        print(_table(studies, ["study", "system", "file", "description"]) if studies
              else "(none in ./explore)")
        print()
    print("spec search order (the first file of a kind and name wins):")
    for n, d in enumerate(specs.model_dirs(), 1):
        missing = "" if d.path.is_dir() else "  (missing)"
        print(f"  {n}. {d.origin:<12}  {d.path}{missing}")
    print()
    print("spec files:")
    print(_table(rows, ["kind", "name", "from", "file (in its folder)"]) if rows else "(none)")
    return EXIT_OK


def _studies() -> list[list[str]]:
    """(name, system, file, description) of the study files in ./explore and, in a source
    checkout, the repository's explore/."""
    import tomllib

    folders = [Path.cwd() / "explore", specs.models_dir().resolve().parent / "explore"]
    rows, seen = [], set()
    for folder in folders:
        if not folder.is_dir() or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        for f in sorted(folder.glob("*.toml")):
            try:
                raw = tomllib.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if "system" in raw:
                text = " ".join(str(raw.get("description", "")).split())
                if len(text) > 60:
                    text = text[:59].rstrip() + "…"
                rows.append([str(raw.get("name", f.stem)), str(raw["system"]), _relpath(f),
                             text])
    return rows


def _relpath(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def cmd_show(args: argparse.Namespace) -> int:
    path = specs.find_spec_file(args.kind, args.name)
    overrides = dict(specs.parse_override(s) for s in args.set)
    spec = specs.load_spec(path, kind=args.kind, overrides=overrides)
    cls = type(spec)
    values = specs.flatten(spec)
    if args.json:
        print(json.dumps({"kind": args.kind, "file": str(path), "spec": specs.to_dict(spec)},
                         indent=2, default=str))
        return EXIT_OK
    info = {r.key: r for r in specs.schema_rows(cls)}
    rows = []
    for key, v in values.items():
        r = info.get(key)
        rows.append([key, _num(v), r.unit if r else "", r.help if r else ""])
    print(f"# {args.kind} spec '{spec_name(spec, path)}' from {_relpath(path)}")
    print(_table(rows, ["key", "value", "unit", "meaning"]))
    return EXIT_OK


def spec_name(spec: Any, path: Path) -> str:
    return str(getattr(spec, "name", path.stem))


def cmd_schema(args: argparse.Namespace) -> int:
    from hwsim.system import get_system

    system = get_system(args.system)
    if args.json:
        out = {
            "system": system.name,
            "inputs": {
                r.name: {
                    "kind": r.kind, "default": r.default,
                    "keys": [vars(row) for row in specs.schema_rows(specs.kind_schema(r.kind))],
                }
                for r in system.roles
            },
            "metrics": [{"name": m.name, "help": m.help, "fidelities": list(m.fidelities)}
                        for m in system.metrics],
        }
        print(json.dumps(out, indent=2, default=str))
        return EXIT_OK
    print(f"system {system.name}: {system.summary}\n")
    for r in system.roles:
        note = f"  ({r.help})" if r.help else ""
        line = f"[{r.name}]  kind={r.kind}  default={r.default}{note}"
        if TABLE_WIDTH is not None and len(line) > TABLE_WIDTH:
            import textwrap

            line = "\n    ".join(textwrap.wrap(line, TABLE_WIDTH - 4))
        print(line)
        rows = [[f"{r.name}.{row.key}", row.type if not row.unit else f"{row.type} [{row.unit}]",
                 "(required)" if row.required else _num(row.default), row.range or "-", row.help]
                for row in specs.schema_rows(specs.kind_schema(r.kind))]
        print(_table(rows, ["key", "type [unit]", "default", "range", "meaning"]))
        print()
    print("metrics:")
    print(_table([[m.name, ",".join(m.fidelities), m.help] for m in system.metrics],
                 ["metric", "fidelity", "meaning"]))
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from hwsim.system import get_system

    system = get_system(args.system)
    inputs = system.resolve(args.spec, args.set)
    trace = None
    if args.trace:
        from hwsim.des.trace import TraceRecorder

        if args.fidelity != "des":
            raise InputError("--trace needs --fidelity des (the analytical model has no timeline)")
        output_file(args.trace, "--trace")
        trace = TraceRecorder()
    from hwsim.des.progress import des_progress

    if args.replications > 1:
        if args.fidelity != "des":
            raise InputError("needs --fidelity des (the analytical model has no randomness)",
                             key="--replications", value=args.replications, has_value=True)
        if args.trace:
            raise InputError("a trace records one run; drop --trace or --replications",
                             key="--replications", value=args.replications, has_value=True)
    bar = args.fidelity == "des" and not args.quiet and sys.stderr.isatty()
    ci: dict[str, float] = {}
    ci_method = CI_METHOD
    try:
        if args.replications > 1:
            metrics, tables, ci = _replicate(system.name, args, bar)
        else:
            with des_progress(f"{system.name} des", enabled=bar):
                metrics, tables = system.evaluate_tables(inputs, args.fidelity,
                                                         seed=args.seed, trace=trace)
            # a DES run's own intervals (batch means within the run), where it gives them
            ci = dict(getattr(metrics, "ci95", {}))
            ci_method = getattr(metrics, "ci_method", "") or CI_METHOD
        status = "ok"
        reason = ""
    except InfeasibleDesign as exc:
        metrics, tables, status, reason = {}, {}, "infeasible", str(exc)
    if trace is not None:
        trace.write(args.trace)
        log.info("wrote trace %s (open in https://ui.perfetto.dev or chrome://tracing)",
                 args.trace)
    if args.json:
        out: dict[str, Any] = {
            "system": system.name,
            "fidelity": args.fidelity,
            "status": status,
            "inputs": {role: specs.to_dict(spec) for role, spec in inputs.items()},
            "overrides": {k: v for k, v, _ in _applied(inputs, args.set)},
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()},
        }
        for name, rows in tables.items():
            out[name] = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                          for k, v in r.items()} for r in rows]
        if args.fidelity == "des":
            out["seed"] = args.seed
        if args.replications > 1:
            out["replications"] = args.replications
            out["seeds"] = list(range(args.seed, args.seed + args.replications))
        if ci:
            out["ci95"] = {k: (v if math.isfinite(v) else None) for k, v in ci.items()}
            out["ci_method"] = ci_method
        if reason:
            out["reason"] = reason
        print(json.dumps(out, indent=2, default=str))
        return EXIT_OK
    from hwsim.metrics import unit

    names = ", ".join(f"{role}={getattr(s, 'name', '?')}" for role, s in inputs.items())
    print(f"# {system.name} ({args.fidelity}) {names}")
    for key, value, u in _applied(inputs, args.set):
        print(f"# set {key} = {_num(value)}" + (f" {u}" if u else ""))
    if status != "ok":
        print(f"infeasible: {reason}")
        return EXIT_OK
    if ci:
        if args.replications > 1:
            print(f"# mean of {args.replications} replications (seeds {args.seed}.."
                  f"{args.seed + args.replications - 1}) with {CI_METHOD}")
        else:
            import textwrap

            print("\n".join(textwrap.wrap(ci_method, 100, initial_indent="# ",
                                           subsequent_indent="# ")))
        print(_table([[k, _num(v), _num(ci[k]) if k in ci else "-", unit(k)]
                      for k, v in metrics.items()], ["metric", "value", "± 95%", "unit"]))
    else:
        print(_table([[k, _num(v), unit(k)] for k, v in metrics.items()],
                     ["metric", "value", "unit"]))
    for name, rows in tables.items():
        if rows:
            header = list(rows[0])
            print(f"\n# {name}")
            print(_table([[_num(r[c]) if isinstance(r[c], float) else r[c] for c in header]
                          for r in rows], header, wrap=False))
    return EXIT_OK


CI_METHOD = ("95% confidence half-widths over independent replications (Student t, "
             "n - 1 degrees of freedom)")


def _replica(system_name: str, spec_args: list[str], sets: list[str], seed: int
             ) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    """One DES replication in a worker process (the inputs resolved there again)."""
    from hwsim.system import get_system

    system = get_system(system_name)
    return system.evaluate_tables(system.resolve(spec_args, sets), "des", seed=seed)


def _replicate(system_name: str, args: argparse.Namespace, bar: bool
               ) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]], dict[str, float]]:
    """``--replications N``: seeds SEED .. SEED+N-1 in parallel processes; the mean of each
    metric, the first seed's tables and each metric's confidence half-width."""
    import concurrent.futures as cf
    import multiprocessing as mp

    from hwsim.des.stats import replication_ci

    seeds = list(range(args.seed, args.seed + args.replications))
    workers = min(len(seeds), os.cpu_count() or 1)
    runs: dict[int, tuple[dict[str, float], dict[str, list[dict[str, Any]]]]] = {}
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_replica, system_name, list(args.spec), list(args.set), s): s
                   for s in seeds}
        progress = None
        if bar:
            from tqdm import tqdm

            progress = tqdm(total=len(seeds), desc=f"{system_name} des", unit="replication",
                            leave=False, file=sys.stderr)
        try:
            for fut in cf.as_completed(futures):
                runs[futures[fut]] = fut.result()
                if progress is not None:
                    progress.update()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            if progress is not None:
                progress.close()
    names = list(runs[seeds[0]][0])
    metrics, ci = {}, {}
    for name in names:
        metrics[name], ci[name] = replication_ci([runs[s][0].get(name, math.nan)
                                                  for s in seeds])
    return metrics, runs[seeds[0]][1], ci


def _applied(inputs: Any, sets: Sequence[str]) -> list[tuple[str, Any, str]]:
    """Each ``--set ROLE.KEY=VALUE`` as applied: (key, the value the spec now holds, unit)."""
    out = []
    for text in sets:
        key, _, given = text.partition("=")
        role, _, rest = key.strip().partition(".")
        spec = inputs.get(role) if hasattr(inputs, "get") else None
        if spec is None or not rest:
            out.append((key.strip(), given, ""))
            continue
        rows = {r.key: r for r in specs.schema_rows(type(spec))}
        value = specs.flatten(spec).get(rest, given)
        out.append((f"{role}.{rest}", value, rows[rest].unit if rest in rows else ""))
    return out


def cmd_validate(args: argparse.Namespace) -> int:
    from hwsim import validation

    if args.report:
        output_file(args.report, "--report")  # before the cases run, not after
    cases = validation.select(validation.collect([args.system] if args.system else None),
                              args.case)
    results = validation.run(cases, progress=not (args.json or args.quiet)
                             and sys.stderr.isatty())
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(validation.markdown_report(results) + "\n")
        log.info("wrote %s", args.report)
    failed = validation.failures(results)
    if args.json:
        print(json.dumps([r.as_json() for r in results], indent=2))
    else:
        print(_table(validation.table_rows(results), validation.HEADER))
        n_ok = sum(r.ok for r in results)
        n_known = sum((not r.ok) and r.within_ceiling for r in results)
        held = [r for r in results if r.case.role == "held-out"]
        print(f"\n{n_ok} of {len(results)} cases within tolerance "
              f"({sum(r.ok for r in held)} of {len(held)} held-out)"
              + (f"; {n_known} known deviations within their ceilings" if n_known else ""))
        for line in failed:
            print(f"FAIL {line}")
    return EXIT_VALIDATION if failed else EXIT_OK


# ------------------------------------------------------------------------------------------------


MODELS_HELP = ("search this folder of spec files (laid out as models/<kind>/NAME.toml) before "
               "$HWSIM_MODELS and the bundled specs; repeatable")


def _common_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """-v, -q and --models, accepted before the subcommand and after it."""
    kw: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument("-v", "--verbose", action="count", help="more log output (repeatable)",
                   **({"default": 0} if top else kw))
    p.add_argument("-q", "--quiet", action="store_true",
                   help="only warnings and errors; no progress bar", **kw)
    p.add_argument("--models", action="append", metavar="DIR", help=MODELS_HELP,
                   **({"default": []} if top else kw))
    p.add_argument("--wide", action="store_true",
                   help="text tables as wide as their contents (default: wrapped to 100 columns)",
                   **kw)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hwsim", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--version", action="version", version=f"hwsim {__version__}")
    _common_options(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("list", help="list systems and spec files by kind")
    s.add_argument("kind", nargs="?", help="only spec files of this kind")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", help="print a resolved spec with units")
    s.add_argument("kind", help="the spec kind (hwsim list shows them)")
    s.add_argument("name", help="spec name on the search path (<models>/<kind>/NAME.toml) or a "
                   "file")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, e.g. --set die_area_mm2=140 (repeatable)")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("schema", help="every key a system accepts, with unit, default and range")
    s.add_argument("system", help="a system name (hwsim list shows them)")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser("simulate", help="evaluate one design point")
    s.add_argument("system", help="a system name (hwsim list shows them)")
    s.add_argument("--spec", action="append", default=[], metavar="[ROLE=]FILE|NAME",
                   help="a spec file (its kind picks the input) or ROLE=NAME")
    s.add_argument("--set", action="append", default=[], metavar="ROLE.KEY=VALUE",
                   help="override a key, e.g. --set chip.die_area_mm2=140")
    s.add_argument("--fidelity", default="analytical", choices=["analytical", "des"],
                   help="analytical (closed form, default) or des (discrete-event simulation)")
    s.add_argument("--seed", type=seed_arg, default=0,
                   help=f"seed of every random choice (DES), in [0, {SEED_MAX}]")
    s.add_argument("--replications", type=_positive, default=1, metavar="N",
                   help="DES: run N seeds (SEED, SEED+1, ...) in parallel processes and print "
                   "each metric's mean with its 95%% confidence interval (default 1: one run)")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace (DES)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("validate", help="compare predictions with published values")
    s.add_argument("system", nargs="?", help="only this system's cases (default: every system)")
    s.add_argument("--case", action="append", default=[],
                   help="only cases whose name contains this text (repeatable)")
    s.add_argument("--json", action="store_true", help="a JSON list of results")
    s.add_argument("--report", metavar="FILE", help="write the Markdown report")
    s.set_defaults(func=cmd_validate)

    from hwsim.explore import cli as explore_cli
    from hwsim.rtl import cli as rtl_cli

    explore_cli.add_parsers(sub)
    rtl_cli.add_parsers(sub)
    for sp in sub.choices.values():
        _common_options(sp, top=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INPUT
    saved_env = os.environ.get("HWSIM_MODELS")
    try:
        return run_guarded(lambda: _run(args))
    finally:  # main() may run again in the same process (tests, scripts)
        if args.models:
            specs.use_model_dirs([])
            if saved_env is None:
                os.environ.pop("HWSIM_MODELS", None)
            else:
                os.environ["HWSIM_MODELS"] = saved_env


def _run(args: argparse.Namespace) -> int:
    global TABLE_WIDTH
    specs.use_model_dirs(args.models)
    saved, TABLE_WIDTH = TABLE_WIDTH, (None if args.wide else TABLE_WIDTH)
    try:
        return int(args.func(args) or 0)
    finally:
        TABLE_WIDTH = saved


def run_guarded(func: Callable[[], int | None]) -> int:
    """Run ``func`` as the ``hwsim`` command runs a subcommand and return the exit status: an
    ``HwsimError`` is one ``error:`` line (2 input, 3 tool, 1 other), Ctrl-C one line and 130,
    any other exception one line naming the file its traceback was written to (4). For scripts
    such as ``explore/chiplet_cloud_search.py``: ``raise SystemExit(run_guarded(main))``."""
    try:
        return int(func() or 0)
    except HwsimError as exc:  # InputError 2, ToolError 3, any other 1 (``exit_code``)
        sys.stderr.write("error: " + " ".join(str(exc).splitlines()) + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # a bug: one line, the traceback in a file
        path = crash_report(exc)
        what = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        if len(what) > 300:
            what = what[:297] + "..."
        where = (f"the traceback is in {path}" if path is not None
                 else "the traceback could not be written (set HWSIM_CRASH_DIR)")
        sys.stderr.write(f"error: internal error ({what}); {where}; please report it\n")
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

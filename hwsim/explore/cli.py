"""``hwsim sweep`` and ``hwsim report``."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from hwsim.errors import InputError

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "sweep", help="run an Optuna study over a design space",
        description="Run (or resume) the study a spec describes until it holds --trials trials, "
        "then write its tables, figures and report into results/<study>/.")
    s.add_argument("study", help="study spec (explore/*.toml)")
    s.add_argument("--trials", type=int, metavar="N",
                   help="global trial budget (all workers together; default: the spec's)")
    s.add_argument("--storage", metavar="URL",
                   help="postgresql://... for many workers on many machines, or a journal file "
                   "(default: results/<study>/study.journal)")
    s.add_argument("--study-name", metavar="NAME", help="Optuna study name (default: the spec's)")
    s.add_argument("--n-jobs", type=int, default=1, metavar="N",
                   help="worker processes on this machine (default 1)")
    s.add_argument("--db-retry-s", type=float, metavar="S",
                   help="how long a worker retries while its database is unreachable before it "
                   "stops (default: the grace period less a heartbeat, 30 s)")
    s.add_argument("--out", metavar="DIR", help="output folder (default results/<study>)")
    s.add_argument("--seed", type=int, metavar="S", help="seed (default: the spec's)")
    s.add_argument("--exhaustive", action="store_true",
                   help="also enumerate the whole (discrete) space and compare")
    s.add_argument("--no-report", action="store_true",
                   help="run trials only (a worker among many); `hwsim report` writes the rest")
    s.add_argument("--no-figures", action="store_true", help="tables and reports, no figures")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--validate-only", action="store_true",
                   help="check the study spec and the storage, run nothing")
    s.add_argument("--no-rtl-check", action="store_true",
                   help="skip the study's [rtl_check] (synthesis of its top Pareto designs)")
    s.set_defaults(func=run_sweep)

    s = sub.add_parser(
        "report", help="rebuild a study's tables, figures and report",
        description="Rebuild trials.parquet/csv, pareto.csv, figures, report.md and report.html "
        "from a study's storage.")
    s.add_argument("dir", nargs="?", help="a study's results folder (holds study.journal)")
    s.add_argument("--storage", metavar="URL", help="the study's storage (instead of DIR)")
    s.add_argument("--study", metavar="NAME", help="study name in --storage")
    s.add_argument("--out", metavar="DIR", help="where to write (default DIR or results/NAME)")
    s.add_argument("--refine", action="store_true",
                   help="run the multi-fidelity refinement again if the Pareto set changed")
    s.add_argument("--no-figures", action="store_true", help="tables and reports, no figures")
    s.set_defaults(func=run_report)


def _command() -> list[str]:
    return ["hwsim", *sys.argv[1:]]


def run_sweep(args: argparse.Namespace) -> int:
    from hwsim.explore import results, runner
    from hwsim.explore.study import load_study

    if args.n_jobs < 1:
        raise InputError(f"--n-jobs {args.n_jobs}: expected a whole number >= 1")
    if args.study_name is not None:
        runner.storage_mod.check_name(args.study_name, key="--study-name")
    if args.db_retry_s is not None and not (0 <= args.db_retry_s < float("inf")):
        raise InputError("expected a number of seconds >= 0", key="--db-retry-s",
                         value=args.db_retry_s, has_value=True)
    study = load_study(args.study, trials=args.trials, seed=args.seed)
    if args.exhaustive and not study.enumerable():
        raise InputError(
            f"--exhaustive needs a discrete space of at most {study.exhaustive_max_points:,} "
            f"points; this one has {study.not_enumerable()}", file=study.path, key="space")
    if args.exhaustive:
        from dataclasses import replace

        study = replace(study, exhaustive=True)
    opts = runner.SweepOptions(
        storage=args.storage, study_name=args.study_name,
        out_dir=Path(args.out) if args.out else None, n_jobs=args.n_jobs,
        progress=False if args.no_progress else None, db_retry_s=args.db_retry_s,
    )
    from hwsim.cli import output_dir

    output_dir(runner.out_dir_for(study, opts), "--out")  # a file there, or not writable
    if args.validate_only:
        runner.open_study(study, opts)
        print(f"{study.path}: ok ({len(study.space)} parameters, "
              f"{len(study.objectives)} objectives, {len(study.constraints)} constraints; "
              f"storage {runner.storage_mod.mask_url(runner.storage_url_for(study, opts))})")
        return 0
    res = runner.sweep(study, opts)
    print(sweep_line(res, runner.storage_mod.mask_url(res.storage)))
    if args.no_report:
        return 0
    ostudy = runner.open_study(study, opts)
    out = results.write_outputs(study, ostudy, res.out_dir, storage=res.storage,
                                command=_command(), sweep_seconds=res.seconds,
                                figures=not args.no_figures)
    _print_summary(out)
    if study.rtl_check is not None and not args.no_rtl_check:
        _rtl_check(study, res.out_dir)
    return 0


def _rtl_check(study: Any, out_dir: Path) -> None:
    """The study's ``[rtl_check]``: its generator's ``study_check`` on the results folder (a
    missing Yosys or simulator is a warning: the sweep's results stand without it)."""
    from hwsim.errors import ToolError
    from hwsim.rtl.registry import get_generator

    rc = study.rtl_check
    gen = get_generator(study.system)
    log.info("rtl check: the first %d Pareto designs (generate, simulate, synthesise)", rc.top)
    from hwsim.rtl.cli import check_lines

    try:
        rows = gen.study_check(str(out_dir), rc.top, None, verify=rc.verify, jobs=rc.jobs)
    except ToolError as exc:
        log.warning("rtl check skipped: %s", exc)
        return
    print(f"rtl check: {out_dir}/rtl_check.md (and the section in report.md/html)")
    for line in check_lines(rows):
        print(line)


def plural(n: int, word: str) -> str:
    """``1 design``, ``2 designs``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def sweep_line(res: Any, storage: str) -> str:
    """The one line a sweep ends with: what is in the study, what this command added."""
    if res.before >= res.budget and res.ran == 0:
        return (f"study {res.study_name}: {plural(res.counted, 'trial')} finished, already at "
                f"or past the budget of {res.budget}: nothing to run (give --trials above "
                f"{res.counted} to add more); storage {storage}")
    return (f"study {res.study_name}: {res.counted} of {plural(res.budget, 'trial')} finished "
            f"({res.ran} added while this command ran) in {res.seconds:.1f} s; storage "
            f"{storage}")


def run_report(args: argparse.Namespace) -> int:
    import optuna

    from hwsim.explore import results, runner
    from hwsim.explore import storage as storage_mod

    runner.quiet_optuna(optuna.logging.WARNING)
    if args.study is not None:
        storage_mod.check_name(args.study, key="--study")
    if args.storage:
        url = args.storage
        st = storage_mod.open_storage(url, read_only=True)
        names = [s.study_name for s in optuna.get_all_study_summaries(st)]
        name = args.study
        if name is None:
            if len(names) != 1:
                raise InputError(f"--storage {storage_mod.mask_url(url)} holds "
                                 f"{len(names)} studies; name one with --study "
                                 f"({_names(names) or 'none'})")
            name = names[0]
        if args.out or args.dir:
            out_dir = Path(args.out or args.dir)
        else:  # a name read from a (shared) storage becomes a folder only when it is a name
            why = storage_mod.name_problem(name)
            if why is not None:
                raise InputError(f"the study name {name!r} in {storage_mod.mask_url(url)} is "
                                 f"not a folder name ({why}); give --out DIR")
            out_dir = Path("results") / name
    else:
        if not args.dir:
            raise InputError("hwsim report: give a results folder DIR, or --storage URL "
                             "--study NAME")
        out_dir = Path(args.dir)
        url = str(storage_mod.default_storage_path(out_dir))
        if not Path(url).is_file():
            what = ("no such folder" if not out_dir.exists() else
                    "is a file, not a results folder" if not out_dir.is_dir() else
                    "no study.journal in this folder")
            raise InputError(f"{what}; give a study's results folder, or --storage URL "
                             "--study NAME for a study kept elsewhere", file=str(out_dir))
        st = storage_mod.open_storage(url, read_only=True)
        names = [s.study_name for s in optuna.get_all_study_summaries(st)]
        name = args.study or (names[0] if len(names) == 1 else None)
        if name is None:
            raise InputError(f"{url} holds {len(names)} studies; name one with --study "
                             f"({_names(names)})")
        if args.out:
            out_dir = Path(args.out)
    if name not in names:
        raise InputError(f"no study named {name!r} in {storage_mod.mask_url(url)}; "
                         f"it holds: {_names(names) or 'none'}")
    from hwsim.cli import output_dir

    try:
        output_dir(out_dir, "--out" if args.out else "DIR")
    except InputError as exc:
        if args.out:
            raise
        # the study's own folder (read-only, say): reading needs no write access there
        raise InputError(f"{exc.message}; the study can be read, so write the report "
                         "elsewhere with --out DIR", key=exc.key, value=exc.value,
                         has_value=True) from None
    ostudy = optuna.load_study(study_name=name, storage=st)
    study = results.spec_of(ostudy)
    del runner  # the spec travels with the study; nothing to run
    out = results.write_outputs(study, ostudy, out_dir, storage=url, command=_command(),
                                run_refine=args.refine, figures=not args.no_figures,
                                report=True)
    _print_summary(out)
    return 0


def _names(names: list[str]) -> str:
    """Study names for a one-line message (each quoted: a stored name may hold anything)."""
    return ", ".join(repr(n) for n in names)


def _print_summary(out: Any) -> None:
    s = out.study
    print(f"wrote {out.out_dir}/: trials.parquet, trials.csv, pareto.csv, meta.json, "
          "report.md, report.html"
          + (f", {sum(1 for f in out.files if f.suffix == '.svg')} figures (PNG+SVG)"
             if any(f.suffix == ".svg" for f in out.files) else ""))
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(out.counts.items()))
    print(f"trials: {counts or 'none'}; Pareto set: {plural(len(out.pareto), 'design')}")
    from hwsim.report.document import no_feasible_note, param_units, recommended_lines

    note = no_feasible_note(out)
    if note:
        print(note)
    for why, text in recommended_lines(out, param_units(out)):
        print(f"recommended ({why}): {text}")
    c = out.comparison
    if c and "exact_best" in c:
        print(f"best {s.objective_metrics[0]}: {c['sampler_best']:.6g} "
              f"(exact optimum over {c['points']} designs: {c['exact_best']:.6g})")
    elif c and "hypervolume_ratio" in c:
        print(f"hypervolume vs exact front ({c['points']} designs enumerated): "
              f"{c['hypervolume_ratio']:.1%}"
              + (f"; the sampler's Pareto designs are at most {c['front_gap_rel_max']:.1%} "
                 f"from it (median {c['front_gap_rel_median']:.1%})"
                 if "front_gap_rel_max" in c else ""))
    if out.meta.get("baselines"):
        from hwsim.report.document import baseline_line

        for b in out.meta["baselines"]:
            print(baseline_line(b))
    if out.refine is not None and not out.refine.empty:
        from hwsim.explore import fidelity as fid

        summ = fid.summary(s, out.refine)
        for r in summ.to_dict("records"):
            if r["metric"] in s.objective_metrics:
                print(f"{out.refine.attrs.get('fidelities', ('', ''))[1]} vs "
                      f"{out.refine.attrs.get('fidelities', ('', ''))[0]}: {r['metric']} "
                      f"differs by {r['median_abs_rel_diff']:.1%} (median), "
                      f"{r['max_abs_rel_diff']:.1%} (max) over {r['designs']} designs")
    elif out.refine_note:
        print(f"refinement {out.refine_note}")
    print(f"report: {out.out_dir / 'report.html'}")
    log.debug("command: %s", shlex.join(_command()))

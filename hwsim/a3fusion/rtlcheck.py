"""RTL in the loop: a study's designs generated, simulated, synthesised, compared with the model.

- :func:`trial_inputs` reads one trial of a study from its storage, read-only (the study
  folder's ``study.journal``, as ``hwsim report`` opens it) and rebuilds the design point's
  inputs through the study's fixed specs, overrides and the trial's parameters;
- :func:`compare` puts a synthesis (:func:`hwsim.rtl.generate.synthesize_family`) beside
  the model's estimate (:func:`hwsim.a3fusion.resources.estimate`) and the board;
- :func:`check_design` is one design's whole check: Verilog, JSON description, Amaranth
  simulation of small layers (:func:`hwsim.a3fusion.rtl.verify`), synthesis, comparison;
- :func:`rtl_check` (``hwsim rtl-check DIR --top N``) does it for the first ``N`` designs of
  a study's Pareto set (ordered by the first objective, best first) and writes
  ``rtl_check.csv``, ``rtl_check.md`` and a section of ``report.md`` / ``report.html``.

**Measured LUTs** count every LUT the netlist uses: LUT1 to LUT6, shift registers (one each)
and LUT RAM (``RAM32M``/``RAM64M`` 4 LUTs, ``RAM32M16``/``RAM64M8`` 8, the single- and
dual-port ones 1 and 2 per 64 bits), since LUT RAM and shift registers take LUTs of the board
as logic does. **BRAM** is 36 Kb blocks plus half the 18 Kb ones.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwsim.errors import InputError

log = logging.getLogger(__name__)

RESOURCES = ("lut", "ff", "dsp", "bram", "uram")
#: LUTs each LUT-RAM primitive takes (UG574 / UG474)
LUTRAM_LUTS = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1D": 2,
               "RAM64X1D": 2, "RAM128X1D": 4, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2,
               "RAM256X1S": 4}
MARK_BEGIN = "<!-- hwsim rtl-check: begin -->"
MARK_END = "<!-- hwsim rtl-check: end -->"


# ----------------------------------------------------------------------------------------------
# the model against the netlist


def estimate(design: Any) -> dict[str, float]:
    """The a3fusion resource model's DSP, LUT, FF, BRAM36 and URAM for ``design``."""
    from hwsim.a3fusion import resources

    sizes = {b: getattr(design, f"{b}_buffer_KiB") for b in ("ifmap", "filter", "ofmap")}
    est = resources.estimate(design.dataflow, design.rows, design.cols,
                             design.camera_cols, design.operand_width, design.acc_width,
                             design.vector_lanes, sizes, design.uram, design.partitioned,
                             family=design.family)
    return {k: float(est[k]) for k in RESOURCES}


def measured(stats: Mapping[str, Any]) -> dict[str, float]:
    """LUT (all LUTs used, see the module docstring), FF, DSP, BRAM36 and URAM of a synthesis."""
    cells = stats.get("cell_types", {})
    lut = stats["lut"] + stats.get("lut_as_srl", 0) + sum(
        n * cells.get(k, 0) for k, n in LUTRAM_LUTS.items())
    return {"lut": float(lut), "ff": float(stats["ff"]), "dsp": float(stats["dsp"]),
            "bram": float(stats["bram36"]), "uram": float(stats.get("uram", 0))}


def compare(design: Any, stats: Mapping[str, Any]) -> dict[str, Any]:
    """Estimated against measured resources, their relative difference, and the board."""
    est, meas = estimate(design), measured(stats)
    board = {"lut": design.board_lut, "ff": design.board_ff, "dsp": design.board_dsp,
             "bram": design.board_bram36, "uram": design.board_uram}
    rows = []
    for r in RESOURCES:
        rel = (meas[r] - est[r]) / est[r] if est[r] else (0.0 if meas[r] == 0 else math.inf)
        rows.append({"resource": r, "estimated": est[r], "measured": meas[r],
                     "relative_difference": rel, "board": board[r],
                     "fits_estimated": est[r] <= board[r], "fits_measured": meas[r] <= board[r]})
    known = bool(design.board_dsp or design.board_lut)
    return {"board": design.board, "family": design.family, "resources": rows,
            "fits_estimated": known and all(x["fits_estimated"] for x in rows),
            "fits_after_synthesis": known and all(x["fits_measured"] for x in rows),
            "note": "estimate: hwsim.a3fusion.resources (the board family's array table, the "
                    "fusion unit, the control fitted on synthesised cores, buffers by capacity "
                    "and port width; the DMA not counted); measured: Yosys "
                    + stats.get("script", "")}


# ----------------------------------------------------------------------------------------------
# a study's trial


def _open(study_dir: str | Path) -> tuple[Any, Any]:
    """The Optuna study in ``study_dir`` (read-only) and its hwsim study spec."""
    import optuna

    from hwsim.explore import results, runner
    from hwsim.explore import storage as storage_mod

    runner.quiet_optuna(optuna.logging.WARNING)
    folder = Path(study_dir)
    url = storage_mod.default_storage_path(folder)
    if not url.is_file():
        raise InputError(f"{folder}: no study.journal here (a study's results folder, "
                         "results/<study>/, holds one)", key="--study", value=str(folder),
                         has_value=True)
    st = storage_mod.open_storage(str(url), read_only=True)
    names = [s.study_name for s in optuna.get_all_study_summaries(st)]
    if len(names) != 1:
        raise InputError(f"{url} holds {len(names)} studies; expected one", key="--study",
                         value=str(folder), has_value=True)
    ostudy = optuna.load_study(study_name=names[0], storage=st)
    return ostudy, results.spec_of(ostudy)


def trial_inputs(study_dir: str | Path, trial: int) -> tuple[Any, Any, Any]:
    """``(study spec, inputs, optuna trial)`` of trial ``trial`` of the study in ``study_dir``."""
    from hwsim.explore.study import InputCache

    ostudy, study = _open(study_dir)
    if study.system != "a3fusion":
        raise InputError(f"study {study.name!r} is of system '{study.system}', not a3fusion",
                         key="--study", value=str(study_dir), has_value=True)
    trials = {t.number: t for t in ostudy.get_trials(deepcopy=False)}
    t = trials.get(trial)
    if t is None:
        raise InputError(f"no trial {trial} in study {study.name!r} (trials 0 to "
                         f"{max(trials, default=-1)})", key="--trial", value=trial,
                         has_value=True)
    missing = [p.name for p in study.space if p.name not in t.params]
    if missing:
        raise InputError(f"trial {trial} of study {study.name!r} ({t.state.name}) has no "
                         f"value for {', '.join(missing)}", key="--trial", value=trial,
                         has_value=True)
    point = {p.name: t.params[p.name] for p in study.space}
    return study, InputCache(study).inputs(point), t


def trial_design(study_dir: str | Path, trial: int) -> Any:
    """The :class:`hwsim.a3fusion.rtl.A3FusionDesign` of a study's trial."""
    from hwsim.a3fusion.hardware import design

    study, inputs, t = trial_inputs(study_dir, trial)
    return design(inputs, source=f"study {study.name} trial {trial} ({t.state.name})")


# ----------------------------------------------------------------------------------------------
# one design, all the way


def check_design(design: Any, out_dir: str | Path, *, verify: bool = True,
                 synth: bool | None = None, vcd: bool = False) -> dict[str, Any]:
    """Generate, simulate (``verify``), synthesise (``synth``; default: when Yosys is there)
    and compare one design; writes ``a3fusion.{v,json,synth.json,check.json}`` into
    ``out_dir`` and returns the check."""
    from hwsim.a3fusion.rtl import verify as run_verify
    from hwsim.rtl import generate as g

    out = Path(out_dir)
    res = g.generate("a3fusion", design, out, synth=synth, vcd=vcd)
    check: dict[str, Any] = {"design": {k: v for k, v in vars(design).items()},
                             "files": {"verilog": str(res.verilog),
                                       "description": str(res.description)},
                             "seconds": {k: round(v, 1) for k, v in res.seconds.items()},
                             "verilog_bytes": res.verilog.stat().st_size}
    if verify:
        t0 = time.perf_counter()
        check["verification"] = run_verify(design)
        check["seconds"]["simulation"] = round(time.perf_counter() - t0, 1)
    if res.synthesis is not None:
        stats = json.loads(res.synthesis.read_text())
        check["files"]["synthesis"] = str(res.synthesis)
        check["synthesis"] = {k: v for k, v in stats.items()
                              if k not in ("cell_types", "comparison")}
        check["comparison"] = stats["comparison"]
    else:
        check["comparison"] = None
    (out / "a3fusion.check.json").write_text(json.dumps(check, indent=2, default=str) + "\n")
    return check


def summary_lines(check: Mapping[str, Any]) -> list[str]:
    """A few lines for the terminal: the verification and the resource table."""
    d = check["design"]
    split = f", split {d['camera_cols']}+{d['cols'] - d['camera_cols']}" if d["camera_cols"] \
        else ", shared"
    lines = [f"design      {d['rows']}x{d['cols']} {d['dataflow']}{split}, {d['vector_lanes']} "
             f"lanes {d['fusion_op']}, board {d['board']} ({d['family']}); {d['source']}"]
    v = check.get("verification")
    if v:
        for c in v["checks"]:
            lines.append(
                f"simulated   {c['layer']:14s} {c.get('array', ''):28s} "
                f"{'bit-exact' if c['bit_exact'] else 'MISMATCH'}, "
                f"{c.get('array_span_cycles')} cycles (model {c.get('model_cycles')}"
                + (f"; command to idle {c['command_to_idle_cycles']}, model "
                   f"{c['expected_command_to_idle']}" if "command_to_idle_cycles" in c else "")
                + (")" if c["cycle_exact"] else ") CYCLES DIFFER"))
    cmp_ = check.get("comparison")
    if cmp_:
        lines.append(f"{'resource':10s} {'estimated':>11s} {'measured':>11s} {'diff':>8s} "
                     f"{'board':>10s}")
        for r in cmp_["resources"]:
            rel = r["relative_difference"]
            lines.append(f"{r['resource']:10s} {r['estimated']:11.0f} {r['measured']:11.1f} "
                         f"{rel:+8.1%} {r['board']:10.0f}" if math.isfinite(rel) else
                         f"{r['resource']:10s} {r['estimated']:11.0f} {r['measured']:11.1f} "
                         f"{'new':>8s} {r['board']:10.0f}")
        lines.append(f"fits        estimated: {'yes' if cmp_['fits_estimated'] else 'no'}; "
                     f"after synthesis: {'yes' if cmp_['fits_after_synthesis'] else 'no'} "
                     f"({check['synthesis']['tool']}, {check['synthesis']['seconds']} s)")
    return lines


# ----------------------------------------------------------------------------------------------
# a study's Pareto set


def top_pareto(study_dir: str | Path, top: int) -> tuple[Any, list[int]]:
    """The study spec and the first ``top`` trials of its Pareto set, best first by the first
    objective (ties: the second)."""
    from hwsim.explore import results

    ostudy, study = _open(study_dir)
    trials = results.trials_frame(study, ostudy)
    pareto = results.pareto_frame(study, trials)
    if pareto.empty:
        return study, []
    objs = [(o.metric, o.direction == "minimize") for o in study.objectives]
    pareto = pareto.sort_values([m for m, _ in objs], ascending=[a for _, a in objs])
    return study, [int(t) for t in pareto["trial"].head(top)]


def rtl_check(study_dir: str | Path, top: int, out_dir: str | Path | None = None, *,
              verify: bool = True, jobs: int = 1) -> list[dict[str, Any]]:
    """Check the first ``top`` Pareto designs of a study; write the table (and report section)."""
    from concurrent.futures import ThreadPoolExecutor

    from hwsim.rtl.generate import find_yosys

    if top < 1:
        raise InputError("expected a whole number >= 1", key="--top", value=top, has_value=True)
    if find_yosys() is None:
        from hwsim.errors import ToolError

        raise ToolError("hwsim rtl-check synthesises each design: no yosys found (install "
                        "Debian's yosys, or set HWSIM_YOSYS)")
    study, chosen = top_pareto(study_dir, top)
    out = Path(out_dir) if out_dir is not None else Path(study_dir)
    rows: list[dict[str, Any]] = []

    def one(trial: int) -> dict[str, Any]:
        d = trial_design(study_dir, trial)
        log.info("trial %d: %dx%d %s, generating and synthesising", trial, d.rows, d.cols,
                 d.dataflow)
        chk = check_design(d, out / "rtl_check" / f"trial_{trial}", verify=verify, synth=True)
        return {"trial": trial, **_row(chk)}

    if jobs > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            rows = list(pool.map(one, chosen))
    else:
        rows = [one(t) for t in chosen]
    write_table(out, study.name, rows, top)
    return rows


def _row(chk: Mapping[str, Any]) -> dict[str, Any]:
    d = chk["design"]
    row: dict[str, Any] = {
        "array": f"{d['rows']}x{d['cols']}" + (f" ({d['camera_cols']}+"
                                               f"{d['cols'] - d['camera_cols']})"
                                               if d["camera_cols"] else ""),
        "dataflow": d["dataflow"], "board": d["board"], "family": d["family"],
    }
    for r in chk["comparison"]["resources"]:
        row[f"{r['resource']}_estimated"] = r["estimated"]
        row[f"{r['resource']}_measured"] = r["measured"]
        row[f"{r['resource']}_diff"] = r["relative_difference"]
    row["fits_estimated"] = chk["comparison"]["fits_estimated"]
    row["fits_after_synthesis"] = chk["comparison"]["fits_after_synthesis"]
    v = chk.get("verification")
    row["simulated"] = ("not run" if v is None else
                        "bit- and cycle-exact" if v["passed"] else "FAILED")
    row["synthesis_s"] = chk["synthesis"]["seconds"]
    return row


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.0f}" if v.is_integer() else f"{v:.3g}"
    return str(v)


def write_table(out: Path, study_name: str, rows: Sequence[Mapping[str, Any]], top: int) -> None:
    """``rtl_check.csv``, ``rtl_check.md`` and the section in ``report.md``/``report.html``."""
    out.mkdir(parents=True, exist_ok=True)
    if rows:
        with (out / "rtl_check.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    header = ["trial", "array", "dataflow", "board"]
    for r in RESOURCES:
        header += [f"{r} est.", f"{r} meas.", f"{r} diff"]
    header += ["fits (model)", "fits after synthesis", "simulation", "synthesis [s]"]
    body = []
    for r in rows:
        cells = [r["trial"], r["array"], r["dataflow"], r["board"]]
        for res in RESOURCES:
            diff = r[f"{res}_diff"]
            cells += [r[f"{res}_estimated"], r[f"{res}_measured"],
                      f"{diff:+.1%}" if math.isfinite(diff) else "new"]
        cells += [r["fits_estimated"], r["fits_after_synthesis"], r["simulated"],
                  r["synthesis_s"]]
        body.append([_fmt(c) for c in cells])
    title = (f"RTL check: the first {len(rows)} of the Pareto set (best {top} asked), "
             "synthesised")
    note = ("Each design's datapath (PE array(s), buffers, tile sequencer, fusion unit(s); "
            "hwsim.a3fusion.rtl) generated with Amaranth, small conv layers simulated against "
            "numpy and the timing model, synthesised with Yosys for the board's family; diff = "
            "(measured - estimated) / estimated. The DMA engine and the interconnect are not "
            "built (nor counted by the model). Files: rtl_check.csv, rtl_check/trial_N/.")
    md = [MARK_BEGIN, f"## {title}", "", note, "",
          "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    md += ["", MARK_END]
    (out / "rtl_check.md").write_text(f"# Study {study_name}\n\n" + "\n".join(md) + "\n")
    page = [MARK_BEGIN, f'<h2 id="rtl_check">{html.escape(title)}</h2>',
            f"<p>{html.escape(note)}</p><table><thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    page += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
             for row in body]
    page += ["</tbody></table>", MARK_END]
    _splice(out / "report.md", "\n".join(md), before="## Files")
    _splice(out / "report.html", "\n".join(page), before="<p>Files beside this report")


def _splice(path: Path, section: str, *, before: str) -> None:
    """Put ``section`` into an existing report (replacing an earlier one), before ``before``
    (or at the end). ``hwsim report`` rewrites the report without it: run the check again."""
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    text = re.sub(re.escape(MARK_BEGIN) + r".*?" + re.escape(MARK_END) + r"\n?", "", text,
                  flags=re.S)
    i = text.find(before)
    if i < 0:
        i = text.rfind("</body>") if path.suffix == ".html" else len(text)
        i = len(text) if i < 0 else i
    path.write_text(text[:i] + section + "\n\n" + text[i:], encoding="utf-8")

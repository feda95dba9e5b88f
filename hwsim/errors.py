"""Errors the CLI turns into exit codes.

`InputError` is bad input from a user (a spec file, a `--set`, a study): the CLI prints its
one-line message after ``error:`` and exits with status 2, without a traceback. `ToolError` is
an external tool or the environment failing on valid input (Yosys or Icarus missing or
failing, a generated design that disagrees with its model): the same one line, status 3.
Any other `HwsimError` is status 1. An exception that is none of these is a bug: the CLI
writes its traceback to a file (``$HWSIM_CRASH_DIR`` or the temporary folder), prints one
``error:`` line naming that file and exits with status 4 (``hwsim.cli.EXIT_INTERNAL``).
"""

from __future__ import annotations


class HwsimError(Exception):
    """Base class of every error hwsim raises on purpose.

    ``exit_code`` is the CLI's status for it: 1 (the run failed) unless a subclass says more.
    """

    exit_code = 1


class InputError(HwsimError):
    """Bad user input. The message names the file, the key path, the value and what was expected.

    ``str()`` is the whole line (``file: key 'k' = value: message``); ``message``, ``file``,
    ``key`` and ``value`` keep the parts, so that a caller can re-raise the bare ``message``
    under its own file and key.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        value: object = None,
        has_value: bool = False,
    ) -> None:
        self.message = message
        self.file = file
        self.key = key
        self.value = value
        parts = []
        if file:
            parts.append(str(file))
        if key:
            parts.append(f"key '{key}'" + (f" = {value!r}" if has_value else ""))
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ToolError(HwsimError):
    """An external tool or the environment failed, not the user's input.

    Yosys or iverilog missing or failing, or a generator's simulation disagreeing with its
    numpy model: the command was well formed, so fixing it means fixing the installation (or
    the generator), not the command line.
    """

    exit_code = 3


class InfeasibleDesign(HwsimError):
    """A design point that cannot run its workload (e.g. the model does not fit).

    Evaluators raise it with the reason; sweeps record the trial as pruned with that reason.
    """


def suggest(name: str, known: list[str] | tuple[str, ...], n: int = 3) -> list[str]:
    """The known names closest to ``name``, best first, for "did you mean" hints.

    Names are compared by their ``_``-separated words (a plural ``s`` ignored) as well as by
    spelling, and a shared first word counts extra, so ``tco_per_token`` finds
    ``tco_usd_per_1k_tokens`` rather than ``comm_ms_per_token``.
    """
    import difflib

    def words(s: str) -> list[str]:
        return [w.lower().rstrip("s") or w.lower() for w in s.split("_") if w]

    q = words(name)
    if not q:
        return []
    scored = []
    for cand in known:
        c = words(cand)
        overlap = len(set(q) & set(c)) / len(set(q))
        spelling = difflib.SequenceMatcher(None, name.lower(), cand.lower()).ratio()
        score = 0.6 * overlap + 0.4 * spelling + (0.2 if c and c[0] == q[0] else 0.0)
        if score >= 0.5:
            scored.append((-score, cand))
    return [c for _, c in sorted(scored)[:n]]

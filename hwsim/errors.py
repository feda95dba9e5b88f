"""Errors the CLI turns into exit codes.

`InputError` is bad input from a user (a spec file, a `--set`, a study): the CLI prints its
one-line message after ``error:`` and exits with status 2, without a traceback.
"""

from __future__ import annotations


class HwsimError(Exception):
    """Base class of every error hwsim raises on purpose."""


class InputError(HwsimError):
    """Bad user input. The message names the file, the key path, the value and what was expected."""

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


class InfeasibleDesign(HwsimError):
    """A design point that cannot run its workload (e.g. the model does not fit).

    Evaluators raise it with the reason; sweeps record the trial as pruned with that reason.
    """

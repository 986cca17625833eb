"""The Python side's errors, one hierarchy. A UserError (or subclass) is the caller's to fix:
printed as one line, exit status 2. Anything else is a bug and keeps its traceback."""
from __future__ import annotations

import argparse
import sys


class UserError(Exception):
    """Bad input or environment: one actionable line, exit status 2."""


class DataError(UserError):
    """A problem with the text data (missing file, too little text)."""


class CheckpointError(UserError):
    """A model directory that is not a readable safetensors checkpoint, or a bad lesa.json."""


class CommandParser(argparse.ArgumentParser):
    """The arguments of one `lesa` command run in Python (prog: "lesa train"): usage names the
    command as the user typed it, and a bad argument is one line and exit status 2, like the
    TypeScript commands (argparse's default prints the whole usage first)."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        fail(self.prog, f"{message} (`{self.prog} --help` lists the options)")
        sys.exit(2)


def fail(command: str, message: object) -> int:
    """Prints a user error of `command` as its one line; returns the exit status."""
    print(f"{command}: error: {message}", file=sys.stderr)
    return 2

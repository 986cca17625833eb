"""The Python side's errors. A UserError (or subclass) is the caller's to fix: printed as one
line, exit status 2. Anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """Bad input or environment: one actionable line, exit status 2."""

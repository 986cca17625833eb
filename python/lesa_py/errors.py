"""The Python side's errors, one hierarchy. A UserError (or subclass) is the caller's to fix:
printed as one line, exit status 2. Anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """Bad input or environment: one actionable line, exit status 2."""


class DataError(UserError):
    """A problem with the text data (missing file, too little text)."""


class CheckpointError(UserError):
    """A model directory that is not a readable safetensors checkpoint, or a bad lesa.json."""

"""Exceptions raised while reading, converting and loading pretrained weights."""


class CheckpointError(ValueError):
    """A checkpoint could not be read: missing, truncated, unknown format or not a state dict.

    Subclasses ``ValueError`` so callers that only know about built-in errors still catch it.
    """


class PickleNotAllowedError(CheckpointError):
    """The checkpoint holds pickled Python objects and loading them was not opted into."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's tensors do not fit the model (missing, unexpected or wrong shapes)."""

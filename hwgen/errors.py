"""Errors a user can cause: each is reported by the CLI as one line and a non-zero exit."""


class HwgenError(Exception):
    """Base of every error hwgen reports to the user as a single line."""


class ModelFileError(HwgenError):
    """A model file or checkpoint that is corrupt, truncated, of another version or unsupported."""

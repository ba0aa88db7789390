"""One error hierarchy for vsr.

Every error is a :class:`VsrError` and also subclasses the matching built-in
(``InputError`` is a ``ValueError``), the way PyAV's errors do, so callers can
catch either. The CLI maps each class to a one-line message and an exit code.
"""

from __future__ import annotations


class VsrError(Exception):
    """Base of every error vsr raises on purpose.

    ``exit_code`` is what the CLI exits with when this error ends a run.
    """

    exit_code: int = 1


class InputError(VsrError, ValueError):
    """The input cannot be read: missing, not a media file, no video stream, truncated."""

    exit_code = 2


class OutputError(VsrError, OSError):
    """The output cannot be written: exists without --overwrite, same as the input, unwritable."""

    exit_code = 3


class ConfigError(VsrError, ValueError):
    """An option or parameter is invalid: unknown method, bad scale, bad size, bad preset."""

    exit_code = 2


class CodecError(VsrError, RuntimeError):
    """An encoder or decoder is not available in this build of FFmpeg, or rejected its options."""

    exit_code = 4


class ModelError(VsrError, RuntimeError):
    """A model cannot be found, verified or loaded."""

    exit_code = 5


class PipelineError(VsrError, RuntimeError):
    """A worker of the pipeline failed; the message carries the stage and the cause."""

    exit_code = 1


class Cancelled(VsrError):
    """The run was stopped by the user (Ctrl-C) or by SIGTERM; the output holds what was done."""

    exit_code = 130


class VerificationError(VsrError, RuntimeError):
    """The output, read back after the run, does not match the input; the output is kept."""

    exit_code = 6

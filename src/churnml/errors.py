"""Exit codes for schedulers, and the mapping from the library's known errors to them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum

log = logging.getLogger("churnml")


class ExitCode(IntEnum):
    """Process exit codes of the `churnml` command (documented in the README)."""

    OK = 0
    UNEXPECTED = 1
    BAD_INPUT = 2
    NO_CHAMPION = 3
    NO_ELIGIBLE = 4
    LOCKED = 5
    BAD_OUTPUT = 6
    TRACKING_UNAVAILABLE = 7


class SettingsError(ValueError):
    """A setting is out of its range or not one of its allowed values (bad input, exit 2)."""


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking server did not answer within its timeout (exit 7)."""


class NoEligibleCustomersError(LookupError):
    """No customer is eligible at the requested date."""


class RunLockedError(RuntimeError):
    """Another run holds the lock for the same output."""


def _known_errors() -> dict[type[BaseException], ExitCode]:
    from churnml.io import DatasetError
    from churnml.model import TrainingError
    from churnml.sampling import SamplingError
    from churnml.tracking import NoChampionError
    from churnml.validation import ContractViolation, ScoresInvalid

    return {
        ContractViolation: ExitCode.BAD_INPUT,
        DatasetError: ExitCode.BAD_INPUT,
        SamplingError: ExitCode.BAD_INPUT,
        TrainingError: ExitCode.BAD_INPUT,
        NoChampionError: ExitCode.NO_CHAMPION,
        NoEligibleCustomersError: ExitCode.NO_ELIGIBLE,
        RunLockedError: ExitCode.LOCKED,
        ScoresInvalid: ExitCode.BAD_OUTPUT,
        SettingsError: ExitCode.BAD_INPUT,
        TrackingUnavailableError: ExitCode.TRACKING_UNAVAILABLE,
    }


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code a scheduler sees for this error (1: unexpected, a bug)."""
    if isinstance(error, SystemExit) and isinstance(error.code, int):
        return ExitCode(error.code) if error.code in iter(ExitCode) else ExitCode.UNEXPECTED
    for error_type, code in _known_errors().items():
        if isinstance(error, error_type):
            return code
    return ExitCode.UNEXPECTED


@contextmanager
def exit_on_known_errors() -> Iterator[None]:
    """Turn the library's known errors into one clear message and a distinct exit code."""
    try:
        yield
    except tuple(_known_errors()) as error:
        code = exit_code_for(error)
        log.error("%s: %s", type(error).__name__, error)
        print(f"\nERROR ({code.name.lower()}, exit {int(code)}): {error}", file=sys.stderr)
        sys.exit(int(code))

"""Progress of long stages: a tqdm bar on a terminal, periodic log lines everywhere else.

A scheduler's log (cron, systemd, CI) gets no carriage-return bars: one line every
`LOG_EVERY_S` seconds and one at the end, through logging, so it lands in the run's log file.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
LOG_EVERY_S = 30.0

log = logging.getLogger("churnml.progress")


def on_terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    """Count work done (`update`) towards an optional total; bar or log lines by the stream."""

    def __init__(self, desc: str, total: float | None = None, unit: str = "it") -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.done = 0.0
        self._started = self._logged = time.monotonic()
        self._bar = (
            tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
            if on_terminal()
            else None
        )

    def update(self, n: float = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif time.monotonic() - self._logged >= LOG_EVERY_S:
            self._logged = time.monotonic()
            log.info("%s: %s", self.desc, self._status())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        log.info("%s: %s, done in %.1f s", self.desc, self._status(), self._elapsed())

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _status(self) -> str:
        done = f"{self.done:,.0f}"
        if self.total:
            return f"{done} of {self.total:,.0f} {self.unit} ({self.done / self.total:.0%})"
        return f"{done} {self.unit}"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(
    items: Iterable[T], desc: str, total: float | None = None, unit: str = "it"
) -> Iterator[T]:
    """Iterate `items`, reporting progress (`total` defaults to `len(items)` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(desc, total, unit) as bar:
        for item in items:
            yield item
            bar.update()


def lightgbm_callback(bar: Progress):
    """A LightGBM callback advancing `bar` by one boosting round."""

    def _callback(env) -> None:
        bar.update()

    _callback.order = 100  # after early stopping has had its say
    return _callback

"""Progress reporting: log lines when no terminal is attached (cron, systemd, CI)."""

from __future__ import annotations

import logging

from churnml import progress as progress_module
from churnml.progress import Progress, progress


def test_without_a_terminal_progress_goes_to_the_log(monkeypatch, caplog):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    monkeypatch.setattr(progress_module, "LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="churnml.progress"):
        assert list(progress(range(3), "chunks", unit="chunks")) == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records]
    assert "chunks: 1 of 3 chunks (33%)" in lines
    assert lines[-1].startswith("chunks: 3 of 3 chunks (100%), done in")


def test_progress_without_a_total_counts(monkeypatch, caplog):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="churnml.progress"), Progress("rounds") as bar:
        bar.update(5)
    assert caplog.records[-1].getMessage().startswith("rounds: 5 it, done in")

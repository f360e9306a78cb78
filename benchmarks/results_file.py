"""Replacing one section of benchmarks/RESULTS.md, shared by the benchmark scripts."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def record_section(section: str, text: str) -> None:
    """Put `text` (which starts with the `section` heading) in place of that section."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if section in current:
        head, rest = current.split(section, 1)
        tail = rest[rest.find("\n## ") :] if "\n## " in rest else "\n"
        current = head + text + tail
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current)

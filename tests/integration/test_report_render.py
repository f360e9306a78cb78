"""The loss-driver report renders in a real browser, offline, with no console errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from churnml.contract import CAUSE_FAMILIES

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found: install it with `apt-get install chromium` "
    "(Debian; .ci/run does this in CI)",
)
def test_report_renders_offline_without_console_errors(trained_project: Path):
    report = trained_project / "reports" / "loss_drivers.html"
    assert report.exists()
    problems: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        headings = page.evaluate(
            "Array.from(document.querySelectorAll('h2')).map(h => h.innerText)"
        )
        text = page.evaluate("document.body.innerText")
        browser.close()
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert len(images) >= 4
    assert all(complete and width > 100 and height > 100 for complete, width, height in images)
    assert {"What drives customers away", "Drivers by cause", "Segments"} <= set(headings)
    # It answers "so what": a primer, what to do per cause, money in the currency, and
    # thresholds in units, not raw fractions or feature names.
    assert {"What to do"} <= set(headings)
    assert "How to read this report" in text and "log-odds" in text
    assert re.search(r"EUR [\d,]+ of revenue at risk", text), "what-to-do lines give money"
    assert "Calls worth making" in text and "contact capacity" in text
    causes = "|".join(re.escape(label) for label in CAUSE_FAMILIES.values())
    findings = re.findall(rf"^(?:{causes}): .*churn.*$", text, flags=re.MULTILINE)
    assert findings, "findings in words"
    for line in findings:
        assert not re.search(r"[<>]= ?-?\d", line), line
        assert not re.search(r"\b[a-z]+_[a-z0-9_]+\b", line), f"raw feature name: {line}"

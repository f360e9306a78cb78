"""The generated docs are in step with the code that they describe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from churnml.contract import CONTRACT, TABLES, with_tables_doc
from churnml.features.docs import render_features_doc

ROOT = Path(__file__).resolve().parents[1]


def test_features_doc_is_generated_from_the_registry():
    committed = (ROOT / "docs" / "features.md").read_text()
    assert committed == render_features_doc(), "run `make docs` and commit docs/features.md"


def test_data_contract_tables_are_generated_from_the_contract():
    page = (ROOT / "docs" / "data-contract.md").read_text()
    assert page == with_tables_doc(page), "run `make docs` and commit docs/data-contract.md"
    for table in TABLES:
        assert f"## {table} — " in page


def test_contract_columns_match_the_shared_contract_where_it_is_present():
    """Every column row of the shared contract (../shared/data-contract.md, v2) names a column
    of churnml.contract with the same type and rule text."""
    shared = ROOT.parent / "shared" / "data-contract.md"
    if not shared.is_file():
        pytest.skip("no ../shared/data-contract.md beside this checkout")
    table = None
    rows = 0
    for line in shared.read_text().splitlines():
        heading = re.match(r"## (\w+) — ", line)
        if heading:
            table = heading.group(1) if heading.group(1) in CONTRACT else None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if table is None or len(cells) != 3 or cells[0] in ("column", "---"):
            continue
        for name in cells[0].split(", "):
            column = CONTRACT[table].column(name)
            assert (column.doc_type or column.kind) == cells[1], (table, name)
            rows += 1
    assert rows >= 50

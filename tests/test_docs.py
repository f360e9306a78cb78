"""The generated docs are in step with the code that they describe."""

from __future__ import annotations

from pathlib import Path

from churnml.features.docs import render_features_doc

ROOT = Path(__file__).resolve().parents[1]


def test_features_doc_is_generated_from_the_registry():
    committed = (ROOT / "docs" / "features.md").read_text()
    assert committed == render_features_doc(), "run `make docs` and commit docs/features.md"


def test_data_contract_copy_matches_the_shared_contract_sections():
    contract = (ROOT / "docs" / "data-contract.md").read_text()
    for table in ("customers", "calls", "transfers", "complaints", "bills", "payments"):
        assert f"## {table}" in contract

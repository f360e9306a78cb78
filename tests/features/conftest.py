"""Fixtures of the feature-library tests (helpers live in feature_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from feature_fixtures import CUTOFF, tiny_tables, write_tables


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    return write_tables(tiny_tables(), tmp_path / "tiny")


@pytest.fixture
def tiny_spine() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list("ABCDEF"), "cutoff": [CUTOFF] * 6})

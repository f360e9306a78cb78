"""Rolling-origin evaluation: folds, embargo, refit window, and models that never see their test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml import training
from churnml.config import LabelConfig, ModelConfig, SamplingConfig
from churnml.sampling import (
    SamplingError,
    customer_half,
    plan_cutoffs,
    plan_folds,
    plan_rolling,
)
from churnml.training import fit_rolling, fold_rows

WINDOW = pd.Timedelta(days=60)
AS_OF = pd.Timestamp("2025-12-31 23:59:59")
MONTHS = list(pd.date_range("2024-04-01", "2025-11-01", freq="MS"))


def test_each_fold_learns_only_from_labels_that_end_before_its_test_cutoff():
    folds = plan_folds(MONTHS, WINDOW, folds=3, max_train_cutoffs=12)
    assert [f.test_cutoff for f in folds] == MONTHS[-1:-4:-1]  # newest first
    for fold in folds:
        assert fold.embargoed and fold.validation_cutoff is not None
        assert fold.validation_cutoff + WINDOW <= fold.test_cutoff
        assert all(c + WINDOW <= fold.validation_cutoff for c in fold.train_cutoffs)
        assert len(fold.train_cutoffs) == 12


def test_refit_learns_from_every_labelled_cutoff_test_cutoffs_included():
    plan, folds, refit = plan_rolling(
        SamplingConfig(max_train_cutoffs=24), LabelConfig(), AS_OF, pd.Timestamp("2025-01-01")
    )
    labelled = pd.date_range("2025-04-01", "2025-11-01", freq="MS")
    assert list(refit) == list(labelled)
    assert {f.test_cutoff for f in folds} <= set(refit)
    assert max(refit) == pd.Timestamp("2025-11-01")  # Dec 1 + 60 days runs past as_of
    roles = plan.set_index("cutoff")["split"]
    assert all(roles[f.test_cutoff] == "test" for f in folds)


def test_eight_months_give_two_folds_where_the_single_split_gives_none():
    first_event, as_of = pd.Timestamp("2025-01-01"), pd.Timestamp("2025-09-01")
    with pytest.raises(SamplingError, match="no training cutoff"):
        plan_cutoffs(SamplingConfig(scheme="single_split"), LabelConfig(), as_of, first_event)
    _plan, folds, refit = plan_rolling(SamplingConfig(), LabelConfig(), as_of, first_event)
    assert [f.test_cutoff for f in folds] == [
        pd.Timestamp("2025-07-01"),
        pd.Timestamp("2025-06-01"),
    ]
    assert all(f.embargoed for f in folds)
    assert all(max(f.train_cutoffs) + WINDOW <= f.test_cutoff for f in folds)
    assert max(refit) == pd.Timestamp("2025-07-01")


def test_six_months_give_one_fold_on_disjoint_customers():
    first_event, as_of = pd.Timestamp("2025-01-01"), pd.Timestamp("2025-07-01")
    _plan, folds, refit = plan_rolling(SamplingConfig(), LabelConfig(), as_of, first_event)
    assert len(folds) == 1 and not folds[0].embargoed
    assert folds[0].test_cutoff == pd.Timestamp("2025-05-01")
    assert pd.Timestamp("2025-05-01") not in folds[0].train_cutoffs
    frame = _frame(pd.DatetimeIndex(refit), customers=400)
    train, validation, test = fold_rows(frame, folds[0])
    assert set(test["cutoff"]) == {folds[0].test_cutoff}
    trained = set(train["customer_id"]) | set(validation["customer_id"])
    assert trained.isdisjoint(set(test["customer_id"]))
    assert len(test) > 150 and len(train) > 100


def test_one_labelled_cutoff_is_refused_clearly():
    first_event, as_of = pd.Timestamp("2025-01-01"), pd.Timestamp("2025-06-15")
    with pytest.raises(SamplingError, match="rolling evaluation needs 2"):
        plan_rolling(SamplingConfig(), LabelConfig(), as_of, first_event)


def test_customer_halves_depend_only_on_the_id():
    ids = pd.Series([f"C{i}" for i in range(1000)])
    halves = customer_half(ids)
    assert set(halves) == {0, 1} and 400 < halves.sum() < 600
    assert (customer_half(ids[::-1].reset_index(drop=True)) == halves[::-1]).all()


def _frame(cutoffs: pd.DatetimeIndex, customers: int = 600, seed: int = 0) -> pd.DataFrame:
    """Rows per (customer, cutoff) with one informative feature and one noise feature."""
    rng = np.random.default_rng(seed)
    rows = []
    for cutoff in cutoffs:
        signal = rng.normal(size=customers)
        label = rng.random(customers) < 1 / (1 + np.exp(-(signal * 1.5 - 2.0)))
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": [f"C{i}" for i in range(customers)],
                    "cutoff": cutoff,
                    "label": label.astype("int8"),
                    "weight": 1.0,
                    "signal": signal,
                    "noise": rng.normal(size=customers),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


MODEL = ModelConfig(
    params={"learning_rate": 0.1, "num_leaves": 4, "verbosity": -1, "num_threads": 1},
    num_boost_round=200,
    early_stopping_rounds=10,
)


def test_fold_models_never_see_their_test_cutoff(monkeypatch: pytest.MonkeyPatch):
    cutoffs = pd.date_range("2025-01-01", "2025-08-01", freq="MS")
    frame = _frame(cutoffs)
    folds = plan_folds(list(cutoffs), WINDOW, folds=3, max_train_cutoffs=12)
    seen: list[set] = []
    real = training.train_model

    def recording(train, validation, *args, **kwargs):
        seen.append(set(train["cutoff"]) | set(validation["cutoff"]))
        return real(train, validation, *args, **kwargs)

    monkeypatch.setattr(training, "train_model", recording)
    fitted = fit_rolling(frame, folds, list(cutoffs), ["signal", "noise"], MODEL, seed=1)
    assert len(seen) == len(folds) == 3
    for fold, cutoffs_seen in zip(folds, seen, strict=True):
        assert fold.test_cutoff not in cutoffs_seen
        assert all(c + WINDOW <= fold.test_cutoff for c in cutoffs_seen)
    assert {f.test_cutoff for f in folds} <= set(fitted.refit_rows["cutoff"])
    iterations = [f.best_iteration for f in fitted.folds]
    assert fitted.rounds == round(float(np.mean(iterations)))
    assert fitted.model.estimator.num_trees() == fitted.rounds

    # The newest cutoff's labels reach no fold model: shuffling them changes none of their
    # scores, but changes the refit (which learns from them).
    newest = frame["cutoff"] == cutoffs[-1]
    shuffled = frame.copy()
    shuffled.loc[newest, "label"] = np.random.default_rng(5).permutation(
        frame.loc[newest, "label"].to_numpy()
    )
    again = fit_rolling(shuffled, folds, list(cutoffs), ["signal", "noise"], MODEL, seed=1)
    for before, after in zip(fitted.folds, again.folds, strict=True):
        assert np.allclose(before.model.predict_raw(frame), after.model.predict_raw(frame))
    assert not np.allclose(fitted.model.predict_raw(frame), again.model.predict_raw(frame))

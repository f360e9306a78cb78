"""Tests of the churn simulator: determinism, data contract, churn rates, truth and traces."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from churnml.config import CONF_DIR
from churnml.simulate import SimulationParams, simulate_dataset
from churnml.simulate.catalog import ALL_CAUSES, CAUSES, HIDDEN_CAUSES
from churnml.simulate.truth import read_decomposition
from churnml.simulate.writer import SCHEMAS

TABLES = ("customers", "calls", "transfers", "complaints", "bills", "payments")
SMALL = {"n_customers": 600, "n_months": 6, "chunk_size": 250}


def _read(out_dir: Path) -> dict[str, pd.DataFrame]:
    tables = {name: pd.read_parquet(out_dir / f"{name}.parquet") for name in TABLES}
    tables["truth"] = pd.read_parquet(out_dir / "truth" / "churn_probability.parquet")
    return tables


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="simulate", overrides=list(overrides))


def _params(cfg) -> SimulationParams:
    merged = OmegaConf.merge(OmegaConf.structured(SimulationParams), cfg.simulate)
    return OmegaConf.to_object(merged)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    """A small dataset simulated in three chunks, with a price rise and a network incident."""
    params = SimulationParams(
        name="small",
        n_customers=1500,
        n_months=8,
        chunk_size=600,
        seed=7,
        price_rise_month=3,
        network_incident_month=2,
    )
    out = simulate_dataset(params, tmp_path_factory.mktemp("sim") / "small")
    return out, _read(out)


# -- configs ---------------------------------------------------------------------------------
def test_default_yaml_matches_schema_defaults():
    cfg = _compose()
    assert _params(cfg) == SimulationParams()


def test_tiny_config_generates_a_dataset(tmp_path):
    cfg = _compose("simulate=tiny", f"paths.root_dir={tmp_path}")
    params = _params(cfg)
    assert params.n_customers == 500
    out = simulate_dataset(params, Path(cfg.paths.raw_dir) / params.name)
    assert out == tmp_path / "data" / "raw" / "telco_tiny"
    for name in TABLES:
        assert (out / f"{name}.parquet").exists()
    assert (out / "truth" / "churn_probability.parquet").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_pipeline_entry_point_writes_under_raw_dir(tmp_path):
    env = {**os.environ, "CHURNML_ROOT": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-m", "churnml", "simulate", "simulate=tiny", "simulate.n_customers=200"],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
    )
    out = tmp_path / "data" / "raw" / "telco_tiny"
    customers = pd.read_parquet(out / "customers.parquet")
    # n_customers subscriptions at first; win-backs come on top as new subscriptions.
    assert customers["previous_customer_id"].isna().sum() == 200
    assert list((tmp_path / "logs" / "simulate").glob("*/simulate.log"))


def test_default_is_hard_and_easy_records_every_cause():
    default, easy = _params(_compose()), _params(_compose("simulate=easy"))
    assert default.hidden_share > 0 and easy.hidden_share == 0
    assert easy.name != default.name  # never overwrites the default dataset
    assert (easy.n_customers, easy.n_months) == (default.n_customers, default.n_months)


def test_large_config_is_one_million_over_four_months():
    params = _params(_compose("simulate=large"))
    assert (params.n_customers, params.n_months) == (1_000_000, 4)
    assert params.chunk_size <= 100_000


def test_start_date_must_be_a_first_of_month(tmp_path):
    with pytest.raises(ValueError, match="first day of a month"):
        simulate_dataset(SimulationParams(start_date="2024-01-15", **SMALL), tmp_path / "x")


# -- determinism -----------------------------------------------------------------------------
def test_same_params_give_identical_tables(tmp_path):
    params = SimulationParams(**SMALL)
    a = simulate_dataset(params, tmp_path / "a")
    b = simulate_dataset(params, tmp_path / "b")
    for name in (*TABLES, "truth/churn_probability"):
        assert (a / f"{name}.parquet").read_bytes() == (b / f"{name}.parquet").read_bytes(), name
    assert (a / "manifest.json").read_text() == (b / "manifest.json").read_text()
    assert read_decomposition(a) == read_decomposition(b)


def test_hidden_states_leave_no_trace_in_the_tables(tmp_path):
    """With hidden_share 0 the hidden states act on nothing: changing how they move leaves
    every table byte for byte the same, so they can only ever reach the data through exits."""
    a = simulate_dataset(SimulationParams(hidden_share=0.0, **SMALL), tmp_path / "a")
    b = simulate_dataset(
        SimulationParams(
            hidden_share=0.0,
            hidden_offer_rate=0.5,
            hidden_move_rate=0.2,
            hidden_frustration_sigma=3.0,
            **SMALL,
        ),
        tmp_path / "b",
    )
    for name in (*TABLES, "truth/churn_probability"):
        assert (a / f"{name}.parquet").read_bytes() == (b / f"{name}.parquet").read_bytes(), name
    truth = pd.read_parquet(a / "truth/churn_probability.parquet")
    assert (truth[[f"hazard_{c}" for c in HIDDEN_CAUSES]] == 0).all().all()
    assert read_decomposition(a)["hazard_share"]["hidden"] == 0.0


def test_different_seed_gives_different_tables(tmp_path):
    a = simulate_dataset(SimulationParams(seed=1, **SMALL), tmp_path / "a")
    b = simulate_dataset(SimulationParams(seed=2, **SMALL), tmp_path / "b")
    ca, cb = pd.read_parquet(a / "customers.parquet"), pd.read_parquet(b / "customers.parquet")
    assert not ca.equals(cb)
    assert len(pd.read_parquet(a / "calls.parquet")) != len(pd.read_parquet(b / "calls.parquet"))


def test_failed_run_leaves_no_table_under_its_final_name(tmp_path, monkeypatch):
    from churnml.simulate import engine

    def boom(self, sink):
        raise RuntimeError("killed")

    monkeypatch.setattr(engine._ChunkSimulator, "_write_tables", boom)
    with pytest.raises(RuntimeError, match="killed"):
        simulate_dataset(SimulationParams(**SMALL), tmp_path / "x")
    assert [p.name for p in (tmp_path / "x").rglob("*") if p.is_file()] == []


# -- data contract ---------------------------------------------------------------------------
def test_schemas_are_the_contract_columns(small):
    out, _ = small
    for name in (*TABLES, "truth"):
        path = out / ("truth/churn_probability.parquet" if name == "truth" else f"{name}.parquet")
        assert pq.read_schema(path).remove_metadata() == SCHEMAS[name], name
    calls = pq.read_schema(out / "calls.parquet")
    assert calls.field("started_at").type == pa.timestamp("us")
    assert calls.field("customer_id").type == pa.string()
    truth = pq.read_schema(out / "truth/churn_probability.parquet")
    assert {f"hazard_{c}" for c in ALL_CAUSES} <= set(truth.names)
    assert "p_voluntary_recorded" in truth.names


def test_manifest(small):
    out, t = small
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["as_of"] == "2024-09-01T00:00:00"
    assert manifest["generator"] == "churnml.simulate"
    assert manifest["seed"] == 7 and manifest["params"]["n_customers"] == 1500
    for name in TABLES:
        assert manifest["row_counts"][name] == len(t[name])


def test_customers_rules(small):
    _, t = small
    c = t["customers"]
    assert c.previous_customer_id.isna().sum() == 1500
    assert c.customer_id.is_unique and c.customer_id.notna().all()
    act = pd.to_datetime(c.activated_at)
    term = pd.to_datetime(c.terminated_at)
    assert act.notna().all()
    assert (term.isna() | (term >= act)).all()
    assert set(c.termination_reason.dropna()) <= {"voluntary", "port_out", "non_payment", "other"}
    assert (c.termination_reason.isna() == term.isna()).all()
    assert c.initial_plan_id.notna().all()
    assert set(c.payment_type) == {"prepaid", "postpaid"}
    assert 0.3 < (c.payment_type == "prepaid").mean() < 0.5
    assert c.commitment_end[c.payment_type == "prepaid"].isna().all()
    assert c.birth_year.dropna().between(1900, 2015).all()
    assert set(c.gender.dropna()) <= {"F", "M", "U"}
    assert 5 <= c.region.nunique() <= 8
    # Activations are spread over years before the window and continue inside it.
    assert (act < "2020-01-01").mean() > 0.2
    assert (act >= "2024-01-01").mean() > 0.03


def _check_in_lifetime(events: pd.DataFrame, time_col: str, customers: pd.DataFrame, as_of):
    """Every event lies in [activated_at, terminated_at) and not after as_of."""
    c = customers.set_index("customer_id")
    assert events.customer_id.isin(c.index).all()
    ts = pd.to_datetime(events[time_col])
    act = pd.to_datetime(c.activated_at.reindex(events.customer_id).to_numpy())
    term = pd.to_datetime(c.terminated_at.reindex(events.customer_id).to_numpy())
    ok = ts.isna().to_numpy() | (
        (ts.to_numpy() >= act) & (pd.isna(term) | (ts.to_numpy() < term)) & (ts <= as_of)
    )
    assert ok.all(), f"{time_col}: {int((~ok).sum())} rows outside the customer's lifetime"


def test_no_event_outside_lifetime_or_after_as_of(small):
    out, t = small
    as_of = pd.Timestamp(json.loads((out / "manifest.json").read_text())["as_of"])
    for table, column in [
        ("calls", "started_at"),
        ("transfers", "occurred_at"),
        ("complaints", "opened_at"),
        ("complaints", "resolved_at"),
        ("bills", "issued_at"),
        ("payments", "paid_at"),
    ]:
        _check_in_lifetime(t[table], column, t["customers"], as_of)
    c = t["customers"]
    assert (pd.to_datetime(c.activated_at) <= as_of).all()
    assert (pd.to_datetime(c.terminated_at).dropna() <= as_of).all()


def test_calls_rules(small):
    _, t = small
    k = t["calls"]
    assert set(k.direction) == {"out", "in"}
    assert set(k.kind) == {"voice", "sms", "data"}
    assert (k.duration_s >= 0).all()
    assert (k.duration_s[k.kind != "voice"] == 0).all()
    data = k.kind == "data"
    assert (k.volume_mb[data] > 0).all() and k.volume_mb[~data].isna().all()
    assert k.peer_network[data].isna().all() and k.peer_id[data].isna().all()
    assert k.peer_operator[data].isna().all()
    assert set(k.peer_network.dropna()) == {"on_net", "off_net", "fixed", "international"}
    assert k.peer_id[~data].notna().all()
    assert k.peer_operator[k.peer_network != "off_net"].isna().all()
    assert k.peer_operator[k.peer_network == "off_net"].notna().all()
    assert k.peer_operator.nunique() == 3
    # On-net peers are subscribers; other peers are pseudonyms, never phone numbers.
    on = k.peer_network == "on_net"
    assert k.peer_id[on].isin(t["customers"].customer_id).all()
    assert not k.peer_id.dropna().str.fullmatch(r"\+?\d+").any()
    assert k.dropped.dtype == bool and k.dropped[k.kind != "voice"].eq(False).all()
    # Daily rhythm: far more traffic at 18:00 than at 04:00.
    hours = k.started_at.dt.hour.value_counts()
    assert hours[18] > 10 * hours[4]
    per_month = k.groupby([k.customer_id, k.started_at.dt.to_period("M")]).size()
    assert 30 < per_month.mean() < 90


def test_transfers_rules(small):
    _, t = small
    tr = t["transfers"]
    kinds = {
        "port_out_query", "port_out_request", "port_out_cancel", "plan_change",
        "ownership_change", "sim_swap", "balance_transfer_out", "balance_transfer_in",
    }  # fmt: skip
    assert set(tr.kind) == kinds
    plan = tr.kind == "plan_change"
    assert tr.loc[plan, ["from_plan_id", "to_plan_id", "monthly_fee"]].notna().all().all()
    assert (tr.monthly_fee[plan] >= 0).all()
    assert (tr.from_plan_id[plan] != tr.to_plan_id[plan]).all()
    assert tr.loc[~plan, ["from_plan_id", "to_plan_id", "monthly_fee"]].isna().all().all()
    port = tr.kind.str.startswith("port_out")
    assert tr.operator[port].notna().all() and tr.operator[~port].isna().all()
    bal = tr.kind.str.startswith("balance_transfer")
    assert (tr.amount[bal] >= 0).all() and tr.amount[~bal].isna().all()


def test_complaints_rules(small):
    _, t = small
    k = t["complaints"]
    assert k.complaint_id.is_unique
    assert (k.resolved_at.isna() | (k.resolved_at >= k.opened_at)).all()
    assert set(k.category) <= {"billing", "network", "service", "price", "product", "other"}
    assert set(k.channel) <= {"call_center", "store", "online", "regulator"}
    assert k.severity.between(1, 3).all()
    assert k.satisfaction.dropna().between(1, 5).all()
    assert k.satisfaction[k.resolved_at.isna()].isna().all()
    assert k.resolved_at.isna().any() and k.satisfaction.notna().any()


def test_bills_and_payments_rules(small):
    _, t = small
    b, p, c = t["bills"], t["payments"], t["customers"]
    assert b.bill_id.is_unique and p.payment_id.is_unique
    period = pd.to_datetime(b.period_start)
    assert (period.dt.day == 1).all()
    assert (pd.to_datetime(b.due_at) >= pd.to_datetime(b.issued_at)).all()
    assert (pd.to_datetime(b.issued_at) > period).all()
    assert (b.amount_due >= 0).all()
    postpaid = c.customer_id[c.payment_type == "postpaid"]
    assert b.customer_id.isin(postpaid).all()
    assert not b.duplicated(["customer_id", "period_start"]).any()
    assert (p.amount > 0).all()
    paid_bills = p.dropna(subset=["bill_id"]).merge(b, on="bill_id", suffixes=("", "_bill"))
    assert len(paid_bills) == p.bill_id.notna().sum()
    assert (paid_bills.customer_id == paid_bills.customer_id_bill).all()
    assert (paid_bills.paid_at >= pd.to_datetime(paid_bills.issued_at)).all()
    assert not p.bill_id.dropna().duplicated().any()
    topups = p[p.bill_id.isna()]
    assert topups.customer_id.isin(c.customer_id[c.payment_type == "prepaid"]).all()
    # Most bills paid on time, some late, some never.
    late = paid_bills.paid_at > pd.to_datetime(paid_bills.due_at)
    assert 0.02 < late.mean() < 0.3
    assert len(paid_bills) < len(b)


# -- truth -----------------------------------------------------------------------------------
def _outcomes(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Truth rows with the realised exit of each customer-month."""
    truth = t["truth"]
    c = t["customers"].set_index("customer_id")
    term = pd.to_datetime(c.terminated_at.reindex(truth.customer_id).to_numpy())
    reason = c.termination_reason.reindex(truth.customer_id).to_numpy()
    same = (term.to_period("M") == truth.month.dt.to_period("M")).to_numpy()
    return truth.assign(
        vol=same & np.isin(reason, ["voluntary", "port_out"]),
        inv=same & np.isin(reason, ["non_payment", "other"]),
    )


def test_truth_rows_are_the_active_customer_months(small):
    _, t = small
    truth, c = t["truth"], t["customers"]
    assert truth.p_voluntary.between(0, 1).all() and truth.p_involuntary.between(0, 1).all()
    assert (truth.p_voluntary + truth.p_involuntary <= 1 + 1e-12).all()
    assert set(truth.main_cause) <= set(ALL_CAUSES)
    assert truth.p_voluntary_recorded.between(0, 1).all()
    hazards = truth[[f"hazard_{cause}" for cause in ALL_CAUSES]]
    assert (hazards >= 0).all().all()
    assert np.allclose(1 - np.exp(-hazards.sum(axis=1)), truth.p_voluntary)
    assert (hazards.idxmax(axis=1).str.removeprefix("hazard_") == truth.main_cause).all()
    expected = []
    act = pd.to_datetime(c.activated_at)
    term = pd.to_datetime(c.terminated_at)
    for month in pd.date_range("2024-01-01", periods=8, freq="MS"):
        active = (act < month) & (term.isna() | (term >= month))
        expected.append(pd.DataFrame({"customer_id": c.customer_id[active], "month": month}))
    expected = pd.concat(expected).sort_values(["customer_id", "month"]).reset_index(drop=True)
    got = truth[["customer_id", "month"]].sort_values(["customer_id", "month"])
    assert not got.duplicated().any()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)
    # Every exit happens in a month the customer was at risk.
    o = _outcomes(t)
    assert o.vol.sum() + o.inv.sum() == term.notna().sum()


@pytest.mark.slow
def test_churn_rates_and_truth_calibration(tmp_path):
    out = simulate_dataset(
        SimulationParams(n_customers=12_000, n_months=12, seed=3), tmp_path / "mid"
    )
    o = _outcomes(_read(out))
    n = len(o)
    assert 0.015 <= o.vol.mean() <= 0.025
    assert 0.003 <= o.inv.mean() <= 0.006
    for flag, p in (("vol", "p_voluntary"), ("inv", "p_involuntary")):
        sd = np.sqrt((o[p] * (1 - o[p])).sum()) / n
        assert abs(o[flag].mean() - o[p].mean()) < 4 * sd, flag
    # Calibration holds within risk deciles too, and the truth ranks churners well.
    decile = pd.qcut(o.p_voluntary, 5, labels=False, duplicates="drop")
    by = o.groupby(decile).agg(p=("p_voluntary", "mean"), y=("vol", "mean"), n=("vol", "size"))
    assert (abs(by.y - by.p) < 4 * np.sqrt(by.p * (1 - by.p) / by.n)).all()
    from sklearn.metrics import roc_auc_score

    assert 0.78 < roc_auc_score(o.vol, o.p_voluntary) < 0.95
    # Hidden causes: what the tables record ranks the month's leavers several points below
    # the truth (the default is as hard as real operator data), and the decomposition says so.
    recorded = roc_auc_score(o.vol, o.p_voluntary_recorded)
    assert 0.04 < roc_auc_score(o.vol, o.p_voluntary) - recorded < 0.2
    assert read_decomposition(out)["monthly_roc_auc"]["gap"] == pytest.approx(
        roc_auc_score(o.vol, o.p_voluntary) - recorded
    )


def test_decomposition_adds_up_and_matches_the_truth(small):
    out, t = small
    truth = t["truth"]
    d = read_decomposition(out)
    causes = d["causes"]
    assert set(causes) == set(ALL_CAUSES)
    assert {causes[c]["kind"] for c in HIDDEN_CAUSES} == {"hidden"}
    assert {causes[c]["kind"] for c in CAUSES} == {"recorded"}
    assert sum(v["hazard_share"] for v in causes.values()) == pytest.approx(1.0)
    assert sum(v["exit_share"] for v in causes.values()) == pytest.approx(1.0)
    # Hand-computed from the truth rows: hidden hazard over all hazard.
    hidden = truth[[f"hazard_{c}" for c in HIDDEN_CAUSES]].to_numpy().sum()
    total = truth[[f"hazard_{c}" for c in ALL_CAUSES]].to_numpy().sum()
    assert d["hazard_share"]["hidden"] == pytest.approx(hidden / total)
    # The hidden causes carry about hidden_share of the hazard (less: lock-ins hold some back).
    assert 0.15 < d["hazard_share"]["hidden"] <= SimulationParams().hidden_share + 0.02
    # Expected exits split p_voluntary over the causes without losing any.
    expected = sum(v["expected_exits"] for v in causes.values())
    assert expected == pytest.approx(truth.p_voluntary.sum())
    o = _outcomes(t)
    assert d["voluntary_exits"] == o.vol.sum()
    # The truth knows the hidden causes; the recorded causes alone rank the leavers worse.
    ranking = d["monthly_roc_auc"]
    assert ranking["truth"] > ranking["recorded_causes_only"]


# -- planted causes leave traces -------------------------------------------------------------
@pytest.mark.slow
def test_causes_leave_traces_before_the_exit(tmp_path):
    out = simulate_dataset(
        SimulationParams(n_customers=8_000, n_months=10, seed=11), tmp_path / "trace"
    )
    t = _read(out)
    o = _outcomes(t)
    calls = t["calls"]
    calls = calls[calls.peer_network.notna()]
    month = calls.started_at.dt.to_period("M").dt.to_timestamp() + pd.offsets.MonthBegin(1)
    share = (
        (calls.peer_network == "off_net")
        .groupby([calls.customer_id, month.rename("month")])
        .mean()
        .rename("offnet_prev_month")
    )
    o = o.join(share, on=["customer_id", "month"])
    churn_comp = o[o.vol & (o.main_cause == "competitor")].offnet_prev_month.mean()
    stay = o[~o.vol & ~o.inv].offnet_prev_month.mean()
    assert churn_comp > stay + 0.1

    # Port-out leavers: a port_out_request before the exit, naming an operator.
    c = t["customers"]
    ported = c[c.termination_reason == "port_out"]
    req = t["transfers"][t["transfers"].kind == "port_out_request"]
    assert ported.customer_id.isin(req.customer_id).all()

    # Poor-network regions drop more calls.
    voice = t["calls"][t["calls"].kind == "voice"].merge(c[["customer_id", "region"]])
    drop = voice.groupby("region").dropped.mean()
    assert drop["Islands"] > 3 * drop["Capital"]

    # Usage-decline leavers made fewer calls in the month before than three months earlier.
    n_calls = t["calls"].groupby([t["calls"].customer_id, t["calls"].started_at.dt.to_period("M")])
    counts = n_calls.size().rename("n").reset_index()
    counts["month"] = counts.started_at.dt.to_timestamp()
    counts = counts.set_index(["customer_id", "month"]).n
    decl = o[o.vol & (o.main_cause == "usage_decline") & (o.month >= "2024-05-01")]

    def calls_in(months_back: int) -> float:
        keys = pd.MultiIndex.from_arrays(
            [decl.customer_id, decl.month - pd.DateOffset(months=months_back)]
        )
        return counts.reindex(keys).fillna(0).sum()

    assert calls_in(1) < 0.8 * calls_in(4)

    # Hazard rises around the end of the lock-in.
    cust = c.set_index("customer_id")
    end = pd.to_datetime(cust.commitment_end.reindex(o.customer_id).to_numpy())
    months_to_end = (end - o.month).dt.days / 30.44
    near = (months_to_end > -1) & (months_to_end < 2)
    locked = months_to_end > 4
    assert o.vol[near].mean() > 2 * o.vol[locked].mean()


def test_params_are_plain_types():
    for field in dataclasses.fields(SimulationParams):
        assert field.type in ("str", "int", "float", "bool"), field.name

"""Monthly retention campaigns in the simulator: targeting, a randomized control group, offers,
contact, acceptance and heterogeneous effects that change who churns.

At the start of every month from `campaign_start_month` on, the operator picks a share of the
active base (`campaign_share`): mostly its riskiest, most valuable customers (the simulator's
recorded-cause probability x monthly fee, a stand-in for the champion's score), and a random
slice of the other eligible customers (`campaign_explore_share`, so an uplift model sees more
than the top of the list). A random `campaign_control_share` of them is held out (control,
never contacted). Treatment customers get an offer chosen from their main recorded cause (a
random offer for a quarter of them), on a channel chosen by value; contact succeeds with the
channel's reach, and a contacted customer accepts with a probability that depends on who they
are. A customer assigned to a campaign is not eligible again for `campaign_cooldown_months`
(at least the three months of follow-up), so control customers stay uncontacted while the
review watches them.

Who a customer is, drawn at assignment from what the tables can show:
- persuadable (more likely when the risk comes from causes an offer addresses: price,
  competitor, contract, service): an accepted offer cuts the voluntary hazard by
  `SAVE_MATCHED` (offer fits the main cause) or `SAVE_OTHER` for `EFFECT_MONTHS` months; a
  contact declined still helps a little (`SAVE_DECLINED`);
- sleeping dog (more likely out of contract, or without one, after two years): the contact
  reminds them they are free to go: the hazard is multiplied by 1 + `HARM_FACTOR` and raised
  by `HARM_ADD` a month for `EFFECT_MONTHS` months, accepted or not;
- unaffected: nothing changes.
`campaign_effect_scale` scales every effect (0: contacts change nothing).

Truth. The effects act on the monthly voluntary hazard, so they change the uniform draw's
outcome and the exits written to `customers`. For every assigned customer (either group) the
simulator also follows, for `EFFECT_MONTHS` months, the hazards without a contact and with
one (the customer's own potential reach and acceptance, drawn for control customers too), on
the same latent path, and turns them into the probabilities of a voluntary exit within 1, 2
and 3 months (competing with involuntary exits). `truth/campaign_effects.parquet` holds them
per (campaign, customer): `effect_<k>m` (the reduction of the churn probability by being
assigned to treatment: zero unless reached) and `uplift_<k>m` (by a contact). For a customer
who leaves during the follow-up, the later months use the latent states, which go on moving.
A campaign's true effect is the mean of `effect_<k>m` over its customers
(`truth/campaigns.json`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from churnml.simulate import catalog
from churnml.simulate.population import DAYS_PER_MONTH
from churnml.simulate.writer import take_str, to_float, to_int, to_ts

if TYPE_CHECKING:
    from churnml.simulate.engine import _ChunkSimulator
    from churnml.simulate.writer import DatasetSink

EFFECT_MONTHS = 3
CHANNELS = np.array(["call_center", "sms", "email", "store", "app"])
CHANNEL_MIX = np.array([0.15, 0.35, 0.25, 0.05, 0.20])  # below the top value decile
REACH = np.array([0.65, 0.90, 0.60, 0.35, 0.50])  # chance a contact gets through
OFFERS = np.array(["discount", "plan_upgrade", "handset", "loyalty_points", "none"])
OFFER_COST = np.array([36.0, 15.0, 120.0, 10.0, 0.0])  # cost to the operator if accepted
OFFER_APPEAL = np.array([1.0, 0.8, 1.1, 0.7, 0.9])
TYPES = np.array(["persuadable", "unaffected", "sleeping_dog"])
PERSUADABLE, UNAFFECTED, SLEEPING_DOG = 0, 1, 2
ACCEPT = np.array([0.65, 0.25, 0.10])  # by type, before the offer's appeal
SAVE_MATCHED, SAVE_OTHER, SAVE_DECLINED = 0.8, 0.45, 0.15
HARM_FACTOR, HARM_ADD = 0.5, 0.01
RANDOM_OFFER_SHARE = 0.25
# The offer the playbook makes for each recorded cause (catalog.CAUSES order).
_CAUSE_OFFER = {
    "usage_decline": "plan_upgrade",
    "competitor": "discount",
    "network_quality": "loyalty_points",
    "service_complaints": "none",
    "billing_arrears": "none",
    "price": "discount",
    "contract_lifecycle": "handset",
    "tenure_value": "loyalty_points",
}
_FIXABLE = ("competitor", "service_complaints", "price", "contract_lifecycle")
CAMPAIGN_TABLE = "campaigns"
TRUTH_TABLE = "campaign_truth"


def campaigns_enabled(params) -> bool:
    return 0 <= params.campaign_start_month < params.n_months and params.campaign_share > 0


def campaign_id(year: int, month0: int) -> str:
    """`RET-2025-07` for the campaign of July 2025 (month0: 0 = January)."""
    return f"RET-{year:04d}-{month0 + 1:02d}"


class _Cohort:
    """The customers of one campaign in one chunk, followed for EFFECT_MONTHS months."""

    def __init__(self, month: int, idx: np.ndarray, **arrays: np.ndarray) -> None:
        self.month = month
        self.idx = idx
        for name, value in arrays.items():
            setattr(self, name, value)
        n = len(idx)
        self.surv = {k: np.ones(n) for k in ("untreated", "contacted", "assigned")}
        self.churn = {k: np.full((EFFECT_MONTHS, n), np.nan) for k in self.surv}
        self.pending: dict[str, np.ndarray] = {}


class CampaignRun:
    """Runs the month's campaign and applies the effects of the open ones, for one chunk."""

    def __init__(self, sim: _ChunkSimulator) -> None:
        self.sim = sim
        p = sim.params
        self.rng = np.random.default_rng(np.random.SeedSequence(p.seed, spawn_key=(sim.chunk, 2)))
        self.cooldown = max(int(p.campaign_cooldown_months), EFFECT_MONTHS)
        self.last_month = np.full(sim.n, -(10**6), dtype=np.int64)
        self.cohorts: list[_Cohort] = []
        self.done: list[_Cohort] = []
        cause_index = {c: i for i, c in enumerate(catalog.CAUSES)}
        offer_index = {o: i for i, o in enumerate(OFFERS)}
        self.cause_offer = np.array([offer_index[_CAUSE_OFFER[c]] for c in catalog.CAUSES])
        self.fixable = np.array([cause_index[c] for c in _FIXABLE])

    # -- the month ------------------------------------------------------------------------
    def followed(self) -> np.ndarray:
        """Customers whose hazards the open campaigns follow (at risk or not)."""
        mask = np.zeros(self.sim.n, dtype=bool)
        for cohort in self.cohorts:
            mask[cohort.idx] = True
        return mask

    def treat(self, m: int, h: np.ndarray, recorded: np.ndarray, at_risk: np.ndarray) -> None:
        """Assign this month's campaign, then apply every open campaign's effect to `h` (in
        place: the hazards the month's exits are drawn from) and keep both potential paths."""
        p = self.sim.params
        if m >= p.campaign_start_month:
            self._assign(m, h, recorded, at_risk)
        for cohort in self.cohorts:
            idx = cohort.idx
            base = h[:, idx]
            total = base.sum(axis=0)
            contacted = self._contacted_total(cohort, total)
            assigned = np.where(cohort.treatment & cohort.reached, contacted, total)
            cohort.pending = {"untreated": total, "contacted": contacted, "assigned": assigned}
            # Scale every cause alike; an added hazard on a zero one goes to competitor pull.
            ratio = np.divide(assigned, total, out=np.ones_like(total), where=total > 0)
            h[:, idx] = base * ratio
            extra = np.where(total > 0, 0.0, assigned)
            h[1, idx] += extra

    def follow(self, m: int, p_inv_raw: np.ndarray) -> None:
        """Turn the month's potential hazards into churn-by-month probabilities; close the
        campaigns whose follow-up is complete."""
        still = []
        for cohort in self.cohorts:
            j = m - cohort.month
            inv = p_inv_raw[cohort.idx]
            for key, total in cohort.pending.items():
                p_vol = 1.0 - np.exp(-total)
                surv = cohort.surv[key]
                previous = cohort.churn[key][j - 1] if j > 0 else 0.0
                cohort.churn[key][j] = previous + surv * p_vol
                cohort.surv[key] = surv * (1.0 - p_vol - np.minimum(inv, 1.0 - p_vol))
            (still if j + 1 < EFFECT_MONTHS else self.done).append(cohort)
        self.cohorts = still

    # -- assignment -----------------------------------------------------------------------
    def _assign(self, m: int, h: np.ndarray, recorded: np.ndarray, at_risk: np.ndarray) -> None:
        sim, p, rng = self.sim, self.sim.params, self.rng
        pop, window = sim.pop, sim.window
        ms = int(window.month_days[m])
        tenure = (ms - pop.act_day) / DAYS_PER_MONTH
        eligible = at_risk & (tenure >= 2) & (m - self.last_month >= self.cooldown)
        size = round(float(p.campaign_share) * int(at_risk.sum()))
        candidates = np.flatnonzero(eligible)
        size = min(size, len(candidates))
        if size == 0:
            return
        fee = catalog.PLAN_FEE[sim.state.plan]
        value = np.maximum(fee, 5.0)  # prepaid basics still top up
        score = recorded * value
        n_explore = round(float(p.campaign_explore_share) * size)
        order = candidates[np.argsort(-score[candidates], kind="stable")]
        top = order[: size - n_explore]
        rest = order[size - n_explore :]
        explore = rng.choice(rest, size=min(n_explore, len(rest)), replace=False)
        idx = np.sort(np.concatenate([top, explore]))
        n = len(idx)
        n_control = round(float(p.campaign_control_share) * n)
        treatment = np.ones(n, dtype=bool)
        treatment[rng.permutation(n)[:n_control]] = False

        recorded_h = h[: len(catalog.CAUSES), idx]
        main = np.argmax(recorded_h, axis=0)
        offer = np.where(
            rng.random(n) < RANDOM_OFFER_SHARE,
            rng.integers(0, len(OFFERS), n),
            self.cause_offer[main],
        )
        top_value = value[idx] >= np.quantile(value[at_risk], 0.9)
        channel = np.where(top_value, 0, rng.choice(len(CHANNELS), size=n, p=CHANNEL_MIX)).astype(
            np.int64
        )
        kind = self._draw_type(idx, recorded_h, tenure, ms)
        reached = rng.random(n) < REACH[channel]
        accepted = rng.random(n) < np.clip(ACCEPT[kind] * OFFER_APPEAL[offer], 0.0, 1.0)
        matched = offer == self.cause_offer[main]
        contact_s = ms * 86400 + 8 * 3600 + rng.integers(0, 10 * 3600, n)
        self.last_month[idx] = m
        self.cohorts.append(
            _Cohort(
                m,
                idx,
                treatment=treatment,
                offer=offer,
                channel=channel,
                kind=kind,
                reached=reached,
                accepted=accepted,
                matched=matched,
                contact_s=contact_s,
            )
        )

    def _draw_type(
        self, idx: np.ndarray, recorded_h: np.ndarray, tenure: np.ndarray, ms: int
    ) -> np.ndarray:
        """Persuadable, unaffected or sleeping dog, from what the tables can show."""
        pop = self.sim.pop
        commit = pop.commit_day[idx]
        free = (commit < 0) | (commit < ms - 60)
        inert = free & (tenure[idx] >= 24)
        p_dog = 0.02 + 0.7 * inert
        total = recorded_h.sum(axis=0)
        fix = np.divide(
            recorded_h[self.fixable].sum(axis=0), total, out=np.zeros_like(total), where=total > 0
        )
        p_pers = (1.0 - p_dog) * np.clip(1.2 * fix, 0.02, 0.95)
        u = self.rng.random(len(idx))
        return np.where(u < p_dog, SLEEPING_DOG, np.where(u < p_dog + p_pers, PERSUADABLE, 1))

    def _contacted_total(self, cohort: _Cohort, total: np.ndarray) -> np.ndarray:
        """The voluntary hazard of each cohort customer had they been contacted."""
        scale = float(self.sim.params.campaign_effect_scale)
        save = np.where(cohort.matched, SAVE_MATCHED, SAVE_OTHER)
        save = np.where(cohort.accepted, save, SAVE_DECLINED)
        factor = np.select(
            [cohort.kind == PERSUADABLE, cohort.kind == SLEEPING_DOG],
            [1.0 - scale * save, 1.0 + scale * HARM_FACTOR],
            1.0,
        )
        add = np.where(cohort.kind == SLEEPING_DOG, scale * HARM_ADD, 0.0)
        return np.maximum(total * factor + add, 0.0)

    # -- writing --------------------------------------------------------------------------
    def write(self, sink: DatasetSink) -> None:
        """The chunk's campaign rows (contract table) and their truth."""
        cohorts = self.done + self.cohorts
        if not cohorts:
            return
        sim, window = self.sim, self.sim.window
        idx = np.concatenate([c.idx for c in cohorts])
        month = np.concatenate([np.full(len(c.idx), c.month) for c in cohorts])
        col = {
            name: np.concatenate([getattr(c, name) for c in cohorts])
            for name in ("treatment", "offer", "channel", "kind", "reached", "accepted")
        }
        contact_s = np.concatenate([c.contact_s for c in cohorts])
        ids = np.array(
            [
                campaign_id(window.start_year + (window.start_month + m) // 12,
                            (window.start_month + m) % 12)
                for m in range(sim.params.n_months)
            ]
        )  # fmt: skip
        campaign = take_str(ids, month)
        customer = sim.cust_ids.take(pa.array(idx))
        assigned_s = window.month_days[month].astype(np.int64) * 86400 + 6 * 3600
        contacted = col["treatment"] & col["reached"]
        sink.write(
            CAMPAIGN_TABLE,
            {
                "campaign_id": campaign,
                "customer_id": customer,
                "assigned_at": to_ts(assigned_s),
                "group": take_str(np.array(["control", "treatment"]), col["treatment"].astype(int)),
                # Control rows carry the offer and channel they would have had, so a
                # review can compare within an offer or channel by randomization.
                "channel": take_str(CHANNELS, col["channel"]),
                "offer": take_str(OFFERS, col["offer"]),
                "offer_cost": to_float(OFFER_COST[col["offer"]]),
                "contacted_at": to_ts(contact_s, ~contacted),
                "accepted": pa.array(col["accepted"], pa.bool_(), mask=~contacted),
            },
        )
        truth = {
            "campaign_id": campaign,
            "customer_id": customer,
            "group": take_str(np.array(["control", "treatment"]), col["treatment"].astype(int)),
            "persuadability": take_str(TYPES, col["kind"]),
            "would_be_reached": pa.array(col["reached"], pa.bool_()),
            "would_accept": pa.array(col["accepted"], pa.bool_()),
            "offer": take_str(OFFERS, col["offer"]),
            "channel": take_str(CHANNELS, col["channel"]),
            "months_followed": to_int(
                np.concatenate([np.isfinite(c.churn["untreated"]).sum(axis=0) for c in cohorts])
            ),
        }
        churn = {
            key: np.concatenate([c.churn[key] for c in cohorts], axis=1)
            for key in ("untreated", "contacted", "assigned")
        }
        for k in range(EFFECT_MONTHS):
            truth[f"p_churn_{k + 1}m_untreated"] = to_float(churn["untreated"][k])
            truth[f"effect_{k + 1}m"] = to_float(churn["untreated"][k] - churn["assigned"][k])
            truth[f"uplift_{k + 1}m"] = to_float(churn["untreated"][k] - churn["contacted"][k])
        sink.write(TRUTH_TABLE, truth)


def summarize_campaigns(effects: pd.DataFrame) -> dict:
    """Each campaign's true effects: means of the individual effects over its customers.

    `effect_<k>m` is the intention-to-treat effect (by assignment), `uplift_<k>m` among the
    customers a contact would reach is the effect per contact; positive: churn went down.
    Months whose follow-up runs past the data's end are left out (None).
    """
    out = {}
    for cid, part in effects.groupby("campaign_id", sort=True):
        row = {
            "customers": len(part),
            "treatment": int((part["group"] == "treatment").sum()),
            "control": int((part["group"] == "control").sum()),
            "months_followed": int(part["months_followed"].min()),
            "persuadability": part["persuadability"].value_counts().to_dict(),
        }
        reached = part["would_be_reached"].astype(bool)
        for k in range(1, EFFECT_MONTHS + 1):
            complete = k <= row["months_followed"]
            effect = part[f"effect_{k}m"].mean() if complete else None
            per_contact = part.loc[reached, f"uplift_{k}m"].mean() if complete else None
            row[f"effect_{k}m"] = None if effect is None else float(effect)
            row[f"per_contact_{k}m"] = None if per_contact is None else float(per_contact)
            row[f"p_churn_{k}m_untreated"] = (
                float(part[f"p_churn_{k}m_untreated"].mean()) if complete else None
            )
        out[str(cid)] = row
    return out

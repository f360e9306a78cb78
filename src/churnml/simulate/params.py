"""Parameters of the telecom churn simulator (a plain dataclass, usable as a Hydra schema)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SimulationParams:
    """Everything that shapes a simulated dataset; the same params always give the same tables.

    Rates are per customer-month unless said otherwise. `start_date` must be the first day of a
    month; the window covers `n_months` whole months and `as_of` is the first instant after it.
    """

    name: str = "telco_sim"
    n_customers: int = 20_000
    n_months: int = 24
    start_date: str = "2024-01-01"
    seed: int = 42
    chunk_size: int = 50_000

    # Population.
    prepaid_share: float = 0.4
    monthly_acquisition_rate: float = 0.015  # new activations per month / base at window start
    mean_tenure_months: float = 40.0  # of the base at window start (exponential)
    commitment_share: float = 0.85  # postpaid customers with a 12/24-month lock-in

    # Usage volume: mean CDR rows per fully engaged customer-month (voice + SMS + data).
    calls_per_month: float = 60.0
    # Odds multiplier of a row being a data session: a real xDR feed logs a data session every
    # few hours, so data rows outnumber calls and texts (3.0 gives about two rows in three).
    data_session_weight: float = 1.0

    # Churn process.
    voluntary_scale: float = 0.54  # multiplies every voluntary cause hazard
    involuntary_scale: float = 1.0
    frailty_sigma: float = 0.2  # unobserved heterogeneity (log-normal) on the voluntary hazard
    decline_rate: float = 0.010  # monthly chance a customer starts disengaging
    courting_rate: float = 0.009  # monthly chance a competitor starts to pull a customer
    distress_rate: float = 0.009  # monthly chance a postpaid payer stops paying

    # Hidden causes: churn that no table records (an offer seen elsewhere, a move, a
    # frustration never reported). `hidden_share` is the expected share of the voluntary
    # hazard they carry; the recorded causes are scaled by 1 - hidden_share so the churn rate
    # stays about the same. 0 gives a dataset where every cause leaves a trace in some table
    # (`simulate=easy`). The default, 0.3, puts the best model about 0.05 ROC AUC below the
    # truth, as an outside check found on real operator data (benchmarks/RESULTS.md).
    hidden_share: float = 0.3
    hidden_offer_rate: float = 0.05  # monthly chance of an outside offer (lasts 1-2 months)
    hidden_move_rate: float = 0.006  # monthly chance of a move or life event (one month)
    hidden_frustration_sigma: float = 1.4  # log-scale spread of an unreported frustration
    hidden_frustration_persistence: float = 0.9  # month-to-month correlation of it
    # Weights of offer, move and frustration within the hidden hazard (normalised).
    hidden_offer_weight: float = 0.4
    hidden_move_weight: float = 0.25
    hidden_frustration_weight: float = 0.35

    # Win-back (simulate.winback): the monthly hazard that a former customer comes back as a
    # new subscription, in the first month after an average voluntary exit (0: nobody comes
    # back), and how many months it takes to fall by a factor e.
    winback_rate: float = 0.03
    winback_decay_months: float = 8.0

    # Market events (month indices within the window; -1 switches an event off).
    price_rise_month: int = 12
    price_rise_pct: float = 0.08
    network_incident_region: str = "Lakes"
    network_incident_month: int = 6
    network_incident_length: int = 3

    # Retention campaigns (simulate/campaigns.py): the first month index with a campaign
    # (-1: none, the tables of a simulator without campaigns; the default: the 7th month), the
    # share of the active base
    # assigned each month, the randomized control share, the share drawn at random among the
    # other eligible customers, months before a customer may be assigned again (at least the
    # 3 months of follow-up), and a scale on every effect of a contact (0: none).
    campaign_start_month: int = 6
    campaign_share: float = 0.04
    campaign_control_share: float = 0.15
    campaign_explore_share: float = 0.2
    campaign_cooldown_months: int = 3
    campaign_effect_scale: float = 1.0

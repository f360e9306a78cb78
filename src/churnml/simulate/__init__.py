"""Simulated telecom churn data: the six contract tables, a manifest and the churn truth.

`simulate_dataset(SimulationParams(...), out_dir)` writes customers, calls, transfers,
complaints, bills and payments (docs/data-contract.md), `manifest.json` (as_of, params, the
plan catalogue and dated market events) and `truth/churn_probability.parquet`: for every
customer active at a month's start, the exact probabilities of a voluntary (voluntary or
port_out) and an involuntary (non_payment, or `other` for silent prepaid lines) exit that
month, with the hazard contribution of each cause. How p follows from the hazards is told in
`churnml.simulate.engine`.

The causes, and the traces they leave in the tables before the exit:
- usage_decline: a life-cycle decline; fewer calls, fewer calls made, fewer top-ups, downgrades.
- competitor: a competitor's pull; more off-net calls to that operator, port_out_query events,
  on-net contacts who left (their customer_id reappears as an off-net peer).
- network_quality: the region's (and the customer's) dropped-call rate; network complaints.
- service_complaints: open, escalated (regulator) or badly rated complaints.
- billing_arrears: unpaid postpaid bills.
- price: a fee high for the usage, or the postpaid price rise; downgrades.
- contract_lifecycle: the months around commitment_end (lock-in dampens other causes before).
- tenure_value: early-life churn, young and prepaid customers.

Hidden causes leave no trace in any table, as real churn often does not (`hidden_share` of the
voluntary hazard, 0.3 by default; `simulate=easy` sets it to 0):
- hidden_offer: an offer seen elsewhere, tempting for one or two months.
- hidden_move: a move or life event, one month (more often for the young).
- hidden_frustration: a persistent, never reported dissatisfaction (an AR(1) on the log scale).
Their hazards are written as hazard_hidden_* and `p_voluntary_recorded` gives what the recorded
causes alone tell; `truth/decomposition.json` splits the hazard and the exits by cause,
recorded against hidden (`churnml.simulate.truth.decompose_hazard`).

Win-back (`churnml.simulate.winback`): some leavers come back as a new subscription that names
the old one in `customers.previous_customer_id` (data contract v2), more often after a
competitor's or an outside offer than after a move or arrears, to the low-cost brand's
customers most, and mostly in the first months; `truth/winback.parquet` has every exit's return
probabilities and the return that happened.
"""

from churnml.simulate.engine import simulate_dataset
from churnml.simulate.params import SimulationParams

__all__ = ["SimulationParams", "simulate_dataset"]

"""The data contract's vocabulary (docs/data-contract.md), named once for every stage.

The validator checks against these values, the simulator draws from them, the feature registry
and the reports group by the cause families, and scoring writes the scores columns.
"""

from __future__ import annotations

TERMINATION_REASONS = ("voluntary", "port_out", "non_payment", "other")
PAYMENT_TYPES = ("prepaid", "postpaid")
GENDERS = ("F", "M", "U")
CALL_DIRECTIONS = ("out", "in")
CALL_KINDS = ("voice", "sms", "data")
PEER_NETWORKS = ("on_net", "off_net", "fixed", "international")
TRANSFER_KINDS = (
    "port_out_query",
    "port_out_request",
    "port_out_cancel",
    "plan_change",
    "ownership_change",
    "sim_swap",
    "balance_transfer_out",
    "balance_transfer_in",
)
COMPLAINT_CATEGORIES = ("billing", "network", "service", "price", "product", "other")
COMPLAINT_CHANNELS = ("call_center", "store", "online", "regulator")

# The nameable causes customers leave for (operators' playbooks), id -> plain label.
CAUSE_FAMILIES: dict[str, str] = {
    "usage_decline": "Usage decline",
    "competitor": "Competitor pull",
    "network_quality": "Network quality",
    "service_complaints": "Service and complaints",
    "billing_arrears": "Billing and arrears",
    "price": "Price",
    "contract_lifecycle": "Contract and life cycle",
    "tenure_value": "Tenure and value",
}

# The scores table batch scoring writes, in contract order; the reasons may be empty.
SCORE_COLUMNS = (
    "scoring_date",
    "customer_id",
    "churn_probability",
    "risk_band",
    "value_tier",
    "revenue_at_risk",
    "reason_1",
    "reason_2",
    "reason_3",
    "action",
    "model_name",
    "model_version",
    "run_id",
)
SCORE_NULLABLE = ("reason_1", "reason_2", "reason_3")
VALUE_TIERS = ("A", "B", "C", "D")

"""The data contract's vocabulary (docs/data-contract.md), named once for every stage.

The validator checks against these values, the simulator draws from them, the feature registry
and the reports group by the cause families, and scoring writes the scores columns.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# The contract tables, column by column (the validator checks them, io.scan_sql reads them).
@dataclass(frozen=True)
class ContractColumn:
    """One column of a contract table and its type (docs/data-contract.md)."""

    name: str
    kind: str  # string | timestamp | int | float | bool
    required: bool = False  # must be present and never null


_S, _T, _I, _F, _B = "string", "timestamp", "int", "float", "bool"

CONTRACT_COLUMNS: dict[str, tuple[ContractColumn, ...]] = {
    "customers": (
        ContractColumn("customer_id", _S, True),
        ContractColumn("activated_at", _T, True),
        ContractColumn("terminated_at", _T),
        ContractColumn("termination_reason", _S),
        ContractColumn("initial_plan_id", _S, True),
        ContractColumn("payment_type", _S, True),
        ContractColumn("commitment_end", _T),
        ContractColumn("region", _S),
        ContractColumn("birth_year", _I),
        ContractColumn("gender", _S),
    ),
    "calls": (
        ContractColumn("customer_id", _S, True),
        ContractColumn("started_at", _T, True),
        ContractColumn("direction", _S, True),
        ContractColumn("kind", _S, True),
        ContractColumn("duration_s", _I, True),
        ContractColumn("volume_mb", _F),
        ContractColumn("peer_network", _S),
        ContractColumn("peer_operator", _S),
        ContractColumn("peer_id", _S),
        ContractColumn("dropped", _B, True),
    ),
    "transfers": (
        ContractColumn("customer_id", _S, True),
        ContractColumn("occurred_at", _T, True),
        ContractColumn("kind", _S, True),
        ContractColumn("from_plan_id", _S),
        ContractColumn("to_plan_id", _S),
        ContractColumn("monthly_fee", _F),
        ContractColumn("operator", _S),
        ContractColumn("amount", _F),
    ),
    "complaints": (
        ContractColumn("complaint_id", _S, True),
        ContractColumn("customer_id", _S, True),
        ContractColumn("opened_at", _T, True),
        ContractColumn("resolved_at", _T),
        ContractColumn("category", _S, True),
        ContractColumn("channel", _S, True),
        ContractColumn("severity", _I, True),
        ContractColumn("satisfaction", _I),
    ),
    "bills": (
        ContractColumn("bill_id", _S, True),
        ContractColumn("customer_id", _S, True),
        ContractColumn("period_start", _T, True),
        ContractColumn("issued_at", _T, True),
        ContractColumn("due_at", _T, True),
        ContractColumn("amount_due", _F, True),
    ),
    "payments": (
        ContractColumn("payment_id", _S, True),
        ContractColumn("customer_id", _S, True),
        ContractColumn("paid_at", _T, True),
        ContractColumn("amount", _F, True),
        ContractColumn("bill_id", _S),
    ),
}

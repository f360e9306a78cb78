"""The data contract (docs/data-contract.md, v2) as data: written here once.

Tables, columns, types, allowed values, ranges, nullability, row rules across columns, the
event-time columns and the rules across tables. The validator turns every entry into a rule
(and a GX expectation); `io` reads columns with their types; the simulator writes its Arrow
schemas from it; the docs' tables are generated from it (`make docs`, checked by a test); the
feature registry and the reports group by its cause families; scoring writes its scores columns.
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
CAMPAIGN_GROUPS = ("treatment", "control")
CAMPAIGN_CHANNELS = ("call_center", "sms", "email", "store", "app")

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
# Optional scores columns (v2), written when the time-to-churn or uplift model exists.
SCORE_HORIZON_COLUMNS = (
    "churn_probability_30d",
    "churn_probability_90d",
    "churn_probability_180d",
    "churn_probability_365d",
)
# The value x potential matrix: current value tier x lifetime-value tier (playbook cells).
VALUE_SEGMENTS = ("keep and grow", "protect", "develop", "let go")

STRING, TIMESTAMP, INT, FLOAT, BOOL = "string", "timestamp", "int", "float", "bool"
KINDS = (STRING, TIMESTAMP, INT, FLOAT, BOOL)


@dataclass(frozen=True)
class ContractColumn:
    """One column of a contract table: its type and every rule on its values."""

    name: str
    kind: str  # string | timestamp | int | float | bool
    required: bool = False  # must be present and never null
    doc: str = ""  # the rule as the contract states it, for the docs' tables
    doc_type: str = ""  # the type as the docs name it ("date" for day-precision stamps)
    values: tuple[str, ...] = ()  # allowed values (null allowed unless required)
    low: float | None = None  # inclusive lower bound (exclusive when strict_low)
    high: float | None = None  # inclusive upper bound
    strict_low: bool = False
    upper_setting: str | None = None  # `validation.<setting>`: a plausible upper bound
    unique: bool = False
    references: str | None = None  # "table.column" every non-null value must be present in
    event_time: bool = False  # an event: never after the data's as_of
    not_before: str | None = None  # a column of the same row this one is >= (when both are set)
    since: int = 1  # the contract version that added the column (optional columns of v2)


@dataclass(frozen=True)
class RowRule:
    """A rule on one column that depends on others in the same row.

    `sql` is a DuckDB boolean over `{c[name]}` (a typed value) and `{null[name]}` (is the stored
    value null); a row keeps the rule when it is TRUE or NULL. It applies when every column of
    `needs` is present (`{null[x]}` of an absent column is TRUE).
    """

    column: str
    rule: str
    needs: tuple[str, ...]
    sql: str


@dataclass(frozen=True)
class ContractTable:
    """One table of the contract."""

    name: str
    doc: str
    id_column: str  # the natural id of a row, named in messages as example ids
    columns: tuple[ContractColumn, ...]
    row_rules: tuple[RowRule, ...] = ()
    unique_together: tuple[str, ...] = ()  # a key unique across these columns
    events: bool = True  # rows are events with a time (customers are not)
    features: bool = True  # feature families read it (campaigns feed the review and uplift)
    since: int = 1

    def column(self, name: str) -> ContractColumn:
        return next(c for c in self.columns if c.name == name)

    @property
    def time_column(self) -> str:
        """The column that places a row in time: its first event-time column."""
        return next(c.name for c in self.columns if c.event_time)


_C = ContractColumn
_ID_IN_CUSTOMERS = dict(required=True, references="customers.customer_id")

CONTRACT: dict[str, ContractTable] = {
    t.name: t
    for t in (
        ContractTable(
            "customers",
            "one row per subscriber",
            "customer_id",
            (
                _C("customer_id", STRING, True, "required, unique", unique=True),
                _C("activated_at", TIMESTAMP, True, "required", "date", event_time=True),
                _C(
                    "terminated_at",
                    TIMESTAMP,
                    doc="null while the subscriber is still with the operator; >= activated_at",
                    doc_type="date",
                    event_time=True,
                    not_before="activated_at",
                ),
                _C(
                    "termination_reason",
                    STRING,
                    doc="null, or one of voluntary, port_out, non_payment, other; "
                    "null when terminated_at is null",
                    values=TERMINATION_REASONS,
                ),
                _C(
                    "initial_plan_id",
                    STRING,
                    True,
                    "required: the tariff plan at activation (later changes are `transfers` rows)",
                ),
                _C("payment_type", STRING, True, "prepaid or postpaid", values=PAYMENT_TYPES),
                _C(
                    "commitment_end",
                    TIMESTAMP,
                    doc="null, or end of the contract / promotional lock-in",
                    doc_type="date",
                ),
                _C("region", STRING, doc="nullable"),
                _C("birth_year", INT, doc="nullable, 1900..2015", low=1900, high=2015),
                _C("gender", STRING, doc="nullable: F, M, U", values=GENDERS),
                _C(
                    "previous_customer_id",
                    STRING,
                    doc="optional (v2), nullable: the same person's earlier subscription when a "
                    "former customer comes back (won back); present in customers, with "
                    "terminated_at <= this row's activated_at",
                    references="customers.customer_id",
                    since=2,
                ),
            ),
            (
                RowRule(
                    "termination_reason",
                    "null iff terminated_at is null",
                    ("termination_reason",),
                    "({null[termination_reason]}) = ({null[terminated_at]})",
                ),
            ),
            events=False,
        ),
        ContractTable(
            "calls",
            "one row per voice call, SMS or data session (the CDR)",
            "customer_id",
            (
                _C("customer_id", STRING, doc="required, present in customers", **_ID_IN_CUSTOMERS),
                _C("started_at", TIMESTAMP, True, "required, not after `as_of`", event_time=True),
                _C("direction", STRING, True, "out or in", values=CALL_DIRECTIONS),
                _C("kind", STRING, True, "voice, sms or data", values=CALL_KINDS),
                _C(
                    "duration_s",
                    INT,
                    True,
                    ">= 0; 0 for sms and data",
                    low=0,
                    upper_setting="max_call_duration_s",
                ),
                _C(
                    "volume_mb",
                    FLOAT,
                    doc=">= 0 for data, null otherwise",
                    low=0,
                    upper_setting="max_volume_mb",
                ),
                _C(
                    "peer_network",
                    STRING,
                    doc="on_net, off_net (another mobile operator), fixed or international; "
                    "null for data",
                    values=PEER_NETWORKS,
                ),
                _C("peer_operator", STRING, doc="nullable: which other operator, for off_net"),
                _C(
                    "peer_id",
                    STRING,
                    doc="nullable: a pseudonymous id of the other party (never a raw phone number)",
                ),
                _C("dropped", BOOL, True, "true when the network ended the call"),
            ),
            (
                RowRule(
                    "duration_s",
                    "0 for sms and data",
                    ("duration_s", "kind"),
                    "NOT ({c[kind]} IN ('sms', 'data') AND {c[duration_s]} <> 0)",
                ),
                RowRule(
                    "volume_mb",
                    "null unless kind is data",
                    ("volume_mb", "kind"),
                    "{c[kind]} = 'data' OR {null[volume_mb]}",
                ),
                RowRule(
                    "peer_network",
                    "null for data",
                    ("peer_network", "kind"),
                    "{c[kind]} <> 'data' OR {null[peer_network]}",
                ),
            ),
        ),
        ContractTable(
            "transfers",
            "number porting and account transfer events",
            "customer_id",
            (
                _C("customer_id", STRING, doc="required, present in customers", **_ID_IN_CUSTOMERS),
                _C("occurred_at", TIMESTAMP, True, "required", event_time=True),
                _C("kind", STRING, True, ", ".join(TRANSFER_KINDS), values=TRANSFER_KINDS),
                _C("from_plan_id", STRING, doc="for plan_change"),
                _C("to_plan_id", STRING, doc="for plan_change"),
                _C(
                    "monthly_fee",
                    FLOAT,
                    doc="for plan_change: the new plan's recurring fee, >= 0",
                    low=0,
                    upper_setting="max_amount",
                ),
                _C("operator", STRING, doc="for port_out_*: the operator the number would move to"),
                _C(
                    "amount",
                    FLOAT,
                    doc="for balance_transfer_*: >= 0",
                    low=0,
                    upper_setting="max_amount",
                ),
            ),
        ),
        ContractTable(
            "complaints",
            "customer-service tickets",
            "complaint_id",
            (
                _C("complaint_id", STRING, True, "required, unique", unique=True),
                _C("customer_id", STRING, doc="required, present in customers", **_ID_IN_CUSTOMERS),
                _C("opened_at", TIMESTAMP, True, "required", event_time=True),
                _C(
                    "resolved_at",
                    TIMESTAMP,
                    doc="null while open; >= opened_at",
                    event_time=True,
                    not_before="opened_at",
                ),
                _C(
                    "category",
                    STRING,
                    True,
                    "billing, network, service, price, product or other",
                    values=COMPLAINT_CATEGORIES,
                ),
                _C(
                    "channel",
                    STRING,
                    True,
                    "call_center, store, online or regulator",
                    values=COMPLAINT_CHANNELS,
                ),
                _C("severity", INT, True, "1 (low) .. 3 (high)", low=1, high=3),
                _C(
                    "satisfaction",
                    INT,
                    doc="null, or 1..5 from the survey after resolution",
                    low=1,
                    high=5,
                ),
            ),
        ),
        ContractTable(
            "bills",
            "postpaid monthly bills",
            "bill_id",
            (
                _C("bill_id", STRING, True, "required, unique", unique=True),
                _C("customer_id", STRING, doc="required, present in customers", **_ID_IN_CUSTOMERS),
                _C("period_start", TIMESTAMP, True, "first day of the billed month", "date"),
                _C("issued_at", TIMESTAMP, True, "required", "date", event_time=True),
                _C(
                    "due_at",
                    TIMESTAMP,
                    True,
                    "due_at >= issued_at",
                    "date",
                    not_before="issued_at",
                ),
                _C("amount_due", FLOAT, True, ">= 0", low=0, upper_setting="max_amount"),
            ),
            (
                RowRule(
                    "period_start",
                    "first day of a month",
                    ("period_start",),
                    "day({c[period_start]}) = 1",
                ),
            ),
        ),
        ContractTable(
            "payments",
            "bill payments and prepaid top-ups",
            "payment_id",
            (
                _C("payment_id", STRING, True, "required, unique", unique=True),
                _C("customer_id", STRING, doc="required, present in customers", **_ID_IN_CUSTOMERS),
                _C("paid_at", TIMESTAMP, True, "required", event_time=True),
                _C(
                    "amount",
                    FLOAT,
                    True,
                    "> 0",
                    low=0,
                    strict_low=True,
                    upper_setting="max_amount",
                ),
                _C("bill_id", STRING, doc="nullable: the bill it pays; null for a top-up"),
            ),
        ),
        ContractTable(
            "campaigns",
            "retention campaign assignments (optional, v2)",
            "customer_id",
            (
                _C("campaign_id", STRING, True, "required"),
                _C(
                    "customer_id",
                    STRING,
                    doc="required, present in customers; unique within a campaign",
                    **_ID_IN_CUSTOMERS,
                ),
                _C(
                    "assigned_at",
                    TIMESTAMP,
                    True,
                    "required, not after `as_of`; the customer was eligible then",
                    event_time=True,
                ),
                _C(
                    "group",
                    STRING,
                    True,
                    "treatment or control (the randomized hold-out that is never contacted)",
                    values=CAMPAIGN_GROUPS,
                ),
                _C(
                    "channel",
                    STRING,
                    doc="nullable: call_center, sms, email, store or app",
                    values=CAMPAIGN_CHANNELS,
                ),
                _C(
                    "offer",
                    STRING,
                    doc="nullable: the offer made, e.g. discount, plan_upgrade, handset, "
                    "loyalty_points, none",
                ),
                _C(
                    "offer_cost",
                    FLOAT,
                    doc="nullable, >= 0: what the offer costs the operator if accepted",
                    low=0,
                    upper_setting="max_amount",
                ),
                _C(
                    "contacted_at",
                    TIMESTAMP,
                    doc="nullable: null for control rows and for customers not reached; "
                    ">= assigned_at, not after `as_of`",
                    event_time=True,
                    not_before="assigned_at",
                ),
                _C(
                    "accepted",
                    BOOL,
                    doc="nullable: whether the offer was taken; null when not contacted",
                ),
            ),
            (
                RowRule(
                    "contacted_at",
                    "null for control rows",
                    ("contacted_at", "group"),
                    "{c[group]} <> 'control' OR {null[contacted_at]}",
                ),
                RowRule(
                    "accepted",
                    "null when not contacted",
                    ("accepted",),
                    "NOT ({null[contacted_at]}) OR {null[accepted]}",
                ),
            ),
            unique_together=("campaign_id", "customer_id"),
            features=False,
            since=2,
        ),
    )
}

TABLES = tuple(CONTRACT)
# The tables feature families read (the history a scoring date needs is theirs).
FEATURE_TABLES = tuple(name for name, t in CONTRACT.items() if t.features)
CONTRACT_COLUMNS: dict[str, tuple[ContractColumn, ...]] = {
    name: t.columns for name, t in CONTRACT.items()
}
# Event-time columns that may not lie after `as_of` (promises about the future, such as
# commitment_end and due_at, may).
EVENT_TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in t.columns if c.event_time) for name, t in CONTRACT.items()
}


def render_tables_doc() -> str:
    """The contract's tables in Markdown, as docs/data-contract.md shows them."""
    parts = []
    for t in CONTRACT.values():
        rows = [f"## {t.name} — {t.doc}", "| column | type | rule |", "|---|---|---|"]
        for c in t.columns:
            rows.append(f"| {c.name} | {c.doc_type or c.kind} | {c.doc} |")
        checks = [f"{r.column}: {r.rule}" for r in t.row_rules]
        if t.unique_together:
            checks.append(f"({', '.join(t.unique_together)}): unique together")
        if checks:
            rows += ["", "Rules across columns: " + "; ".join(checks) + "."]
        parts.append("\n".join(rows))
    return "\n\n".join(parts) + "\n"


DOC_BEGIN = "<!-- generated from src/churnml/contract.py by `make docs`: edit it there -->\n"
DOC_END = "<!-- end of generated tables -->\n"


def with_tables_doc(page: str) -> str:
    """A contract page (docs/data-contract.md) with its generated tables brought up to date."""
    head, rest = page.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    return head + DOC_BEGIN + render_tables_doc() + DOC_END + tail


if __name__ == "__main__":  # `make docs`: python -m churnml.contract docs/data-contract.md
    import sys
    from pathlib import Path

    doc = Path(sys.argv[1])
    doc.write_text(with_tables_doc(doc.read_text()))

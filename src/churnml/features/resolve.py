"""Feature settings that depend on the data, fixed once at training time.

Per-operator share features need a list of operators, and the columns a model was trained on
must be the columns scoring builds. So the list is chosen from the training data (before the
training cutoff, by outgoing voice minutes) and stored in `FeatureParams.competitors`, which
travels with the model (`model.settings["features"]`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd

from churnml.features.engine import Context
from churnml.features.params import FeatureParams
from churnml.features.registry import slug
from churnml.io import connect, table_columns, table_path

log = logging.getLogger(__name__)

_NEEDED = {"customer_id", "started_at", "kind", "direction", "duration_s", "peer_operator"}


def resolve_feature_params(
    dataset_dir: str | Path, params: FeatureParams, cutoff: str | pd.Timestamp
) -> FeatureParams:
    """`params` with `competitors` filled: the `competitor_top_k` other operators that took
    the most outgoing voice minutes in the `competitor_lookback_days` before `cutoff`.

    Call it once in training with the latest training cutoff, build features with the result
    and record that with the model; scoring uses the recorded params as they are. A list given
    in the config is kept (the choice is the user's); without a calls table, or without
    `peer_operator`, the params come back unchanged. Only rows before `cutoff` are read, and
    no label, so the choice cannot leak the outcome.
    """
    if params.competitors or params.competitor_top_k <= 0 or "calls" not in params.families:
        return replace(params)
    path = table_path(dataset_dir, "calls")
    if path is None:
        return replace(params)
    columns = set(table_columns(path))
    if not columns >= _NEEDED:
        log.info("features: calls lacks %s, no per-operator shares", sorted(_NEEDED - columns))
        return replace(params)
    cutoff = pd.Timestamp(cutoff)
    con = connect()  # UTC session, as every reader (io.connect)
    try:
        ctx = Context(
            con=con,
            params=params,
            dataset_dir=Path(dataset_dir),
            min_cutoff=cutoff,
            max_cutoff=cutoff,
            paths={"calls": path},
            columns={"calls": columns},
        )
        rows = operator_minutes(ctx)
    finally:
        con.close()
    return choose_competitors(params, rows, cutoff)


def operator_minutes(ctx: Context) -> list[tuple]:
    """(operator, outgoing voice seconds) in the lookback before the context's cutoff, most
    called first: the same query on either engine (`ctx.rows` returns a few rows)."""
    scan = ctx.scan(
        "calls",
        ["started_at", "kind", "direction", "duration_s", "peer_operator"],
        ctx.time_range("started_at", ctx.params.competitor_lookback_days)
        + " AND peer_operator IS NOT NULL",
    )
    return ctx.rows(
        f"SELECT CAST(peer_operator AS {ctx.dialect.text_type()}) AS op,"
        " sum(duration_s) AS seconds"
        f" FROM {scan} WHERE kind = 'voice' AND direction = 'out'"
        " GROUP BY 1 ORDER BY seconds DESC, op"
    )


def choose_competitors(
    params: FeatureParams, rows: list[tuple], cutoff: pd.Timestamp
) -> FeatureParams:
    """`params` with the `competitor_top_k` operators of `rows` (distinct slugs)."""
    chosen: list[str] = []
    slugs: set[str] = set()
    for op, _ in rows:
        # Two names with one slug would give two features of one name: the bigger one wins.
        if slug(op) in slugs:
            continue
        chosen.append(op)
        slugs.add(slug(op))
        if len(chosen) == params.competitor_top_k:
            break
    log.info(
        "features: per-operator shares for %d of %d operators (before %s): %s",
        len(chosen),
        len(rows),
        cutoff.date(),
        ", ".join(chosen) or "none",
    )
    return replace(params, competitors=chosen)

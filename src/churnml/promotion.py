"""Whether a newly trained model (the challenger) replaces the champion that scoring loads.

A pure function of what the two models are and how they scored on the challenger's test rows,
so every branch is unit-tested. The champion is protected: it is replaced only by a model of
the same data kind, label definition and feature set that beats it on the same rows and labels.
Anything else is registered as challenger and left for a person (`churnml promote`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFacts:
    """What a model predicts and from what: two models are comparable when these agree."""

    data_kind: str
    label: str  # e.g. "termination 60d after 0d gap (port_out, voluntary)"
    features: tuple[str, ...]

    @classmethod
    def of(cls, settings: dict, feature_names: list[str]) -> ModelFacts:
        """The facts recorded in a model's settings (see `jobs._attach_scoring_context`)."""
        label = settings.get("label") or {}
        if label:
            reasons = ", ".join(sorted(label.get("reasons", [])))
            label_text = (
                f"{label.get('kind')} {label.get('horizon_days')}d after "
                f"{label.get('gap_days')}d gap ({reasons})"
            )
        else:
            label_text = "snapshot label"
        return cls(
            data_kind=settings.get("data_kind", "events"),
            label=label_text,
            features=tuple(sorted(feature_names)),
        )


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def higher_is_better(metric: str) -> bool:
    return not metric.endswith(("brier", "ece", "logloss"))


def decide_promotion(
    challenger: ModelFacts,
    challenger_score: float,
    metric: str,
    champion: ModelFacts | None = None,
    champion_version: str | None = None,
    champion_score: float | None = None,
    champion_error: str | None = None,
) -> Decision:
    """Promote only over a comparable champion that the challenger beats on the same rows.

    `champion_score` is the champion's `metric` on the challenger's test rows;
    `champion_error` says why the champion could not score them.
    """
    if champion is None:
        return Decision(True, "promoted: no champion yet")
    held = f"registered as challenger, not promoted: champion v{champion_version}"
    if champion.data_kind != challenger.data_kind:
        return Decision(
            False,
            f"{held} was trained on {champion.data_kind} data, this model on "
            f"{challenger.data_kind} data",
        )
    if champion.label != challenger.label:
        return Decision(
            False,
            f"{held} predicts '{champion.label}', this model '{challenger.label}': "
            "the scores would change meaning",
        )
    if champion.features != challenger.features:
        added = sorted(set(challenger.features) - set(champion.features))
        removed = sorted(set(champion.features) - set(challenger.features))
        return Decision(
            False,
            f"{held} uses another feature set ({len(added)} features added: "
            f"{', '.join(added[:5]) or 'none'}; {len(removed)} removed: "
            f"{', '.join(removed[:5]) or 'none'}); promote by hand if intended",
        )
    if champion_error is not None or champion_score is None:
        return Decision(
            False, f"{held} cannot score this model's test rows ({champion_error or 'no score'})"
        )
    wins = (
        challenger_score > champion_score
        if higher_is_better(metric)
        else challenger_score < champion_score
    )
    comparison = (
        f"challenger {metric} {challenger_score:.4f} vs champion v{champion_version} "
        f"{champion_score:.4f} on the same test rows"
    )
    if wins:
        return Decision(True, f"promoted: {comparison}")
    return Decision(False, f"kept champion: {comparison}")

"""Feature definitions, declared once as data: history aggregates per entity role and per-transaction features.

A ``FeatureSet`` is what the model directory records; the offline computation and the online lookup both read
it, so serving needs no other configuration. Every definition has a stable generated name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fraud_detection.transactions.frame import AMOUNT

Role = Literal["card", "terminal", "destination"]
"""An entity role; its key column in the canonical frame is ``key_<role>``."""

AggregateKind = Literal["count", "sum", "mean", "seconds_since_last", "distinct", "fraud_risk", "amount_ratio"]

GRACE = 86_400.0
"""Seconds of state the stores keep beyond a feature set's ``horizon`` (the default), so a redelivered transaction is
scored as the first time; here, beside the horizon, so settings read it without importing the stores."""

_AMOUNT_KINDS = frozenset({"sum", "mean", "amount_ratio"})
_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60))


def window_label(seconds: float) -> str:
    """A window length as it appears in a name: 3600 -> ``1h``, 604800 -> ``7d``, 90 -> ``90s``."""
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s".replace(".", "p")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Aggregate(_Frozen):
    """One history feature: an aggregate of an entity's events in the window ``[t - delay - window, t - delay)``.

    ``t`` is the scored transaction's event time. ``fraud_risk`` also needs each event's label to be known
    (``label_time < t``); ``label_delay`` then shifts the window back, as a chargeback delay would.
    """

    entity: Role = Field(description="Whose history: card, terminal or destination.")
    aggregate: AggregateKind = Field(description="What to compute over the window's events.")
    column: str | None = Field(
        default=None,
        description="'amount' for sum, mean and amount_ratio; the counterparty role for distinct; else None.",
    )
    window: float = Field(gt=0, description="Window length in seconds.")
    label_delay: float = Field(default=0.0, ge=0, description="fraud_risk only: seconds the window is shifted back.")

    @model_validator(mode="after")
    def _consistent(self) -> Aggregate:
        kind = self.aggregate
        if kind in _AMOUNT_KINDS and self.column != AMOUNT:
            raise ValueError(
                f"aggregate {kind!r} needs column='amount' (the only aggregated value), got {self.column!r}"
            )
        if kind == "distinct":
            if self.column not in ("card", "terminal", "destination") or self.column == self.entity:
                raise ValueError(
                    f"aggregate 'distinct' needs column = another entity role (counterparty of {self.entity!r}), "
                    f"got {self.column!r}"
                )
        elif kind not in _AMOUNT_KINDS and self.column is not None:
            raise ValueError(f"aggregate {kind!r} takes no column, got {self.column!r}")
        if self.label_delay and kind != "fraud_risk":
            raise ValueError(f"label_delay applies to fraud_risk only, not to {kind!r}")
        return self

    @property
    def name(self) -> str:
        """Stable feature name: ``card_count_1h``, ``card_amount_mean_7d``, ``terminal_fraud_risk_28d_delay_7d``."""
        window = window_label(self.window)
        if self.aggregate == "distinct":
            body = f"distinct_{self.column}"
        elif self.column == AMOUNT:
            body = f"amount_{self.aggregate.removeprefix('amount_')}"
        else:
            body = self.aggregate
        delay = f"_delay_{window_label(self.label_delay)}" if self.label_delay else ""
        return f"{self.entity}_{body}_{window}{delay}"

    @property
    def horizon(self) -> float:
        """How far back (seconds) this feature looks: the online state keeps events this recent."""
        return self.window + self.label_delay


class Numeric(_Frozen):
    """A numeric request column used as it is (``amount`` included)."""

    kind: Literal["numeric"] = "numeric"
    column: str

    @property
    def names(self) -> tuple[str, ...]:
        return (self.column,)


class BalanceError(_Frozen):
    """PaySim's balance error: ``after + amount - before`` for the sender (``outgoing``), ``before + amount - after``
    for the receiver; non-zero when the ledger does not add up."""

    kind: Literal["balance_error"] = "balance_error"
    name: str
    before: str
    after: str
    outgoing: bool

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)


class HourOfDay(_Frozen):
    """The hour (0..23) of the event time, taking time 0 as midnight."""

    kind: Literal["hour_of_day"] = "hour_of_day"

    @property
    def names(self) -> tuple[str, ...]:
        return ("hour_of_day",)


class OneHot(_Frozen):
    """One 0/1 feature per recorded category of a categorical request column; an unseen category is all zeros."""

    kind: Literal["one_hot"] = "one_hot"
    column: str
    categories: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> OneHot:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"one_hot on {self.column!r}: categories repeat: {list(self.categories)}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{self.column}_is_{category}" for category in self.categories)


RequestFeature = Annotated[Numeric | BalanceError | HourOfDay | OneHot, Field(discriminator="kind")]


class FeatureSet(_Frozen):
    """The model's engineered inputs: history aggregates then request features, in ``names`` order."""

    aggregates: tuple[Aggregate, ...] = ()
    request: tuple[RequestFeature, ...] = ()

    @model_validator(mode="after")
    def _distinct_names(self) -> FeatureSet:
        names = self.names
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"feature names repeat: {repeated}")
        if not names:
            raise ValueError("a feature set needs at least one feature")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """Every feature's name, in the model's input order."""
        request = tuple(name for feature in self.request for name in feature.names)
        return tuple(aggregate.name for aggregate in self.aggregates) + request

    @property
    def roles(self) -> tuple[str, ...]:
        """The entity roles whose keys the features read (as owner or counterparty), sorted."""
        used = {a.entity for a in self.aggregates} | {a.column for a in self.aggregates if a.aggregate == "distinct"}
        return tuple(sorted(role for role in used if role is not None))

    @property
    def horizon(self) -> float:
        """The longest look-back in seconds (window plus label delay); 0 without aggregates."""
        return max((aggregate.horizon for aggregate in self.aggregates), default=0.0)

    def to_json(self) -> str:
        """The set as JSON, as the model directory records it."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureSet:
        """Parse a recorded set; a bad definition raises pydantic's ``ValidationError`` naming the field."""
        return cls.model_validate_json(text)


HOUR, DAY = 3_600.0, 86_400.0
PAYSIM_TYPES = ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER")


def card_terminal_features() -> FeatureSet:
    """The default set for a card/terminal data set: card habits over 1h..30d, terminal activity and fraud risk."""
    card = [
        Aggregate(entity="card", aggregate=kind, column=AMOUNT if kind in _AMOUNT_KINDS else None, window=window)
        for window in (HOUR, DAY, 7 * DAY)
        for kind in ("count", "mean")
    ]
    card += [
        Aggregate(entity="card", aggregate="amount_ratio", column=AMOUNT, window=30 * DAY),
        Aggregate(entity="card", aggregate="seconds_since_last", window=7 * DAY),
        Aggregate(entity="card", aggregate="distinct", column="terminal", window=DAY),
    ]
    terminal = [Aggregate(entity="terminal", aggregate="count", window=window) for window in (DAY, 7 * DAY)]
    terminal += [
        Aggregate(entity="terminal", aggregate="fraud_risk", window=window, label_delay=7 * DAY)
        for window in (DAY, 7 * DAY, 28 * DAY)
    ]
    return FeatureSet(aggregates=(*card, *terminal), request=(Numeric(column=AMOUNT), HourOfDay()))


def paysim_features() -> FeatureSet:
    """The default set for PaySim's columns: balance errors, type, and the destination account's history.

    PaySim's sender (``nameOrig``, role ``card``) is nearly unique, so its windows are almost always empty; the
    destination (``nameDest``) repeats. Time is PaySim's ``step`` in hours, as seconds.
    """
    destination = [
        Aggregate(entity="destination", aggregate=kind, column=AMOUNT if kind in _AMOUNT_KINDS else None, window=window)
        for window in (DAY, 7 * DAY)
        for kind in ("count", "mean")
    ]
    destination += [
        Aggregate(entity="destination", aggregate="seconds_since_last", window=7 * DAY),
        Aggregate(entity="destination", aggregate="fraud_risk", window=7 * DAY),
    ]
    card = [Aggregate(entity="card", aggregate="count", window=7 * DAY)]
    request: tuple[RequestFeature, ...] = (
        Numeric(column=AMOUNT),
        BalanceError(name="orig_balance_error", before="oldbalanceOrg", after="newbalanceOrig", outgoing=True),
        BalanceError(name="dest_balance_error", before="oldbalanceDest", after="newbalanceDest", outgoing=False),
        HourOfDay(),
        OneHot(column="type", categories=PAYSIM_TYPES),
    )
    return FeatureSet(aggregates=(*card, *destination), request=request)

"""Seeded raw transactions, customers paying at terminals, whose fraud lives in history.

How the data is made, so that its properties are known rather than hoped for:

* Customers and terminals. Each customer has an activity rate (gamma), a spending habit (a typical amount,
  log-uniform from 1 to 300) and a few habitual terminals. Each legitimate payment is one of the customer's,
  at one of their terminals, at a time that follows a daily cycle (busiest mid-afternoon, quiet at night),
  with an amount within a factor 2 of their habit and a channel (``pos``, ``contactless``, ``online``).
* Fraud, three patterns (:data:`PATTERNS`), none visible in a transaction's own columns alone:

  ``terminal``      a terminal is compromised for ``compromise_days``; each payment there in that spell is
                    fraud with probability ``compromise_fraud``, whatever its amount or customer
  ``takeover``      a customer's card is taken over for ``takeover_days``; about half their payments in that
                    spell become fraud, with amounts 5 to 10 times their habit (never a legitimate amount of
                    theirs), mostly online
  ``card_testing``  bursts of 3 to 8 tiny online payments (0.50 to 3.00) a minute or two apart, on one card,
                    at terminals the customer never uses

  plus a rare fraud no history explains (``base_fraud``).
* Labels. Each row's label is drawn from its true fraud probability, which depends on the hidden spells,
  so it is returned beside the frame (:func:`generate_with_truth`), never as a column. Every label, fraud or
  legitimate, becomes known ``label_delay_days`` after the payment, give or take ``label_delay_noise_days``
  (normal, at least an hour): the ``label_time`` column.
* The best achievable score (:attr:`Truth.knowable`). A takeover's or a card test's rows show what they are
  to anyone who knows the card's past; a compromised terminal's payments look like any other, and the spell
  shows only once the label of one of its frauds is known. So the knowable probability is the true one with
  a compromise counted from the first second after its first fraud label arrives, and not before.
* Size. The defaults (200,000 rows over 60 days, 5,000 customers, 500 terminals) give about 0.8 % fraud;
  the whole generation is vectorised, so PaySim's 6.36M rows take seconds (docs/transactions.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraud_detection.transactions.mapping import load_mapping

PATTERNS: tuple[str, ...] = ("terminal", "takeover", "card_testing")
"""The fraud patterns; :attr:`Truth.pattern` holds an index into this tuple, or -1 for none."""

CHANNELS: tuple[str, ...] = ("pos", "contactless", "online")
_LEGIT_CHANNELS = np.array([0.55, 0.30, 0.15])
_SECONDS_PER_DAY = 86_400.0
_HABITUAL_TERMINALS = 6
_TESTING_BURST = (3, 8)
_TESTING_GAP_SECONDS = 90.0
_HABIT_FACTOR = 2.0
"""A legitimate amount stays within this factor of its customer's habit."""
_TAKEOVER_FACTORS = (5.0, 10.0)
"""A takeover's fraudulent amounts, as multiples of the customer's habit: never a legitimate amount."""


@dataclass(frozen=True)
class TransactionConfig:
    """Knobs of the transaction generator; the defaults make a data set ``make run`` handles in seconds."""

    n_rows: int = 200_000
    seed: int = 42
    days: int = 60
    customers: int = 0
    """0: one customer per 40 rows (at least 20)."""
    terminals: int = 0
    """0: one terminal per 400 rows (at least 10)."""
    compromise_rate: float = 0.0006
    """Chance per terminal per day that a compromise spell starts."""
    compromise_days: float = 28.0
    compromise_fraud: float = 0.3
    takeover_share: float = 0.04
    """Share of customers whose card is taken over once during the span."""
    takeover_days: float = 7.0
    testing_bursts_per_100k: float = 30.0
    base_fraud: float = 0.0003
    label_delay_days: float = 7.0
    label_delay_noise_days: float = 1.0

    def __post_init__(self) -> None:
        if self.n_rows < 100:
            raise ValueError(f"n_rows must be at least 100, got {self.n_rows}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.customers < 0 or self.terminals < 0:
            raise ValueError("customers and terminals must be >= 0 (0: derived from n_rows)")
        for name in ("compromise_fraud", "takeover_share", "base_fraud"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        for name in ("compromise_rate", "compromise_days", "takeover_days", "testing_bursts_per_100k"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.label_delay_days < 0 or self.label_delay_noise_days < 0:
            raise ValueError("label_delay_days and label_delay_noise_days must be >= 0")

    @property
    def n_customers(self) -> int:
        """Customers: as configured, or one per 40 rows (at least 20)."""
        return self.customers or max(20, self.n_rows // 40)

    @property
    def n_terminals(self) -> int:
        """Terminals: as configured, or one per 400 rows (at least 10)."""
        return self.terminals or max(10, self.n_rows // 400)


@dataclass(frozen=True)
class Truth:
    """What the generator knows and the data does not show, row by row in the frame's order."""

    probability: np.ndarray
    """The true fraud probability each label was drawn from. It knows a terminal's compromise from its first
    payment, which nothing in the data shows until a label arrives: no model can reach it."""
    pattern: np.ndarray
    """Index into :data:`PATTERNS` of the pattern that made the row fraud-prone, or -1 (int8)."""
    knowable: np.ndarray
    """The true probability given what can be known when the row is scored, the best achievable score: as
    ``probability``, but a compromise counts only after its first fraud's ``label_time`` (strictly)."""


def _daily_cdf() -> np.ndarray:
    """Cumulative share of the day's payments by minute: peak at 15:00, a seventh of it at 03:00."""
    hours = (np.arange(1440) + 0.5) / 60.0
    intensity = 1.0 + 0.75 * np.cos(2.0 * np.pi * (hours - 15.0) / 24.0)
    cdf = np.cumsum(intensity)
    return cdf / cdf[-1]


_DAILY_CDF = _daily_cdf()


def _times(rng: np.random.Generator, n: int, days: int) -> np.ndarray:
    """Whole seconds from the start of the span, following the daily cycle (not sorted)."""
    day = rng.integers(0, days, n)
    minute = np.minimum(np.searchsorted(_DAILY_CDF, rng.random(n)), 1439)
    second = rng.integers(0, 60, n)
    return (day * _SECONDS_PER_DAY + minute * 60.0 + second).astype(np.float64)


def _spell_ranges(
    owner: np.ndarray, time: np.ndarray, spell_owner: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ordered by (owner, time), and each spell's rows (``start <= time < end``) as a range in that order.

    Returns the order and, per spell, the first and one-past-the-last position of its rows in it: a sort and
    two binary searches, not rows times spells.
    """
    span = float(max(time.max(), end.max() if end.size else 0.0)) + 1.0
    key = owner.astype(np.float64) * span + time
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    low = np.searchsorted(sorted_key, spell_owner * span + np.minimum(start, span - 1.0), side="left")
    high = np.searchsorted(sorted_key, spell_owner * span + np.minimum(end, span - 1.0), side="left")
    return order, low, np.maximum(low, high)


def _in_spells(
    owner: np.ndarray, time: np.ndarray, spell_owner: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Whether each row falls in a spell of its owner (``start <= time < end``), for any number of spells.

    Each spell's rows are a range of :func:`_spell_ranges`, marked with a difference array.
    """
    order, low, high = _spell_ranges(owner, time, spell_owner, start, end)
    marks = np.zeros(time.size + 1, dtype=np.int64)
    np.add.at(marks, low, 1)
    np.add.at(marks, high, -1)
    inside = np.empty(time.size, dtype=bool)
    inside[order] = np.cumsum(marks[:-1]) > 0
    return inside


def _first_known_fraud(
    owner: np.ndarray, time: np.ndarray, fraud: np.ndarray, label_time: np.ndarray, spells: tuple[np.ndarray, ...]
) -> np.ndarray:
    """Per spell ``(owner, start, end)``: the earliest ``label_time`` of a fraud among its rows (inf: none)."""
    order, low, high = _spell_ranges(owner, time, *spells)
    known = np.append(np.where(fraud, label_time, np.inf)[order], np.inf)
    if low.size == 0:
        return np.empty(0)
    # minimum.reduceat over the pairs (low, high) reduces each [low, high); the odd pairs in between are dropped
    earliest = np.minimum.reduceat(known, np.column_stack([low, high]).ravel())[::2]
    return np.where(high > low, earliest, np.inf)


def _card_testing(
    rng: np.random.Generator, config: TransactionConfig, bursts: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows of ``bursts`` card-testing bursts: customer, time, terminal and amount of each."""
    sizes = rng.integers(_TESTING_BURST[0], _TESTING_BURST[1] + 1, bursts)
    burst = np.repeat(np.arange(bursts), sizes)
    gaps = np.floor(rng.exponential(_TESTING_GAP_SECONDS, burst.size)) + 1.0
    within = np.cumsum(gaps)
    first = np.cumsum(sizes) - sizes
    within -= np.repeat(within[first] - gaps[first], sizes)
    customer = np.repeat(rng.integers(0, config.n_customers, bursts), sizes)
    time = np.repeat(_times(rng, bursts, config.days), sizes) + within
    terminal = rng.integers(0, config.n_terminals, burst.size)
    amount = np.round(rng.uniform(0.5, 3.0, burst.size), 2)
    return customer, time, terminal, amount


def generate_with_truth(config: TransactionConfig | None = None) -> tuple[pd.DataFrame, Truth]:
    """Generate transactions in the ``customer_terminal`` schema, and each row's probabilities and pattern.

    The same config always gives the same frame. Rows are sorted by ``tx_time`` (whole seconds from the
    start, so some share a time); ``tx_id`` numbers them in that order.

    Returns:
        The frame (``tx_id, tx_time, customer_id, terminal_id, amount, channel, is_fraud, label_time``)
        and the :class:`Truth` aligned with its rows.
    """
    config = config or TransactionConfig()
    rng = np.random.default_rng(config.seed)
    customers, terminals, span = config.n_customers, config.n_terminals, config.days * _SECONDS_PER_DAY

    activity = rng.gamma(2.0, 1.0, customers)
    habit = np.exp(rng.uniform(np.log(1.0), np.log(300.0), customers))
    habitual = rng.integers(0, terminals, (customers, _HABITUAL_TERMINALS))

    bursts = int(rng.poisson(config.testing_bursts_per_100k * config.n_rows / 100_000))
    t_customer, t_time, t_terminal, t_amount = _card_testing(rng, config, bursts)
    if t_customer.size > config.n_rows // 10:
        keep = config.n_rows // 10
        t_customer, t_time, t_terminal, t_amount = t_customer[:keep], t_time[:keep], t_terminal[:keep], t_amount[:keep]
    n_base = config.n_rows - t_customer.size

    customer = rng.choice(customers, n_base, p=activity / activity.sum())
    time = _times(rng, n_base, config.days)
    terminal = habitual[customer, rng.integers(0, _HABITUAL_TERMINALS, n_base)]
    spread = np.log(_HABIT_FACTOR) * (2.0 * rng.beta(4.0, 4.0, n_base) - 1.0)  # within a factor 2, sd 0.23
    amount = np.round(habit[customer] * np.exp(spread), 2)
    channel = rng.choice(len(CHANNELS), n_base, p=_LEGIT_CHANNELS)
    pattern = np.full(n_base, -1, dtype=np.int8)
    probability = np.zeros(n_base)

    taken = np.flatnonzero(rng.random(customers) < config.takeover_share)
    start = rng.uniform(0.0, max(span - config.takeover_days * _SECONDS_PER_DAY, 0.0), taken.size)
    spell = _in_spells(customer, time, taken, start, start + config.takeover_days * _SECONDS_PER_DAY)
    hit = spell & (rng.random(n_base) < 0.5)
    amount[hit] = np.round(habit[customer[hit]] * rng.uniform(*_TAKEOVER_FACTORS, int(hit.sum())), 2)
    channel[hit] = np.where(rng.random(int(hit.sum())) < 0.7, CHANNELS.index("online"), CHANNELS.index("pos"))
    pattern[hit], probability[hit] = PATTERNS.index("takeover"), 0.95

    online = np.where(rng.random(t_customer.size) < 0.95, CHANNELS.index("online"), CHANNELS.index("contactless"))
    customer = np.concatenate([customer, t_customer])
    time = np.concatenate([time, np.minimum(t_time, span - 1.0)])
    terminal = np.concatenate([terminal, t_terminal])
    amount = np.concatenate([amount, t_amount])
    channel = np.concatenate([channel, online])
    pattern = np.concatenate([pattern, np.full(t_customer.size, PATTERNS.index("card_testing"), dtype=np.int8)])
    probability = np.concatenate([probability, np.full(t_customer.size, 0.9)])

    spells = int(rng.poisson(config.compromise_rate * terminals * config.days))
    victims = rng.integers(0, terminals, spells)
    begin = rng.uniform(0.0, span, spells)
    spell_end = begin + config.compromise_days * _SECONDS_PER_DAY
    compromised = _in_spells(terminal, time, victims, begin, spell_end)
    pattern[compromised & (pattern < 0)] = PATTERNS.index("terminal")
    visible = probability  # takeover and card testing: the card's past shows them (amount, channel, terminal)
    probability = 1.0 - (1.0 - visible) * (1.0 - config.compromise_fraud * compromised)
    probability = 1.0 - (1.0 - probability) * (1.0 - config.base_fraud)

    order = np.argsort(time, kind="stable")
    n = config.n_rows
    label = (rng.random(n) < probability[order]).astype(np.int64)
    noise = rng.normal(0.0, config.label_delay_noise_days * _SECONDS_PER_DAY, n)
    delay = np.maximum(np.round(config.label_delay_days * _SECONDS_PER_DAY + noise), 3600.0)
    terminal, time, visible = terminal[order], time[order], visible[order]
    known = _first_known_fraud(terminal, time, label == 1, time + delay, (victims, begin, spell_end))
    # a spell shows from the first second after its first fraud's label is known (times are whole seconds)
    seen = known < spell_end
    revealed = _in_spells(terminal, time, victims[seen], known[seen] + 0.5, spell_end[seen])
    knowable = 1.0 - (1.0 - visible) * (1.0 - config.compromise_fraud * revealed) * (1.0 - config.base_fraud)
    names = load_mapping("customer_terminal")
    frame = pd.DataFrame(
        {
            str(names.tx_id): _ids(n),
            names.event_time: time,
            names.entities["card"]: _names("C", customers)[customer[order]],
            names.entities["terminal"]: _names("T", terminals)[terminal],
            names.amount: amount[order],
            "channel": pd.Categorical.from_codes(channel[order], categories=pd.Index(CHANNELS)),
            names.label: label,
            str(names.label_time): time + delay,
        }
    )
    return frame, Truth(probability=probability[order], pattern=pattern[order], knowable=knowable)


def _ids(n: int) -> np.ndarray:
    """``tx00000000``, ``tx00000001``, ...: made by Arrow's string kernels (a Python format per row is 3x slower)."""
    digits = pc.utf8_lpad(pa.array(np.arange(n)).cast(pa.string()), width=8, padding="0")
    return pc.binary_join_element_wise("tx", digits, "").to_numpy(zero_copy_only=False)


def _names(prefix: str, count: int) -> np.ndarray:
    width = len(str(count - 1))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(count)], dtype=object)


def generate(config: TransactionConfig | None = None) -> pd.DataFrame:
    """The frame of :func:`generate_with_truth` alone."""
    return generate_with_truth(config)[0]


__all__ = ["CHANNELS", "PATTERNS", "TransactionConfig", "Truth", "generate", "generate_with_truth"]

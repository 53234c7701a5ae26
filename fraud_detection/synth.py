"""Seeded synthetic card-fraud data in the canonical schema (Time, V1..V28, Amount, Class).

How the data is made, so that its properties are known rather than hoped for:

* Features. Legitimate rows draw ``V1..V28`` from independent normals whose scales fall from 1.9 to 0.35
  (like PCA components) and a log-normal ``Amount``. About 0.2 % of rows instead come from one of four
  fraud *patterns*, each a cluster far out in a few features:

  ``card_testing``      tiny amounts with very low V14 and V12 (young customers more often)
  ``account_takeover``  large amounts with very low V17 and V10 (three times as frequent at night)
  ``ring``              V4 and V11 both far out *with the same sign*: an XOR shape no linear model sees
  ``scam``              |V7| far out on either side with high V3, close to the boundary (seniors)

* Labels. ``Class`` is drawn from :func:`true_probability`, an exact function of the 29 model features:
  a smooth indicator of each pattern region inside a logistic, times ``1 - label_noise`` (frauds that
  were never reported). Because the label depends on the features alone, ``true_probability`` is the
  best score any model can reach; it is returned by a function, never stored as a column.

* Sensitive attribute. ``age_group`` (18-34, 35-59, 60+) shifts legitimate features and amounts and
  changes which fraud patterns a customer meets, so per-group error rates really differ. It is not an
  input of ``true_probability`` and must never be a model feature.

* Settings. ``setting="axis"`` (the default) places the four patterns as described above: each region is
  a box along a few feature axes, which trees cut well. ``setting="rotated"`` keeps everything else (rates,
  groups, time, drift, noise) but replaces the regions by four *oblique corners*: pattern ``k`` is the set
  where two fixed unit directions ``u_k`` and ``w_k``, each spread over all 28 V features, both exceed
  2.6 standard deviations (:data:`ROTATED_EDGE`). The corners touch the legitimate mass, and no single
  feature moves more than a fraction of a standard deviation in them, so an axis-aligned tree needs a
  staircase of splits where a network needs two units; a linear model sees none of the four corners.
  The directions come from a fixed seed (:data:`ROTATED_DIRECTIONS_SEED`), not the data seed, so
  ``true_probability`` stays a function of the features alone.

* Time. Transactions follow a daily cycle (busiest mid-afternoon). With ``drift > 0``, features of rows
  after ``drift_start`` (a fraction of the time span) move: V1, V2, V8 shift, V5 widens, amounts grow.
  The fraud regions do not move, so ``true_probability`` stays exact under drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraud_detection.config import SYNTHETIC_SETTINGS
from fraud_detection.schema import DEFAULT_SENSITIVE_COLUMN, FEATURES, LABEL, PCA_FEATURES, PUBLIC_DATASET_ROWS, TIME

GROUPS: tuple[str, ...] = ("18-34", "35-59", "60+")
GROUP_SHARES: tuple[float, ...] = (0.35, 0.45, 0.20)

SCALES: np.ndarray = np.linspace(1.9, 0.35, 28).astype(np.float32)
"""Standard deviation of each legitimate V feature; pattern regions are defined in these units."""

PATTERNS: tuple[str, ...] = ("card_testing", "account_takeover", "ring", "scam")

SETTINGS: tuple[str, ...] = SYNTHETIC_SETTINGS
"""Where the fraud regions sit: along feature axes (default) or in oblique corners (see the module doc)."""

ROTATED_DIRECTIONS_SEED = 20_261_202
"""Seed of the rotated setting's fixed directions (part of the setting, independent of the data seed)."""
ROTATED_EDGE = 2.6
"""How far (in standard deviations of the legitimate mass) a rotated corner starts along both its directions."""

# Per-row chance of each pattern, before the group and time-of-day multipliers below.
_PATTERN_BASE = np.array([0.0009, 0.0006, 0.0005, 0.0004])
# Rows: pattern; columns: group (18-34, 35-59, 60+).
_PATTERN_GROUP_FACTOR = np.array(
    [
        [1.6, 0.9, 0.4],
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0],
        [0.3, 0.5, 3.5],
    ]
)
_NIGHT_TAKEOVER_FACTOR = 3.0

_BASE_LOGIT = -9.0
_REGION_LOGIT = 13.0
_AMOUNT_CAP = 25_000.0
_SECONDS_PER_DAY = 86_400.0


def _col(name: str) -> int:
    return PCA_FEATURES.index(name)


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the generator. The defaults mimic the public data set's size and span (two days)."""

    n_rows: int = PUBLIC_DATASET_ROWS
    seed: int = 42
    days: float = 2.0
    drift: float = 0.0
    """Strength of covariate drift after ``drift_start`` (0 = none, 1 = strong)."""
    drift_start: float = 0.9
    """Fraction of the time span after which drift ramps in (the default matches the current window)."""
    label_noise: float = 0.05
    """Share of true frauds recorded as legitimate."""
    sensitive_column: str = DEFAULT_SENSITIVE_COLUMN
    setting: str = "axis"
    """Fraud regions along feature axes (``axis``) or in oblique corners (``rotated``)."""

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {', '.join(SETTINGS)}, got {self.setting!r}")
        if self.n_rows < 1:
            raise ValueError(f"n_rows must be at least 1, got {self.n_rows}")
        if self.days <= 0:
            raise ValueError(f"days must be positive, got {self.days}")
        if self.drift < 0:
            raise ValueError(f"drift must be >= 0, got {self.drift}")
        if not 0.0 <= self.drift_start <= 1.0:
            raise ValueError(f"drift_start must be within [0, 1], got {self.drift_start}")
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError(f"label_noise must be within [0, 1), got {self.label_noise}")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _daily_intensity(hour: np.ndarray) -> np.ndarray:
    """Relative transaction rate by hour of day: peak at 15:00, a seventh of it at 03:00."""
    return 1.0 + 0.75 * np.cos(2.0 * np.pi * (hour - 15.0) / 24.0)


def _sample_times(rng: np.random.Generator, n: int, days: float) -> np.ndarray:
    """Whole seconds from the start, sorted, following the daily cycle (rejection sampling)."""
    span = days * _SECONDS_PER_DAY
    kept: list[np.ndarray] = []
    have = 0
    while have < n:
        t = rng.uniform(0.0, span, size=2 * (n - have) + 16)
        accept = rng.random(t.size) * 1.75 < _daily_intensity((t / 3600.0) % 24.0)
        kept.append(t[accept])
        have += int(accept.sum())
    times = np.sort(np.concatenate(kept)[:n])
    return np.floor(times)


def _assign_patterns(rng: np.random.Generator, group: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """Pattern index per row: -1 for legitimate-looking rows, else an index into PATTERNS."""
    rates = _PATTERN_BASE[None, :] * _PATTERN_GROUP_FACTOR.T[group]
    night = (hour < 6.0)[:, None]
    takeover = PATTERNS.index("account_takeover")
    rates[:, takeover] *= np.where(night[:, 0], _NIGHT_TAKEOVER_FACTOR, 0.7)
    cumulative = np.cumsum(rates, axis=1)
    u = rng.random(group.size)[:, None]
    hit = u < cumulative
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)


def _apply_patterns(rng: np.random.Generator, z: np.ndarray, log_amount: np.ndarray, pattern: np.ndarray) -> None:
    """Move pattern rows into their region, in place (z is in units of SCALES)."""

    def rows(name: str) -> np.ndarray:
        return np.flatnonzero(pattern == PATTERNS.index(name))

    r = rows("card_testing")
    z[r, _col("V14")] = rng.normal(-4.6, 0.7, r.size)
    z[r, _col("V12")] = rng.normal(-2.5, 1.0, r.size)
    log_amount[r] = np.log(rng.uniform(0.5, 1.6, r.size))

    r = rows("account_takeover")
    z[r, _col("V17")] = rng.normal(-4.8, 0.8, r.size)
    z[r, _col("V10")] = rng.normal(-4.0, 0.7, r.size)
    log_amount[r] = rng.normal(6.3, 0.6, r.size)

    r = rows("ring")
    sign = rng.choice(np.array([-1.0, 1.0]), r.size)
    z[r, _col("V4")] = sign * rng.normal(4.4, 0.6, r.size)
    z[r, _col("V11")] = sign * rng.normal(4.4, 0.6, r.size)

    r = rows("scam")
    sign = rng.choice(np.array([-1.0, 1.0]), r.size)
    z[r, _col("V7")] = sign * rng.normal(4.6, 0.6, r.size)
    z[r, _col("V3")] = rng.normal(3.7, 0.5, r.size)
    log_amount[r] = rng.normal(5.5, 0.5, r.size)


def _rotated_directions() -> np.ndarray:
    """Shape (4, 2, 28): for each pattern two orthonormal directions spread over every V feature (fixed)."""
    rng = np.random.default_rng(ROTATED_DIRECTIONS_SEED)
    out = np.empty((len(PATTERNS), 2, 28))
    for k in range(len(PATTERNS)):
        u, w = rng.standard_normal((2, 28))
        u /= np.linalg.norm(u)
        w -= (w @ u) * u
        out[k] = u, w / np.linalg.norm(w)
    return out


_ROTATED = _rotated_directions()


def _apply_rotated_patterns(rng: np.random.Generator, z: np.ndarray, pattern: np.ndarray) -> None:
    """Move each pattern row into its oblique corner, in place: its projections on the pattern's two
    directions are set to draws just beyond :data:`ROTATED_EDGE`; every other direction keeps its legitimate
    spread."""
    for k in range(len(PATTERNS)):
        r = np.flatnonzero(pattern == k)
        if r.size == 0:
            continue
        block = z[r].astype(np.float64)
        for direction in _ROTATED[k]:
            target = rng.normal(ROTATED_EDGE + 0.7, 0.45, r.size)
            block += (target - block @ direction)[:, None] * direction[None, :]
        z[r] = block


def _apply_group_effects(z: np.ndarray, log_amount: np.ndarray, group: np.ndarray) -> None:
    senior = group == GROUPS.index("60+")
    young = group == GROUPS.index("18-34")
    z[senior, _col("V3")] += 0.4
    z[young, _col("V5")] -= 0.3
    log_amount[senior] += 0.35
    log_amount[young] -= 0.25


def _apply_drift(z: np.ndarray, log_amount: np.ndarray, time: np.ndarray, config: SyntheticConfig) -> None:
    if config.drift == 0.0:
        return
    position = time / (config.days * _SECONDS_PER_DAY)
    weight = (config.drift * np.clip((position - config.drift_start) / 0.03, 0.0, 1.0)).astype(np.float32)
    z[:, _col("V1")] += 0.8 * weight
    z[:, _col("V2")] -= 0.6 * weight
    z[:, _col("V8")] += 0.5 * weight
    z[:, _col("V5")] *= 1.0 + 0.4 * weight
    log_amount += 0.4 * weight


def _region_scores(features: np.ndarray) -> np.ndarray:
    """Smooth 0..1 membership of each fraud region, shape (n_rows, 4), from the 29 model features."""
    v = features[:, :28] / SCALES
    log_amount = np.log1p(np.maximum(features[:, 28], 0.0))
    s = _sigmoid
    card_testing = s(6.0 * (-v[:, _col("V14")] - 3.3)) * s(6.0 * (1.4 - log_amount))
    takeover = s(6.0 * (-v[:, _col("V17")] - 3.0)) * s(6.0 * (-v[:, _col("V10")] - 2.5)) * s(4.0 * (log_amount - 4.6))
    v4, v11 = v[:, _col("V4")], v[:, _col("V11")]
    ring = s(6.0 * (np.minimum(v4, v11) - 3.0)) + s(6.0 * (-np.maximum(v4, v11) - 3.0))
    scam = s(6.0 * (np.abs(v[:, _col("V7")]) - 3.3)) * s(6.0 * (v[:, _col("V3")] - 2.5))
    return np.stack([card_testing, takeover, ring, scam], axis=1)


def _rotated_region_scores(features: np.ndarray) -> np.ndarray:
    """Smooth 0..1 membership of each oblique corner, shape (n_rows, 4) (the ``rotated`` setting)."""
    v = features[:, :28] / SCALES
    projections = np.einsum("nd,kjd->nkj", v, _ROTATED)
    return np.prod(_sigmoid(6.0 * (projections - ROTATED_EDGE)), axis=2)


def true_probability(
    features: pd.DataFrame | np.ndarray, label_noise: float = 0.05, setting: str = "axis"
) -> np.ndarray:
    """The exact probability that each row is labelled fraud, from its 29 model features.

    Args:
        features: a frame with columns ``V1..V28, Amount`` (other columns are ignored), or an array of
            shape ``(n, 29)`` in that order.
        label_noise: the generator's ``label_noise`` (share of frauds recorded as legitimate).
        setting: the generator's ``setting`` (``axis`` or ``rotated``).

    Returns:
        float64 array of shape ``(n,)``: the best score any model could give on this data.
    """
    if isinstance(features, pd.DataFrame):
        array = features.loc[:, list(FEATURES)].to_numpy(dtype=np.float64)
    else:
        array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(FEATURES):
        raise ValueError(f"expected shape (n, {len(FEATURES)}), got {array.shape}")
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {', '.join(SETTINGS)}, got {setting!r}")
    regions = _rotated_region_scores(array) if setting == "rotated" else _region_scores(array)
    logit = _BASE_LOGIT + _REGION_LOGIT * regions.sum(axis=1)
    return (1.0 - label_noise) * _sigmoid(logit)


def generate(config: SyntheticConfig | None = None) -> pd.DataFrame:
    """Generate a data set in the canonical schema plus the sensitive attribute column.

    The same config always gives the same frame. Rows are sorted by ``Time``.

    Args:
        config: generator knobs; defaults to :class:`SyntheticConfig` ().

    Returns:
        DataFrame with ``Time``, ``V1..V28``, ``Amount`` (float64), ``Class`` (int64) and the sensitive
        attribute (string categories).
    """
    config = config or SyntheticConfig()
    rng = np.random.default_rng(config.seed)
    return _rows_at(rng, _sample_times(rng, config.n_rows, config.days), config)


def _cumulative_intensity(seconds: np.ndarray) -> np.ndarray:
    """The integral of :func:`_daily_intensity` from 0 to each time (in seconds)."""
    hours = seconds / 3600.0
    return seconds + 0.75 * _SECONDS_PER_DAY / (2.0 * np.pi) * (
        np.sin(2.0 * np.pi * (hours - 15.0) / 24.0) - np.sin(2.0 * np.pi * -15.0 / 24.0)
    )


def part_rows(config: SyntheticConfig, parts: int) -> list[int]:
    """Rows in each of ``parts`` equal slices of the time span, following the daily cycle, summing to n_rows."""
    edges = np.linspace(0.0, config.days * _SECONDS_PER_DAY, parts + 1)
    share = np.diff(_cumulative_intensity(edges))
    exact = config.n_rows * share / share.sum()
    rows = np.floor(exact).astype(np.int64)
    rows[np.argsort(exact - rows)[::-1][: config.n_rows - int(rows.sum())]] += 1
    return [int(r) for r in rows]


def generate_part(config: SyntheticConfig, part: int, parts: int) -> pd.DataFrame:
    """Slice ``part`` (0-based) of ``parts`` equal slices of the time span, made on its own.

    The parts, concatenated in order, form one data set of ``config.n_rows`` rows sorted by ``Time``, with
    the same daily cycle, patterns, drift and labels as :func:`generate` (not the same rows: each part draws
    from its own seeded stream), so a large data set is written part by part without being held in memory.
    """
    if not 0 <= part < parts:
        raise ValueError(f"part must be within [0, {parts}), got {part}")
    rows = part_rows(config, parts)[part]
    span = config.days * _SECONDS_PER_DAY
    low, high = span * part / parts, span * (part + 1) / parts
    rng = np.random.default_rng([config.seed, part])
    kept: list[np.ndarray] = []
    have = 0
    while have < rows:
        t = rng.uniform(low, high, size=2 * (rows - have) + 16)
        accept = rng.random(t.size) * 1.75 < _daily_intensity((t / 3600.0) % 24.0)
        kept.append(t[accept])
        have += int(accept.sum())
    time = np.floor(np.sort(np.concatenate(kept)[:rows]))
    return _rows_at(rng, time, config)


def _rows_at(rng: np.random.Generator, time: np.ndarray, config: SyntheticConfig) -> pd.DataFrame:
    """Rows at the given (sorted) times: groups, features, patterns, drift and labels."""
    n = time.size
    hour = (time / 3600.0) % 24.0
    group = rng.choice(len(GROUPS), size=n, p=np.array(GROUP_SHARES))
    z = rng.standard_normal((n, 28), dtype=np.float32)
    log_amount = rng.normal(3.0, 1.25, n)
    _apply_group_effects(z, log_amount, group)
    pattern = _assign_patterns(rng, group, hour)
    if config.setting == "rotated":
        _apply_rotated_patterns(rng, z, pattern)
    else:
        _apply_patterns(rng, z, log_amount, pattern)
    _apply_drift(z, log_amount, time, config)

    z *= SCALES
    amount = np.round(np.minimum(np.exp(log_amount), _AMOUNT_CAP), 2)
    features = np.empty((n, len(FEATURES)), dtype=np.float64)
    features[:, :28] = z
    features[:, 28] = amount
    label = (rng.random(n) < true_probability(features, config.label_noise, config.setting)).astype(np.int64)

    frame = pd.DataFrame(features, columns=list(FEATURES))
    frame.insert(0, TIME, time)
    frame[LABEL] = label
    frame[config.sensitive_column] = pd.Categorical.from_codes(group, categories=pd.Index(GROUPS))
    frame.attrs["synthetic_label_noise"] = config.label_noise
    return frame


__all__ = [
    "GROUPS",
    "PATTERNS",
    "SCALES",
    "SETTINGS",
    "SyntheticConfig",
    "generate",
    "generate_part",
    "part_rows",
    "true_probability",
]

"""The shadow comparison: is the challenger better than the champion on the same matured transactions?

Both scored every transaction (the champion answered, the shadow's answer was thrown away), so the comparison
is paired: each bootstrap resample draws transactions, and both models are scored on that same draw. The
difference challenger − champion in AUPRC gets a percentile interval; the challenger *wins with confidence*
when the interval's lower bound is above 0. Resampling is stratified (frauds and legitimate transactions drawn
separately, each with its own count), because at a 0.2 % fraud rate an unstratified draw can hold no fraud at
all, and AUPRC has no meaning there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraud_detection.monitoring.performance import auprc


@dataclass(frozen=True)
class Comparison:
    """Challenger − champion AUPRC on the same transactions, with its bootstrap interval."""

    pairs: int
    positives: int
    champion_auprc: float
    challenger_auprc: float
    difference: float
    low: float
    high: float
    confidence: float

    @property
    def challenger_wins(self) -> bool:
        """True when the whole interval is above 0: better with the stated confidence."""
        return self.low > 0


def compare(
    outcome: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Paired, stratified bootstrap of AUPRC(challenger) − AUPRC(champion); raises ValueError without frauds."""
    outcome = np.asarray(outcome, dtype=int)
    positives, negatives = np.flatnonzero(outcome == 1), np.flatnonzero(outcome == 0)
    if not len(positives):
        raise ValueError("no fraud among the matured pairs: AUPRC is undefined, nothing to compare")
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for i in range(resamples):
        draw = np.concatenate(
            [rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))]
            if len(negatives)
            else [rng.choice(positives, len(positives))]
        )
        differences[i] = auprc(outcome[draw], challenger[draw]) - auprc(outcome[draw], champion[draw])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    champion_auprc, challenger_auprc = auprc(outcome, champion), auprc(outcome, challenger)
    return Comparison(
        pairs=len(outcome),
        positives=len(positives),
        champion_auprc=champion_auprc,
        challenger_auprc=challenger_auprc,
        difference=challenger_auprc - champion_auprc,
        low=float(low),
        high=float(high),
        confidence=confidence,
    )


def pairs(
    matured: pd.DataFrame, champion_endpoint: str = "default", challenger_endpoint: str = "shadow"
) -> pd.DataFrame:
    """Matured transactions scored by both endpoints: ``outcome``, the ``champion`` and ``challenger`` scores and
    the two model versions (``champion_version``, ``challenger_version``), indexed by transaction id."""
    columns = ["outcome", "probability", "model_version"]
    champion = matured[matured["endpoint"] == champion_endpoint].set_index("tx_id")[columns]
    challenger = matured[matured["endpoint"] == challenger_endpoint].set_index("tx_id")[columns[1:]]
    joined = champion.join(challenger, how="inner", rsuffix="_challenger")
    names = {"probability": "champion", "probability_challenger": "challenger", "model_version": "champion_version",
             "model_version_challenger": "challenger_version"}  # fmt: skip
    return joined.rename(columns=names)


def compare_versions(paired: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> dict[tuple[str, str], Comparison]:
    """One :class:`Comparison` per (champion version, challenger version) in :func:`pairs`' output: a new
    challenger is never judged on its predecessor's scores. Pairs without a fraud yet are left out."""
    found = {}
    for (champion_version, challenger_version), group in paired.groupby(["champion_version", "challenger_version"]):
        outcome = group["outcome"].to_numpy()
        if outcome.sum() > 0:
            found[(str(champion_version), str(challenger_version))] = compare(
                outcome, group["champion"].to_numpy(), group["challenger"].to_numpy(), resamples, seed=seed
            )
    return found

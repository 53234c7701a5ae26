"""The time split's shares: how much of the time axis each window gets (the data knobs build them)."""

from __future__ import annotations

from dataclasses import dataclass

from fraud_detection.knob import ConfigError


@dataclass(frozen=True)
class SplitFractions:
    """Shares of the time axis (by row count) for each window; ``current`` gets the rest."""

    train: float
    validation: float
    test: float

    def __post_init__(self) -> None:
        parts = (self.train, self.validation, self.test)
        if any(p <= 0 for p in parts) or sum(parts) > 1.0 - 1e-9:
            raise ConfigError(
                "train_fraction, validation_fraction and test_fraction must be positive and leave room for the "
                f"current window: {self.train} + {self.validation} + {self.test} = {sum(parts):.2f} (must be < 1)"
            )

    @property
    def current(self) -> float:
        """The share left for the latest ("current") window."""
        return 1.0 - self.train - self.validation - self.test


__all__ = ["SplitFractions"]

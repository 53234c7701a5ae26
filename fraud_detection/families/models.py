"""Trained models of every family behind one small interface: probability, log-odds, explanation, files.

Each family keeps its own files in its own format:

``xgboost``  ``model.ubj``: the booster in XGBoost's UBJSON format (its output is the calibrated probability).
``mlp``      ``mlp.npz``: the network as plain arrays in NumPy's ``.npz`` format, read with
             ``allow_pickle=False``: ``mean`` and ``scale`` (the standardisation, per feature), then
             ``weight_0, bias_0, ..., weight_L, bias_L`` (hidden layers with ReLU, then one logistic output
             unit). The forward pass is a few NumPy lines (:meth:`MLPModel.logit`), equal to scikit-learn's
             ``predict_proba`` on the same weights; no pickle, no scikit-learn at serving time.
``blend``    both parts' files, and in the metadata the stack's weights and intercept: the blend's log-odds
             are ``intercept + sum(weight[f] * log-odds of part f)`` (a logistic regression fitted on the
             validation window over the parts' log-odds).

Explanations are per-feature contributions in log-odds that add up exactly to the model's log-odds:

* XGBoost: exact TreeSHAP (``pred_contribs``); ``base_value`` is the expected log-odds.
* MLP: DeepLIFT's rescale rule against a reference transaction (the training mean). For a ReLU network it
  is one extra forward pass and a product of matrices per row: each hidden unit passes on its change in
  output over its change in input, so the contributions sum exactly to ``logit(x) - logit(reference)``;
  ``base_value`` is ``logit(reference)``. Unlike a plain gradient x input it stays exact where units switch
  on or off; unlike sampling methods (KernelSHAP, occlusion over subsets) it costs about two forward passes.
* blend: the weighted sum of its parts' contributions (and of their base values, plus the intercept).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fraud_detection.families import BLEND, MLP, XGBOOST
from fraud_detection.schema import FEATURES

if TYPE_CHECKING:
    import xgboost as xgb

XGBOOST_FILE = "model.ubj"
MLP_FILE = "mlp.npz"
FILES: dict[str, str] = {XGBOOST: XGBOOST_FILE, MLP: MLP_FILE}
"""Each family's model file inside a model directory."""


class ModelFileError(RuntimeError):
    """A model file is missing or unreadable; the message names the file and why."""


class FamilyModel(Protocol):
    """What every trained model offers, whatever its family."""

    family: str

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of fraud per row of a float32 matrix in :data:`FEATURES` order."""
        ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Fraud probability per row (float64)."""
        ...

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(contributions of shape (n, 29), base values of shape (n,)), in log-odds; each row sums exactly to
        the row's log-odds."""
        ...

    def files(self) -> list[str]:
        """The file names this model occupies in a model directory."""
        ...

    def save(self, directory: Path) -> None:
        """Write this model's files into ``directory``."""
        ...

    def set_threads(self, threads: int) -> None:
        """Limit the threads one scoring call may use (0 = library default)."""
        ...


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


class XGBoostModel:
    """A calibrated XGBoost booster."""

    family = XGBOOST

    def __init__(self, booster: xgb.Booster) -> None:
        self.booster = booster

    def logit(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x, validate_features=False, predict_type="margin"), np.float64)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x, validate_features=False), dtype=np.float64)

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import xgboost as xgb

        matrix = xgb.DMatrix(x, feature_names=list(FEATURES))
        contributions = np.asarray(self.booster.predict(matrix, pred_contribs=True), dtype=np.float64)
        return contributions[:, :-1], contributions[:, -1]

    def files(self) -> list[str]:
        return [XGBOOST_FILE]

    def save(self, directory: Path) -> None:
        self.booster.save_model(str(Path(directory) / XGBOOST_FILE))

    def set_threads(self, threads: int) -> None:
        self.booster.set_param({"nthread": threads})

    @classmethod
    def load(cls, directory: Path) -> XGBoostModel:
        """Read ``model.ubj``; a missing or unreadable file raises :class:`ModelFileError` naming it."""
        import xgboost as xgb

        path = Path(directory) / XGBOOST_FILE
        if not path.is_file():
            raise ModelFileError(f"{path}: model file is missing")
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as error:
            raise ModelFileError(f"{path}: not a readable XGBoost model: {str(error).splitlines()[0]}") from error
        if booster.num_features() != len(FEATURES):
            raise ModelFileError(f"{path}: booster expects {booster.num_features()} features, not {len(FEATURES)}")
        return cls(booster)


class MLPModel:
    """A multi-layer perceptron (ReLU hidden layers, logistic output) on standardised features, in NumPy."""

    family = MLP

    def __init__(
        self, mean: np.ndarray, scale: np.ndarray, weights: list[np.ndarray], biases: list[np.ndarray]
    ) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale

    def _hidden(self, z: np.ndarray) -> list[np.ndarray]:
        """Pre-activations of each hidden layer for standardised rows ``z``."""
        out = []
        h = z
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            pre = h @ w + b
            out.append(pre)
            h = np.maximum(pre, 0.0)
        return out

    def _output(self, z: np.ndarray) -> np.ndarray:
        pre = self._hidden(z)
        h = np.maximum(pre[-1], 0.0) if pre else z
        return (h @ self.weights[-1] + self.biases[-1])[:, 0]

    def logit(self, x: np.ndarray) -> np.ndarray:
        return self._output(self._standardise(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.logit(x))

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DeepLIFT (rescale rule) against the training mean (standardised reference 0); see the module doc."""
        z = self._standardise(x)
        reference = np.zeros((1, z.shape[1]))
        pre_x, pre_r = self._hidden(z), self._hidden(reference)
        # multipliers: d(output)/d(input) chained through each layer's rescaled slopes, one matrix per row
        carry = np.broadcast_to(self.weights[-1][:, 0], (z.shape[0], self.weights[-1].shape[0]))
        for layer in range(len(pre_x) - 1, -1, -1):
            delta_in = pre_x[layer] - pre_r[layer]
            delta_out = np.maximum(pre_x[layer], 0.0) - np.maximum(pre_r[layer], 0.0)
            slope_at = (pre_x[layer] > 0).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(np.abs(delta_in) > 1e-12, delta_out / delta_in, slope_at)
            carry = (carry * ratio) @ self.weights[layer].T
        contributions = carry * (z - reference)
        base = self._output(reference)
        return contributions, np.full(z.shape[0], float(base[0]))

    def files(self) -> list[str]:
        return [MLP_FILE]

    def save(self, directory: Path) -> None:
        arrays: dict[str, np.ndarray] = {"mean": self.mean, "scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"weight_{i}"], arrays[f"bias_{i}"] = w, b
        with (Path(directory) / MLP_FILE).open("wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)

    def set_threads(self, threads: int) -> None:
        """NumPy's matrix products take their threads from the BLAS settings; nothing to set per model."""

    @classmethod
    def load(cls, directory: Path) -> MLPModel:
        """Read ``mlp.npz`` (never unpickling); a missing, unreadable or inconsistent file raises
        :class:`ModelFileError` naming it."""
        path = Path(directory) / MLP_FILE
        if not path.is_file():
            raise ModelFileError(f"{path}: model file is missing")
        try:
            with np.load(path, allow_pickle=False) as arrays:
                named = {name: arrays[name] for name in arrays.files}
        except (OSError, ValueError, EOFError) as error:
            raise ModelFileError(f"{path}: not a readable .npz file: {error}") from error
        layers = sum(1 for name in named if name.startswith("weight_"))
        try:
            weights = [named[f"weight_{i}"] for i in range(layers)]
            biases = [named[f"bias_{i}"] for i in range(layers)]
            mean, scale = named["mean"], named["scale"]
        except KeyError as error:
            raise ModelFileError(f"{path}: array {error} is missing") from error
        width = len(FEATURES)
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ModelFileError(
                    f"{path}: layer {i} has shape {w.shape} with bias {b.shape}, expected ({width}, k)"
                )
            width = w.shape[1]
        if layers == 0 or width != 1 or mean.shape != (len(FEATURES),) or scale.shape != (len(FEATURES),):
            raise ModelFileError(
                f"{path}: expected {len(FEATURES)} inputs, one output unit, and mean/scale per feature"
            )
        return cls(mean, scale, weights, biases)


class BlendModel:
    """A logistic stack over its parts' log-odds."""

    family = BLEND

    def __init__(self, parts: Mapping[str, FamilyModel], weights: Mapping[str, float], intercept: float) -> None:
        if set(parts) != set(weights):
            raise ValueError(f"blend parts {sorted(parts)} and weights {sorted(weights)} differ")
        self.parts = dict(parts)
        self.weights = {name: float(weights[name]) for name in parts}
        self.intercept = float(intercept)

    def logit(self, x: np.ndarray) -> np.ndarray:
        total = np.full(len(x), self.intercept)
        for name, part in self.parts.items():
            total += self.weights[name] * part.logit(x)
        return total

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.logit(x))

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        contributions = np.zeros((len(x), len(FEATURES)))
        base = np.full(len(x), self.intercept)
        for name, part in self.parts.items():
            c, b = part.explain(x)
            contributions += self.weights[name] * c
            base += self.weights[name] * b
        return contributions, base

    def files(self) -> list[str]:
        return [f for part in self.parts.values() for f in part.files()]

    def save(self, directory: Path) -> None:
        for part in self.parts.values():
            part.save(directory)

    def set_threads(self, threads: int) -> None:
        for part in self.parts.values():
            part.set_threads(threads)


def load(directory: Path, family: str, blend_weights: Mapping[str, float] | None = None, intercept: float = 0.0) -> Any:
    """Load a model of ``family`` from ``directory`` (for a blend: its parts, then the given stack)."""
    if family == XGBOOST:
        return XGBoostModel.load(directory)
    if family == MLP:
        return MLPModel.load(directory)
    if family == BLEND:
        if not blend_weights:
            raise ModelFileError(f"{directory}: a blend needs its parts' weights in the metadata")
        parts = {name: load(directory, name) for name in blend_weights}
        return BlendModel(parts, blend_weights, intercept)
    raise ModelFileError(f"{directory}: unknown model family {family!r}")

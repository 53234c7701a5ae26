"""The MLP family's model: a multi-layer perceptron in plain NumPy, saved as ``mlp.npz``.

``mlp.npz`` holds plain arrays in NumPy's ``.npz`` format, read with ``allow_pickle=False``: ``mean`` and
``scale`` (the standardisation, per feature), then ``weight_0, bias_0, ..., weight_L, bias_L`` (hidden layers
with ReLU, then one logistic output unit). The forward pass is a few NumPy lines (:meth:`MLPModel.logit`), equal
to scikit-learn's ``predict_proba`` on the same weights; no pickle, no scikit-learn at serving time.

Explanations: DeepLIFT's rescale rule against a reference transaction (the training mean). For a ReLU network
it is one extra forward pass and a product of matrices per row: each hidden unit passes on its change in output
over its change in input, so the contributions sum exactly to ``logit(x) - logit(reference)``; ``base_value``
is ``logit(reference)``. Unlike a plain gradient x input it stays exact where units switch on or off; unlike
sampling methods (KernelSHAP, occlusion over subsets) it costs about two forward passes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fraud_detection.families import MLP
from fraud_detection.families.base import ModelFileError, sigmoid
from fraud_detection.schema import FEATURES

MLP_FILE = "mlp.npz"


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
    def load(cls, directory: Path, n_features: int = len(FEATURES)) -> MLPModel:
        """Read ``mlp.npz`` (never unpickling), a network over ``n_features`` inputs; a missing, unreadable or
        inconsistent file raises :class:`ModelFileError` naming it."""
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
        width = n_features
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ModelFileError(
                    f"{path}: layer {i} has shape {w.shape} with bias {b.shape}, expected ({width}, k)"
                )
            width = w.shape[1]
        if layers == 0 or width != 1 or mean.shape != (n_features,) or scale.shape != (n_features,):
            raise ModelFileError(f"{path}: expected {n_features} inputs, one output unit, and mean/scale per feature")
        return cls(mean, scale, weights, biases)

"""Component ``load``: read or generate, validate, version and split the data by time."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def load_data(
    data_uri: str,
    sensitive_column: str,
    synthetic_rows: int,
    synthetic_seed: int,
    synthetic_drift: float,
    train_fraction: float,
    validation_fraction: float,
    test_fraction: float,
    train_data: Output[Dataset],
    validation_data: Output[Dataset],
    test_data: Output[Dataset],
    current_data: Output[Dataset],
    summary: Output[Metrics],
) -> NamedTuple("LoadOutputs", [("data_version", str), ("oracle_label_noise", float)]):  # type: ignore[valid-type]
    """Validate the data (a clear error names the column and row) and write train/validation/test/current.

    ``oracle_label_noise`` is the generator's label noise for synthetic data and -1 for real data (no
    true probabilities exist then).
    """
    from collections import namedtuple
    from pathlib import Path

    from fraud_detection import runtime
    from fraud_detection.data import SplitFractions
    from fraud_detection.schema import DataValidationError
    from fraud_detection.steps.load import load_step
    from fraud_detection.synth import SyntheticConfig

    runtime.setup_logging()
    windows = {"train": train_data, "validation": validation_data, "test": test_data, "current": current_data}
    try:
        result = load_step(
            data_uri=data_uri,
            sensitive_column=sensitive_column,
            synthetic=SyntheticConfig(n_rows=synthetic_rows, seed=synthetic_seed, drift=synthetic_drift),
            fractions=SplitFractions(train_fraction, validation_fraction, test_fraction),
            outputs={name: Path(artifact.path) for name, artifact in windows.items()},
        )
    except (DataValidationError, FileNotFoundError, ValueError) as error:
        raise runtime.fail("load", error) from error
    for name, artifact in windows.items():
        artifact.metadata.update(
            {"rows": result["rows"][name], "frauds": result["frauds"][name], "data_version": result["data_version"]}
        )
        summary.log_metric(f"{name}_rows", result["rows"][name])
        summary.log_metric(f"{name}_frauds", result["frauds"][name])
    LoadOutputs = namedtuple("LoadOutputs", ["data_version", "oracle_label_noise"])
    return LoadOutputs(result["data_version"], result["label_noise"] if result["is_synthetic"] else -1.0)

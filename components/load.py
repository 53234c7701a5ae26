"""Component ``load``: check the run's parameters, then read or generate, validate, version and split the data."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def load_data(
    data_uri: str,
    data_mapping: str,
    feature_set: str,
    sensitive_column: str,
    synthetic_rows: int,
    synthetic_seed: int,
    synthetic_setting: str,
    synthetic_drift: float,
    train_fraction: float,
    validation_fraction: float,
    test_fraction: float,
    engine: str,
    dask_scheduler_address: str,
    dask_workers: int,
    poison_levels: list,
    robustness_level: float,
    train_data: Output[Dataset],
    validation_data: Output[Dataset],
    test_data: Output[Dataset],
    current_data: Output[Dataset],
    summary: Output[Metrics],
) -> NamedTuple(  # type: ignore[valid-type]
    "LoadOutputs", [("data_version", str), ("oracle_label_noise", float), ("oracle_test_auprc", float)]
):
    """Check the parameters (the rules that span several, such as the robustness level being one of the poison
    levels), validate the data (a clear error names the column and row) and write train/validation/test/current.
    Raw transactions (``data_mapping`` or ``"synthetic-transactions"``) are checked with their mapping and their
    windows hold the engineered features (``feature_set``), computed point-in-time correct.

    With ``engine=dask`` the windows are directories of Parquet parts written by the cluster's workers.
    ``oracle_label_noise`` is the generator's label noise for synthetic data and -1 for real data (no
    true probabilities exist then); ``oracle_test_auprc`` is, for generated raw transactions, the test window's
    AUPRC of the generator's true probabilities, and -1 otherwise.
    """
    from collections import namedtuple

    from components import runner
    from fraud_detection.config import PipelineKnobs
    from fraud_detection.steps.load import load_step

    windows = {"train": train_data, "validation": validation_data, "test": test_data, "current": current_data}
    with runner.step("load"):
        # Every knob this step takes, checked with the rest at their defaults: the rules over several knobs
        # (the split fractions, robustness_level among the poison_levels) fail here, before any work.
        knobs = PipelineKnobs.of(
            {
                "data_uri": data_uri,
                "data_mapping": data_mapping,
                "feature_set": feature_set,
                "sensitive_column": sensitive_column,
                "synthetic_rows": synthetic_rows,
                "synthetic_seed": synthetic_seed,
                "synthetic_setting": synthetic_setting,
                "synthetic_drift": synthetic_drift,
                "train_fraction": train_fraction,
                "validation_fraction": validation_fraction,
                "test_fraction": test_fraction,
                "engine": engine,
                "dask_scheduler_address": dask_scheduler_address,
                "dask_workers": dask_workers,
                "poison_levels": poison_levels,
                "robustness_level": robustness_level,
            }
        )
        if knobs.scale.engine == "dask":
            from components.dask_cluster import dask_client, in_kubernetes, window_location
            from fraud_detection.steps.dask_steps import dask_load_step

            scale = knobs.scale
            remote = bool(scale.dask_scheduler_address) or in_kubernetes()
            places = {name: window_location(a, runner.path(a), remote) for name, a in windows.items()}
            with dask_client(scale.dask_scheduler_address, scale.dask_workers, "load") as client:
                scratch = places["current"].rstrip("/") + "-scratch"
                result = dask_load_step(client, knobs.data, places, scratch)
        else:
            result = load_step(knobs.data, {name: runner.path(a) for name, a in windows.items()})
    for name, artifact in windows.items():
        artifact.metadata.update(
            {"rows": result.rows[name], "frauds": result.frauds[name], **result.dataset.as_metadata()}
        )
        summary.log_metric(f"{name}_rows", result.rows[name])
        summary.log_metric(f"{name}_frauds", result.frauds[name])
    LoadOutputs = namedtuple("LoadOutputs", ["data_version", "oracle_label_noise", "oracle_test_auprc"])
    return LoadOutputs(
        result.data_version, runner.to_kfp(result.oracle_label_noise), runner.to_kfp(result.oracle_test_auprc)
    )

"""Reading, validation (each bad-data class has a clear message), versioning and the time split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_detection import data, storage
from fraud_detection.schema import FEATURES, LABEL, REQUIRED_COLUMNS, TIME, DataValidationError


@pytest.fixture()
def frame(small_frame: pd.DataFrame) -> pd.DataFrame:
    return small_frame.copy()


def write_csv(frame: pd.DataFrame, tmp_path: Path, name: str = "data.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def test_csv_and_parquet_give_the_same_frame_and_version(frame, tmp_path):
    csv = write_csv(frame, tmp_path)
    parquet = tmp_path / "data.parquet"
    frame.to_parquet(parquet, index=False)
    a = data.validate(data.read_table(csv), "age_group")
    b = data.validate(data.read_table(str(parquet)), "age_group")
    pd.testing.assert_frame_equal(a, b)
    assert data.data_version(a) == data.data_version(b)
    assert data.data_version(a).startswith("sha256:")


def test_version_changes_with_one_value(frame):
    before = data.data_version(data.validate(frame, "age_group"))
    frame.loc[10, "V3"] += 1e-9
    assert data.data_version(data.validate(frame, "age_group")) != before


def test_public_schema_without_sensitive_column_is_accepted(frame):
    public = frame.drop(columns=["age_group"])
    out = data.validate(public, "age_group")
    assert list(out.columns) == list(REQUIRED_COLUMNS)
    assert out[LABEL].dtype == np.int64


def test_reads_from_gcs(frame, gcs_bucket, tmp_path):
    csv = write_csv(frame.head(3000), tmp_path)
    uri = storage.upload_file(Path(csv), f"gs://{gcs_bucket}/raw/creditcard.csv")
    loaded = data.load_dataset(uri, "age_group")
    assert len(loaded.frame) == 3000
    assert loaded.source == uri
    with pytest.raises(FileNotFoundError, match="no such object: gs://"):
        data.read_table(f"gs://{gcs_bucket}/raw/missing.csv")


def expect_error(frame: pd.DataFrame, pattern: str, sensitive: str = "age_group") -> None:
    with pytest.raises(DataValidationError, match=pattern):
        data.validate(frame, sensitive)


def test_missing_columns_are_named(frame):
    expect_error(frame.drop(columns=["V3", "Class"]), r"missing columns: V3, Class")


def test_extra_columns_are_named(frame):
    frame["customer_id"] = 1
    expect_error(frame, r"unexpected columns: customer_id")


def test_non_numeric_value_names_column_and_row(frame, tmp_path):
    frame["V7"] = frame["V7"].astype(object)
    frame.loc[4, "V7"] = "abc"
    raw = data.read_table(write_csv(frame, tmp_path))
    expect_error(raw, r"column 'V7' must be numeric: row 5 has 'abc'")


def test_nan_and_inf_are_counted_and_located(frame):
    frame.loc[7, "Amount"] = np.nan
    frame.loc[9, "Amount"] = np.inf
    expect_error(frame, r"column 'Amount' has 2 missing or infinite values \(first at row 8\)")


def test_labels_must_be_binary(frame):
    frame.loc[3, LABEL] = 2
    expect_error(frame, r"column 'Class' must be 0 or 1: found 2 \(first at row 4\)")


def test_single_class_is_rejected(frame):
    frame[LABEL] = 0
    expect_error(frame, r"single class, 0 \(legitimate\)")


def test_negative_amount_is_rejected(frame):
    frame.loc[11, "Amount"] = -5.0
    expect_error(frame, r"column 'Amount' has 1 negative value\(s\) \(first at row 12: -5\)")


def test_missing_sensitive_values_are_rejected(frame):
    frame["age_group"] = frame["age_group"].astype(object)
    frame.loc[2, "age_group"] = None
    expect_error(frame, r"sensitive column 'age_group' has 1 missing value\(s\) \(first at row 3\)")


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError, match="the file is empty"):
        data.read_table(str(empty))
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(REQUIRED_COLUMNS) + "\n")
    expect_error(data.read_table(str(header_only)), "no rows")


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(DataValidationError, match="unsupported file type"):
        data.read_table(str(tmp_path / "data.xlsx"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        data.read_table(str(tmp_path / "nope.csv"))


def test_time_split_is_ordered_and_disjoint(frame):
    shuffled = data.validate(frame.sample(frac=1.0, random_state=1), "age_group")
    windows = data.time_split(shuffled)
    assert [len(w) for w in windows.values()] == [24_000, 6_000, 6_000, 4_000]
    for earlier, later in zip(data.SPLITS, data.SPLITS[1:], strict=False):
        assert windows[earlier][TIME].max() <= windows[later][TIME].min()
    assert sum(int(w[LABEL].sum()) for w in windows.values()) == int(frame[LABEL].sum())


def test_time_split_names_a_window_without_fraud(frame):
    valid = data.validate(frame, "age_group")
    start, stop = 24_000, 30_000
    valid.loc[start : stop - 1, LABEL] = 0
    with pytest.raises(DataValidationError, match=r"the validation window \(rows 24,001-30,000 by time\) has no fraud"):
        data.time_split(valid)


def test_split_fractions_must_leave_a_current_window():
    with pytest.raises(ValueError, match="leave room for the current window"):
        data.SplitFractions(0.7, 0.2, 0.1)


def test_read_xy_returns_float32_in_feature_order(frame, tmp_path):
    path = tmp_path / "w.parquet"
    data.write_parquet(data.validate(frame, "age_group"), path)
    x, y = data.read_xy(path)
    assert x.dtype == np.float32 and x.shape == (len(frame), len(FEATURES))
    assert np.allclose(x[:, FEATURES.index("Amount")], frame["Amount"].to_numpy(), rtol=1e-6)
    assert y.tolist() == frame[LABEL].tolist()


def test_a_window_is_lz4_compressed_and_dictionary_encoded_only_where_values_repeat(frame, tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "w.parquet"
    data.write_parquet(data.validate(frame, "age_group"), path)
    group = pq.ParquetFile(path).metadata.row_group(0)
    columns = [group.column(i) for i in range(group.num_columns)]
    assert {c.compression for c in columns} == {"LZ4"}, "every column compressed with data.PARQUET_CODEC"
    encodings = {c.path_in_schema: c.encodings for c in columns}
    dictionary = {name for name, used in encodings.items() if any("DICTIONARY" in e for e in used)}
    assert dictionary == {LABEL, "age_group"}, encodings
    pd.testing.assert_frame_equal(pd.read_parquet(path), data.validate(frame, "age_group").reset_index(drop=True))


def test_a_bounded_read_keeps_every_fraud_and_a_uniform_share_of_the_rest(frame, tmp_path):
    valid = data.validate(frame, "age_group")
    path = tmp_path / "window.parquet"
    data.write_parquet(valid, path)
    x, y = data.read_xy(path, max_rows=4000, seed=3)
    assert int(y.sum()) == int(valid[LABEL].sum())
    assert 3000 < len(y) < 5000
    sample = data.read_window(path, max_rows=4000, seed=3)
    assert np.array_equal(sample[list(FEATURES)].to_numpy(np.float32), x)  # the same rows either way
    full_x, _ = data.read_xy(path, max_rows=len(valid))
    assert full_x.shape[0] == len(valid)


def test_a_weighted_bounded_read_stands_for_the_whole_window(frame, tmp_path):
    valid = data.validate(frame, "age_group")
    path = tmp_path / "window.parquet"
    data.write_parquet(valid, path)
    x, y, w = data.read_xy_weighted(path, max_rows=4000, seed=3)
    assert np.array_equal(x, data.read_xy(path, max_rows=4000, seed=3)[0])  # the bounded read's rows
    assert w is not None and set(w[y == 1]) == {1.0} and len(set(w[y == 0])) == 1 and w[y == 0][0] > 1
    legitimate = int((valid[LABEL] == 0).sum())
    assert w[y == 0].sum() == pytest.approx(legitimate, rel=0.1)  # weighted back to the window's count
    assert data.read_xy_weighted(path, max_rows=len(valid))[2] is None


def test_read_xy_crosses_batches_files_and_sampled_rows_exactly(frame, tmp_path, monkeypatch):
    """``read_xy`` copies batch by batch: with batches of 7 rows, a window split over two files, and sorted
    sampled rows that straddle batch and file edges, it must return exactly the rows pandas reads."""

    monkeypatch.setattr(data, "XY_BATCH_ROWS", 7)
    canonical = data.validate(frame, "age_group")
    folder = tmp_path / "window"
    folder.mkdir()
    half = len(canonical) // 2 + 3
    data.write_parquet(canonical.iloc[:half], folder / "part-0.parquet")
    data.write_parquet(canonical.iloc[half:], folder / "part-1.parquet")
    expected_x = canonical[list(FEATURES)].to_numpy(dtype=np.float32)
    expected_y = canonical["Class"].to_numpy(dtype=np.int32)
    x, y = data.read_xy(folder)
    assert np.array_equal(x, expected_x) and np.array_equal(y, expected_y)
    rows = np.array([0, 6, 7, 13, half - 1, half, half + 1, len(canonical) - 1])
    x_rows, y_rows = data._read_xy_rows(folder, rows)
    assert np.array_equal(x_rows, expected_x[rows]) and np.array_equal(y_rows, expected_y[rows])

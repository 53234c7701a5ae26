"""``fraud data generate --kind transactions`` writes a file the customer_terminal mapping reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cli.main import build_parser, main
from fraud_detection.transactions.generator import TransactionConfig, generate
from fraud_detection.transactions.mapping import load_mapping
from fraud_detection.transactions.read import read_transactions


@pytest.mark.parametrize("name", ["tx.csv", "tx.parquet"])
def test_generate_transactions_writes_the_seeded_data_set(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / name
    assert (
        main(["data", "generate", "--kind", "transactions", "--rows", "3000", "--seed", "5", "--output", str(output)])
        == 0
    )
    assert "wrote 3,000 transactions" in capsys.readouterr().out
    frame = read_transactions(str(output), load_mapping("customer_terminal"))
    expected = generate(TransactionConfig(n_rows=3_000, seed=5))
    assert frame["tx_id"].tolist() == expected["tx_id"].tolist()
    assert frame["amount"].tolist() == expected["amount"].tolist()


def test_the_public_kind_stays_the_default(tmp_path: Path) -> None:
    output = tmp_path / "public.csv"
    assert main(["data", "generate", "--rows", "2000", "--output", str(output)]) == 0
    assert "V28" in pd.read_csv(output, nrows=1).columns
    args = build_parser().parse_args(["data", "generate", "--output", "x.csv"])
    assert args.kind == "public" and args.rows is None


def test_the_help_states_the_transaction_generators_default_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "generate", "--help"])
    assert f"{TransactionConfig().n_rows:,} transactions" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--drift", "0.5"], "--parts and --drift apply to --kind public only"),
        (["--rows", "5"], "n_rows must be at least 100"),
    ],
)
def test_generate_transactions_refuses_what_does_not_apply(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["data", "generate", "--kind", "transactions", "--output", str(tmp_path / "t.csv"), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()

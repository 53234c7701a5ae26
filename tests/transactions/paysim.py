"""A small file in PaySim's exact schema, made here, with fraud a model can learn; and the pipeline run that
promotes a model on it (the lead's serving tests reuse :func:`promote_paysim`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import run_fraud

PAYSIM_COLUMNS = (
    "step",
    "type",
    "amount",
    "nameOrig",
    "oldbalanceOrg",
    "newbalanceOrig",
    "nameDest",
    "oldbalanceDest",
    "newbalanceDest",
    "isFraud",
    "isFlaggedFraud",
)
"""PaySim's columns, in its file's order."""

TYPES = ("CASH_IN", "CASH_OUT", "DEBIT", "PAYMENT", "TRANSFER")
TYPE_SHARES = (0.22, 0.35, 0.01, 0.34, 0.08)
"""About PaySim's own mix of transaction types."""


def paysim_frame(rows: int = 30_000, seed: int = 0, days: int = 30, fraud_share: float = 0.035) -> pd.DataFrame:
    """PaySim-shaped transactions over ``days`` (``step`` in hours), sorted by step.

    As in PaySim, fraud happens only in TRANSFER and CASH_OUT (a ``fraud_share`` of them): the fraudster drains
    the sender's whole balance (``newbalanceOrig`` 0, no balance error) into an account whose balances do not
    move (a destination balance error). Legitimate senders often show zero balances (a balance error of minus
    the amount), and a few legitimate transfers also leave the destination's balances still, so neither
    error alone gives fraud away: the model must combine them with the type. ``isFlaggedFraud`` marks a few
    large frauds, as PaySim's does (never a feature).
    """
    rng = np.random.default_rng(seed)
    step = np.sort(rng.integers(1, 24 * days + 1, rows))
    kind = rng.choice(len(TYPES), rows, p=TYPE_SHARES)
    name = np.array(TYPES)[kind]
    amount = np.round(np.exp(rng.normal(np.log(20_000.0), 2.0, rows)), 2)
    candidate = np.isin(name, ("TRANSFER", "CASH_OUT"))
    fraud = candidate & (rng.random(rows) < fraud_share)
    incoming = name == "CASH_IN"

    zero_sender = ~fraud & (rng.random(rows) < 0.5)
    old_orig = np.where(zero_sender, 0.0, np.round(amount * rng.uniform(1.0, 5.0, rows), 2))
    old_orig = np.where(fraud, amount, old_orig)
    new_orig = np.where(incoming, old_orig + amount, np.maximum(old_orig - amount, 0.0))
    new_orig = np.where(zero_sender | fraud, 0.0, new_orig)

    merchant = name == "PAYMENT"
    still = merchant | fraud | (candidate & (rng.random(rows) < 0.02))
    old_dest = np.where(still, 0.0, np.round(np.exp(rng.normal(np.log(50_000.0), 1.0, rows)), 2))
    new_dest = np.where(still, 0.0, np.where(incoming, np.maximum(old_dest - amount, 0.0), old_dest + amount))

    customers = rng.permutation(10 * rows)[:rows]
    accounts = rng.integers(0, max(rows // 10, 10), rows)
    return pd.DataFrame(
        {
            "step": step,
            "type": name,
            "amount": amount,
            "nameOrig": [f"C{c}" for c in customers],
            "oldbalanceOrg": old_orig,
            "newbalanceOrig": new_orig,
            "nameDest": [f"{'M' if m else 'C'}{a}" for m, a in zip(merchant, accounts, strict=True)],
            "oldbalanceDest": old_dest,
            "newbalanceDest": new_dest,
            "isFraud": fraud.astype(int),
            "isFlaggedFraud": (fraud & (amount > 200_000)).astype(int),
        },
        columns=list(PAYSIM_COLUMNS),
    )


def write_paysim_csv(path: Path, rows: int = 30_000, seed: int = 0) -> Path:
    """Write :func:`paysim_frame` as a CSV in PaySim's exact schema; returns ``path``."""
    paysim_frame(rows, seed).to_csv(path, index=False)
    return path


QUICK = ("--n-rounds", "60", "--poison-levels", "0,0.05", "--poison-kinds", "targeted", "--mlp-max-epochs", "10")
"""Options that keep a test run to a couple of minutes (fewer rounds, one attack level)."""


def promote_paysim(home: Path, rows: int = 30_000, seed: int = 0) -> tuple[str, Path]:
    """Run ``fraud run --data-mapping paysim`` (kfp.local, FRAUD_HOME ``home``) on a fresh PaySim file.

    Returns the run's output and the champion model directory (``home/serving/champion``), which a serving
    test hands to the predictor (``fraud serve --model-dir``) as it is.
    """
    csv = write_paysim_csv(home / "paysim.csv", rows, seed)
    env = {**os.environ, "FRAUD_HOME": str(home), "COLUMNS": "1000"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = run_fraud("run", "--data-uri", str(csv), "--data-mapping", "paysim", *QUICK, env=env, timeout=1200)
    if result.returncode != 0:
        raise AssertionError(f"fraud run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout, home / "serving" / "champion"

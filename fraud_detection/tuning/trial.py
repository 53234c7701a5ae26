"""One Katib trial: train one family with the trial's values, as the train-family step does, and print the
objective for Katib's StdOut metrics collector.

``python -m fraud_detection.tuning.trial --family xgboost --train-data T --validation-data V --model-dir M
--max_depth=6 --learning_rate=0.1 ...`` (one ``--<name>=<value>`` per parameter of the family's search space;
values of parameters whose condition fails are ignored). The last line it prints is
``validation-auprc=<value>`` (:data:`OBJECTIVE`). The windows are paths the trial's pod mounts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fraud_detection.boosting import TrainParams
from fraud_detection.metrics import VALIDATION, Metric, on
from fraud_detection.tuning.space import Value
from fraud_detection.tuning.study import TUNABLE

OBJECTIVE = "validation-auprc"
"""The metric name Katib's objective and StdOut collector read (``validation-auprc=0.8123``)."""


def parser(family: str | None = None) -> argparse.ArgumentParser:
    """The trial's arguments; with ``family``, one ``--<name>`` per parameter of its search space."""
    found = argparse.ArgumentParser(prog="python -m fraud_detection.tuning.trial", description=__doc__)
    found.add_argument("--family", required=True, choices=sorted(TUNABLE))
    found.add_argument("--train-data", type=Path, required=True)
    found.add_argument("--validation-data", type=Path, required=True)
    found.add_argument("--model-dir", type=Path, required=True)
    found.add_argument("--data-version", default="")
    found.add_argument("--seed", type=int, default=TrainParams().seed)
    if family is not None:
        for p in TUNABLE[family].space.parameters:
            found.add_argument(f"--{p.name}", dest=f"value_{p.name}", required=not p.when)
    return found


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Value]]:
    """The trial's arguments and its values, each parsed and checked by the family's search space.

    Raises:
        SystemExit: for unknown arguments or a missing one (argparse); ValueError for a value out of range.
    """
    family = parser().parse_known_args(argv)[0].family
    args = parser(family).parse_args(argv)
    texts = {name.removeprefix("value_"): v for name, v in vars(args).items() if name.startswith("value_")}
    return args, TUNABLE[family].space.parse({k: v for k, v in texts.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    """Run one trial and print the objective; returns the exit code."""
    from fraud_detection.steps.bakeoff import train_family_step

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args, values = parse(sys.argv[1:] if argv is None else argv)
    params = TUNABLE[args.family].apply(TrainParams(seed=args.seed), values)
    metrics = train_family_step(
        args.family, args.train_data, args.validation_data, params, args.model_dir, args.data_version
    )
    print(f"{OBJECTIVE}={metrics[on(VALIDATION, Metric.AUPRC)]:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

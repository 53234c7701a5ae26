"""A Dask client: to a running scheduler, or to a small ``LocalCluster`` made for the duration."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)


@contextlib.contextmanager
def local_client(workers: int = 2, memory_limit: str = "4GiB") -> Iterator[Client]:
    """A client on a new ``LocalCluster`` of ``workers`` single-threaded worker processes, closed on exit.

    One thread per worker: XGBoost and pandas release the GIL, and a shared machine's cores are better
    given to processes than to threads competing inside one.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        log.info("local Dask cluster: %d workers, %s each", workers, memory_limit)
        yield client


@contextlib.contextmanager
def connect(address: str) -> Iterator[Client]:
    """A client on the scheduler at ``address`` (``tcp://host:8786``), closed on exit."""
    from distributed import Client

    with Client(address) as client:
        log.info("connected to Dask scheduler %s (%d workers)", address, len(client.scheduler_info()["workers"]))
        yield client

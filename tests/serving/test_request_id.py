"""The predictor's own request ids (no ``x-request-id``, no V2 id): version-4 UUIDs, distinct across forked workers.

A raw transaction without an id is stored as ``<request id>/<row>``, so two workers handing out the same id would
make the store skip a real transaction as already applied.
"""

from __future__ import annotations

import os
import uuid

from serving.predictor import _request_id


def test_a_new_request_id_is_a_version_4_uuid_and_never_repeats_in_a_process() -> None:
    ids = [_request_id({}, None) for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(hex=value).version == 4 and len(value) == 32 for value in ids)


def test_forked_workers_hand_out_different_ids() -> None:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its first ids, then out without running the parent's cleanup
        try:
            os.write(write, "".join(_request_id({}, None) for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = pipe.read()
    os.waitpid(child, 0)
    parent_ids = "".join(_request_id({}, None) for _ in range(3))
    assert len(child_ids) == 96
    assert {child_ids[i : i + 32] for i in range(0, 96, 32)}.isdisjoint(
        {parent_ids[i : i + 32] for i in range(0, 96, 32)}
    )


def test_the_callers_id_is_kept() -> None:
    assert _request_id({}, {"x-request-id": "abc"}) == "abc"

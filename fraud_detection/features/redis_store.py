"""The Redis entity-state store (Memorystore on GKE): the same contract as the embedded store, atomic by Lua.

Layout under a prefix ``p``: ``p:e:<role>:<key>`` the entity's transaction ids by event time (for trimming)
and ``p:c:<role>:<key>`` the same ids by the sequence number of their last change (for incremental reads),
``p:body`` each event's JSON by id, ``p:applied`` the applied ids (score = event time), ``p:labels`` a hash of
labels by id with ``p:label_times`` its time index, ``p:now`` the latest applied event time, ``p:seq`` the
latest sequence number, and ``p:progress`` the stream writer's next offset by ``<topic>/<partition>``.
``apply_many`` is one Lua script (Redis runs it atomically): for each transaction in turn it checks and records
the id, adds the event and bumps the sequence, then it trims once, so a redelivered transaction or batch changes
nothing; ``apply`` is a batch of one. ``apply_label`` is one script too: it records the label and marks the
transaction's entities changed (their keys are read from its JSON inside the script, so it needs a non-cluster
Redis, as Memorystore's basic and standard tiers are).
``redis`` is imported when a store is made, not with the package.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from fraud_detection.features.cache import Change, StateCache
from fraud_detection.features.definitions import GRACE
from fraud_detection.features.gathered import Gathered
from fraud_detection.features.online import EntityState, Transaction
from fraud_detection.features.store import (
    Entity,
    Progress,
    StoreUnavailable,
    entities_of,
    label_text,
    member,
    own_events,
)

_MANY = """
local function many(command, key, items)
  local replies = {}
  for first = 1, #items, 1000 do
    local reply = redis.call(command, key, unpack(items, first, math.min(first + 999, #items)))
    if type(reply) == 'table' then
      for j = 1, #reply do replies[#replies + 1] = reply[j] end
    end
  end
  return replies
end
"""
"""``many(command, key, items)``: ``command`` on ``key`` with every one of ``items``, a thousand a call (Lua's
``unpack`` has a limit), none for no items; the calls' list replies joined in order (a ``ZMSCORE``'s scores or an
``HMGET``'s values, ``false`` for a missing one), an empty table for the writes."""

_APPLY_BATCH = """
local function apply_batch(retained, batch)
  local function text(number) return string.format('%.17g', number) end
  local function trim(times, changes, below)
    local oldest = redis.call('ZRANGE', times, 0, 0, 'WITHSCORES')
    if oldest[2] == nil or tonumber(oldest[2]) >= below then return end
    local bound = '(' .. text(below)
    local old = redis.call('ZRANGEBYSCORE', times, '-inf', bound)
    if changes then many('ZREM', changes, old) else many('HDEL', KEYS[5], old) end
    redis.call('ZREMRANGEBYSCORE', times, '-inf', bound)
  end
  local applied, touched, held = {}, {}, {}
  local now = tonumber(redis.call('GET', KEYS[2]) or 'none')
  local seq = tonumber(redis.call('GET', KEYS[6]) or '0')
  local trimmed = nil
  local batch_ids = {}
  for n, tx in ipairs(batch) do batch_ids[n] = tx[1] end
  local found = many('ZMSCORE', KEYS[1], batch_ids)
  for n, id in ipairs(batch_ids) do if found[n] then held[id] = tonumber(found[n]) end end
  local ids, bodies, by_time, by_seq = {}, {}, {}, {}
  for n, tx in ipairs(batch) do
    local id, stamp, at = tx[1], tx[2], tx[4]
    local time = tonumber(stamp)
    local moved = now
    if moved == nil or time > moved then moved = time end
    local cutoff = moved - retained
    local before = held[id]
    applied[n] = 0
    if time >= cutoff and (not before or (trimmed and before < trimmed)) then
      applied[n] = 1
      now, seq, trimmed, held[id] = moved, seq + 1, cutoff, time
      ids[#ids + 1], ids[#ids + 2] = stamp, id
      bodies[#bodies + 1], bodies[#bodies + 2] = id, tx[3]
      for _, i in ipairs(at) do
        local times, seqs = by_time[i] or {}, by_seq[i] or {}
        times[#times + 1], times[#times + 2] = stamp, id
        seqs[#seqs + 1], seqs[#seqs + 2] = seq, id
        by_time[i], by_seq[i], touched[i] = times, seqs, cutoff
      end
    end
  end
  if trimmed then
    many('ZADD', KEYS[1], ids)
    many('HSET', KEYS[5], bodies)
    for i, times in pairs(by_time) do
      many('ZADD', KEYS[i], times)
      many('ZADD', KEYS[i + 1], by_seq[i])
    end
    redis.call('SET', KEYS[2], text(now))
    redis.call('SET', KEYS[6], string.format('%d', seq))
    for i, below in pairs(touched) do trim(KEYS[i], KEYS[i + 1], below) end
    trim(KEYS[1], nil, trimmed)
    local bound = '(' .. text(trimmed)
    many('HDEL', KEYS[3], redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', bound))
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', bound)
  end
  return applied
end
"""
"""Apply transactions in order, leaving Redis as the one-transaction ``apply`` applied to each in turn would, with
fewer calls: each transaction is decided as that apply would decide it (an id it would have trimmed by then counts
as absent), from the ids' applied times read at once (``ZMSCORE``) and kept as the batch goes; then what they added
is added a key at a time (one ``ZADD`` or ``HSET`` of many members: a call costs more than a member), and what those
applies would have trimmed is trimmed once (one ``ZREM`` or ``HDEL`` of many a key). A member given twice in one
``ZADD`` or ``HSET`` ends with its last value, as the applies one by one would leave it. Trims only grow (the clock
only moves forward), so an entity is trimmed below the cutoff of the last transaction that touched it, and the ids,
bodies and labels below the last one's. ``KEYS``: the six shared keys (applied, now, labels, label_times, body,
seq), then each entity's ``e:`` and ``c:`` keys; ``batch``: the decoded JSON array of ``[id, event time as text,
event JSON, [the KEYS index of each of its entities' e: key]]`` (one argument, not four a transaction: redis-py
packs each argument in Python). 1 for each transaction applied, 0 for each refused."""

_PROGRESS = """
local function record_progress(key, moved)
  for _, each in ipairs(cjson.decode(moved)) do
    if each[2] > tonumber(redis.call('HGET', key, each[1]) or '-1') then
      redis.call('HSET', key, each[1], string.format('%d', each[2]))
    end
  end
end
"""
"""``record_progress``: move the ``progress`` hash's offsets (``[["<topic>/<partition>", next offset], ...]``)
forward; an offset never moves back."""

_APPLY = (
    _MANY
    + _APPLY_BATCH
    + _PROGRESS
    + """
local applied = apply_batch(tonumber(ARGV[1]), cjson.decode(ARGV[2]))
record_progress(KEYS[#KEYS], ARGV[3])
return applied
"""
)
"""``apply_many``: ``KEYS`` as ``_APPLY_BATCH`` takes them, then the ``progress`` hash; ``ARGV``, the retained
seconds, the batch and the progress."""

_LABEL = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local body = redis.call('HGET', KEYS[3], ARGV[1])
if body then
  local seq = redis.call('INCR', KEYS[4])
  for role, key in pairs(cjson.decode(body)[4]) do
    redis.call('ZADD', ARGV[4] .. ':c:' .. role .. ':' .. key, seq, ARGV[1])
  end
end
return 1
"""

_CHANGES = """
local function changes_after(now_key, seq_key, body_key, labels_key, prefix, asked)
  if redis.call('EXISTS', now_key) == 1 and redis.call('EXISTS', seq_key) == 0 then return nil end
  local out = {redis.call('GET', now_key) or '', redis.call('GET', seq_key) or '0'}
  for n, entity in ipairs(cjson.decode(asked)) do
    local changed = redis.call('ZRANGEBYSCORE', prefix .. entity[1], '(' .. entity[2], '+inf', 'WITHSCORES')
    local flat, ids = {}, {}
    for j = 1, #changed, 2 do ids[#ids + 1] = changed[j] end
    local bodies, labels = many('HMGET', body_key, ids), many('HMGET', labels_key, ids)
    for j = 1, #ids do
      flat[#flat + 1] = bodies[j] or ''
      flat[#flat + 1] = labels[j] or ''
      flat[#flat + 1] = changed[2 * j]
    end
    out[n + 2] = flat
  end
  return out
end
"""
"""``changes_after``: "now", the latest sequence number, then each entity's changes after the sequence number it
was given, as ``[body, label, seq, ...]`` (an empty one is ``{}``: Lua's cjson writes an empty table so); nil for a
store of the older layout. ``prefix``: the entities' ``c:`` key prefix; ``asked``: ``[[role:key, seen], ...]`` as
one JSON argument (one string for redis-py to pack and one to parse, not four and three an entity); the entities'
keys are made in the script, as ``_LABEL`` makes them, so the store needs a non-cluster Redis as it did."""

_READ = (
    _MANY
    + _CHANGES
    + """
local out = changes_after(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
if out == nil then return 'old-layout' end
return cjson.encode(out)
"""
)
"""``read_many``: ``KEYS`` now, seq, body, labels; ``ARGV`` the ``c:`` prefix and the entities asked."""

_APPLY_READ = (
    _MANY
    + _CHANGES
    + _APPLY_BATCH
    + _PROGRESS
    + """
local out = changes_after(KEYS[2], KEYS[6], KEYS[5], KEYS[3], ARGV[4], ARGV[5])
if out == nil then return 'old-layout' end
local batch = cjson.decode(ARGV[2])
local applied = apply_batch(tonumber(ARGV[1]), batch)
record_progress(KEYS[#KEYS], ARGV[3])
local labels, ids = {}, {}
for n, tx in ipairs(batch) do
  if applied[n] == 1 then ids[#ids + 1] = tx[1] end
end
for j, label in ipairs(many('HMGET', KEYS[3], ids)) do labels[j] = label or '' end
out[#out + 1] = applied
out[#out + 1] = labels
return cjson.encode(out)
"""
)
"""``apply_and_read``: ``changes_after`` before the batch, then ``apply_batch`` and ``record_progress``, then the
label each applied transaction's event has (one that came first), as a read would find it. ``KEYS`` as ``_APPLY``'s;
``ARGV`` its three, then the ``c:`` prefix and the entities asked. One JSON array: ``changes_after``'s, the applied
flags, the labels."""


class RedisStateStore:
    """Entity state in Redis; ``url`` as redis-py takes it (``redis://host:6379/0``, ``rediss://`` for TLS)."""

    def __init__(
        self,
        url: str,
        horizon: float,
        grace: float = GRACE,
        prefix: str = "fraud:features",
        timeout: float = 2.0,
        ca_file: str | None = None,
    ) -> None:
        import redis

        self.retained = float(horizon) + float(grace)
        self.prefix = prefix
        self._errors: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
        )
        # rediss:// with ca_file: the server's certificate must chain to that CA (Memorystore's server CA)
        tls = {"ssl_ca_certs": ca_file} if ca_file and url.startswith("rediss://") else {}
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, **tls)
        options = self._client.connection_pool.connection_kwargs
        self.address = f"{options.get('host', '?')}:{options.get('port', '?')}"
        self._apply = self._client.register_script(_APPLY)
        self._label = self._client.register_script(_LABEL)
        self._read = self._client.register_script(_READ)
        self._apply_read = self._client.register_script(_APPLY_READ)
        self._cache = StateCache()
        self._lock = threading.Lock()  # the cache is shared by the threads that read through this store

    def read(self, keys: Mapping[str, str]) -> dict[str, EntityState]:
        """Each role's state, as :meth:`read_many` reads it."""
        states = self.read_many(keys.items())
        return {role: states[(role, key)] for role, key in keys.items()}

    def read_many(self, entities: Iterable[Entity]) -> dict[Entity, EntityState]:
        """Each entity's changes since this reader's last read of it, in one script call (one round trip, one
        snapshot), applied to the reader's cache."""
        wanted = list(dict.fromkeys(entities))
        cutoff, changed = self._changed(wanted)
        with self._lock:
            self._take(wanted, changed)
            return {entity: self._cache.state(*entity, cutoff) for entity in wanted}

    def read_batch(self, entities: Iterable[Entity]) -> Gathered:
        """``read_many``'s states, gathered a role at a time (what the stream's batch features read)."""
        wanted = list(dict.fromkeys(entities))
        cutoff, changed = self._changed(wanted)
        with self._lock:
            self._take(wanted, changed)
            return self._cache.gathered(wanted, cutoff)

    def _changed(self, wanted: Sequence[Entity]) -> tuple[float, list[Any]]:
        """Each of ``wanted``'s changes since this reader's last read of it, in one script call (one round trip, one
        snapshot), and the cutoff of the store's "now"."""
        seen, asked = self._asked(wanted)
        names = [self._key(name) for name in ("now", "seq", "body", "labels")]
        result = self._decoded(self._call(self._read, names, [self._key("c:"), asked]))
        if self._renewed(wanted, seen, int(result[1])):
            return self._changed(wanted)
        return _cutoff(result[0], self.retained), result[2:]

    def _take(self, wanted: Sequence[Entity], changed: Sequence[Any]) -> None:
        """Apply each entity's changes (as a script returns them) to the cache (under the lock)."""
        for entity, each in zip(wanted, changed, strict=True):
            self._cache.update(*entity, _changes(each))

    def apply(self, transaction: Transaction) -> bool:
        """Record the id, add the event and trim, atomically; False if already applied or too old."""
        return self.apply_many([transaction])[0]

    def apply_many(self, transactions: Sequence[Transaction], progress: Progress | None = None) -> list[bool]:
        """The batch's applies, in order, in one script call: atomic (all or none), one round trip; ``progress``
        recorded in the same call."""
        if not transactions and not progress:
            return []
        keys, args = self._batch(transactions, progress)
        return [bool(applied) for applied in _listed(self._call(self._apply, keys, args))]

    def latest_time(self) -> float | None:
        """``EntityStateStore.latest_time``, from ``p:now``."""
        now = self._run(lambda: self._client.get(self._key("now")))
        return float(now) if now else None

    def progress(self, topic: str) -> dict[int, int]:
        """``EntityStateStore.progress``, from the ``progress`` hash (``<topic>/<partition>`` to the next offset)."""
        held = self._run(lambda: self._client.hgetall(self._key("progress")))
        found = {_text(field).rpartition("/"): int(offset) for field, offset in held.items()}
        return {int(partition): offset for (name, _, partition), offset in found.items() if name == topic}

    def apply_and_read(
        self, transactions: Sequence[Transaction], progress: Progress | None = None
    ) -> tuple[list[bool], Gathered]:
        """``apply_many``, and each entity of the batch read in the same script call (see ``EntityStateStore``): the
        changes before the batch, then the events the batch added, taken into the cache without a read back."""
        if not transactions:
            return self.apply_many([], progress), Gathered({})
        wanted = entities_of(transactions)
        seen, asked = self._asked(wanted)
        keys, args = self._batch(transactions, progress)
        result = self._decoded(self._call(self._apply_read, keys, [*args, self._key("c:"), asked]))
        applied, labels = [bool(flag) for flag in _listed(result[-2])], _listed(result[-1])
        before = int(result[1])
        if self._renewed(wanted, seen, before):  # a new store under this prefix: what it holds now, read whole
            return applied, self.read_batch(wanted)
        accepted = [t for t, ok in zip(transactions, applied, strict=True) if ok]
        added = own_events(
            (t, label or None, before + n) for n, (t, label) in enumerate(zip(accepted, labels, strict=True), 1)
        )
        cutoff = _cutoff(result[0], self.retained)
        with self._lock:
            self._take(wanted, result[2:-2])
            self._cache.add(added)
            return applied, self._cache.gathered(wanted, cutoff)

    def _asked(self, wanted: Sequence[Entity]) -> tuple[list[int], str]:
        """The last change held of each entity, and the scripts' ``asked`` argument for them."""
        with self._lock:
            seen = [self._cache.seen(role, key) for role, key in wanted]
        asked = orjson.dumps([[f"{role}:{key}", str(number)] for (role, key), number in zip(wanted, seen, strict=True)])
        return seen, asked.decode()

    def _decoded(self, reply: bytes | str) -> list[Any]:
        """A script's JSON reply; an older layout under the prefix raises ``StoreUnavailable``."""
        if _text(reply) == "old-layout":
            raise StoreUnavailable(
                f"the Redis feature store at {self.address} holds an older layout under {self.prefix!r} (no change "
                "sequence); delete those keys and replay the transactions"
            )
        return orjson.loads(reply)

    def _renewed(self, wanted: Sequence[Entity], seen: Sequence[int], latest: int) -> bool:
        """True (and the entities forgotten) if this reader holds changes newer than the store's ``latest``: a new
        store under the same prefix."""
        if not any(number > latest for number in seen):
            return False
        with self._lock:
            for role, key in wanted:
                self._cache.seen(role, key, latest)
        return True

    def _batch(self, transactions: Sequence[Transaction], progress: Progress | None) -> tuple[list[str], list[str]]:
        """``_APPLY``'s keys and arguments for ``transactions`` and ``progress``."""
        keys = [self._key(name) for name in ("applied", "now", "labels", "label_times", "body", "seq")]
        slots: dict[tuple[str, str], int] = {}
        batch = []
        for transaction in transactions:
            at = []
            for entity in transaction.keys.items():
                if entity not in slots:
                    slots[entity] = len(keys) + 1  # Lua counts from 1
                    keys += [self._key(f"e:{entity[0]}:{entity[1]}"), self._key(f"c:{entity[0]}:{entity[1]}")]
                at.append(slots[entity])
            batch.append([transaction.tx_id, repr(float(transaction.event_time)), member(transaction), at])
        moved = [[f"{topic}/{partition}", offset] for (topic, partition), offset in (progress or {}).items()]
        keys.append(self._key("progress"))
        return keys, [repr(self.retained), orjson.dumps(batch).decode(), orjson.dumps(moved).decode()]

    def apply_label(self, tx_id: str, label: int, label_time: float) -> None:
        """Record the label, index its time and mark the transaction's entities changed, atomically."""
        body = label_text(label, label_time)
        keys = [self._key(name) for name in ("labels", "label_times", "body", "seq")]
        self._call(self._label, keys, [tx_id, body, repr(float(label_time)), self.prefix])

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def _call(self, script: Any, keys: list[str], args: list[str]) -> Any:
        return self._run(lambda: script(keys=keys, args=args))

    def _run(self, call: Any) -> Any:
        try:
            return call()
        except self._errors as error:
            raise StoreUnavailable(f"the Redis feature store at {self.address} cannot be reached: {error}") from error


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _listed(value: list[Any] | dict[str, Any]) -> list[Any]:
    """A list from a script's JSON (Lua's cjson writes an empty table as ``{}``)."""
    return value if isinstance(value, list) else []


def _cutoff(now: str, retained: float) -> float:
    """The trim's cutoff for the store's "now" as the scripts return it (``""`` before any apply)."""
    return float(now) - retained if now else -math.inf


def _changes(flat: list[str] | dict[str, str]) -> list[Change]:
    """The script's changed events (an id whose JSON was trimmed away is skipped)."""
    if not isinstance(flat, list):  # Lua's cjson writes an empty table as {}
        return []
    return [(flat[at], flat[at + 1] or None, int(float(flat[at + 2]))) for at in range(0, len(flat), 3) if flat[at]]

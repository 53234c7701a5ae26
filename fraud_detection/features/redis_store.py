"""The Redis entity-state store (Memorystore on GKE): the same contract as the embedded store, atomic by Lua.

Layout under a prefix ``p``: ``p:e:<role>:<key>`` a sorted set of the entity's events (score = event time,
member = the event's JSON), ``p:applied`` the applied transaction ids (score = event time), ``p:labels`` a hash
of labels by id with ``p:label_times`` its time index, and ``p:now`` the latest applied event time. ``apply``
is one Lua script (Redis runs it atomically): it checks and records the id, adds the events and trims, so a
redelivered transaction changes nothing. ``redis`` is imported when a store is made, not with the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fraud_detection.features.online import EntityState, Transaction
from fraud_detection.features.store import GRACE, StoreUnavailable, event_of, label_text, member

_APPLY = """
local t = tonumber(ARGV[2])
local now = tonumber(redis.call('GET', KEYS[2]) or ARGV[2])
if t > now then now = t end
local cutoff = now - tonumber(ARGV[3])
if t < cutoff then return 0 end
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], string.format('%.17g', now))
local below = '(' .. string.format('%.17g', cutoff)
for i = 5, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', below)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', below)
local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', below)
for _, id in ipairs(old) do redis.call('HDEL', KEYS[3], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', below)
return 1
"""

_READ = """
local out = {}
for i = 1, #KEYS - 1 do
  local members = redis.call('ZRANGE', KEYS[i], 0, -1)
  local labels = {}
  for j, m in ipairs(members) do
    labels[j] = redis.call('HGET', KEYS[#KEYS], cjson.decode(m)[1]) or ''
  end
  out[i] = {members, labels}
end
return out
"""


class RedisStateStore:
    """Entity state in Redis; ``url`` as redis-py takes it (``redis://host:6379/0``, ``rediss://`` for TLS)."""

    def __init__(
        self, url: str, horizon: float, grace: float = GRACE, prefix: str = "fraud:features", timeout: float = 2.0
    ) -> None:
        import redis

        self.retained = float(horizon) + float(grace)
        self.prefix = prefix
        self._errors: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
        )
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        options = self._client.connection_pool.connection_kwargs
        self.address = f"{options.get('host', '?')}:{options.get('port', '?')}"
        self._apply = self._client.register_script(_APPLY)
        self._read = self._client.register_script(_READ)

    def read(self, keys: Mapping[str, str]) -> dict[str, EntityState]:
        """Each role's events and their labels, in one script call (one round trip, one snapshot)."""
        roles = list(keys)
        result = self._call(self._read, [*(self._entity(role, keys[role]) for role in roles), self._key("labels")], [])
        states: dict[str, EntityState] = {}
        for role, (members, labels) in zip(roles, result, strict=True):
            events = (event_of(_text(m), _text(label) or None) for m, label in zip(members, labels, strict=True))
            states[role] = EntityState(tuple(events))
        return states

    def apply(self, transaction: Transaction) -> bool:
        """Record the id, add the events and trim, atomically; False if already applied or too old."""
        keys = [self._key("applied"), self._key("now"), self._key("labels"), self._key("label_times")]
        keys += [self._entity(role, key) for role, key in transaction.keys.items()]
        args = [transaction.tx_id, repr(float(transaction.event_time)), repr(self.retained), member(transaction)]
        return bool(self._call(self._apply, keys, args))

    def apply_label(self, tx_id: str, label: int, label_time: float) -> None:
        """Record the label and index its time, in one MULTI/EXEC."""
        body = label_text(label, label_time)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._key("labels"), tx_id, body)
        pipe.zadd(self._key("label_times"), {tx_id: float(label_time)})
        self._run(pipe.execute)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def _entity(self, role: str, key: str) -> str:
        return f"{self.prefix}:e:{role}:{key}"

    def _call(self, script: Any, keys: list[str], args: list[str]) -> Any:
        return self._run(lambda: script(keys=keys, args=args))

    def _run(self, call: Any) -> Any:
        try:
            return call()
        except self._errors as error:
            raise StoreUnavailable(f"the Redis feature store at {self.address} cannot be reached: {error}") from error


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

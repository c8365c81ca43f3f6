"""What AWS would bill for the requests the emulator serves: DynamoDB on-demand read and
write units (table, each global secondary index, each partition key), SQS requests and SNS
publishes. Off unless the emulator runs with `--capacity` (or `HERALD_EMULATOR_CAPACITY=1`);
`GET /_capacity` on the emulator's port reads the figures, `DELETE /_capacity` resets them.

The DynamoDB units are computed from the items themselves, read from moto's backend inside
the emulator's request lock: the before-image of every item a write names, its after-image,
and the items a read returns. DynamoDB's rules, as its developer guide states them:

- Item size: attribute name bytes plus value bytes; strings UTF-8, numbers 1 byte per two
  significant digits plus 1, binary raw bytes, booleans and null 1 byte, lists and maps 3
  bytes plus 1 byte per element plus the elements, sets the sum of their elements.
- Writes: ceil(max(before, after) / 1 KB) units per item, at least 1 (a delete of an absent
  item costs 1). A write refused by its condition still consumes units: the larger of the
  existing item and the item asked for (at least 1), and writes no index.
- Transactions: every item is written twice (prepare and commit), so Put, Update and Delete
  cost 2x. A ConditionCheck is counted as a transactional *write* of the item it checks (2
  units per KB), not as a read: the guide does not say, and DynamoDB's own ConsumedCapacity,
  as measured and published by others, reports write units for it. A cancelled
  transaction is counted as a refused write per item (1x); the guide does not say what a
  cancellation costs, so this is the cheapest reading.
- Global secondary indexes: an item is in an index iff it has all the index's key
  attributes. Per item write: nothing if it is in the index neither before nor after, or if
  none of the attributes the index projects (its keys and the table's keys included)
  changed; one put if it enters, one delete if it leaves, a delete and a put if its index key
  changed, one write if a projected attribute changed. An index entry's size is its
  projected attributes plus 100 bytes, the per-item overhead the guide gives for index
  storage. The guide describes transactions as two underlying writes of each *item*; index
  entries are maintained asynchronously from the committed item, so index writes are
  counted once per transaction, not doubled (the guide does not state it either way).
- Reads: GetItem, each key of BatchGetItem and TransactGetItems ceil(size / 4 KB) units, at
  least 1 (an absent item costs the same as a 4 KB one), half if eventually consistent, 2x
  in a transaction. Query and Scan: the sizes of every item read before the filter, summed
  and rounded up to 4 KB per request, half if eventually consistent; on an index the sizes
  are of the projected entries.

SQS bills each request, a request's payload in 64 KB chunks (a batch sums its entries); SNS
each publish request the same way: a PublishBatch of up to 10 messages is one request per
64 KB of their sum (AWS documents batching as cutting publish costs by up to 10x). SNS
deliveries to SQS are free, and moto makes them inside its process, so they are never seen
here.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

ENV = "HERALD_EMULATOR_CAPACITY"
PATH = "/_capacity"
WRITE_UNIT = 1024
READ_UNIT = 4096
INDEX_ENTRY_OVERHEAD = 100
CHUNK = 64 * 1024
TABLE = "(table)"  # the target name of a table itself, beside its index names

# --- item sizes ------------------------------------------------------------------------


def number_size(text: str) -> int:
    """1 byte per two significant digits, plus 1 (leading and trailing zeros trimmed)."""
    mantissa = text.strip().lstrip("+-").lower().split("e", 1)[0]
    digits = mantissa.replace(".", "").strip("0")
    return math.ceil(len(digits) / 2) + 1


def _binary_len(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    import base64
    import binascii

    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value).encode())


def value_size(kind: str, value: Any) -> int:
    """The bytes of one attribute value (name not included), in DynamoDB's terms."""
    if kind == "S":
        return len(str(value).encode())
    if kind == "N":
        return number_size(str(value))
    if kind == "B":
        return _binary_len(value)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(v).encode()) for v in value)
    if kind == "NS":
        return sum(number_size(str(v)) for v in value)
    if kind == "BS":
        return sum(_binary_len(v) for v in value)
    if kind == "L":
        return 3 + sum(1 + _typed_size(v) for v in value)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _typed_size(v) for k, v in value.items())
    return len(str(value).encode())


def _typed_size(value: Any) -> int:
    """A nested value: a moto DynamoType or its {type: value} JSON form."""
    if isinstance(value, dict):
        ((kind, inner),) = value.items()
        return value_size(kind, inner)
    return value_size(value.type, value.value)


def _canonical(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return json.dumps({value.type: value.value}, sort_keys=True, default=lambda v: _canonical(v))


def attributes_json_size(attributes: dict[str, Any]) -> int:
    """The size of an item given in the wire format, {name: {type: value}}."""
    return sum(len(name.encode()) + _typed_size(v) for name, v in attributes.items())


def item_size(item: Any) -> int:
    """The size of a moto item."""
    return sum(len(name.encode()) + _typed_size(v) for name, v in item.attrs.items())


@dataclass(frozen=True)
class Image:
    """What the meter needs of one item at one moment: each attribute's size (name
    included) and a canonical form to tell whether it changed."""

    sizes: dict[str, int]
    forms: dict[str, str]

    @classmethod
    def of(cls, item: Any) -> Image | None:
        if item is None:
            return None
        sizes: dict[str, int] = {}
        forms: dict[str, str] = {}
        for name, value in item.attrs.items():
            sizes[name] = len(name.encode()) + _typed_size(value)
            forms[name] = _canonical(value)
        return cls(sizes, forms)

    @property
    def size(self) -> int:
        return sum(self.sizes.values())

    def projected_size(self, names: set[str] | None) -> int:
        if names is None:
            return self.size + INDEX_ENTRY_OVERHEAD
        return sum(s for n, s in self.sizes.items() if n in names) + INDEX_ENTRY_OVERHEAD

    def value(self, name: str) -> str | None:
        """A key attribute's value as a plain string (its partition label)."""
        form = self.forms.get(name)
        if form is None:
            return None
        ((_, raw),) = json.loads(form).items()
        return str(raw)


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT))


def read_units(size: int) -> int:
    return max(1, math.ceil(size / READ_UNIT))


# --- indexes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexShape:
    """A global secondary index as the table defines it now (read at every request, so the
    meter measures whatever layout the code provisions)."""

    name: str
    hash_attr: str
    keys: tuple[str, ...]
    projected: frozenset[str] | None  # None: ALL

    @classmethod
    def of(cls, index: Any, table_keys: list[str]) -> IndexShape:
        keys = tuple(k["AttributeName"] for k in index.schema)
        hash_attr = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
        projection = index.projection or {}
        kind = projection.get("ProjectionType", "ALL")
        projected: frozenset[str] | None = None
        if kind != "ALL":
            names = set(keys) | set(table_keys)
            if kind == "INCLUDE":
                names |= set(projection.get("NonKeyAttributes") or [])
            projected = frozenset(names)
        return cls(index.name, hash_attr, keys, projected)

    def holds(self, image: Image | None) -> bool:
        return image is not None and all(k in image.sizes for k in self.keys)

    def changed(self, before: Image, after: Image) -> bool:
        names = set(before.forms) | set(after.forms)
        if self.projected is not None:
            names &= self.projected
        return any(before.forms.get(n) != after.forms.get(n) for n in names)

    def key_changed(self, before: Image, after: Image) -> bool:
        return any(before.forms.get(k) != after.forms.get(k) for k in self.keys)

    def entry_units(self, image: Image) -> int:
        names = set(self.projected) if self.projected is not None else None
        return write_units(image.projected_size(names))


def table_indexes(table: Any) -> list[IndexShape]:
    table_keys = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return [IndexShape.of(i, table_keys) for i in table.global_indexes or []]


# --- the meter -------------------------------------------------------------------------


@dataclass
class _Partition:
    wcu: float = 0.0
    rcu: float = 0.0
    seconds: dict[int, list[float]] = field(default_factory=dict)
    # "<operation> <item kind>" -> [wcu, rcu]: what makes a hot key hot
    ops: dict[str, list[float]] = field(default_factory=dict)

    def add(self, at: float, wcu: float, rcu: float, what: str = "") -> None:
        self.wcu += wcu
        self.rcu += rcu
        for cell in (
            self.seconds.setdefault(int(at), [0.0, 0.0]),
            self.ops.setdefault(what, [0.0, 0.0]),
        ):
            cell[0] += wcu
            cell[1] += rcu


class Meter:
    """Totals by table and index, by operation, by partition key; and SQS/SNS requests.
    DynamoDB figures are changed under the emulator's request lock, the others under the
    meter's own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.since = time.time()
            # (table, target) -> op -> [wcu, rcu]
            self.units: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(
                lambda: defaultdict(lambda: [0.0, 0.0])
            )
            self.requests: dict[str, int] = defaultdict(int)
            self.partitions: dict[tuple[str, str], dict[str, _Partition]] = defaultdict(
                lambda: defaultdict(_Partition)
            )
            self.sqs: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self.sns: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            self.reads: list[tuple[str, str, str | None, int]] | None = None

    # -- DynamoDB ----------------------------------------------------------------------

    def charge(
        self,
        table: str,
        target: str,
        op: str,
        partition: str | None,
        at: float,
        wcu: float = 0.0,
        rcu: float = 0.0,
        kind: str = "",
    ) -> None:
        if not wcu and not rcu:
            return
        cell = self.units[(table, target)][op]
        cell[0] += wcu
        cell[1] += rcu
        if partition is not None:
            what = f"{op} {kind}" if kind else op
            self.partitions[(table, target)][partition].add(at, wcu, rcu, what)

    def write(
        self,
        table: Any,
        op: str,
        before: Image | None,
        after: Image | None,
        at: float,
        factor: int = 1,
    ) -> None:
        """An applied write of one item: the table and every index it touches."""
        name = table.name
        largest = max(before.size if before else 0, after.size if after else 0)
        latest = after if after is not None else before
        pk = latest.value(table.hash_key_attr) if latest is not None else None
        # The item's sort key up to its second `#`: EVENT, EVENT#TALLY, NOTIF#email, ...
        sk = latest.value(table.range_key_attr) if latest and table.range_key_attr else None
        kind = "#".join(sk.split("#")[:2]) if sk else ""
        self.charge(name, TABLE, op, pk, at, wcu=write_units(largest) * factor, kind=kind)
        for index in table_indexes(table):
            was, now = index.holds(before), index.holds(after)
            units: list[tuple[Image, int]] = []
            if was and now:
                assert before is not None and after is not None
                if index.key_changed(before, after):
                    units = [(before, index.entry_units(before)), (after, index.entry_units(after))]
                elif index.changed(before, after):
                    units = [(after, max(index.entry_units(before), index.entry_units(after)))]
            elif was:
                assert before is not None
                units = [(before, index.entry_units(before))]
            elif now:
                assert after is not None
                units = [(after, index.entry_units(after))]
            for entry, count in units:
                self.charge(name, index.name, op, entry.value(index.hash_attr), at, wcu=count)

    def refused(
        self, table: Any, op: str, pk: str | None, size: int, at: float, factor: int = 1
    ) -> None:
        """A write its condition (or its transaction's cancellation) refused."""
        self.charge(table.name, TABLE, op, pk, at, wcu=write_units(size) * factor)

    def read(
        self, table: str, target: str, op: str, pk: str | None, size: int, factor: float, at: float
    ) -> None:
        self.charge(table, target, op, pk, at, rcu=read_units(size) * factor)

    # -- SQS and SNS -------------------------------------------------------------------

    def count(
        self, service: str, action: str, billed: int, empty: bool = False, messages: int = 0
    ) -> None:
        with self._lock:
            store = self.sqs if service == "sqs" else self.sns
            store[action]["requests"] += 1
            store[action]["billed"] += billed
            if messages:
                store[action]["messages"] += messages
            if empty:
                store[action]["empty"] += 1

    # -- the report --------------------------------------------------------------------

    def report(self, top: int = 10) -> dict[str, Any]:
        tables: dict[str, Any] = {}
        for (table, target), ops in list(self.units.items()):
            entry = tables.setdefault(table, {}).setdefault(
                target, {"wcu": 0.0, "rcu": 0.0, "by_operation": {}}
            )
            for op, (w, r) in ops.items():
                entry["wcu"] += w
                entry["rcu"] += r
                entry["by_operation"][op] = {"wcu": w, "rcu": r}
            parts = self.partitions.get((table, target), {})
            entry["partition_keys"] = len(parts)
            entry["hottest_by_wcu"] = _hottest(parts, 0, top)
            entry["hottest_by_rcu"] = _hottest(parts, 1, top)
        with self._lock:
            sqs = {a: dict(v) for a, v in self.sqs.items()}
            sns = {a: dict(v) for a, v in self.sns.items()}
        return {
            "since": self.since,
            "now": time.time(),
            "dynamodb": {"requests": dict(self.requests), "tables": tables},
            "sqs": sqs,
            "sns": sns,
        }


def _hottest(parts: dict[str, _Partition], which: int, top: int) -> list[dict[str, Any]]:
    ranked = sorted(parts.items(), key=lambda kv: -(kv[1].wcu if which == 0 else kv[1].rcu))
    out = []
    for key, part in ranked[:top]:
        total = part.wcu if which == 0 else part.rcu
        if not total:
            break
        out.append(
            {
                "key": key,
                "wcu": part.wcu,
                "rcu": part.rcu,
                "peak_per_second": max(b[which] for b in part.seconds.values()),
                "seconds": len(part.seconds),
                "by_operation": {w: u[which] for w, u in part.ops.items() if u[which]},
            }
        )
    return out

"""Queries that read one partition, not the whole table, in the emulator.

Stock moto answers every Query by listing and sorting every item of the table, then
keeping those of the asked partition: a base-table query and an index query alike cost
time in proportion to the table. The reconciler's walk of sixteen status shards, the API's
listings and `GET /events/{id}` on a large fan-out therefore slowed down as the table
grew, and with them every other request behind the emulator's one-at-a-time lock.

Here a Query is handed only its candidates: a base-table query the items of its partition
(moto keeps them in a dict by hash key already), an index query those whose index hash
key has the asked value, from a map kept per table and index. The map is built on the
first query of an index, and kept exact afterwards by re-indexing every item a request
named (its Key, Item, TransactItems or batch write requests) once that request is done:
an item's index keys change only through a request that names it. Everything else (key
conditions, sort order, paging, filters, projections) is moto's own code on those
candidates, which it checks again as it would any item.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

# An item's primary key as moto holds it: (hash, range or None), both DynamoType.
_Key = tuple[Any, Any]


class _IndexMap:
    """One index of one table: its hash value -> {primary key: item}, and which value
    each primary key is filed under."""

    def __init__(self, table: Any, index: Any) -> None:
        self.hash_attr = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
        self.key_attrs = [k["AttributeName"] for k in index.schema]
        self.buckets: dict[Any, dict[_Key, Any]] = {}
        self.filed: dict[_Key, Any] = {}
        for item in _items(table):
            self.refile((item.hash_key, item.range_key), item)

    def refile(self, key: _Key, item: Any) -> None:
        old = self.filed.pop(key, None)
        if old is not None:
            bucket = self.buckets.get(old)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self.buckets[old]
        if item is None or not all(item.attrs.get(a) for a in self.key_attrs):
            return  # not in the index (DynamoDB indexes items with every key attribute)
        value = item.attrs[self.hash_attr]
        self.buckets.setdefault(value, {})[key] = item
        self.filed[key] = value


class _TableIndexes:
    """The maps of one table, and the keys written since they were last brought up to
    date."""

    def __init__(self) -> None:
        self.maps: dict[str, _IndexMap] = {}
        self.dirty: set[_Key] = set()

    def candidates(self, table: Any, index_name: str, hash_value: Any) -> list[Any]:
        index = self.maps.get(index_name)
        if index is None:
            index = self.maps[index_name] = _IndexMap(table, table.get_index(index_name))
        if self.dirty:
            for key in self.dirty:
                item = _get(table, key)
                for each in self.maps.values():
                    each.refile(key, item)
            self.dirty.clear()
        found = index.buckets.get(hash_value, {})
        return sorted(found.values(), key=_order)


def _items(table: Any) -> Iterable[Any]:
    for value in table.items.values():
        if table.range_key_attr:
            yield from value.values()
        else:
            yield value


def _get(table: Any, key: _Key) -> Any:
    hash_key, range_key = key
    found = table.items.get(hash_key)
    if found is None or not table.range_key_attr:
        return found
    return found.get(range_key)


def _order(item: Any) -> Any:
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key


def _indexes_of(table: Any) -> _TableIndexes:
    kept = table.__dict__.get("_herald_indexes")
    if kept is None:
        kept = table.__dict__["_herald_indexes"] = _TableIndexes()
    return kept


def primary_key(table: Any, attrs: Any) -> _Key | None:
    """The (hash, range) of the item `attrs` names, as moto keys it; None when malformed
    (moto will say why)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
        return None
    range_value = None
    if table.range_key_attr:
        if table.range_key_attr not in attrs:
            return None
        range_value = DynamoType(attrs[table.range_key_attr])
    return DynamoType(attrs[table.hash_key_attr]), range_value


def note_request(backend: Any, body: Any) -> None:
    """Mark every item a DynamoDB request named (read or written: re-indexing an item
    that did not change costs little) for re-indexing before the next index query."""
    if not isinstance(body, dict):
        return
    named: list[tuple[Any, Any]] = []
    if "TableName" in body:
        named += [(body["TableName"], body.get("Key")), (body["TableName"], body.get("Item"))]
    for entry in body.get("TransactItems") or []:
        for op_type, op in entry.items() if isinstance(entry, dict) else []:
            if isinstance(op, dict):
                named.append((op.get("TableName"), op.get("Item" if op_type == "Put" else "Key")))
    for table_name, requests in (body.get("RequestItems") or {}).items():
        for request in requests if isinstance(requests, list) else []:
            if not isinstance(request, dict):
                continue
            put = request.get("PutRequest") or {}
            delete = request.get("DeleteRequest") or {}
            named += [(table_name, put.get("Item")), (table_name, delete.get("Key"))]
    for table_name, attrs in named:
        table = backend.tables.get(table_name) if isinstance(table_name, str) else None
        kept = table.__dict__.get("_herald_indexes") if table is not None else None
        if kept is None or not kept.maps or attrs is None:
            continue  # no index map of that table yet: built whole when first queried
        key = primary_key(table, attrs)
        if key is not None:
            kept.dirty.add(key)


def patch_query() -> None:
    """Give moto's Table.query only the candidates of the asked partition."""
    from moto.dynamodb.models.table import Table

    query = Table.query

    @functools.wraps(query)
    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name") if len(args) < 7 else args[6]
        conditions = kwargs.get("hash_key_conditions") or []
        if index_name:
            known = {i.name for i in self.global_indexes or []}
            if len(conditions) != 1 or index_name not in known:
                return query(self, hash_key, *args, **kwargs)  # moto says what is wrong
            candidates = _indexes_of(self).candidates(self, index_name, conditions[0][1])
        elif hash_key is not None:
            found = self.items.get(hash_key)
            if found is None:
                candidates = []
            elif self.range_key_attr:
                candidates = sorted(found.values(), key=_order)
            else:
                candidates = [found]
        else:
            return query(self, hash_key, *args, **kwargs)
        self.__dict__["all_items"] = lambda: candidates
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            del self.__dict__["all_items"]

    Table.query = partition_query  # type: ignore[method-assign]

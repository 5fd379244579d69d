"""Records as columns: the one Arrow schema of Parquet corpora, Hub shards and ``datasets`` features.

Most record fields map to Arrow directly (segments and targets are lists of
structs). Two do not: ``slots`` has different keys in every template, so it is
stored as a list of ``{name, value}`` structs (order kept), and ``meta`` is
free-form, so it is stored as a JSON string. ``to_row`` and ``from_row`` convert
losslessly in both directions.
"""

from __future__ import annotations

import orjson


def arrow_schema():
    import pyarrow as pa

    span = [pa.field("start", pa.int64()), pa.field("end", pa.int64())]
    return pa.schema([
        ("id", pa.string()), ("pattern", pa.string()), ("template", pa.string()), ("language", pa.string()),
        ("text", pa.string()),
        ("segments", pa.list_(pa.struct([pa.field("role", pa.string()), *span, pa.field("text", pa.string())]))),
        ("targets", pa.list_(pa.struct([pa.field("text", pa.string()), *span]))),
        ("slots", pa.list_(pa.struct([pa.field("name", pa.string()), pa.field("value", pa.string())]))),
        ("premise_id", pa.string()), ("seed", pa.int64()), ("index", pa.int64()), ("split", pa.string()),
        ("meta", pa.string()),
    ])


def features():
    """The ``datasets.Features`` of a corpus (the same schema, as datasets sees it)."""
    import datasets

    return datasets.Features.from_arrow_schema(arrow_schema())


def to_row(rec: dict) -> dict:
    row = dict(rec)
    row["slots"] = [{"name": k, "value": v} for k, v in rec.get("slots", {}).items()]
    meta = rec.get("meta")
    row["meta"] = None if meta is None else orjson.dumps(meta).decode()
    row.setdefault("premise_id", None)
    row.setdefault("split", None)
    return row


def from_row(row: dict) -> dict:
    """The record again; tolerant of older corpora that stored ``slots`` as a JSON string."""
    rec = dict(row)
    slots = rec.get("slots")
    if isinstance(slots, list):
        rec["slots"] = {s["name"]: s["value"] for s in slots}
    elif isinstance(slots, str):
        rec["slots"] = orjson.loads(slots)
    if isinstance(rec.get("meta"), str):
        rec["meta"] = orjson.loads(rec["meta"])
    if rec.get("meta") is None:
        rec.pop("meta", None)
    return rec


def table(records: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist([to_row(r) for r in records], schema=arrow_schema())

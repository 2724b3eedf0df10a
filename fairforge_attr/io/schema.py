"""The batch output schema, declared once: one row per item (``wide``) or per unit (``long``).

A row is a plain dict. It is what ``ffattr batch`` writes to JSONL/JSON as is and to Parquet
through :data:`WIDE_SCHEMA` / :data:`LONG_SCHEMA` (where ``params`` and ``meta``, whose keys
vary from item to item, are stored as JSON text). The README's "File formats" section
documents every column; keep the two in step.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from typing import Any, get_origin

import pyarrow as pa
from pydantic import BaseModel

from ..faithfulness.types import Faithfulness
from ..results import AttributionResult, ResultMetadata

OK = "ok"
ERROR = "error"

_UNIT_FIELDS = [
    pa.field("text", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("normalized_score", pa.float64()),
    pa.field("position", pa.int32()),
    pa.field("message_index", pa.int32()),
    pa.field("role", pa.string()),
    pa.field("char_start", pa.int32()),
    pa.field("char_end", pa.int32()),
    pa.field("refined", pa.bool_()),
    pa.field("coarse_position", pa.int32()),
    pa.field("std_error", pa.float64()),
]
UNIT_KEYS = [f.name for f in _UNIT_FIELDS]
_STAGE = pa.struct(
    [
        pa.field("stage", pa.string()),
        pa.field("granularity", pa.string()),
        pa.field("n_units", pa.int64()),
        pa.field("n_forward", pa.int64()),
        pa.field("n_sequences", pa.int64()),
        pa.field("n_backward", pa.int64()),
    ]
)
_REFINEMENT = pa.struct(
    [
        pa.field("coarse_granularity", pa.string()),
        pa.field("screen", pa.string()),
        pa.field("refine_top_k", pa.int32()),
        pa.field("refined", pa.list_(pa.int32())),
        pa.field("unrefined_score", pa.float64()),
        pa.field("stages", pa.list_(_STAGE)),
    ]
)
_ROLE_TOTAL = pa.struct(
    [
        pa.field("role", pa.string()),
        pa.field("n_units", pa.int32()),
        pa.field("score", pa.float64()),
        pa.field("abs_score", pa.float64()),
    ]
)

_ARROW_SCALARS = {float: pa.float64(), int: pa.int64(), str: pa.string(), bool: pa.bool_()}


def _arrow_type(annotation: Any) -> pa.DataType:
    """The Arrow type of a pydantic field's annotation (scalars, optionals, lists of them)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _arrow_type(inner)
    if origin is list:
        return pa.list_(_arrow_type(typing.get_args(annotation)[0]))
    return _ARROW_SCALARS[annotation]


def arrow_struct(model: type[BaseModel]) -> pa.StructType:
    """A typed struct column with one field per model field, so the column cannot drift from
    the model it stores."""
    return pa.struct([pa.field(name, _arrow_type(f.annotation)) for name, f in model.model_fields.items()])


# The faithfulness of an item (explain/batch --faithfulness), as typed columns, not JSON text.
FAITHFULNESS_TYPE = arrow_struct(Faithfulness)

_ITEM_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("line", pa.int64()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("model", pa.string()),
    pa.field("method", pa.string()),
    pa.field("granularity", pa.string()),
]
# Both layouts say what was explained: the target (and whether the model generated it), and
# for a contrastive item the contrast answer, so that f = log p(target) - log p(contrast).
_ANSWER_FIELDS = [
    pa.field("target", pa.string()),
    pa.field("target_generated", pa.bool_()),
    pa.field("contrast", pa.string()),
]
_RUN_FIELDS = [
    pa.field("target_log_prob", pa.float64()),
    pa.field("contrast_log_prob", pa.float64()),
    pa.field("n_forward", pa.int64()),
    pa.field("compute_time_s", pa.float64()),
    pa.field("seed", pa.int64()),
    pa.field("params", pa.string()),
]

WIDE_SCHEMA = pa.schema(
    [
        *_ITEM_FIELDS,
        pa.field("prompt", pa.string()),
        pa.field(
            "messages",
            pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])),
        ),
        *_ANSWER_FIELDS,
        pa.field("units", pa.list_(pa.struct(_UNIT_FIELDS))),
        pa.field("role_totals", pa.list_(_ROLE_TOTAL)),
        *_RUN_FIELDS,
        pa.field("n_sequences", pa.int64()),
        pa.field("n_backward", pa.int64()),
        pa.field("n_prompt_tokens", pa.int64()),
        pa.field("n_target_tokens", pa.int64()),
        pa.field("device", pa.string()),
        pa.field("dtype", pa.string()),
        pa.field("convergence_delta", pa.float64()),
        pa.field("warnings", pa.list_(pa.string())),
        pa.field(
            "per_target_token",
            pa.struct(
                [
                    pa.field("target_tokens", pa.list_(pa.string())),
                    pa.field("scores", pa.list_(pa.list_(pa.float64()))),
                ]
            ),
        ),
        pa.field("coarse_units", pa.list_(pa.struct(_UNIT_FIELDS))),
        pa.field("refinement", _REFINEMENT),
        pa.field("faithfulness", FAITHFULNESS_TYPE),
        pa.field("meta", pa.string()),
    ],
    metadata={b"fairforge_attr.layout": b"wide"},
)

LONG_SCHEMA = pa.schema(
    [
        *_ITEM_FIELDS,
        *_ANSWER_FIELDS,
        *_UNIT_FIELDS,
        *_RUN_FIELDS,
        pa.field("faithfulness", FAITHFULNESS_TYPE),
        pa.field("meta", pa.string()),
    ],
    metadata={b"fairforge_attr.layout": b"long"},
)

SCHEMAS = {"wide": WIDE_SCHEMA, "long": LONG_SCHEMA}
_JSON_COLUMNS = ("params", "meta")


def result_row(
    result: AttributionResult, *, item_id: str, line: int | None, meta: dict[str, Any] | None
) -> dict[str, Any]:
    """The wide row of a finished item."""
    m = result.metadata
    ptt = result.per_target_token
    return {
        "id": item_id,
        "line": line,
        "status": OK,
        "error": None,
        "model": m.model,
        "method": result.method.value,
        "granularity": result.granularity.value,
        "prompt": result.prompt,
        "messages": None if result.messages is None else [msg.model_dump() for msg in result.messages],
        "target": result.target,
        "target_generated": m.target_generated,
        "contrast": result.contrast,
        "units": [a.model_dump(include=set(UNIT_KEYS)) for a in result.attributions],
        "role_totals": [t.model_dump() for t in result.role_totals],
        "target_log_prob": m.target_log_prob,
        "contrast_log_prob": m.contrast_log_prob,
        "n_forward": m.n_forward,
        "compute_time_s": m.compute_time_seconds,
        "seed": m.seed,
        "params": m.params,
        "n_sequences": m.n_sequences,
        "n_backward": m.n_backward,
        "n_prompt_tokens": m.n_prompt_tokens,
        "n_target_tokens": m.n_target_tokens,
        "device": m.device,
        "dtype": m.dtype,
        "convergence_delta": m.convergence_delta,
        "warnings": list(m.warnings),
        "per_target_token": None if ptt is None else ptt.model_dump(),
        "coarse_units": (
            None
            if result.coarse_attributions is None
            else [a.model_dump(include=set(UNIT_KEYS)) for a in result.coarse_attributions]
        ),
        "refinement": None if m.refinement is None else m.refinement.model_dump(mode="json"),
        "faithfulness": None if result.faithfulness is None else result.faithfulness.model_dump(),
        "meta": meta,
    }


def error_row(
    *,
    item_id: str,
    line: int | None,
    error: str,
    model: str,
    method: str,
    granularity: str,
    seed: int | None,
    meta: dict[str, Any] | None,
) -> dict[str, Any]:
    """The wide row of an item that could not be attributed."""
    row: dict[str, Any] = dict.fromkeys(WIDE_SCHEMA.names)
    row.update(
        id=item_id,
        line=line,
        status=ERROR,
        error=error,
        model=model,
        method=method,
        granularity=granularity,
        seed=seed,
        meta=meta,
    )
    return row


def long_rows(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A wide row as long rows: one per unit; an item without units gives one row of nulls."""
    base = {name: row.get(name) for name in LONG_SCHEMA.names if name not in UNIT_KEYS}
    units = row.get("units") or [dict.fromkeys(UNIT_KEYS)]
    for unit in units:
        yield {**base, **unit}


def wide_from_long(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Regroup the long rows of one item into a wide row (prompt and messages are unknown)."""
    row: dict[str, Any] = dict.fromkeys(WIDE_SCHEMA.names)
    row.update({k: v for k, v in rows[0].items() if k in WIDE_SCHEMA.names and k not in UNIT_KEYS})
    row["units"] = [{k: r.get(k) for k in UNIT_KEYS} for r in rows if r.get("text") is not None]
    return row


def to_arrow(rows: list[dict[str, Any]], layout: str) -> pa.Table:
    """Rows -> a table of the declared schema (dict-valued columns become JSON text)."""
    encoded = [
        {
            **r,
            **{c: None if r.get(c) is None else json.dumps(r[c], ensure_ascii=False) for c in _JSON_COLUMNS},
        }
        for r in rows
    ]
    return pa.Table.from_pylist(encoded, schema=SCHEMAS[layout])


def from_arrow(batch: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    """The inverse of :func:`to_arrow`."""
    rows = batch.to_pylist()
    for r in rows:
        for c in _JSON_COLUMNS:
            if isinstance(r.get(c), str):
                r[c] = json.loads(r[c])
    return rows


def layout_of(names: list[str]) -> str:
    """Which layout a set of column names (or row keys) belongs to."""
    return "wide" if "units" in names else "long"


# ResultMetadata fields whose column has another name, or that come from elsewhere in the row
_COLUMN_OF_FIELD = {"compute_time_seconds": "compute_time_s"}
_ZERO_OF_TYPE: dict[Any, Any] = {str: "", int: 0, float: 0.0, dict: {}, list: []}


def row_to_result(row: dict[str, Any]) -> AttributionResult:
    """Rebuild the AttributionResult of a finished wide row, for drawing it again. The row may
    come from any reader (``params`` and ``meta`` as objects, or as the JSON text a Parquet
    file holds, e.g. read with pyarrow or pandas). Metadata is
    read field by field from ``ResultMetadata``; a column that is missing or null takes the
    field's default, else None where the field allows it, else the zero of its type."""
    row = {**row, **{c: json.loads(row[c]) for c in _JSON_COLUMNS if isinstance(row.get(c), str)}}
    units = row.get("units") or []
    metadata: dict[str, Any] = {"n_units": len(units)}
    for name, field in ResultMetadata.model_fields.items():
        if name in metadata:
            continue
        value = row.get(_COLUMN_OF_FIELD.get(name, name))
        if value is not None:
            metadata[name] = value
        elif field.is_required():
            kind = get_origin(field.annotation) or field.annotation
            metadata[name] = _ZERO_OF_TYPE.get(kind)  # None for optional fields (int | None)
    return AttributionResult.model_validate(
        {
            "prompt": row.get("prompt") or "",
            "messages": row.get("messages"),
            "target": row.get("target") or "",
            "contrast": row.get("contrast"),
            "method": row["method"],
            "granularity": row["granularity"],
            "attributions": units,
            "per_target_token": row.get("per_target_token"),
            "faithfulness": row.get("faithfulness"),
            "metadata": metadata,
            "coarse_attributions": row.get("coarse_units"),
        }
    )


__all__ = [
    "ERROR",
    "FAITHFULNESS_TYPE",
    "LONG_SCHEMA",
    "OK",
    "SCHEMAS",
    "UNIT_KEYS",
    "WIDE_SCHEMA",
    "arrow_struct",
    "error_row",
    "from_arrow",
    "layout_of",
    "long_rows",
    "result_row",
    "row_to_result",
    "to_arrow",
    "wide_from_long",
]

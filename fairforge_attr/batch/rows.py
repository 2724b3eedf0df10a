"""The seam every batch backend shares: (explainer, plan, numbered items) -> output rows.

:func:`attribute_rows` is a pure function of its inputs: it reads no file, writes none and
keeps no state between calls. The local loop (:class:`~fairforge_attr.batch.job.BatchJob`)
calls it on the stream of a JSONL file; a distributed backend calls it on each block of
items (e.g. inside Ray Data's ``map_batches``, with the explainer built once per worker and
the Plan shipped to it pickled). Both get the same rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..io.jsonl import BatchItem
from ..io.schema import error_row, result_row
from ..plan import Plan

if TYPE_CHECKING:
    from ..api import AttributionExplainer


def attribute_rows(
    explainer: AttributionExplainer, plan: Plan, items: Iterable[BatchItem]
) -> Iterator[dict[str, Any]]:
    """One wide row (``io/schema.py``) per item, in input order, as soon as it is known.

    An item that could be read (``item.error is None``) is explained under ``plan``; its row
    is the result, or an error row saying what stopped it. An item that could not be read
    (invalid JSON, no target, a repeated id) gets an error row with its ``item.error``. Items
    of up to ``PACK_ITEMS`` share passes; the rows do not depend on how items are grouped
    into calls, so a backend may cut the stream anywhere.
    """
    pending: deque[BatchItem] = deque()  # read, row not yet yielded; in input order

    def requests() -> Iterator[dict[str, Any] | None]:
        for item in items:
            pending.append(item)
            if item.error is None:
                yield item.request

    for outcome in explainer.iter_outcomes(plan, requests()):
        while pending[0].error is not None:  # unreadable items before this one
            yield failure_row(explainer.model_name, plan, pending.popleft())
        item = pending.popleft()
        if outcome.error is not None:
            yield failure_row(explainer.model_name, plan, item, str(outcome.error))
        else:
            yield result_row(outcome.result, item_id=item.id, line=item.line, meta=item.meta)
    while pending:  # unreadable items after the last readable one
        yield failure_row(explainer.model_name, plan, pending.popleft())


def failure_row(model: str, plan: Plan, item: BatchItem, error: str | None = None) -> dict[str, Any]:
    """The error row of an item that could not be explained (``error``, else ``item.error``)."""
    return error_row(
        item_id=item.id,
        line=item.line,
        error=error if error is not None else item.error or "unknown error",
        model=model,
        method=plan.method.value,
        granularity=plan.granularity.value,
        seed=plan.recorded_seed,
        meta=item.meta,
    )


def recorded_plan(row: dict[str, Any]) -> Plan:
    """The Plan a finished row was computed under (its method, granularity, params, seed,
    faithfulness record), as
    ``--resume`` and ``ffattr merge`` compare it with another. Raises a FairForgeError when the
    row names settings that are no longer valid."""
    return Plan.recorded(
        method=row["method"],
        granularity=row["granularity"],
        params=row.get("params"),
        seed=row.get("seed"),
        per_target_token=row.get("per_target_token") is not None,
        faithfulness=row.get("faithfulness"),
    )

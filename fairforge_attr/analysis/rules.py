"""The rule grammar of ``ffattr check``::

    RULE   = [AGG ":"] METRIC OP NUMBER
    AGG    = mean | min | max | median | p10 | p90 | share
    METRIC = lds | deletion_auc | insertion_auc | deletion_gain | insertion_gain
           | comprehensiveness | sufficiency | objective | target_log_prob | n_units | error
           | role_share:ROLE | rank:WORD
    OP     = >= | > | <= | < | == | !=

Without AGG the rule must hold for every item on its own; with AGG it must hold for the
aggregate over the items. A malformed rule raises ``RuleError``, whose message points at the
bad token.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidRequestError
from .values import ARG_METRICS, PLAIN_METRICS, metric_names

AGGREGATES = ("mean", "min", "max", "median", "p10", "p90", "share")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
# The number is the last token, the operator right before it: parsing from the right lets a
# rank:WORD name a punctuation unit such as "=".
_RULE = re.compile(r"^(?P<lhs>.*?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<number>[^\s<>=!]+)\s*$")


_EXAMPLE = {"role_share": "role_share:system", "rank": "rank:Paris"}


class RuleError(InvalidRequestError):
    """A rule that does not follow the grammar."""


@dataclass(frozen=True)
class Rule:
    """One parsed rule."""

    text: str
    aggregate: str | None
    metric: str
    arg: str | None
    op: str
    threshold: float

    @property
    def metric_label(self) -> str:
        return self.metric if self.arg is None else f"{self.metric}:{self.arg}"

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)


def _error(text: str, start: int, end: int, problem: str) -> RuleError:
    caret = " " * start + "^" * max(end - start, 1)
    return RuleError(f'rule "{text}": {problem}\n    {text}\n    {caret}')


def parse_rule(text: str) -> Rule:
    """Parse one rule; a RuleError points at what is wrong."""
    match = _RULE.match(text)
    if match is None:
        where = len(text.rstrip())
        raise _error(
            text, where, where + 1, "expected [AGG:]METRIC OP NUMBER, OP one of " + " ".join(OPERATORS)
        )
    lhs, lhs_start = match["lhs"], match.start("lhs")
    number, number_start = match["number"], match.start("number")
    threshold = _number(text, number, number_start)
    stripped = lhs.lstrip()
    offset = lhs_start + len(lhs) - len(stripped)
    if not stripped:
        raise _error(text, offset, match.start("op"), "no metric before the operator")
    aggregate, metric_text, metric_start = None, stripped, offset
    head, sep, rest = stripped.partition(":")
    if sep and head in AGGREGATES:
        aggregate, metric_text, metric_start = head, rest, offset + len(head) + 1
    metric, arg = _metric(text, metric_text, metric_start, aggregate is None and bool(sep))
    return Rule(text, aggregate, metric, arg, match["op"], threshold)


def _number(text: str, number: str, start: int) -> float:
    try:
        value = float(number)
    except ValueError:
        raise _error(text, start, start + len(number), f"{number!r} is not a number") from None
    if math.isnan(value):
        raise _error(text, start, start + len(number), "NaN is not a threshold")
    return value


def _metric(text: str, metric_text: str, start: int, maybe_aggregate: bool) -> tuple[str, str | None]:
    name, sep, arg = metric_text.partition(":")
    end = start + len(name)
    if sep:
        if name not in ARG_METRICS:
            what = "aggregate or metric" if maybe_aggregate else "metric"
            raise _error(
                text,
                start,
                end,
                f"unknown {what} {name!r} (aggregates: {', '.join(AGGREGATES)}; metrics: {metric_names()})",
            )
        if not arg.strip():
            raise _error(text, end, end + 1, f"{name} needs a value after the colon, e.g. {_EXAMPLE[name]}")
        return name, arg.strip()
    if name in ARG_METRICS:
        raise _error(text, start, end, f"{name} needs a value, e.g. {_EXAMPLE[name]}")
    if name not in PLAIN_METRICS:
        raise _error(text, start, max(end, start + 1), f"unknown metric {name!r} (metrics: {metric_names()})")
    return name, None


__all__ = ["AGGREGATES", "OPERATORS", "Rule", "RuleError", "parse_rule"]

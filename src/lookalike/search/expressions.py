"""Mixed queries: text and pictures added and subtracted, with weights, as rclip writes them.

    red dragon                      text only
    2:dragon + id:42 - fire         twice "dragon", plus image 42, minus "fire"
    ./hero.png + 0.5:night          a picture, nudged towards "night"

Terms are separated by a `+` or `-` with spaces on both sides (so "spider-man" stays one term);
a term may start with a weight, `2:` or `0.5:`. Which terms are pictures is for the caller to
say (the CLI: a file, an http(s) URL or id:N; the API: a URL or id:N, never a server path);
the rest are text. The query vector is the weighted sum of the terms' unit vectors, normalised,
which needs a model that puts text and pictures in one space (CLIP) as soon as a term is text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lookalike.embed import l2_normalise

_OPERATOR = re.compile(r"\s+([+-])\s+")
_LEADING = re.compile(r"^\s*([+-])\s+")
_WEIGHT = re.compile(r"^(\d+(?:\.\d*)?|\.\d+):(?=\S)")
_TRAILING = re.compile(r"\s[+-]$")
_BARE_WEIGHT = re.compile(r"^(\d+(?:\.\d*)?|\.\d+):$")


class ExpressionError(ValueError):
    """A query expression that cannot be read; the message says where."""


@dataclass(frozen=True)
class Term:
    weight: float  # signed: a subtracted term is negative
    text: str  # the term as written, weight removed


def parse_expression(expression: str) -> list[Term]:
    """`"2:cat + ./img.jpg - fruit"` -> [Term(2, "cat"), Term(1, "./img.jpg"), Term(-1, "fruit")]"""
    rest = expression.strip()
    if not rest:
        raise ExpressionError("nothing to search for: the query is empty")
    if _TRAILING.search(rest):
        raise ExpressionError(f"{expression!r} ends with an operator: a term is missing")
    sign = 1.0
    leading = _LEADING.match(" " + rest)  # "- fruit": a query may start with an operator
    if leading:
        sign = -1.0 if leading.group(1) == "-" else 1.0
        rest = rest[leading.end() - 1 :]
    parts = _OPERATOR.split(rest)  # term, op, term, op, term ...
    terms = []
    for n in range(0, len(parts), 2):
        raw = parts[n].strip()
        if n:
            sign = -1.0 if parts[n - 1] == "-" else 1.0
        weight = 1.0
        match = _WEIGHT.match(raw)
        if match:
            weight = float(match.group(1))
            raw = raw[match.end() :]
        if len(raw) > 1 and raw[0] == raw[-1] and raw[0] in "\"'":  # rclip's "2:cat"
            raw = raw[1:-1].strip()
            match = match or _WEIGHT.match(raw)
            if match and weight == 1.0:
                weight, raw = float(match.group(1)), raw[match.end() :]
        if not raw or _BARE_WEIGHT.match(raw):
            raise ExpressionError(f"a weight or operator without a term in {expression!r}")
        terms.append(Term(sign * weight, raw))
    if not terms or all(t.weight == 0 for t in terms):
        raise ExpressionError(f"nothing to search for in {expression!r}")
    return terms


def combine(
    terms: list[Term],
    picture: Callable[[str], np.ndarray | None],
    text: Callable[[list[str]], np.ndarray],
    base: np.ndarray | None = None,
) -> np.ndarray:
    """The normalised weighted sum. `picture(term)` gives a picture term's unit vector, or None
    when the term is text; all text terms are embedded together by `text`. `base`: a picture
    given apart from the expression (an upload), with weight 1."""
    vectors: list[np.ndarray | None] = [picture(t.text) for t in terms]
    texts = [t.text for t, v in zip(terms, vectors) if v is None]
    if texts:
        embedded = iter(text(texts))
        vectors = [v if v is not None else next(embedded) for v in vectors]
    total = sum(t.weight * np.asarray(v, np.float32) for t, v in zip(terms, vectors))
    if base is not None:
        total = total + np.asarray(base, np.float32)
    if not np.any(total):
        raise ExpressionError("the terms cancel out: nothing is left to search for")
    return l2_normalise(total[None, :])[0]

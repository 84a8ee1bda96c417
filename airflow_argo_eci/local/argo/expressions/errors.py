"""The errors of Argo's expression languages: one that cannot be parsed or evaluated, one that names a
variable not (yet) in scope."""

from __future__ import annotations


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated."""


class UnresolvedError(ExpressionError):
    """The expression names a variable that is not (yet) in scope."""

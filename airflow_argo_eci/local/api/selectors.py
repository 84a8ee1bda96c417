"""Kubernetes label and field selectors: parsing and matching.

Label selectors support ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``,
``key notin (a,b)``, ``key`` (exists) and ``!key`` (does not exist); requirements separated by
commas are ANDed. Field selectors support ``field=value``, ``field==value`` and ``field!=value``
on a per-type set of fields (always ``metadata.name`` and ``metadata.namespace``).
Malformed selectors raise a 400 ``BadRequest`` :class:`ApiError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airflow_argo_eci.local.api.errors import bad_request

_NAME_PART = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY_RE = re.compile(rf"^({_PREFIX}/)?{_NAME_PART}$")
_VALUE_RE = re.compile(rf"^({_NAME_PART})?$")

#: field selector paths each kind supports besides metadata.name / metadata.namespace
_EXTRA_FIELDS: dict[str, frozenset[str]] = {
    "Pod": frozenset(
        {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
         "status.phase", "status.podIP", "status.nominatedNodeName"}
    ),
    "Event": frozenset(
        {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
         "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
         "reason", "reportingComponent", "source", "type"}
    ),
    "Secret": frozenset({"type"}),
    "Namespace": frozenset({"status.phase"}),
}
_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class Requirement:
    """One label requirement: ``op`` is one of ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a label map satisfies this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also match when the key is absent, like Kubernetes
        return not present or value not in self.values


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: dict[str, str] | None) -> bool:
        """Whether all requirements hold for ``labels``."""
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


@dataclass(frozen=True)
class FieldRequirement:
    """One field requirement; ``negate`` for ``!=``."""

    field: str
    value: str
    negate: bool

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` satisfies this requirement (a missing field reads as ``""``)."""
        actual = field_value(obj, self.field)
        return (actual != self.value) if self.negate else (actual == self.value)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector; the empty selector matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether all requirements hold for ``obj``."""
        return all(r.matches(obj) for r in self.requirements)


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string value at a dotted ``path`` of ``obj`` (``""`` when absent)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def selectable_fields(kind: str) -> frozenset[str]:
    """The field paths a field selector may name for objects of ``kind``."""
    return _COMMON_FIELDS | _EXTRA_FIELDS.get(kind, frozenset())


def _check_key(key: str, selector: str) -> str:
    if len(key) > 317 or not _KEY_RE.match(key):
        raise bad_request(
            f'unable to parse requirement: invalid label key "{key}" in labelSelector "{selector}": '
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
            "end with an alphanumeric character"
        )
    return key


def _check_value(value: str, selector: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise bad_request(
            f'unable to parse requirement: invalid label value "{value}" in labelSelector "{selector}": '
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
            "'.', and must start and end with an alphanumeric character"
        )
    return value


def _split_top_level(text: str, selector: str, what: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
            if depth > 1:
                raise bad_request(f'unable to parse {what} "{selector}": nested parentheses')
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise bad_request(f'unable to parse {what} "{selector}": unbalanced parentheses')
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise bad_request(f'unable to parse {what} "{selector}": unbalanced parentheses')
    parts.append(text[start:])
    return parts


_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_RE = re.compile(r"^(?P<key>[^=!\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^=!\s]*)$")


def parse_label_selector(selector: str) -> LabelSelector:
    """Parse a Kubernetes label selector string (400 BadRequest on syntax errors)."""
    if not selector.strip():
        return LabelSelector()
    reqs: list[Requirement] = []
    for raw in _split_top_level(selector, selector, "labelSelector"):
        term = raw.strip()
        if not term:
            raise bad_request(f'unable to parse labelSelector "{selector}": empty requirement')
        m = _SET_RE.match(term)
        if m:
            values = [v.strip() for v in m.group("values").split(",")]
            if values == [""]:
                raise bad_request(
                    f'unable to parse requirement: for \'{m.group("op")}\' operator, values set can\'t be '
                    f'empty in labelSelector "{selector}"'
                )
            reqs.append(
                Requirement(
                    _check_key(m.group("key"), selector),
                    m.group("op"),
                    frozenset(_check_value(v, selector) for v in values),
                )
            )
            continue
        m = _EQ_RE.match(term)
        if m:
            op = "!=" if m.group("op") == "!=" else "="
            reqs.append(
                Requirement(
                    _check_key(m.group("key"), selector), op,
                    frozenset({_check_value(m.group("value"), selector)}),
                )
            )
            continue
        if term.startswith("!"):
            reqs.append(Requirement(_check_key(term[1:].strip(), selector), "!"))
            continue
        if any(c in term for c in "=!()<> \t"):
            raise bad_request(f'unable to parse requirement "{term}" in labelSelector "{selector}"')
        reqs.append(Requirement(_check_key(term, selector), "exists"))
    return LabelSelector(tuple(reqs))


def parse_field_selector(selector: str, kind: str = "") -> FieldSelector:
    """Parse a field selector for objects of ``kind`` (400 BadRequest on syntax errors or a field
    the kind does not support)."""
    if not selector.strip():
        return FieldSelector()
    allowed = selectable_fields(kind)
    reqs: list[FieldRequirement] = []
    for raw in selector.split(","):
        term = raw.strip()
        if "!=" in term:
            name, value = term.split("!=", 1)
            negate = True
        elif "==" in term:
            name, value = term.split("==", 1)
            negate = False
        elif "=" in term:
            name, value = term.split("=", 1)
            negate = False
        else:
            raise bad_request(f'invalid field selector "{selector}": "{term}" has no operator (=, ==, !=)')
        name = name.strip()
        if name not in allowed:
            raise bad_request(
                f'"{name}" is not a known field selector: only "{", ".join(sorted(allowed))}"'
                + (f" are supported for {kind}" if kind else "")
            )
        reqs.append(FieldRequirement(name, value.strip(), negate))
    return FieldSelector(tuple(reqs))


def matches(
    obj: dict[str, Any], label_selector: LabelSelector, field_selector: FieldSelector
) -> bool:
    """Whether ``obj`` matches both selectors."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return label_selector.matches(labels) and field_selector.matches(obj)


__all__ = [
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "field_value",
    "matches",
    "parse_field_selector",
    "parse_label_selector",
    "selectable_fields",
]

"""Object validation the Kubernetes API server does for the objects the local cluster serves.

Each check returns ``causes`` (``{"reason", "field", "message"}`` dicts, the ``details.causes``
of a 422 ``Invalid`` Status) worded as the API server words them: names are RFC 1123 subdomains
(Namespaces: labels), ``generateName`` must make one, label keys are qualified names and values
label values, annotations are at most 256 KiB, and a Pod's container names are RFC 1123 labels
and unique (they name log files, so nothing else may ever reach the file system).
"""

from __future__ import annotations

import re
from typing import Any

#: characters of ``generateName`` kept before the random suffix (the API server's 58)
GENERATE_NAME_PREFIX = 58
MAX_ANNOTATIONS_BYTES = 256 * 1024

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(rf"{_LABEL}\Z")
_DNS1123_SUBDOMAIN_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*\Z")
_QUALIFIED_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")

LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_QUALIFIED_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

Cause = dict[str, str]


def _invalid(field: str, value: object, message: str) -> Cause:
    shown = value if isinstance(value, str) else repr(value)
    if isinstance(shown, str) and len(shown) > 80:
        shown = shown[:80] + "..."
    return {"reason": "FieldValueInvalid", "field": field, "message": f'Invalid value: "{shown}": {message}'}


def dns1123_label(value: str) -> list[str]:
    """Problems of ``value`` as an RFC 1123 label (empty when valid)."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    elif not _DNS1123_LABEL_RE.match(value):
        problems.append(LABEL_MESSAGE)
    return problems


def dns1123_subdomain(value: str) -> list[str]:
    """Problems of ``value`` as an RFC 1123 subdomain (empty when valid)."""
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    elif not _DNS1123_SUBDOMAIN_RE.match(value):
        problems.append(SUBDOMAIN_MESSAGE)
    return problems


def qualified_name(key: str) -> list[str]:
    """Problems of a label/annotation key (``[prefix/]name``)."""
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash:
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems += [f"prefix part {p}" for p in dns1123_subdomain(prefix)]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    elif not _QUALIFIED_NAME_RE.match(name):
        problems.append(_QUALIFIED_MESSAGE)
    return problems


def label_value(value: str) -> list[str]:
    """Problems of a label value."""
    if len(value) > 63:
        return ["must be no more than 63 characters"]
    return [] if _LABEL_VALUE_RE.match(value) else [_LABEL_VALUE_MESSAGE]


def name_causes(kind: str, meta: dict[str, Any]) -> list[Cause]:
    """``metadata.name`` / ``metadata.generateName`` of a new or written object."""
    check = dns1123_label if kind == "Namespace" else dns1123_subdomain
    causes: list[Cause] = []
    name = meta.get("name")
    if name:
        causes += [_invalid("metadata.name", name, p) for p in check(name)]
    generate = meta.get("generateName")
    if generate and not name:
        # the API server checks the prefix with a valid suffix appended (a trailing '-' is fine)
        causes += [_invalid("metadata.generateName", generate, p)
                   for p in check(generate[:GENERATE_NAME_PREFIX] + "x")]
    return causes


def metadata_causes(meta: dict[str, Any]) -> list[Cause]:
    """Label keys and values, annotation keys and total size (maps already known to be str -> str)."""
    causes: list[Cause] = []
    for key, value in (meta.get("labels") or {}).items():
        causes += [_invalid("metadata.labels", key, p) for p in qualified_name(key)]
        causes += [_invalid(f"metadata.labels[{key}]" if len(key) <= 80 else "metadata.labels", value, p)
                   for p in label_value(value)]
    annotations = meta.get("annotations") or {}
    for key in annotations:
        causes += [_invalid("metadata.annotations", key, p) for p in qualified_name(key)]
    total = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if total > MAX_ANNOTATIONS_BYTES:
        causes.append({"reason": "FieldValueTooLong", "field": "metadata.annotations",
                       "message": f"Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"})
    return causes


def pod_causes(pod: dict[str, Any]) -> list[Cause]:
    """A Pod's containers: each a JSON object with a unique RFC 1123 label as its name."""
    spec = pod.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, dict):
        return [_invalid("spec", type(spec).__name__, "must be an object")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for group in ("initContainers", "containers", "ephemeralContainers"):
        containers = spec.get(group)
        if containers is None:
            continue
        if not isinstance(containers, list):
            causes.append(_invalid(f"spec.{group}", type(containers).__name__, "must be a list"))
            continue
        for index, container in enumerate(containers):
            field = f"spec.{group}[{index}]"
            if not isinstance(container, dict):
                causes.append(_invalid(field, type(container).__name__, "must be an object"))
                continue
            name = container.get("name")
            if not isinstance(name, str) or not name:
                causes.append({"reason": "FieldValueRequired", "field": f"{field}.name", "message": "Required value"})
                continue
            causes += [_invalid(f"{field}.name", name, p) for p in dns1123_label(name)]
            if name in seen:
                causes.append({"reason": "FieldValueDuplicate", "field": f"{field}.name",
                               "message": f'Duplicate value: "{name}"'})
            seen.add(name)
    return causes

"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes' strategic merge patch on plain
JSON values.

Both functions return a new value and never modify their inputs. JSON-patch failures (a missing
path, a failed ``test``, a malformed operation) raise :class:`PatchError` naming the operation.
"""

from __future__ import annotations

import copy
import json
from typing import Any

#: the media types of a PATCH request: JSON merge patch, Kubernetes' strategic merge patch (see
#: :func:`strategic_merge_patch`), JSON patch and server-side apply (not supported)
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

#: most operations one JSON patch may have (the API server's limit)
MAX_OPERATIONS = 10_000
#: most bytes the ``copy`` operations of one JSON patch may add, so a patch of a few bytes cannot
#: double the document again and again
MAX_COPY_BYTES = 3 * 1024 * 1024


class PatchError(ValueError):
    """A patch that cannot be applied to the target document."""


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str))


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, ``null`` deletes a key,
    anything else (including lists) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{pointer}": must be empty or start with "/"')
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _index(container: list[Any], token: str, pointer: str, *, allow_end: bool) -> int:
    if allow_end and token == "-":  # noqa: S105 - "-" is the JSON-pointer end-of-array token
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f'invalid array index "{token}" in path "{pointer}"')
    idx = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if idx > limit:
        raise PatchError(f'array index {idx} out of range in path "{pointer}"')
    return idx


def _parent(doc: Any, tokens: list[str], pointer: str) -> Any:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise PatchError(f'path "{pointer}" does not exist: missing "{token}"')
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(cur, token, pointer, allow_end=False)]
        else:
            raise PatchError(f'path "{pointer}" does not exist: "{token}" is not inside an object or array')
    return cur


def _get(doc: Any, pointer: str) -> Any:
    tokens = _parse_pointer(pointer)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'path "{pointer}" does not exist')
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, pointer, allow_end=False)]
    raise PatchError(f'path "{pointer}" does not exist')


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = _parse_pointer(pointer)
    if not tokens:
        return value
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, pointer, allow_end=True), value)
    else:
        raise PatchError(f'cannot add at "{pointer}": parent is not an object or array')
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = _parse_pointer(pointer)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'cannot remove "{pointer}": path does not exist')
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, pointer, allow_end=False))
    raise PatchError(f'cannot remove "{pointer}": path does not exist')


def _op_field(op: dict[str, Any], name: str, i: int) -> Any:
    if name not in op:
        raise PatchError(f'operation {i} ("{op.get("op")}") is missing "{name}"')
    return op[name]


def json_patch(doc: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``)."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a JSON array of operations")
    if len(operations) > MAX_OPERATIONS:
        raise PatchError(f"the JSON patch has {len(operations)} operations; at most {MAX_OPERATIONS} are allowed")
    copied = 0
    result = copy.deepcopy(doc)
    for i, op in enumerate(operations):
        if not isinstance(op, dict):
            raise PatchError(f"operation {i} is not a JSON object")
        kind = op.get("op")
        path = _op_field(op, "path", i)
        if not isinstance(path, str):
            raise PatchError(f'operation {i}: "path" must be a string')
        if kind == "add":
            result = _add(result, path, copy.deepcopy(_op_field(op, "value", i)))
        elif kind == "remove":
            result, _ = _remove(result, path)
        elif kind == "replace":
            _get(result, path)  # must exist
            if _parse_pointer(path):
                result, _ = _remove(result, path)
            result = _add(result, path, copy.deepcopy(_op_field(op, "value", i)))
        elif kind in ("move", "copy"):
            source = _op_field(op, "from", i)
            if not isinstance(source, str):
                raise PatchError(f'operation {i}: "from" must be a string')
            if kind == "move":
                if path.startswith(source + "/"):
                    raise PatchError(f'operation {i}: cannot move "{source}" into its own child "{path}"')
                result, value = _remove(result, source)
            else:
                original = _get(result, source)
                copied += _size(original)
                if copied > MAX_COPY_BYTES:
                    raise PatchError(f"operation {i}: the copy operations of this patch add more than "
                                     f"{MAX_COPY_BYTES} bytes; send the values instead of copying them")
                value = copy.deepcopy(original)
            result = _add(result, path, value)
        elif kind == "test":
            expected = _op_field(op, "value", i)
            actual = _get(result, path)
            if actual != expected or isinstance(actual, bool) != isinstance(expected, bool):
                raise PatchError(
                    f'test operation {i} failed: value at "{path}" is {actual!r}, not {expected!r}'
                )
        else:
            raise PatchError(f'operation {i}: unknown op "{kind}"')
    return result


#: the merge key of the lists of built-in kinds that a strategic merge patch merges element-wise,
#: by field name (Kubernetes' ``patchMergeKey`` tags)
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
#: lists of scalars that a strategic merge patch merges as sets (``patchStrategy: merge``)
MERGED_SCALAR_LISTS = frozenset({"finalizers"})

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a Kubernetes strategic merge patch (what ``kubectl apply`` sends for built-in kinds).

    Like a merge patch, plus: the lists named in :data:`MERGE_KEYS` merge element by element on
    their merge key (an element with ``$patch: delete`` removes its match), the lists in
    :data:`MERGED_SCALAR_LISTS` merge as sets, and the directives ``$patch`` (``replace``,
    ``delete``, ``merge``), ``$retainKeys``, ``$setElementOrder/<list>`` and
    ``$deleteFromPrimitiveList/<list>`` are honoured. Other lists are replaced.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != _DIRECTIVE}
    if directive not in (None, "merge", "delete"):
        raise PatchError(f'unknown strategic merge patch directive "$patch: {directive}"; use replace, '
                         f"merge or delete")
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN_KEYS):
            continue
        if key.startswith(_ORDER_PREFIX):
            if isinstance(value, list):
                orders[key[len(_ORDER_PREFIX):]] = value
            continue
        if key.startswith(_DELETE_PREFIX):
            field = key[len(_DELETE_PREFIX):]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        elif isinstance(value, dict) and value.get(_DIRECTIVE) == "delete":
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    retain = patch.get(_RETAIN_KEYS)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _ordered(field, result[field], order)
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    existing = current if isinstance(current, list) else []
    key = MERGE_KEYS.get(field)
    if key is not None and all(isinstance(item, dict) for item in patch):
        if any(item.get(_DIRECTIVE) == "replace" for item in patch):
            return [{k: v for k, v in item.items() if k != _DIRECTIVE} for item in patch
                    if item.get(_DIRECTIVE) != "replace" or len(item) > 1]
        merged = copy.deepcopy(existing)
        for item in patch:
            index = next((i for i, old in enumerate(merged)
                          if isinstance(old, dict) and key in item and old.get(key) == item.get(key)), None)
            if item.get(_DIRECTIVE) == "delete":
                if index is not None:
                    merged.pop(index)
            elif index is None:
                merged.append(strategic_merge_patch({}, item))
            else:
                merged[index] = strategic_merge_patch(merged[index], item)
        return merged
    if field in MERGED_SCALAR_LISTS and patch:
        return copy.deepcopy(existing) + [item for item in patch if item not in existing]
    return copy.deepcopy(patch)


def _ordered(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    """``items`` in the order ``$setElementOrder`` gives (by merge key for lists of objects); items
    it does not name keep their relative order at the end."""
    key = MERGE_KEYS.get(field)

    def ident(item: Any) -> Any:
        return json.dumps(item.get(key) if key is not None and isinstance(item, dict) else item, sort_keys=True)

    rank = {ident(entry): i for i, entry in enumerate(order)}
    return sorted(items, key=lambda item: rank.get(ident(item), len(rank)))

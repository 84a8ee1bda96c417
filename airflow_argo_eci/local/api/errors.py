"""Kubernetes ``Status`` errors raised by the local store and rendered by the routes."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API error that renders as a Kubernetes ``Status`` object.

    ``reason`` is the Kubernetes ``StatusReason`` (``NotFound``, ``AlreadyExists``, ``Conflict``,
    ``Invalid``, ``Gone``, ``Unauthorized``, ``BadRequest``, ``MethodNotAllowed``...).
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str | None = None,
        group: str | None = None,
        kind: str | None = None,
        causes: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes or []

    def status(self) -> dict[str, Any]:
        """The ``Status`` body, as the Kubernetes API server returns it."""
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group is not None:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = self.causes
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


def not_found(kind: str, group: str, name: str) -> ApiError:
    resource = f"{kind}.{group}" if group else kind
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', name=name, group=group, kind=kind)


def already_exists(kind: str, group: str, name: str) -> ApiError:
    resource = f"{kind}.{group}" if group else kind
    return ApiError(
        409, "AlreadyExists", f'{resource} "{name}" already exists', name=name, group=group, kind=kind
    )


def conflict(kind: str, group: str, name: str) -> ApiError:
    resource = f"{kind}.{group}" if group else kind
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        name=name,
        group=group,
        kind=kind,
    )


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    resource = f"{kind}.{group}" if group else kind
    text = ", ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in causes)
    return ApiError(
        422, "Invalid", f'{resource} "{name}" is invalid: {text}', name=name, group=group, kind=kind,
        causes=causes,
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)

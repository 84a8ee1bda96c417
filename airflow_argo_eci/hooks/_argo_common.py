"""Connection settings, retries and pure helpers shared by the hook's two transports.

Nothing here imports a heavy client; transports import theirs lazily.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from airflow_argo_eci.conventions import API_VERSION
from airflow_argo_eci.errors import (
    ArgoApiError,
    ConflictError,
    GoneError,
    TransientError,
    WorkflowSpecError,
    to_api_error,
)
from airflow_argo_eci.hooks._masking import mask, mask_kubeconfig

log = logging.getLogger(__name__)

T = TypeVar("T")


TRANSPORTS = ("kubernetes", "argo_server")
DEFAULT_MAX_RETRIES = 4
DEFAULT_RETRY_BACKOFF = 0.5
MAX_BACKOFF = 30.0
DEFAULT_REQUEST_TIMEOUT = 60.0
LIST_PAGE_SIZE = 500

_COMMON_EXTRAS = ("transport", "namespace", "verify_ssl", "ca_cert_path", "request_timeout", "ui_url",
                  "max_retries", "retry_backoff")
#: connection extras each transport accepts
ALLOWED_EXTRAS: dict[str, tuple[str, ...]] = {
    "kubernetes": (*_COMMON_EXTRAS, "kube_config_path", "kube_config", "in_cluster", "context", "ssl_ca_cert"),
    "argo_server": _COMMON_EXTRAS,
}
_FORM_PREFIX = "extra__argo_workflows__"


@dataclass(frozen=True)
class ArgoConnectionSettings:
    """The parsed, validated settings of one ``argo_workflows`` connection (secrets not in ``repr``)."""

    conn_id: str
    transport: str = "kubernetes"
    #: the namespace given in the connection (None: the kubeconfig context's, else ``default``)
    namespace: str | None = None
    verify_ssl: bool = True
    ca_cert_path: str | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    ui_url: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    kube_config_path: str | None = None
    kube_config: dict[str, Any] | None = field(default=None, repr=False)
    in_cluster: bool = False
    context: str | None = None
    #: Argo Server base URL (``https://host:port``)
    host: str | None = None
    token: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """Where this connection points, for messages (never includes secrets)."""
        if self.transport == "argo_server":
            return f"Argo Server {self.host}"
        if self.in_cluster:
            return "the in-cluster Kubernetes API"
        context = f" (context {self.context})" if self.context else ""
        if self.kube_config is not None:
            return f"the Kubernetes API of the inline kube_config{context}"
        return f"the Kubernetes API of {self.kube_config_path or 'the default kubeconfig'}{context}"


def _bool(conn_id: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise WorkflowSpecError(f"connection {conn_id!r}: extra {key!r} must be true or false, got {value!r}")


def _number(conn_id: str, key: str, value: Any, *, integer: bool = False, minimum: float = 0) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < minimum:
        kind = "an integer" if integer else "a number"
        raise WorkflowSpecError(
            f"connection {conn_id!r}: extra {key!r} must be {kind} >= {minimum:g}, got {value!r}"
        )
    return number


def _load_inline_kube_config(conn_id: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    if not isinstance(value, str):
        raise WorkflowSpecError(
            f"connection {conn_id!r}: extra 'kube_config' must be a kubeconfig as YAML/JSON text or an object"
        )
    try:
        doc = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise WorkflowSpecError(
            f"connection {conn_id!r}: extra 'kube_config' is not valid YAML/JSON{where}; paste the whole "
            "kubeconfig file or use 'kube_config_path'"
        ) from None
    if not isinstance(doc, dict) or not doc.get("clusters"):
        raise WorkflowSpecError(
            f"connection {conn_id!r}: extra 'kube_config' does not look like a kubeconfig (no 'clusters')"
        )
    return doc


def _server_url(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    if not host:
        raise WorkflowSpecError(
            f"connection {conn_id!r}: transport 'argo_server' needs the connection host, "
            "e.g. https://argo-server.argo:2746"
        )
    text = host.strip().rstrip("/")
    if "://" not in text:
        text = f"{(schema or 'https').strip()}://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WorkflowSpecError(
            f"connection {conn_id!r}: host {host!r} is not an http(s) URL, e.g. https://argo-server.argo:2746"
        )
    if port and parts.port is None:
        text = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return text


def parse_connection(
    conn_id: str,
    extra: Mapping[str, Any],
    *,
    host: str | None = None,
    schema: str | None = None,
    port: int | None = None,
    password: str | None = None,
) -> ArgoConnectionSettings:
    """Validate a connection's fields and extras against the allow-list of its transport.

    Extras may carry the UI form prefix ``extra__argo_workflows__``; empty values count as unset.
    Secrets (the Argo Server token, an inline kubeconfig and the credentials inside it) are
    registered with Airflow's secrets masker.
    """
    values: dict[str, Any] = {}
    for raw_key, value in extra.items():
        key = raw_key[len(_FORM_PREFIX):] if raw_key.startswith(_FORM_PREFIX) else raw_key
        if value is None or value == "":
            continue
        values[key] = value
    transport = str(values.get("transport") or "kubernetes")
    if transport not in TRANSPORTS:
        raise WorkflowSpecError(
            f"connection {conn_id!r}: extra 'transport' must be one of {', '.join(TRANSPORTS)}, got {transport!r}"
        )
    allowed = ALLOWED_EXTRAS[transport]
    for key in values:
        if key in allowed:
            continue
        other = [t for t in TRANSPORTS if t != transport and key in ALLOWED_EXTRAS[t]]
        hint = f" (it is only valid with transport {other[0]!r})" if other else ""
        raise WorkflowSpecError(
            f"connection {conn_id!r}: unknown extra {key!r} for transport {transport!r}{hint}; "
            f"allowed extras: {', '.join(sorted(allowed))}"
        )
    namespace = values.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise WorkflowSpecError(f"connection {conn_id!r}: extra 'namespace' must be a string, got {namespace!r}")
    ui_url = values.get("ui_url")
    if ui_url is not None and (not isinstance(ui_url, str) or not ui_url.startswith(("http://", "https://"))):
        raise WorkflowSpecError(
            f"connection {conn_id!r}: extra 'ui_url' must be an http(s) URL, e.g. https://argo.example.com"
        )
    ca = values.get("ca_cert_path") or values.get("ssl_ca_cert")
    if "ca_cert_path" in values and "ssl_ca_cert" in values and values["ca_cert_path"] != values["ssl_ca_cert"]:
        raise WorkflowSpecError(
            f"connection {conn_id!r}: extras 'ca_cert_path' and 'ssl_ca_cert' name different files; set one"
        )
    settings: dict[str, Any] = {
        "conn_id": conn_id,
        "transport": transport,
        "namespace": namespace,
        "verify_ssl": _bool(conn_id, "verify_ssl", values.get("verify_ssl", True)),
        "ca_cert_path": str(ca) if ca else None,
        "request_timeout": _number(conn_id, "request_timeout", values.get("request_timeout", DEFAULT_REQUEST_TIMEOUT),
                                   minimum=0.001),
        "ui_url": ui_url.rstrip("/") if ui_url else None,
        "max_retries": int(_number(conn_id, "max_retries", values.get("max_retries", DEFAULT_MAX_RETRIES),
                                   integer=True)),
        "retry_backoff": _number(conn_id, "retry_backoff", values.get("retry_backoff", DEFAULT_RETRY_BACKOFF)),
    }
    if transport == "kubernetes":
        in_cluster = _bool(conn_id, "in_cluster", values.get("in_cluster", False))
        sources: list[str] = [k for k in ("kube_config_path", "kube_config") if k in values]
        sources += ["in_cluster"] if in_cluster else []
        if len(sources) > 1:
            raise WorkflowSpecError(
                f"connection {conn_id!r}: extras {' and '.join(sources)} are alternatives; set only one"
            )
        inline = values.get("kube_config")
        mask(inline)
        kube_config = _load_inline_kube_config(conn_id, inline) if inline is not None else None
        mask_kubeconfig(kube_config)
        settings.update(
            kube_config_path=str(values["kube_config_path"]) if "kube_config_path" in values else None,
            kube_config=kube_config,
            in_cluster=in_cluster,
            context=str(values["context"]) if "context" in values else None,
        )
    else:
        token = (password or "").strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        mask(token)
        settings.update(host=_server_url(conn_id, host, schema, port), token=token or None)
    result = ArgoConnectionSettings(**settings)
    if not result.verify_ssl:
        log.warning(
            "Connection %r: TLS verification is disabled (extra verify_ssl=false); the server's identity is "
            "not checked. Use ca_cert_path instead outside of tests.", conn_id,
        )
    elif result.host and result.host.startswith("http://") and result.token:
        log.warning("Connection %r: the Argo Server token is sent over plain http to %s", conn_id, result.host)
    return result


# ---------------------------------------------------------------------------- retries


def backoff_delay(attempt: int, base: float) -> float:
    """Exponential backoff with full jitter for retry ``attempt`` (0-based), capped at 30 s."""
    ceiling = min(MAX_BACKOFF, base * (2**attempt))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography


def _retryable(error: ArgoApiError, idempotent: bool) -> bool:
    if not isinstance(error, TransientError) or isinstance(error, GoneError):
        return False
    return idempotent or error.retry_safe


class Retrying:
    """Runs calls with error conversion and bounded retries of transient failures."""

    def __init__(self, settings: ArgoConnectionSettings, url: str = "") -> None:
        self.settings = settings
        self.url = url

    def convert(self, exc: BaseException, context: str) -> ArgoApiError | None:
        """The typed error for ``exc`` (None when it is not an API/connection failure)."""
        return to_api_error(exc, context=context, url=self.url)

    def _retry_delay(self, exc: Exception, context: str, attempt: int, limit: int, idempotent: bool) -> float:
        """The wait before retrying after ``exc`` (attempt ``attempt`` of ``limit``); raises ``exc``, or
        the typed error it stands for, when it is not to be retried."""
        error = self.convert(exc, context)
        if error is None:
            raise exc
        if attempt >= limit or not _retryable(error, idempotent):
            if error is exc:
                raise exc
            raise error from exc
        delay = backoff_delay(attempt, self.settings.retry_backoff)
        log.info("%s: transient failure, retry %d/%d in %.1fs", context, attempt + 1, limit, delay)
        return delay

    def call(
        self, context: str, fn: Callable[[], T], *, idempotent: bool = True, retries: int | None = None
    ) -> T:
        """``fn()``; transient failures are retried (non-idempotent calls only when retry-safe)."""
        limit = self.settings.max_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                delay = self._retry_delay(exc, context, attempt, limit, idempotent)
            time.sleep(delay)
            attempt += 1

    async def acall(
        self, context: str, fn: Callable[[], Awaitable[T]], *, idempotent: bool = True, retries: int | None = None
    ) -> T:
        """Async :meth:`call`."""
        limit = self.settings.max_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return await fn()
            except Exception as exc:
                delay = self._retry_delay(exc, context, attempt, limit, idempotent)
            await asyncio.sleep(delay)
            attempt += 1


class CachedClients:
    """A transport's lazily made sync client and async client; the async one belongs to the event loop
    that made it (its session can be neither used nor closed from another loop)."""

    _sync: Any = None
    _async: Any = None
    _async_loop: asyncio.AbstractEventLoop | None = None

    def _loop_client(self) -> Any:
        """The async client if the running loop made it, else None (dropping one bound to another loop)."""
        if self._async is not None and self._async_loop is not asyncio.get_running_loop():
            self._async = None
        return self._async

    def _keep_loop_client(self, client: Any) -> Any:
        """Cache ``client`` as the running loop's async client; returns it."""
        self._async, self._async_loop = client, asyncio.get_running_loop()
        return client

    async def _close_async_client(self, client: Any) -> None:
        await client.close()

    def close(self) -> None:
        """Close the sync client."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Close the async client (on another loop than the one that made it, it is only dropped)."""
        if self._async is not None:
            client, self._async = self._async, None
            if self._async_loop is asyncio.get_running_loop():
                await self._close_async_client(client)


# ---------------------------------------------------------------------------- pure helpers


def check_name(kind: str, name: Any) -> str:
    """``name`` if it is a non-empty string, else a :class:`WorkflowSpecError` naming ``kind``."""
    if not isinstance(name, str) or not name:
        raise WorkflowSpecError(f"{kind} name must be a non-empty string, got {name!r}")
    return name


def shutdown_patch(strategy: str, uid: str = "") -> dict[str, Any]:
    """The merge patch of ``argo stop`` / ``argo terminate``; with ``uid`` it is fenced: the API
    server treats ``metadata.uid`` in a patch as a precondition and answers 409 when the object
    now is a same-named successor."""
    body: dict[str, Any] = {"spec": {"shutdown": strategy}}
    if uid:
        body["metadata"] = {"uid": uid}
    return body


def uid_conflict(error: ArgoApiError) -> ArgoApiError:
    """A fenced patch refused because ``metadata.uid`` differs (the API server answers 422
    "field is immutable" for it) is a :class:`ConflictError`; any other error is returned as is."""
    fields = {str(cause.get("field")) for cause in error.causes if isinstance(cause, dict)}
    if error.status == 422 and "metadata.uid" in fields:
        return ConflictError(f"{error.message} (a same-named successor: left alone)", status=409,
                             reason="Conflict", body=error.body)
    return error


def delete_options(uid: str = "") -> dict[str, Any] | None:
    """``DeleteOptions`` of a workflow delete; with ``uid``, ``preconditions.uid`` makes the API
    server refuse (409) to delete a same-named successor."""
    return {"preconditions": {"uid": uid}} if uid else None


def delete_precondition_params(uid: str = "") -> dict[str, str]:
    """The Argo Server's spelling of ``delete_options(uid)`` (grpc-gateway query parameters)."""
    return {"deleteOptions.preconditions.uid": uid} if uid else {}


def check_uid(workflow: Mapping[str, Any], uid: str) -> None:
    """:class:`ConflictError` when ``workflow`` is not the one with ``uid`` (a same-named successor)."""
    meta = workflow.get("metadata") or {}
    if uid and meta.get("uid") != uid:
        raise ConflictError(
            f"workflow {meta.get('namespace')}/{meta.get('name')} now has uid {meta.get('uid')}, not {uid}: "
            "it is a same-named successor, left alone", status=409, reason="Conflict")


def check_body(body: Any) -> dict[str, Any]:
    """A Workflow body as a new dict with apiVersion/kind defaulted; errors name the field."""
    if not isinstance(body, Mapping):
        raise WorkflowSpecError(f"workflow body must be a mapping (a Workflow object), got {type(body).__name__}")
    wf = copy.deepcopy(dict(body))
    wf.setdefault("apiVersion", API_VERSION)
    wf.setdefault("kind", "Workflow")
    if wf["kind"] != "Workflow":
        raise WorkflowSpecError(f"workflow body: kind must be 'Workflow', got {wf['kind']!r}")
    meta = wf.get("metadata")
    if not isinstance(meta, Mapping) or not (meta.get("name") or meta.get("generateName")):
        raise WorkflowSpecError("workflow body: metadata.name or metadata.generateName is required")
    wf.pop("status", None)
    return wf


def timestamp_key(stamp: str) -> tuple[int, int]:
    """``(epoch seconds, nanoseconds)`` of an RFC 3339 timestamp with up to nanosecond precision."""
    text = stamp.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    frac = ""
    if "." in text:
        head, rest = text.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, text = rest[:digits], head + rest[digits:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise WorkflowSpecError(
            f"since_time must be an RFC 3339 timestamp like 2024-01-01T00:00:00.000000000Z, got {stamp!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp()), int((frac + "000000000")[:9])


def parse_log_lines(text: str, since_time: str | None) -> list[tuple[str, str]]:
    """``(timestamp, line)`` pairs of ``timestamps=true`` log text; only lines strictly after
    ``since_time`` when given (so passing the last timestamp seen never repeats a line)."""
    since = timestamp_key(since_time) if since_time else None
    out: list[tuple[str, str]] = []
    for raw in text.splitlines():
        stamp, _, line = raw.partition(" ")
        if not stamp:
            continue
        try:
            key = timestamp_key(stamp)
        except WorkflowSpecError:
            # not a timestamped line (should not happen with timestamps=true): keep it unfiltered
            out.append(("", raw))
            continue
        if since is not None and key <= since:
            continue
        out.append((stamp, line))
    return out


def since_seconds(since_time: str, *, margin: int = 5) -> int:
    """Whole seconds from ``since_time`` until now plus ``margin`` (for APIs without sinceTime)."""
    seconds, _ = timestamp_key(since_time)
    return max(1, int(time.time()) - seconds + margin)


def status_error_from_event(obj: Mapping[str, Any], context: str) -> ArgoApiError:
    """The error an ERROR watch event (a ``Status`` object) stands for (410 -> GoneError)."""
    from airflow_argo_eci.errors import api_error_from_status

    return api_error_from_status(int(obj.get("code") or 500), json.dumps(dict(obj)), context=context)

"""The settings of an ``argo_workflows`` connection: the extras each transport accepts, their
validation (:func:`parse_connection`) and the parsed :class:`ArgoConnectionSettings`."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from airflow_argo_eci.errors import ArgoApiError, WorkflowSpecError
from airflow_argo_eci.hooks._masking import mask, mask_kubeconfig

log = logging.getLogger(__name__)

TRANSPORTS = ("kubernetes", "argo_server")
DEFAULT_MAX_RETRIES = 4
DEFAULT_RETRY_BACKOFF = 0.5
DEFAULT_REQUEST_TIMEOUT = 60.0

_COMMON_EXTRAS = ("transport", "namespace", "verify_ssl", "ca_cert_path", "request_timeout", "ui_url",
                  "max_retries", "retry_backoff")
#: connection extras each transport accepts
ALLOWED_EXTRAS: dict[str, tuple[str, ...]] = {
    "kubernetes": (*_COMMON_EXTRAS, "kube_config_path", "kube_config", "in_cluster", "context", "ssl_ca_cert",
                   "argo_server_url", "argo_server_token"),
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
    #: kubernetes transport: the Argo Server that serves offloaded node status (``argo_server_url``)
    argo_server_url: str | None = None
    #: kubernetes transport: its bearer token (``argo_server_token``, masked)
    argo_server_token: str | None = field(default=None, repr=False)

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


def _bearer(value: Any) -> str:
    """A bearer token without a leading ``Bearer `` (as pasted from a header)."""
    token = str(value or "").strip()
    return token[7:].strip() if token.lower().startswith("bearer ") else token


def _offload_server(conn_id: str, values: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(argo_server_url, argo_server_token)`` of a kubernetes-transport connection, validated."""
    url, token = values.get("argo_server_url"), _bearer(values.get("argo_server_token"))
    mask(token)
    if url is None:
        if token:
            raise WorkflowSpecError(
                f"connection {conn_id!r}: extra 'argo_server_token' is set without 'argo_server_url'; set "
                "'argo_server_url' to the Argo Server's URL (e.g. https://argo-server.argo:2746), which serves the "
                "node status Argo offloads, or remove the token")
        return None, None
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise WorkflowSpecError(
            f"connection {conn_id!r}: extra 'argo_server_url' must be the Argo Server's http(s) URL, "
            f"e.g. https://argo-server.argo:2746, got {url!r}")
    return url.strip().rstrip("/"), token or None


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
        argo_server_url, argo_server_token = _offload_server(conn_id, values)
        settings.update(argo_server_url=argo_server_url, argo_server_token=argo_server_token)
    else:
        token = _bearer(password)
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
    elif result.argo_server_url and result.argo_server_url.startswith("http://") and result.argo_server_token:
        log.warning("Connection %r: the Argo Server token (argo_server_token) is sent over plain http to %s",
                    conn_id, result.argo_server_url)
    return result


def settings_from_connection(conn: Any) -> ArgoConnectionSettings:
    """The validated settings of an Airflow ``argo_workflows`` connection object."""
    extra = conn.extra_dejson if isinstance(conn.extra_dejson, Mapping) else {}
    return parse_connection(conn.conn_id, extra, host=conn.host, schema=conn.schema, port=conn.port,
                            password=conn.password)


class ArgoConnectionMixin:
    """``settings`` / ``asettings`` of every hook on the ``argo_workflows`` connection: read once,
    synchronously or with ``aget_connection`` (in a trigger's event loop). The hook class also
    derives from Airflow's ``BaseHook``, which provides ``get_connection`` / ``aget_connection``."""

    argo_conn_id: str
    _settings: ArgoConnectionSettings | None = None

    @property
    def settings(self) -> ArgoConnectionSettings:
        """The validated connection settings (read once, synchronously)."""
        if self._settings is None:
            self._settings = settings_from_connection(self.get_connection(self.argo_conn_id))  # type: ignore[attr-defined]
        return self._settings

    async def asettings(self) -> ArgoConnectionSettings:
        """:attr:`settings`, read with ``aget_connection`` (for triggers running in an event loop)."""
        if self._settings is None:
            conn = await self.aget_connection(self.argo_conn_id)  # type: ignore[attr-defined]
            self._settings = settings_from_connection(conn)
        return self._settings

    def _test_connection(self, probe: Callable[[], str], unreachable: str) -> tuple[bool, str]:
        """``(ok, message)`` of a connection test, never raising: ``probe`` makes the test's
        request and returns the sentence of success; an API error is ``Connection 'id'
        <unreachable>: <error>``, any other error (a missing or invalid connection) says it is not usable."""
        try:
            success = probe()
        except ArgoApiError as exc:
            return False, f"Connection {self.argo_conn_id!r} {unreachable}: {exc}"
        except Exception as exc:
            return False, f"Connection {self.argo_conn_id!r} is not usable: {type(exc).__name__}: {exc}"
        return True, success

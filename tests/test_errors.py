"""The exception hierarchy and the conversion of client errors into it."""

from __future__ import annotations

import json
import ssl

import aiohttp
import httpx
import kubernetes.client.exceptions as k8s_exc
import kubernetes_asyncio.client.exceptions as ak8s_exc
import pytest
import urllib3

from airflow_argo_eci.errors import (
    MAX_BODY_CHARS,
    ArgoApiError,
    ArgoEciError,
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
    TlsVerificationError,
    TransientError,
    UnauthorizedError,
    WorkflowFailedError,
    WorkflowSpecError,
    api_error_from_status,
    connection_error,
    to_api_error,
)


def _status(code: int, reason: str, message: str, **details: object) -> str:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
                       "message": message, "details": details})


@pytest.mark.parametrize(
    ("status", "cls", "transient"),
    [(404, NotFoundError, False), (409, ConflictError, False), (401, UnauthorizedError, False),
     (403, UnauthorizedError, False), (400, InvalidError, False), (422, InvalidError, False),
     (410, GoneError, True), (429, TransientError, True), (500, TransientError, True),
     (503, TransientError, True), (418, ArgoApiError, False)],
)
def test_status_mapping(status: int, cls: type[ArgoApiError], transient: bool) -> None:
    error = api_error_from_status(status, None)
    assert type(error) is cls and error.status == status and error.transient is transient
    assert isinstance(error, ArgoEciError)


def test_kubernetes_status_body_with_causes_and_context() -> None:
    body = _status(422, "Invalid", 'Workflow "x" is invalid',
                   causes=[{"field": "spec.entrypoint", "message": "Required value"}])
    cause = RuntimeError("boom")
    error = api_error_from_status(422, body, cause=cause, context="create workflow in argo")
    assert isinstance(error, InvalidError) and error.__cause__ is cause
    assert error.reason == "Invalid"
    assert error.causes == [{"field": "spec.entrypoint", "message": "Required value"}]
    assert str(error) == ('create workflow in argo: HTTP 422 Invalid: Workflow "x" is invalid '
                          "(spec.entrypoint: Required value)")


def test_argo_server_grpc_body() -> None:
    body = json.dumps({"code": 5, "message": 'workflows.argoproj.io "x" not found', "details": []})
    error = api_error_from_status(404, body)
    assert isinstance(error, NotFoundError) and 'workflows.argoproj.io "x" not found' in str(error)
    # an error line inside a 200 log stream carries only the gRPC code
    streamed = api_error_from_status(0, json.dumps({"code": 14, "message": "unavailable"}))
    assert isinstance(streamed, TransientError) and streamed.status == 503
    assert isinstance(api_error_from_status(0, json.dumps({"code": 16, "message": "no"})), UnauthorizedError)


def test_body_trimmed_and_secrets_redacted() -> None:
    body = "Authorization: Bearer abc.def-ghi " + "x" * 5000
    error = api_error_from_status(500, body.encode())
    assert error.body is not None and len(error.body) <= MAX_BODY_CHARS
    assert error.body.endswith("[truncated]") and "abc.def-ghi" not in error.body
    assert "abc.def-ghi" not in str(error)
    leak = api_error_from_status(400, json.dumps({"message": 'bad kubeconfig: token: "s3cr3t-value"'}))
    assert "s3cr3t-value" not in str(leak)


def test_kubernetes_api_exceptions() -> None:
    exc = k8s_exc.ApiException(status=409, reason="Conflict")
    exc.body = _status(409, "AlreadyExists", 'workflows.argoproj.io "a" already exists')
    error = to_api_error(exc, context="create workflow in argo")
    assert isinstance(error, ConflictError) and error.__cause__ is exc and error.reason == "AlreadyExists"
    # subclasses (NotFoundException) and the asyncio client's exception
    not_found = k8s_exc.NotFoundException(status=404, reason="Not Found")
    assert isinstance(to_api_error(not_found), NotFoundError)
    gone = ak8s_exc.ApiException(status=410, reason="Expired: too old resource version: 1 (5)")
    converted = to_api_error(gone)
    assert isinstance(converted, GoneError) and "too old resource version" in str(converted)
    # status 0 with an SSL failure message (how the sync client reports certificate errors)
    tls = k8s_exc.ApiException(status=0, reason="SSLError\n[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert isinstance(to_api_error(tls), TlsVerificationError)


def test_connection_errors() -> None:
    refused = urllib3.exceptions.MaxRetryError(
        None, "/api", urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    )
    error = to_api_error(refused, url="https://127.0.0.1:1")
    assert isinstance(error, TransientError) and error.retry_safe and error.__cause__ is refused
    assert "https://127.0.0.1:1" in str(error)

    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    error = to_api_error(reset)
    assert isinstance(error, TransientError) and not error.retry_safe

    assert isinstance(to_api_error(httpx.ConnectError("refused")), TransientError)
    read_timeout = to_api_error(httpx.ReadTimeout("slow"))
    assert isinstance(read_timeout, TransientError) and not read_timeout.retry_safe
    assert isinstance(to_api_error(aiohttp.ServerDisconnectedError()), TransientError)
    assert isinstance(to_api_error(TimeoutError()), TransientError)

    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
        except ssl.SSLError as inner:
            raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]") from inner
    except httpx.ConnectError as exc:
        tls = to_api_error(exc)
    assert isinstance(tls, TlsVerificationError) and not tls.transient and "ca_cert_path" in str(tls)


def test_httpx_status_error_and_non_api_errors() -> None:
    request = httpx.Request("GET", "https://argo/api/v1/workflows/argo/x")
    response = httpx.Response(403, json={"code": 7, "message": "forbidden"}, request=request)
    exc = httpx.HTTPStatusError("forbidden", request=request, response=response)
    error = to_api_error(exc)
    assert isinstance(error, UnauthorizedError) and error.status == 403 and "forbidden" in str(error)
    assert to_api_error(KeyError("x")) is None
    assert connection_error(FileNotFoundError("x")) is None
    already = NotFoundError("gone")
    assert to_api_error(already) is already


def test_other_errors() -> None:
    spec = WorkflowSpecError("spec.entrypoint is required")
    assert isinstance(spec, ValueError) and isinstance(spec, ArgoEciError)
    failed = WorkflowFailedError("Workflow x Failed", phase="Failed", failed_nodes=[{"displayName": "a"}])
    assert failed.phase == "Failed" and failed.failed_nodes == [{"displayName": "a"}]

"""Wire contract of ``ArgoWorkflowsHook.download_artifact`` over the ``argo_server`` transport.

A fake Argo Server (respx) pins the request (method, path, headers) and answers with bodies, sizes,
CRC-64 headers and errors. The artifact routes are in Argo's swagger (the ``ArtifactService``
operations), but the Argo Server serves them from its plain HTTP mux, not the gRPC gateway: the body
is the object and errors are plain text. The path is checked against those operations
(``argo_artifact_openapi.json``, an extract of the same v3.6.0 ``swagger.json``). Argo's swagger
lists ``{idDiscriminator}`` as ``workflow`` / ``archived-workflows`` and ``{artifactDiscriminator}``
as ``outputs`` only, while ``server/artifacts/artifact_server.go`` accepts ``workflows`` (not
``workflow``) and ``inputs`` too: the hook sends what the server accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from airflow_argo_eci.crc64 import crc64_function
from airflow_argo_eci.errors import ArgoEciError, NotFoundError, TransientError, WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

SPEC: dict[str, Any] = json.loads(
    (Path(__file__).parent / "argo_artifact_openapi.json").read_text(encoding="utf-8"))
BASE = "https://argo-server.wire.test:2746"
TOKEN = "wire-token"
NS = "argo"
FILE = "/artifact-files/argo/workflows/wf1/wf1-123/outputs/result"


def _crc(data: bytes) -> str:
    return str(crc64_function()(data, 0))


def path_operation(path: str) -> tuple[str, dict[str, str]]:
    """The ArtifactService operation whose path template ``path`` fits, and its path parameters."""
    for op in SPEC["operations"]:
        names = re.findall(r"\{([^/]+)\}", op["path"])
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "([^/]+)", re.escape(op["path"])) + "$"
        match = re.match(pattern, path)
        if match and op["method"] == "GET":
            return op["operationId"], dict(zip(names, match.groups(), strict=True))
    raise AssertionError(f"GET {path} is not an ArtifactService operation ({SPEC['source']['ref']})")


@pytest.fixture
def server() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router
        assert router.calls, "the test sent nothing"
        for call in router.calls:
            assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
            assert call.request.method == "GET" and not call.request.content
            operation_id, _ = path_operation(call.request.url.path)
            assert operation_id == "ArtifactService_GetArtifactFile"


@pytest.fixture
def hook(make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook]) -> ArgoWorkflowsHook:
    return make_hook({"conn_type": "argo_workflows", "host": BASE, "password": TOKEN,
                      "extra": {"transport": "argo_server", "namespace": NS, "max_retries": 1,
                                "retry_backoff": 0.01}})


def test_extract_names_its_source_and_the_swagger_discrepancy() -> None:
    source = SPEC["source"]
    assert source["repo"] == "argoproj/argo-workflows" and source["ref"] == "v3.6.0"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    ids = {op["operationId"] for op in SPEC["operations"]}
    assert ids == {"ArtifactService_GetArtifactFile", "ArtifactService_GetOutputArtifact",
                   "ArtifactService_GetInputArtifact", "ArtifactService_GetOutputArtifactByUID",
                   "ArtifactService_GetInputArtifactByUID"}
    get_file = next(op for op in SPEC["operations"] if op["operationId"] == "ArtifactService_GetArtifactFile")
    assert get_file["response200"] == {"type": "string", "format": "binary"}
    assert get_file["pathParameters"]["idDiscriminator"] == ["workflow", "archived-workflows"]
    assert get_file["pathParameters"]["artifactDiscriminator"] == ["outputs"]
    with pytest.raises(AssertionError, match="not an ArtifactService operation"):
        path_operation("/artifact-files/argo/workflows/wf1")


def test_download_streams_to_the_file(hook: ArgoWorkflowsHook, server: respx.MockRouter, tmp_path: Path) -> None:
    data = b"payload " * 100_000
    route = server.get(FILE).respond(200, content=data, headers={
        "Content-Disposition": 'filename="result.tgz"', "x-oss-hash-crc64ecma": _crc(data)})
    target = tmp_path / "out" / "result.tgz"
    assert hook.download_artifact("wf1", "wf1-123", "result", target) == target
    assert target.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.tgz"]  # no temporary file left
    request = route.calls.last.request
    assert request.url.path == FILE and not request.url.params
    assert request.headers["Accept"] == "*/*"
    _, params = path_operation(request.url.path)
    assert params == {"namespace": NS, "idDiscriminator": "workflows", "id": "wf1", "nodeId": "wf1-123",
                      "artifactDiscriminator": "outputs", "artifactName": "result"}


def test_input_artifact_in_another_namespace_with_quoted_names(
    hook: ArgoWorkflowsHook, server: respx.MockRouter, tmp_path: Path
) -> None:
    path = "/artifact-files/other/workflows/wf1/wf1-9/inputs/in%20put"
    server.get(url__regex=r".*/artifact-files/other/.*").respond(200, content=b"x")
    hook.download_artifact("wf1", "wf1-9", "in put", tmp_path / "x", namespace="other", direction="inputs")
    assert server.calls.last.request.url.raw_path.decode() == path
    assert path_operation("/artifact-files/other/workflows/wf1/wf1-9/inputs/in put")[1]["artifactName"] == "in put"


def test_a_corrupt_body_is_retried_then_fails_leaving_nothing(
    hook: ArgoWorkflowsHook, server: respx.MockRouter, tmp_path: Path
) -> None:
    route = server.get(FILE).respond(200, content=b"bad", headers={"x-oss-hash-crc64ecma": _crc(b"good")})
    with pytest.raises(TransientError, match="CRC-64 mismatch"):
        hook.download_artifact("wf1", "wf1-123", "result", tmp_path / "r")
    assert route.call_count == 2  # max_retries=1
    assert list(tmp_path.iterdir()) == []


def test_a_short_body_is_retried(hook: ArgoWorkflowsHook, server: respx.MockRouter, tmp_path: Path) -> None:
    data = b"0123456789"
    server.get(FILE).mock(side_effect=[
        httpx.Response(200, content=data[:4], headers={"x-oss-hash-crc64ecma": _crc(data)}),
        httpx.Response(200, content=data, headers={"x-oss-hash-crc64ecma": _crc(data)}),
    ])
    hook.download_artifact("wf1", "wf1-123", "result", tmp_path / "r")
    assert (tmp_path / "r").read_bytes() == data


def test_fewer_bytes_than_the_content_length_fail_after_the_retries(
    hook: ArgoWorkflowsHook, server: respx.MockRouter, tmp_path: Path
) -> None:
    route = server.get(FILE).respond(200, content=b"abc", headers={"Content-Length": "10"})
    with pytest.raises(TransientError, match="the server announced 10 bytes but sent 3"):
        hook.download_artifact("wf1", "wf1-123", "result", tmp_path / "r")
    assert route.call_count == 2 and list(tmp_path.iterdir()) == []


def test_not_found_is_a_typed_error_with_the_servers_text(
    hook: ArgoWorkflowsHook, server: respx.MockRouter, tmp_path: Path
) -> None:
    server.get(FILE).respond(404, text="artifact not found: result, isInput=false\n")
    with pytest.raises(NotFoundError, match=r"download artifact result of argo/wf1 node wf1-123: HTTP 404.*"
                                            r"artifact not found: result"):
        hook.download_artifact("wf1", "wf1-123", "result", tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_a_directory_redirect_is_an_error(hook: ArgoWorkflowsHook, server: respx.MockRouter, tmp_path: Path) -> None:
    server.get(FILE).respond(307, headers={"Location": FILE + "/"})
    with pytest.raises(ArgoEciError, match="is a directory"):
        hook.download_artifact("wf1", "wf1-123", "result", tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), [
    (("wf1", "n", "a/b"), "artifact_name must be a non-empty name without '/'"),
    (("wf1", "..", "a"), "node_id must be"),
    (("", "n", "a"), "workflow must be"),
])
def test_bad_names_are_refused_before_sending(
    hook: ArgoWorkflowsHook, tmp_path: Path, args: tuple[str, str, str], message: str
) -> None:
    with respx.mock(base_url=BASE, assert_all_mocked=True) as router:
        with pytest.raises(WorkflowSpecError, match=message):
            hook.download_artifact(*args, tmp_path / "r")
        with pytest.raises(WorkflowSpecError, match="direction must be one of outputs, inputs"):
            hook.download_artifact("wf1", "n", "a", tmp_path / "r", direction="logs")
        assert not router.calls


def test_the_kubernetes_transport_points_to_the_oss_hook(
    make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook], tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    hook = make_hook({"conn_type": "argo_workflows",
                      "extra": {"transport": "kubernetes", "kube_config_path": str(kubeconfig)}})
    with pytest.raises(WorkflowSpecError, match=r"uses the kubernetes transport, which has no artifact download "
                                                r"route.*OSSArtifactHook\(\.\.\.\)\.download_artifact"):
        hook.download_artifact("wf1", "n", "a", tmp_path / "r")

"""The local Argo Server's artifact routes against a running local cluster: output and input
artifacts, tgz and raw objects, directory artifacts (redirect, listing, files inside, index.html), the
``/artifacts`` / ``/input-artifacts`` / ``-by-uid`` forms, headers, and bad input (unknown workflow,
node or artifact, path traversal, malformed paths, no token)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import oss2
import pytest
import yaml

from airflow_argo_eci.crc64 import crc64_function
from airflow_argo_eci.local.api.argo_artifact_routes import (
    ArtifactRequestError,
    content_disposition,
    content_type,
    directory_listing,
    file_key,
)
from airflow_argo_eci.local.api.resources import WORKFLOWS
from airflow_argo_eci.local.server import ARTIFACT_BUCKET, LocalCluster

NS = "argo"

PIPELINE = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-routes-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: produce, template: produce}
    - - name: consume
        template: consume
        arguments:
          artifacts: [{name: in, from: "{{steps.produce.outputs.artifacts.file-raw}}"}]
  - name: produce
    container:
      image: alpine:3.23
      command: [sh, -c]
      args: ["mkdir -p /w/tree/sub /w/site && echo one > /w/tree/a.txt && echo two > /w/tree/sub/b.txt &&
              echo '<p>hi</p>' > /w/site/index.html && echo plain > /tmp/plain.txt"]
    outputs:
      artifacts:
      - {name: file-tgz, path: /tmp/plain.txt}
      - {name: file-raw, path: /tmp/plain.txt, archive: {none: {}}}
      - {name: tree, path: /w/tree, archive: {none: {}}}
      - {name: site, path: /w/site, archive: {none: {}}}
  - name: consume
    inputs:
      artifacts: [{name: in, path: /tmp/in.txt}]
    container:
      image: alpine:3.23
      command: [cat, /tmp/in.txt]
"""


@pytest.fixture(scope="module")
def done(local_cluster: LocalCluster) -> dict[str, Any]:
    """The finished PIPELINE workflow."""
    assert local_cluster.store is not None
    doc = yaml.safe_load(PIPELINE)
    doc["metadata"]["namespace"] = NS
    name = local_cluster.store.create(WORKFLOWS, NS, doc)["metadata"]["name"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        wf = local_cluster.store.get(WORKFLOWS, NS, name)
        if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
            return wf
        time.sleep(0.1)
    raise AssertionError(f"workflow {name} did not finish")


@pytest.fixture(scope="module")
def client(local_cluster: LocalCluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_cluster.url, verify=str(local_cluster.paths.tls_cert),
                      headers={"Authorization": f"Bearer {local_cluster.token}"}, timeout=30) as c:
        yield c


def node_id(wf: dict[str, Any], display: str) -> str:
    return next(k for k, n in wf["status"]["nodes"].items() if n["displayName"] == display)


def object_bytes(cluster: LocalCluster, key: str) -> bytes:
    assert cluster.oss is not None
    key_id, secret = next(iter(cluster.oss_credentials().items()))
    bucket = oss2.Bucket(oss2.Auth(key_id, secret), cluster.oss.endpoint, ARTIFACT_BUCKET,
                         session=cluster.oss.session())
    data: bytes = bucket.get_object(key).read()
    return data


def output_key(wf: dict[str, Any], display: str, artifact: str) -> str:
    arts = wf["status"]["nodes"][node_id(wf, display)]["outputs"]["artifacts"]
    return str(next(a for a in arts if a["name"] == artifact)["oss"]["key"])


def test_output_files_are_the_stored_objects_with_argos_headers(
    local_cluster: LocalCluster, done: dict[str, Any], client: httpx.Client
) -> None:
    name = done["metadata"]["name"]
    produce = node_id(done, "produce")
    raw = client.get(f"/artifact-files/{NS}/workflows/{name}/{produce}/outputs/file-raw")
    assert raw.status_code == 200 and raw.content == b"plain\n"
    assert raw.headers["content-disposition"] == 'filename="plain.txt"'
    assert raw.headers["content-type"].startswith("text/plain")
    assert raw.headers["x-frame-options"] == "SAMEORIGIN"
    assert raw.headers["content-security-policy"].startswith("sandbox; base-uri 'none'")
    assert raw.headers["content-length"] == "6"
    assert raw.headers["x-oss-hash-crc64ecma"] == str(crc64_function()(b"plain\n", 0))

    tgz = client.get(f"/artifact-files/{NS}/workflows/{name}/{produce}/outputs/file-tgz")
    key = output_key(done, "produce", "file-tgz")
    assert tgz.status_code == 200 and tgz.content == object_bytes(local_cluster, key)  # served as stored
    assert tgz.headers["content-disposition"] == 'filename="file-tgz.tgz"'
    assert tgz.headers["content-type"] == "application/gzip"

    legacy = client.get(f"/artifacts/{NS}/{name}/{produce}/file-tgz")
    assert legacy.status_code == 200 and legacy.content == tgz.content
    uid = done["metadata"]["uid"]
    assert client.get(f"/artifacts-by-uid/{uid}/{produce}/file-raw").content == b"plain\n"
    archived = client.get(f"/artifact-files/{NS}/archived-workflows/{uid}/{produce}/outputs/file-raw")
    assert archived.status_code == 200 and archived.content == b"plain\n"


def test_input_artifacts(done: dict[str, Any], client: httpx.Client) -> None:
    name = done["metadata"]["name"]
    consume = node_id(done, "consume")
    uid = done["metadata"]["uid"]
    for path in (f"/artifact-files/{NS}/workflows/{name}/{consume}/inputs/in",
                 f"/input-artifacts/{NS}/{name}/{consume}/in",
                 f"/input-artifacts-by-uid/{uid}/{consume}/in"):
        response = client.get(path)
        assert (response.status_code, response.content) == (200, b"plain\n"), path


def test_directory_artifacts_redirect_list_and_serve_their_files(done: dict[str, Any], client: httpx.Client) -> None:
    base = f"/artifact-files/{NS}/workflows/{done['metadata']['name']}/{node_id(done, 'produce')}/outputs"
    redirect = client.get(f"{base}/tree")
    assert redirect.status_code == 307 and redirect.headers["location"] == f"{base}/tree/"
    listing = client.get(f"{base}/tree/")
    assert listing.status_code == 200 and listing.headers["content-type"].startswith("text/html")
    assert listing.text == ('<html><body><ul>\n<li><a href="..">..</a></li>\n<li><a href="./a.txt">a.txt</a></li>\n'
                            '<li><a href="./sub/">sub/</a></li>\n</ul></body></html>')
    assert client.get(f"{base}/tree/sub/b.txt").content == b"two\n"
    assert client.get(f"{base}/tree/sub").status_code == 307
    site = client.get(f"{base}/site/")
    assert site.status_code == 307 and site.headers["location"] == f"{base}/site/index.html"
    assert client.get(f"{base}/site/index.html").text == "<p>hi</p>\n"


def test_unknown_workflow_node_artifact_and_object_are_404_with_the_reason(
    done: dict[str, Any], client: httpx.Client
) -> None:
    name = done["metadata"]["name"]
    produce = node_id(done, "produce")
    cases = {
        f"/artifact-files/{NS}/workflows/no-such-wf/{produce}/outputs/file-raw":
            'workflows.argoproj.io "no-such-wf" not found',
        f"/artifacts/{NS}/{name}/no-such-node/file-raw":
            f"was not able to retrieve node: workflow {NS}/{name} has no node 'no-such-node'",
        f"/artifacts/{NS}/{name}/{produce}/nope": f"artifact not found: nope, isInput=false (node {produce}",
        f"/artifact-files/{NS}/workflows/{name}/{produce}/inputs/file-raw":
            "artifact not found: file-raw, isInput=true",
        f"/artifact-files/{NS}/workflows/{name}/{produce}/outputs/tree/missing.txt": "does not exist",
        f"/artifact-files/{NS}/archived-workflows/0000-no-uid/{produce}/outputs/file-raw":
            "workflow with uid 0000-no-uid not found in namespace argo (the local cluster keeps no workflow archive",
        f"/artifacts/other-ns/{name}/{produce}/file-raw": f'workflows.argoproj.io "{name}" not found',
    }
    for path, message in cases.items():
        response = client.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"].startswith("text/plain")
        assert message in response.text, (path, response.text)


def test_malformed_paths_and_traversal_are_400(done: dict[str, Any], client: httpx.Client) -> None:
    name = done["metadata"]["name"]
    base = f"/artifact-files/{NS}/workflows/{name}/{node_id(done, 'produce')}/outputs"
    for path, message in {
        f"{base}/tree/%2e%2e/file-raw": 'file path "../file-raw" leaves the artifact',
        f"{base}/tree/sub/%2e%2e/%2e%2e/%2e%2e/x": "leaves the artifact",
        f"{base}/tree/%2e%2e": "leaves the artifact",
        f"/artifact-files/{NS}/workflows/{name}": "Bad Request",
        f"/artifact-files/{NS}/workflow/{name}/n/outputs/file-raw":
            '"workflow" must be workflows or archived-workflows',
        f"/artifact-files/{NS}/workflows/{name}/n/logs/file-raw": '"logs" must be outputs or inputs',
        f"/artifacts/{NS}/{name}": "Bad Request",
    }.items():
        response = client.get(path)
        assert (response.status_code, message in response.text) == (400, True), (path, response.text)


def test_the_routes_need_the_token(local_cluster: LocalCluster, done: dict[str, Any]) -> None:
    name = done["metadata"]["name"]
    url = f"{local_cluster.url}/artifacts/{NS}/{name}/{node_id(done, 'produce')}/file-raw"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(url, verify=str(local_cluster.paths.tls_cert), headers=headers)
        assert response.status_code == 401 and b"plain" not in response.content


GC_ON_COMPLETION = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: art-routes-gc-}
spec:
  entrypoint: make
  artifactGC: {strategy: OnWorkflowCompletion}
  templates:
  - name: make
    container:
      image: alpine:3.23
      command: [sh, -c, "echo gone > /tmp/g.txt"]
    outputs:
      artifacts: [{name: g, path: /tmp/g.txt, archive: {none: {}}}]
"""


def test_an_artifact_deleted_by_its_gc_strategy_is_404(local_cluster: LocalCluster, client: httpx.Client) -> None:
    assert local_cluster.store is not None
    doc = yaml.safe_load(GC_ON_COMPLETION)
    doc["metadata"]["namespace"] = NS
    name = local_cluster.store.create(WORKFLOWS, NS, doc)["metadata"]["name"]
    deadline = time.monotonic() + 60
    while True:
        wf = local_cluster.store.get(WORKFLOWS, NS, name)
        arts = ((wf.get("status") or {}).get("nodes") or {}).get(name, {}).get("outputs", {}).get("artifacts") or []
        if arts and arts[0].get("deleted"):
            break
        assert time.monotonic() < deadline, wf.get("status")
        time.sleep(0.1)
    response = client.get(f"/artifacts/{NS}/{name}/{name}/g")
    assert response.status_code == 404 and "artifact g was deleted by its artifactGC strategy" in response.text


def test_file_paths_stay_inside_the_artifact() -> None:
    assert file_key("wf/pod/tree", "") == file_key("wf/pod/tree", ".") == "wf/pod/tree"
    assert file_key("wf/pod/tree", "sub/../a.txt") == "wf/pod/tree/a.txt"
    for bad in ("..", "../x", "a/../../x", "/etc/passwd", "a/\x00b"):
        with pytest.raises(ArtifactRequestError) as caught:
            file_key("wf/pod/tree", bad)
        assert caught.value.status == 400 and "leaves the artifact" in caught.value.message


def test_headers_and_listing_escape_what_the_key_holds() -> None:
    assert content_disposition('wf/pod/a"b\nc.txt') == 'filename="a_b_c.txt"'
    assert content_type("wf/pod/x.tgz") == "application/gzip"
    assert content_type("wf/pod/x.unknown-ext") == "application/octet-stream"
    assert directory_listing(["k/a b#.txt", "k/<s>/y", "k/<s>/z"], "k") == (
        b'<html><body><ul>\n<li><a href="..">..</a></li>\n<li><a href="./a%20b%23.txt">a b#.txt</a></li>\n'
        b'<li><a href="./%3Cs%3E/">&lt;s&gt;/</a></li>\n</ul></body></html>')

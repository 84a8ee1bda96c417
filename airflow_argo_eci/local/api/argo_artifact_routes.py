"""The Argo Server's artifact download routes, streaming each object from its OSS repository.

As Argo's ``server/artifacts/artifact_server.go`` (of :data:`~airflow_argo_eci.conventions.ARGO_VERSION`):

* ``/artifact-files/{ns}/{workflows|archived-workflows}/{name|uid}/{nodeId}/{outputs|inputs}/{artifactName}``
  streams the artifact's object; ``.../{artifactName}/{path...}`` a file inside an ``archive: none``
  directory artifact (the path is appended to the key); a key that is a "directory" (objects under
  ``key/``) is redirected (307) to the URL with a trailing ``/``, which lists it as HTML (or
  redirects to its ``index.html``).
* ``/artifacts/{ns}/{name}/{nodeId}/{artifactName}`` and ``/input-artifacts/...`` (the older forms),
  ``/artifacts-by-uid/{uid}/{nodeId}/{artifactName}`` and ``/input-artifacts-by-uid/...``.

The object is served as stored: a tar-archived artifact is its ``.tgz``, not unpacked. Headers:
``Content-Disposition: filename="<base name of the key>"``, ``Content-Type`` from the key's
extension, Argo's ``Content-Security-Policy`` and ``X-Frame-Options`` (overridable with the same
``ARGO_ARTIFACT_*`` environment variables), and, because the local server knows them from the object
store, ``Content-Length`` and the object's ``x-oss-hash-crc64ecma`` (the real Argo Server sends
neither for large objects). The body goes from the store to the client one chunk at a time (never
staged on disk, never held whole in memory); the object's CRC-64 is checked as it passes, and a
mismatch or a failed read aborts the connection, so the client sees a short body.

The local cluster keeps no workflow archive: ``archived-workflows/{uid}`` and the ``-by-uid`` forms
find the live workflow with that uid. Errors are plain text, as Argo's (``http.Error``): 400 for a
malformed path (or a file path that leaves the artifact), 404 for an unknown workflow, node,
artifact or object (Argo 3.6 answers 500 for an unknown node or artifact and logs the reason; here
the body says which one is missing), 501 for artifacts the local cluster cannot read (not OSS).
"""

from __future__ import annotations

import html
import mimetypes
import os
import posixpath
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse

from airflow_argo_eci.crc64 import crc64_function
from airflow_argo_eci.errors import ArgoEciError
from airflow_argo_eci.local.api.argo_server_base import call
from airflow_argo_eci.local.api.argo_workflow_routes import hydrate_workflow
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import WORKFLOWS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.argo.artifacts import ArtifactError, Location, OSSClients, location_of
from airflow_argo_eci.local.argo.offload import OffloadRepository
from airflow_argo_eci.workflows import workflow_nodes

if TYPE_CHECKING:
    import oss2

#: bytes read from the store and sent to the client at a time
CHUNK_BYTES = 1024 * 1024
#: Argo's defaults of ``ARGO_ARTIFACT_CONTENT_SECURITY_POLICY`` / ``ARGO_ARTIFACT_X_FRAME_OPTIONS``
DEFAULT_CSP = "sandbox; base-uri 'none'; default-src 'none'; img-src 'self'; style-src 'self' 'unsafe-inline'"
DEFAULT_X_FRAME_OPTIONS = "SAMEORIGIN"
DIRECTIONS = ("outputs", "inputs")
_STATUS_TEXT = {400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 501: "Not Implemented"}


class ArtifactRequestError(Exception):
    """A request the artifact routes answer with ``status`` and a plain-text ``message``."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or _STATUS_TEXT.get(status, ""))
        self.status = status
        self.message = message or _STATUS_TEXT.get(status, "")

    def response(self) -> Response:
        """The plain-text error response (as Go's ``http.Error``)."""
        return PlainTextResponse(self.message + "\n", status_code=self.status,
                                 headers={"X-Content-Type-Options": "nosniff"})


def _security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": os.environ.get("ARGO_ARTIFACT_CONTENT_SECURITY_POLICY", DEFAULT_CSP),
            "X-Frame-Options": os.environ.get("ARGO_ARTIFACT_X_FRAME_OPTIONS", DEFAULT_X_FRAME_OPTIONS)}


def content_type(key: str) -> str:
    """The ``Content-Type`` of an object by its key's extension (a ``.tgz`` is ``application/gzip``)."""
    kind, encoding = mimetypes.guess_type(posixpath.basename(key), strict=False)
    if encoding == "gzip":
        return "application/gzip"
    return kind or "application/octet-stream"


def content_disposition(key: str) -> str:
    """Argo's ``filename="<base name of the key>"`` (quotes and control characters replaced)."""
    name = "".join("_" if ch in '"\\' or ord(ch) < 32 or ord(ch) == 127 else ch for ch in posixpath.basename(key))
    return f'filename="{name}"'


def file_key(key: str, file_path: str) -> str:
    """``key`` with ``file_path`` appended (Argo's ``AppendToKey``); a path that would leave the
    artifact (``..``, absolute) is a 400."""
    cleaned = posixpath.normpath(file_path) if file_path else ""
    if cleaned in ("", "."):
        return key
    if cleaned.startswith("/") or cleaned == ".." or cleaned.startswith("../") or "\x00" in cleaned:
        raise ArtifactRequestError(400, f'file path "{file_path[:200]}" leaves the artifact')
    return posixpath.join(key, cleaned)


class ArtifactSource:
    """Finds a workflow's artifact and reads its object from OSS."""

    def __init__(self, store: Store, clients: OSSClients, credentials: tuple[str, str] | None) -> None:
        self.store = store
        self.clients = clients
        self.credentials = credentials

    def workflow(self, namespace: str, name: str) -> dict[str, Any]:
        """The Workflow ``namespace/name`` (404 with the API's message when there is none)."""
        try:
            return self.store.get(WORKFLOWS, namespace, name)
        except ApiError as exc:
            raise ArtifactRequestError(404 if exc.code == 404 else 400, exc.message) from exc

    def workflow_by_uid(self, uid: str, namespace: str | None) -> dict[str, Any]:
        """The workflow whose ``metadata.uid`` is ``uid`` (the local cluster's stand-in for the archive)."""
        items, _, _ = self.store.list(WORKFLOWS, namespace)
        for wf in items:
            if (wf.get("metadata") or {}).get("uid") == uid:
                return wf
        where = f" in namespace {namespace}" if namespace else ""
        raise ArtifactRequestError(404, f"workflow with uid {uid} not found{where} (the local cluster keeps no "
                                        "workflow archive: only existing workflows are served)")

    @staticmethod
    def artifact(wf: dict[str, Any], node_id: str, name: str, direction: str) -> dict[str, Any]:
        """The artifact ``name`` of node ``node_id`` (``direction``: ``outputs`` or ``inputs``)."""
        meta = wf.get("metadata") or {}
        try:
            nodes = workflow_nodes(wf.get("status") or {})
        except ArgoEciError as exc:
            raise ArtifactRequestError(500, f"cannot read the nodes of workflow {meta.get('name')}: {exc}") from exc
        node = nodes.get(node_id)
        if not isinstance(node, dict):
            raise ArtifactRequestError(404, f"was not able to retrieve node: workflow {meta.get('namespace')}/"
                                            f"{meta.get('name')} has no node {node_id[:253]!r}")
        for art in (node.get(direction) or {}).get("artifacts") or []:
            if isinstance(art, dict) and art.get("name") == name:
                return art
        is_input = str(direction == "inputs").lower()
        raise ArtifactRequestError(404, f"artifact not found: {name[:253]}, isInput={is_input} (node {node_id} of "
                                        f"workflow {meta.get('name')})")

    def location(self, wf: dict[str, Any], art: dict[str, Any], file_path: str) -> Location:
        """Where the artifact's object (or the file ``file_path`` inside it) is, with the keys to read it."""
        name = art.get("name")
        if art.get("deleted"):
            raise ArtifactRequestError(404, f"artifact {name} was deleted by its artifactGC strategy")
        oss = art.get("oss")
        if not isinstance(oss, dict) or not oss.get("key"):
            kinds = [k for k in ("s3", "gcs", "azure", "http", "git", "artifactory", "hdfs", "raw") if k in art]
            found = ", ".join(kinds) or "no location"
            raise ArtifactRequestError(501, f"artifact {name} is not an OSS artifact ({found}); the local cluster "
                                            "serves OSS artifacts")
        try:
            return location_of(self.store, str((wf.get("metadata") or {}).get("namespace") or ""), oss,
                               file_key(str(oss["key"]), file_path), self.credentials)
        except ArtifactError as exc:
            raise ArtifactRequestError(500, f"artifact {name}: {exc}") from exc

    def _bucket(self, loc: Location) -> oss2.Bucket:
        return self.clients.bucket(loc)

    def is_directory(self, loc: Location) -> bool:
        """Argo's ``IsOssDirectory``: objects exist under ``key/``."""
        prefix = loc.key.rstrip("/") + "/"
        result = self._call(loc, lambda b: b.list_objects_v2(prefix=prefix, max_keys=1))
        return bool(result.object_list or result.prefix_list)

    def list_objects(self, loc: Location, limit: int = 10_000) -> list[str]:
        """The keys under ``key/`` (at most ``limit``)."""
        import oss2

        prefix = loc.key.rstrip("/") + "/"
        keys: list[str] = []

        def collect(bucket: oss2.Bucket) -> list[str]:
            for obj in oss2.ObjectIteratorV2(bucket, prefix=prefix):
                keys.append(obj.key)
                if len(keys) >= limit:
                    break
            return keys

        result: list[str] = self._call(loc, collect)
        return result

    def open(self, loc: Location) -> Any:
        """The object's GET response (an oss2 ``GetObjectResult``, not yet read)."""
        import oss2

        try:
            return self._bucket(loc).get_object(loc.key)
        except oss2.exceptions.NoSuchKey as exc:
            if self.is_directory(loc):
                raise ArtifactRequestError(501, f"{loc.describe()} is a directory: download its files with "
                                                "/artifact-files/.../{artifactName}/{path}") from exc
            raise ArtifactRequestError(404, f"artifact object {loc.describe()} does not exist") from exc
        except oss2.exceptions.OssError as exc:
            raise ArtifactRequestError(500, f"failed to get {loc.describe()}: {exc.code or exc.status}: "
                                            f"{exc.message or exc.details}") from exc

    def _call(self, loc: Location, fn: Any) -> Any:
        import oss2

        try:
            return fn(self._bucket(loc))
        except oss2.exceptions.OssError as exc:
            raise ArtifactRequestError(500, f"failed to list {loc.describe()}: {exc.code or exc.status}: "
                                            f"{exc.message or exc.details}") from exc


def stream_object(result: Any, key: str) -> Iterator[bytes]:
    """The chunks of an open object; its CRC-64 is checked at the end (a mismatch raises, which
    aborts the response mid-body)."""
    crc_of = crc64_function()
    crc = 0
    try:
        while True:
            chunk = result.read(CHUNK_BYTES)
            if not chunk:
                break
            crc = crc_of(chunk, crc)
            yield chunk
    finally:
        result.resp.response.close()
    expected = result.server_crc
    if expected is not None and int(expected) != crc:
        raise OSError(f"artifact object {key}: CRC-64 {crc} does not match the store's {expected}")


def directory_listing(keys: list[str], key: str) -> bytes:
    """Argo's HTML list of a directory artifact's entries (each name escaped)."""
    lines = ['<html><body><ul>\n<li><a href="..">..</a></li>\n']
    seen: set[str] = set()
    for obj in keys:
        inner = obj[len(key.rstrip("/")) + 1:] if obj.startswith(key.rstrip("/") + "/") else obj
        folder, _, leaf = inner.rpartition("/")
        entry = f"{folder.split('/')[0]}/" if folder else leaf
        if not entry or entry in seen:
            continue
        seen.add(entry)
        href = html.escape(quote(entry), quote=True)
        lines.append(f'<li><a href="./{href}">{html.escape(entry, quote=True)}</a></li>\n')
    lines.append("</ul></body></html>")
    return "".join(lines).encode()


def add_artifact_routes(router: APIRouter, store: Store, clients: OSSClients,
                        credentials: tuple[str, str] | None, offloads: OffloadRepository | None = None) -> None:
    """Add the artifact download routes to ``router``; objects are read with ``clients`` and, for
    repositories that name no Secret, ``credentials`` (``(access key id, secret)``); offloaded
    nodes are read from ``offloads``, as Argo's artifact server hydrates the workflow."""
    source = ArtifactSource(store, clients, credentials)

    def locate(wf: dict[str, Any], node_id: str, name: str, direction: str, file_path: str = "") -> Location:
        wf = hydrate_workflow(offloads, wf)
        return source.location(wf, source.artifact(wf, node_id, name, direction), file_path)

    async def serve(loc: Location) -> Response:
        result = await call(source.open, loc)
        headers = {"Content-Disposition": content_disposition(loc.key), **_security_headers()}
        if result.content_length is not None:
            headers["Content-Length"] = str(result.content_length)
        if result.server_crc is not None:
            headers["x-oss-hash-crc64ecma"] = str(result.server_crc)
        return StreamingResponse(stream_object(result, loc.key), media_type=content_type(loc.key), headers=headers)

    async def guarded(work: Any) -> Response:
        try:
            return await work
        except ArtifactRequestError as exc:
            return exc.response()
        except ApiError as exc:
            return ArtifactRequestError(exc.code, exc.message).response()

    async def artifact_file(request: Request, namespace: str, discriminator: str, wf_id: str, node_id: str,
                            direction: str, artifact_name: str, file_path: str = "") -> Response:
        if direction not in DIRECTIONS:
            raise ArtifactRequestError(400, f'"{direction[:50]}" must be outputs or inputs')
        if discriminator == "workflows":
            wf = await call(source.workflow, namespace, wf_id)
        elif discriminator == "archived-workflows":
            wf = await call(source.workflow_by_uid, wf_id, namespace)
        else:
            raise ArtifactRequestError(400, f'"{discriminator[:50]}" must be workflows or archived-workflows')
        loc = await call(locate, wf, node_id, artifact_name, direction, file_path)
        path = request.url.path
        if not path.endswith("/"):
            if await call(source.is_directory, loc):
                return RedirectResponse(path + "/", status_code=307)
            return await serve(loc)
        keys = await call(source.list_objects, loc)
        prefix = loc.key.rstrip("/") + "/"
        if prefix + "index.html" in keys:
            return RedirectResponse(path + "index.html", status_code=307)
        return Response(directory_listing(keys, loc.key), media_type="text/html; charset=utf-8",
                        headers=_security_headers())

    @router.get("/artifact-files/{namespace}/{discriminator}/{wf_id}/{node_id}/{direction}/{artifact_name}")
    async def get_artifact_file(request: Request, namespace: str, discriminator: str, wf_id: str, node_id: str,
                                direction: str, artifact_name: str) -> Response:
        return await guarded(artifact_file(request, namespace, discriminator, wf_id, node_id, direction,
                                           artifact_name))

    @router.get("/artifact-files/{namespace}/{discriminator}/{wf_id}/{node_id}/{direction}/{artifact_name}/"
                "{file_path:path}")
    async def get_artifact_file_in(request: Request, namespace: str, discriminator: str, wf_id: str, node_id: str,
                                   direction: str, artifact_name: str, file_path: str) -> Response:
        return await guarded(artifact_file(request, namespace, discriminator, wf_id, node_id, direction,
                                           artifact_name, file_path))

    @router.get("/artifact-files/{rest:path}")
    async def artifact_file_malformed(rest: str) -> Response:
        return ArtifactRequestError(400).response()

    async def by_name(namespace: str, name: str, node_id: str, artifact_name: str, direction: str) -> Response:
        wf = await call(source.workflow, namespace, name)
        return await serve(await call(locate, wf, node_id, artifact_name, direction))

    async def by_uid(uid: str, node_id: str, artifact_name: str, direction: str) -> Response:
        wf = await call(source.workflow_by_uid, uid, None)
        return await serve(await call(locate, wf, node_id, artifact_name, direction))

    @router.get("/artifacts/{namespace}/{name}/{node_id}/{artifact_name:path}")
    async def get_output_artifact(namespace: str, name: str, node_id: str, artifact_name: str) -> Response:
        return await guarded(by_name(namespace, name, node_id, artifact_name, "outputs"))

    @router.get("/input-artifacts/{namespace}/{name}/{node_id}/{artifact_name:path}")
    async def get_input_artifact(namespace: str, name: str, node_id: str, artifact_name: str) -> Response:
        return await guarded(by_name(namespace, name, node_id, artifact_name, "inputs"))

    @router.get("/artifacts-by-uid/{uid}/{node_id}/{artifact_name:path}")
    async def get_output_artifact_by_uid(uid: str, node_id: str, artifact_name: str) -> Response:
        return await guarded(by_uid(uid, node_id, artifact_name, "outputs"))

    @router.get("/input-artifacts-by-uid/{uid}/{node_id}/{artifact_name:path}")
    async def get_input_artifact_by_uid(uid: str, node_id: str, artifact_name: str) -> Response:
        return await guarded(by_uid(uid, node_id, artifact_name, "inputs"))

    for prefix in ("/artifacts/", "/input-artifacts/", "/artifacts-by-uid/", "/input-artifacts-by-uid/"):
        router.add_api_route(prefix + "{rest:path}", artifact_file_malformed, methods=["GET"])

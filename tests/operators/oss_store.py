"""A local OSS store for the OSS operator, sensor and trigger tests, reached through an ``oss``
connection (``AIRFLOW_CONN_*``, JSON form) the way a DAG reaches Alibaba OSS."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oss2
import pytest

from airflow_argo_eci.archives import pack_tgz
from airflow_argo_eci.local.oss.server import OSSServer
from airflow_argo_eci.local.tls import ensure_certificate

KEY_ID, SECRET = "LTAI-operator-test", "s3cr3t-operator-test"
CONN_ID = "oss_test"
_names = itertools.count()


def oss_connection(endpoint: str, ca_bundle: Path, bucket: str, key_id: str = KEY_ID, secret: str = SECRET) -> str:
    """``AIRFLOW_CONN_*`` value of an ``oss`` connection in the alibaba provider's layout plus endpoint/CA."""
    return json.dumps({"conn_type": "oss", "schema": bucket,
                       "extra": {"access_key_id": key_id, "access_key_secret": secret, "endpoint": endpoint,
                                 "ca_bundle": str(ca_bundle)}})


@dataclass
class OSSTarget:
    """A fresh bucket in the store, the default bucket of connection ``CONN_ID``."""

    store: OSSServer
    bucket: oss2.Bucket
    ca_bundle: Path

    @property
    def name(self) -> str:
        return str(self.bucket.bucket_name)

    def put(self, key: str, data: bytes) -> None:
        self.bucket.put_object(key, data)

    def put_tgz(self, key: str, source: Path) -> None:
        """Upload ``source`` packed the way Argo archives an output artifact."""
        buffer = io.BytesIO()
        pack_tgz(source, buffer)
        self.bucket.put_object(key, buffer.getvalue())

    def get(self, key: str) -> bytes:
        return bytes(self.bucket.get_object(key).read())

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(o.key for o in oss2.ObjectIterator(self.bucket, prefix=prefix))


@pytest.fixture(scope="module")
def oss_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OSSServer]:
    """The store over HTTPS with a self-signed certificate (trusted through the connection's ca_bundle)."""
    base = tmp_path_factory.mktemp("oss-store")
    tls = ensure_certificate(base / "tls.crt", base / "tls.key")
    with OSSServer(base / "data", {KEY_ID: SECRET}, tls=tls) as server:
        yield server


@pytest.fixture
def oss(oss_store: OSSServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[OSSTarget]:
    """A fresh bucket; connection ``CONN_ID`` points at it."""
    assert oss_store.tls is not None
    session = oss_store.session()
    bucket = oss2.Bucket(oss2.Auth(KEY_ID, SECRET), oss_store.endpoint, f"op-bkt-{next(_names)}", session=session)
    bucket.create_bucket()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}",
                       oss_connection(oss_store.endpoint, oss_store.tls[0], bucket.bucket_name))
    yield OSSTarget(oss_store, bucket, oss_store.tls[0])
    session.session.close()


def node(node_id: str, display: str, artifacts: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A finished Pod node of a workflow status with these output artifacts."""
    return {"id": node_id, "name": f"wf.{display}", "displayName": display, "type": "Pod", "phase": "Succeeded",
            "outputs": {"artifacts": artifacts}, **fields}


def workflow(name: str, nodes: list[dict[str, Any]], phase: str = "Succeeded") -> dict[str, Any]:
    """A finished Workflow object as the controller leaves it (only what artifact resolution reads)."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name, "namespace": "argo", "uid": f"uid-{name}"},
            "spec": {"entrypoint": "main"},
            "status": {"phase": phase, "nodes": {n["id"]: n for n in nodes}}}

"""Fixtures: a local OSS store over HTTPS (the cluster's self-signed certificate) and fresh buckets."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import oss2
import pytest

from airflow_argo_eci.local.oss.server import OSSServer
from airflow_argo_eci.local.tls import ensure_certificate

KEY_ID, SECRET = "LTAI-local-test", "s3cr3t-local-test"
#: An STS temporary key: accepted only with its security token.
STS_KEY_ID, STS_SECRET, STS_TOKEN = "STS.local-test", "sts-s3cr3t", "CAIS-local-token"
REGION = "cn-local"
_names = itertools.count()


@pytest.fixture()
def oss_keys() -> tuple[str, str]:
    """The (AccessKeyId, AccessKeySecret) the store accepts."""
    return KEY_ID, SECRET


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OSSServer]:
    base = tmp_path_factory.mktemp("oss")
    tls = ensure_certificate(base / "tls.crt", base / "tls.key")
    with OSSServer(base / "data", {KEY_ID: SECRET, STS_KEY_ID: STS_SECRET}, tls=tls,
                   security_tokens={STS_KEY_ID: STS_TOKEN}, region=REGION) as server:
        yield server


@pytest.fixture(scope="module")
def oss_session(store: OSSServer) -> Iterator[oss2.Session]:
    session = store.session()
    yield session
    session.session.close()


@pytest.fixture()
def make_bucket(store: OSSServer, oss_session: oss2.Session) -> Callable[..., oss2.Bucket]:
    def make(name: str, key_id: str = KEY_ID, secret: str = SECRET, *, auth: object = None,
             region: str = REGION) -> oss2.Bucket:
        """A client for bucket ``name``: V1 with (key_id, secret) unless another ``auth`` is given."""
        return oss2.Bucket(auth or oss2.Auth(key_id, secret), store.endpoint, name, session=oss_session,
                           region=region)

    return make


@pytest.fixture()
def bucket(make_bucket: Callable[..., oss2.Bucket]) -> oss2.Bucket:
    b = make_bucket(f"bkt-{next(_names)}")
    b.create_bucket()
    return b


@pytest.fixture()
def service(store: OSSServer, oss_session: oss2.Session) -> oss2.Service:
    return oss2.Service(oss2.Auth(KEY_ID, SECRET), store.endpoint, session=oss_session)

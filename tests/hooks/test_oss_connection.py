"""OSSArtifactHook without a store: connection parsing, part sizes, CRC-64 combination, artifact refs."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest

from airflow_argo_eci.crc64 import combine_parts, crc64_function
from airflow_argo_eci.hooks.oss import (
    OSSArtifactHook,
    OSSConfigError,
    OSSLocation,
    OSSNotFoundError,
    choose_part_size,
    workflow_artifacts,
)
from airflow_argo_eci.hooks.oss_connection import parse_oss_connection
from airflow_argo_eci.hooks.oss_types import (
    DEFAULT_PART_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PARTS,
    GiB,
    KiB,
    MiB,
    TiB,
)


def make_hook(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any], **kwargs: Any) -> OSSArtifactHook:
    conn_id = f"oss_test_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return OSSArtifactHook(conn_id, **kwargs)


ALIBABA_STYLE: dict[str, Any] = {"conn_type": "oss", "schema": "my-bucket",
                 "extra": {"auth_type": "AK", "access_key_id": "LTAI-id", "access_key_secret": "the-secret-value",
                           "region": "cn-hangzhou"}}


def test_alibaba_provider_connection_is_read_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = make_hook(monkeypatch, ALIBABA_STYLE)
    settings = hook.settings
    assert settings.endpoint == "https://oss-cn-hangzhou.aliyuncs.com"
    assert settings.region == "cn-hangzhou"
    assert settings.signature_version == 4
    assert settings.bucket == "my-bucket"
    assert (settings.access_key_id, settings.access_key_secret) == ("LTAI-id", "the-secret-value")
    assert "the-secret-value" not in repr(settings)
    bucket = hook.get_bucket()
    assert bucket.bucket_name == "my-bucket"
    assert hook.get_bucket("other").bucket_name == "other"


def test_secrets_are_registered_with_the_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.log import redact

    conn = {**ALIBABA_STYLE, "extra": {**ALIBABA_STYLE["extra"], "security_token": "sts-token-value-123"}}
    make_hook(monkeypatch, conn).settings  # noqa: B018 - reading the settings registers the secrets
    assert redact("key the-secret-value token sts-token-value-123") == "key *** token ***"


def test_endpoint_token_ca_bundle_and_form_prefixed_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "oss", "schema": "b1",
            "extra": {"extra__oss__access_key_id": "id", "extra__oss__access_key_secret": "s",
                      "endpoint": "oss-cn-beijing-internal.aliyuncs.com", "security_token": "tok",
                      "ca_bundle": "/etc/ca.pem", "signature_version": "1", "region": ""}}
    settings = make_hook(monkeypatch, conn).settings
    assert settings.endpoint == "https://oss-cn-beijing-internal.aliyuncs.com"
    assert settings.security_token == "tok"
    assert settings.ca_bundle == "/etc/ca.pem"
    assert settings.signature_version == 1 and settings.region is None


def test_login_password_are_a_fallback_for_the_keys() -> None:
    settings = parse_oss_connection("c", {"region": "cn-shanghai"}, login="id", password="pw")
    assert (settings.access_key_id, settings.access_key_secret) == ("id", "pw")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"access_key_id": "i", "access_key_secret": "s", "region": "cn-x", "bucket": "b"},
         "unknown extra 'bucket'; allowed extras: access_key_id, access_key_secret, auth_type, ca_bundle, endpoint, "
         "region, security_token, signature_version"),
        ({"access_key_id": "i", "region": "cn-x"}, "extra 'access_key_secret' is missing"),
        ({"access_key_id": "i", "access_key_secret": "s"}, "needs extra 'region'"),
        ({"access_key_id": "i", "access_key_secret": "s", "region": "cn-x", "auth_type": "STS"},
         "extra 'auth_type' 'STS' is not supported"),
        ({"access_key_id": "i", "access_key_secret": "s", "region": "cn-x", "signature_version": 2},
         "extra 'signature_version' must be 1 or 4"),
        ({"access_key_id": "i", "access_key_secret": "s", "endpoint": "https://e", "signature_version": 4},
         "signature_version 4 needs extra 'region'"),
        ({"access_key_id": "i", "access_key_secret": "s", "endpoint": "ftp://e"}, "must be an http(s) URL"),
    ],
)
def test_bad_connections_name_the_field(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], message: str) -> None:
    hook = make_hook(monkeypatch, {"conn_type": "oss", "schema": "b", "extra": extra})
    with pytest.raises(OSSConfigError, match="connection 'oss_test_") as info:
        hook.settings  # noqa: B018
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_bucket_names_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = make_hook(monkeypatch, {**ALIBABA_STYLE, "schema": ""})
    with pytest.raises(OSSConfigError, match="set the bucket in the schema field of connection"):
        hook.get_bucket()


def test_hook_declares_its_connection_type() -> None:
    assert (OSSArtifactHook.conn_type, OSSArtifactHook.conn_name_attr, OSSArtifactHook.default_conn_name) == (
        "oss", "oss_conn_id", "oss_default")
    behaviour = OSSArtifactHook.get_ui_field_behaviour()
    assert "host" in behaviour["hidden_fields"] and behaviour["relabeling"]["schema"] == "Default bucket"


def test_hook_rejects_bad_tuning() -> None:
    with pytest.raises(OSSConfigError, match="part_size must be between 102400"):
        OSSArtifactHook("x", part_size=1000)
    with pytest.raises(OSSConfigError, match="multipart_threshold"):
        OSSArtifactHook("x", multipart_threshold=6 * GiB)
    with pytest.raises(OSSConfigError, match="parallelism must be >= 1"):
        OSSArtifactHook("x", parallelism=0)


def test_location_urls() -> None:
    assert OSSLocation.from_url("oss://b/a/b.tgz") == OSSLocation("b", "a/b.tgz")
    assert OSSLocation("b", "k").url == "oss://b/k"
    with pytest.raises(OSSConfigError, match="use oss://<bucket>/<key>"):
        OSSLocation.from_url("s3://b/k")


# ---------------------------------------------------------------------------------------------- part size

def test_part_size_for_tiny_medium_and_maximum_objects() -> None:
    assert choose_part_size(1) == DEFAULT_PART_SIZE
    assert choose_part_size(5 * GiB) == DEFAULT_PART_SIZE  # 320 parts
    biggest = choose_part_size(MAX_OBJECT_SIZE)
    assert -(-MAX_OBJECT_SIZE // biggest) <= MAX_PARTS
    assert biggest <= 5 * GiB and biggest % MiB == 0
    assert 48 * TiB < MAX_OBJECT_SIZE < 49 * TiB
    assert choose_part_size(MAX_OBJECT_SIZE, 5 * GiB) == 5 * GiB


def test_requested_part_size_too_small_names_the_minimum() -> None:
    with pytest.raises(OSSConfigError) as info:
        choose_part_size(1 * TiB, 100 * KiB)
    assert str(info.value) == (
        f"part_size 102400 is too small for an object of {TiB} bytes: OSS allows at most 10000 parts; use "
        f"part_size >= {-(-TiB // 10000)} or leave it unset to choose automatically")
    with pytest.raises(OSSConfigError, match="exceeds the OSS maximum"):
        choose_part_size(MAX_OBJECT_SIZE + 1)


def test_crc64_combination_matches_the_whole() -> None:
    crc = crc64_function()
    data = os.urandom(300_001)
    pieces = [data[:100_000], data[100_000:200_000], data[200_000:]]
    assert combine_parts([(crc(p, 0), len(p)) for p in pieces]) == crc(data, 0)
    # OSS's published check value for CRC-64/XZ ("123456789")
    assert crc(b"123456789", 0) == 0x995DC9BBDF1939FA


# ---------------------------------------------------------------------------------------------- artifacts

def _workflow() -> dict[str, Any]:
    return {
        "metadata": {"name": "wf-1", "namespace": "argo"},
        "status": {
            "artifactRepositoryRef": {"artifactRepository": {"oss": {"bucket": "repo-bucket",
                                                                     "endpoint": "oss-cn-x.aliyuncs.com"}}},
            "nodes": {
                "wf-1": {"displayName": "wf-1", "type": "Steps", "startedAt": "2024-01-01T00:00:00Z"},
                "wf-1-111": {"displayName": "gen", "name": "wf-1[0].gen", "type": "Pod",
                             "startedAt": "2024-01-01T00:00:01Z",
                             "outputs": {"artifacts": [
                                 {"name": "out", "path": "/tmp/out", "oss": {"key": "wf-1/wf-1-111/out.tgz"}},
                                 {"name": "raw", "path": "/tmp/raw", "archive": {"none": {}},
                                  "oss": {"bucket": "other", "endpoint": "e", "key": "raw/data.bin"}},
                                 {"name": "in-s3", "s3": {"key": "x"}},
                             ]}},
            },
        },
    }


def test_workflow_artifacts_resolve_oss_locations() -> None:
    refs = workflow_artifacts(_workflow())
    assert [(r.node, r.name, r.bucket, r.key, r.archive) for r in refs] == [
        ("gen", "out", "repo-bucket", "wf-1/wf-1-111/out.tgz", "tar"),
        ("gen", "raw", "other", "raw/data.bin", "none"),
    ]
    assert refs[0].workflow == "wf-1" and refs[0].namespace == "argo" and refs[0].node_id == "wf-1-111"
    assert workflow_artifacts(_workflow(), node="wf-1[0].gen", name="raw")[0].key == "raw/data.bin"
    with pytest.raises(OSSNotFoundError, match=r"no OSS output artifact gen/nope; it has: gen/out, gen/raw"):
        workflow_artifacts(_workflow(), node="gen", name="nope")

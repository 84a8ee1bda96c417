"""Every credential a connection carries is registered with Airflow's masker, and nothing too
short to be a secret is (so the provider never triggers Airflow's "too short" warning)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_argo_eci.hooks._masking import kubeconfig_secrets, mask
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook


def kubeconfig(tag: str = "") -> dict[str, Any]:
    """A kubeconfig whose six credentials end with ``tag`` (each test masks its own values: the
    masker is process-wide)."""
    return yaml.safe_load(yaml.safe_dump(KUBECONFIG).replace("-value-", f"-value{tag}-").replace(
        "-secret-", f"-secret{tag}-").replace("-password-", f"-password{tag}-").replace("-token-5", f"-token{tag}-5"))


def secrets(tag: str = "") -> list[str]:
    return list(kubeconfig_secrets(kubeconfig(tag)))


KUBECONFIG: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
    "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "oidc"}}],
    "users": [
        {"name": "oidc", "user": {"auth-provider": {"name": "oidc", "config": {
            "client-id": "public-client-id", "client-secret": "oidc-client-secret-1",
            "id-token": "eyJ-id-token-value-2", "refresh-token": "refresh-token-value-3",
            "idp-issuer-url": "https://issuer.example.com"}}}},
        {"name": "exec", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aliyun",
                                           "env": [{"name": "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                                                    "value": "exec-env-secret-4"}]}}},
        {"name": "static", "user": {"token": "static-bearer-token-5", "password": "basic-password-6"}},
    ],
}
SECRETS = ["oidc-client-secret-1", "eyJ-id-token-value-2", "refresh-token-value-3", "exec-env-secret-4",
           "static-bearer-token-5", "basic-password-6"]


def test_kubeconfig_secrets_finds_every_credential_and_nothing_else() -> None:
    found = list(kubeconfig_secrets(KUBECONFIG))
    assert sorted(found) == sorted(SECRETS)
    assert "public-client-id" not in found and "https://issuer.example.com" not in found


@pytest.mark.parametrize("source", ["inline", "path"])
def test_kubeconfig_credentials_are_masked(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.log import redact

    extra: dict[str, Any] = {"transport": "kubernetes", "namespace": "argo"}
    if source == "inline":
        extra["kube_config"] = yaml.safe_dump(kubeconfig(source))
    else:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig(source)))
        extra["kube_config_path"] = str(path)
    import json

    monkeypatch.setenv(f"AIRFLOW_CONN_MASK_{source.upper()}",
                       json.dumps({"conn_type": "argo_workflows", "extra": extra}))
    hook = ArgoWorkflowsHook(argo_conn_id=f"mask_{source}")
    ok, message = hook.test_connection()  # loading the configuration registers its credentials
    assert not ok, message  # nothing listens there; the credentials were registered on the way
    mine = secrets(source)
    assert len(mine) == len(SECRETS) and all(source in secret for secret in mine)
    assert redact(" ".join(mine)) == " ".join("***" for _ in mine)


def test_short_values_are_not_registered(caplog: pytest.LogCaptureFixture) -> None:
    from airflow.sdk._shared.secrets_masker.secrets_masker import SecretsMasker
    from airflow.sdk.log import redact

    SecretsMasker._has_warned_short_secret = False
    with caplog.at_level(logging.WARNING):
        mask("abc")
        mask("   ")
        mask(None)
    assert "too short" not in caplog.text
    assert redact("abc") == "abc"

"""What this provider registers with Airflow's secrets masker: one home for "what is a secret".

Values shorter than Airflow's ``[logging] min_length_masked_secret`` (5 by default) are never
registered: Airflow cannot mask them and would only log "Skipping masking for a secret as it's too
short". Airflow itself walks every connection extra through the masker when ``extra_dejson`` is
read, so a short non-secret extra such as ``namespace: argo`` can still make Airflow print that
warning once per process; nothing of this provider's is behind it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

#: keys of a kubeconfig ``users[].user`` entry whose values are credentials
KUBECONFIG_USER_SECRETS = ("token", "password", "client-key-data")
#: keys of ``users[].user.auth-provider.config`` (OIDC, GCP, Azure providers) that are credentials
AUTH_PROVIDER_SECRETS = ("id-token", "refresh-token", "client-secret", "access-token", "idp-certificate-authority-data")


def min_secret_length() -> int:
    """Airflow's ``[logging] min_length_masked_secret`` (5 when unset or unreadable)."""
    try:
        from airflow.configuration import conf

        return conf.getint("logging", "min_length_masked_secret", fallback=5)
    except Exception:  # Airflow's configuration is not loadable here: use its default
        return 5


def mask(value: object) -> None:
    """Register ``value`` with Airflow's masker when it is a string long enough to be masked."""
    if not isinstance(value, str) or len(value.strip()) < min_secret_length():
        return
    from airflow.sdk.log import mask_secret

    mask_secret(value)


def kubeconfig_secrets(doc: Mapping[str, Any] | None) -> Iterator[str]:
    """Every credential in a kubeconfig document: user tokens, passwords and client keys, auth-provider
    tokens and client secrets, and the values of ``exec`` credential plugins' environment."""
    for entry in (doc or {}).get("users") or []:
        user = (entry or {}).get("user") if isinstance(entry, Mapping) else None
        if not isinstance(user, Mapping):
            continue
        for key in KUBECONFIG_USER_SECRETS:
            if isinstance(user.get(key), str):
                yield user[key]
        provider = user.get("auth-provider")
        config = provider.get("config") if isinstance(provider, Mapping) else None
        if isinstance(config, Mapping):
            for key, value in config.items():
                if isinstance(value, str) and (key in AUTH_PROVIDER_SECRETS or "secret" in key or "token" in key):
                    yield value
        plugin = user.get("exec")
        env = plugin.get("env") if isinstance(plugin, Mapping) else None
        for item in env if isinstance(env, list) else []:
            if isinstance(item, Mapping) and isinstance(item.get("value"), str):
                yield item["value"]


def mask_kubeconfig(doc: Mapping[str, Any] | None) -> None:
    """Register every credential of a kubeconfig (see :func:`kubeconfig_secrets`)."""
    for secret in kubeconfig_secrets(doc):
        mask(secret)

"""An ``oss`` connection: its settings, their parsing and validation, and the ``oss2`` session, bucket and
signer made from them.

Nothing here imports ``oss2`` at module import time; :func:`make_bucket` imports it on first use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.hooks._masking import mask
from airflow_argo_eci.hooks.oss_errors import OSSConfigError

if TYPE_CHECKING:
    import oss2

#: extras of an ``oss`` connection (the alibaba provider's, plus endpoint/STS/TLS/signature)
ALLOWED_EXTRAS = ("access_key_id", "access_key_secret", "region", "auth_type", "endpoint", "security_token",
                  "ca_bundle", "signature_version")
_FORM_PREFIX = "extra__oss__"
_REGION_RE = re.compile(r"^[a-z0-9-]{2,63}$")


@dataclass(frozen=True)
class OSSConnectionSettings:
    """The parsed, validated settings of one ``oss`` connection (secrets not in ``repr``)."""

    conn_id: str
    access_key_id: str = field(repr=False)
    access_key_secret: str = field(repr=False)
    endpoint: str
    region: str | None = None
    bucket: str | None = None
    security_token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    signature_version: int = 1


def _config_error(conn_id: str, text: str) -> OSSConfigError:
    return OSSConfigError(f"connection {conn_id!r}: {text}", code="InvalidConnection")


def parse_oss_connection(
    conn_id: str,
    extra: Mapping[str, Any],
    *,
    schema: str | None = None,
    login: str | None = None,
    password: str | None = None,
    host: str | None = None,
    region: str | None = None,
) -> OSSConnectionSettings:
    """Validate an ``oss`` connection: the alibaba provider's extras plus ``endpoint``,
    ``security_token``, ``ca_bundle`` and ``signature_version``.

    Credentials come from the extras ``access_key_id``/``access_key_secret`` (the alibaba provider's
    layout) or else the connection's login/password. The endpoint is the ``endpoint`` extra, else the
    connection host, else ``https://oss-<region>.aliyuncs.com``. Unknown extras are rejected naming the
    allowed ones; secrets are registered with Airflow's secrets masker.
    """
    values: dict[str, Any] = {}
    for raw_key, value in extra.items():
        key = raw_key[len(_FORM_PREFIX):] if raw_key.startswith(_FORM_PREFIX) else raw_key
        if value is None or value == "":
            continue
        if key not in ALLOWED_EXTRAS:
            raise _config_error(conn_id, f"unknown extra {key!r}; allowed extras: {', '.join(sorted(ALLOWED_EXTRAS))}")
        values[key] = value
    auth_type = str(values.get("auth_type", "AK"))
    if auth_type != "AK":
        raise _config_error(conn_id, f"extra 'auth_type' {auth_type!r} is not supported; use 'AK' (access keys)")
    key_id = str(values.get("access_key_id") or login or "").strip()
    secret = str(values.get("access_key_secret") or password or "").strip()
    if not key_id or not secret:
        missing = "access_key_id" if not key_id else "access_key_secret"
        raise _config_error(conn_id, f"extra {missing!r} is missing; set extras access_key_id and "
                                     "access_key_secret (or the connection login/password)")
    token = str(values["security_token"]).strip() if values.get("security_token") else None
    region_value = region or values.get("region")
    region_text = str(region_value).strip() if region_value else None
    if region_text and not _REGION_RE.match(region_text):
        raise _config_error(conn_id, f"extra 'region' {region_text!r} is not a region id like 'cn-hangzhou'")
    endpoint = str(values.get("endpoint") or host or "").strip().rstrip("/")
    if not endpoint:
        if not region_text:
            raise _config_error(conn_id, "needs extra 'region' (e.g. cn-hangzhou) or extra 'endpoint' "
                                         "(e.g. https://oss-cn-hangzhou.aliyuncs.com)")
        endpoint = f"https://oss-{region_text}.aliyuncs.com"
    elif "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    if not endpoint.startswith(("https://", "http://")):
        raise _config_error(conn_id, f"extra 'endpoint' {endpoint!r} must be an http(s) URL")
    raw_version = values.get("signature_version", 4 if region_text else 1)
    if str(raw_version).lower().lstrip("v") not in ("1", "4"):
        raise _config_error(conn_id, f"extra 'signature_version' must be 1 or 4, got {raw_version!r}")
    version = int(str(raw_version).lower().lstrip("v"))
    if version == 4 and not region_text:
        raise _config_error(conn_id, "signature_version 4 needs extra 'region' (e.g. cn-hangzhou)")
    ca_bundle = str(values["ca_bundle"]) if values.get("ca_bundle") else None
    bucket = (schema or "").strip() or None
    mask(secret)
    mask(token)
    return OSSConnectionSettings(conn_id=conn_id, access_key_id=key_id, access_key_secret=secret, endpoint=endpoint,
                                 region=region_text, bucket=bucket, security_token=token, ca_bundle=ca_bundle,
                                 signature_version=version)



def make_session(settings: OSSConnectionSettings, pool_size: int) -> oss2.Session:
    """An ``oss2.Session`` with ``pool_size`` connections; trusts ``ca_bundle`` when set (verification stays on).

    With a ``ca_bundle`` the session ignores ``REQUESTS_CA_BUNDLE``/proxy environment variables, which
    requests would otherwise let override the bundle.
    """
    import oss2

    session = oss2.Session(pool_size=max(pool_size, 1))
    if settings.ca_bundle:
        session.session.verify = settings.ca_bundle
        session.session.trust_env = False
    return session


def make_bucket(settings: OSSConnectionSettings, bucket_name: str, session: oss2.Session) -> oss2.Bucket:
    """An ``oss2.Bucket`` signing with the connection's keys (v1 or v4, STS token when set).

    oss2's own CRC checking is off: the hook checks CRC-64 itself, once per byte.
    """
    import oss2

    return oss2.Bucket(make_auth(settings), settings.endpoint, bucket_name, session=session, enable_crc=False,
                       region=settings.region)


def make_auth(settings: OSSConnectionSettings) -> Any:
    """oss2 signer for the connection: Signature V1 or V4, with the STS token when set."""
    import oss2
    from oss2.credentials import StaticCredentialsProvider

    provider = StaticCredentialsProvider(settings.access_key_id, settings.access_key_secret,
                                         settings.security_token or "")
    return oss2.ProviderAuthV4(provider) if settings.signature_version == 4 else oss2.ProviderAuth(provider)

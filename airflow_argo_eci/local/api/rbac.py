"""Identities behind bearer tokens and RBAC over them: PolicyRules, Kubernetes' request-info rules
(method + path -> verb, group, resource, subresource, namespace, name), the authorizer and the
403 ``Status`` it answers with.

The kubeconfig's token is the local cluster's admin identity (allowed everything, like
``system:masters``). :meth:`Tokens.add` makes a restricted identity from RBAC ``PolicyRule`` dicts
(optionally limited to namespaces, as a Role bound in those namespaces would be). A restricted
identity may use discovery, ``/version`` and the health and OpenAPI paths like any authenticated
user of a real cluster, and create SelfSubjectAccessReviews; every other Kubernetes request needs a
rule; the Argo Server REST routes and the artifact routes are admin-only. Restricted tokens live in
memory only: a restarted cluster knows the admin token alone.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_argo_eci.local.api import resources
from airflow_argo_eci.local.api.errors import ApiError

#: the admin identity's user name and group, as a real cluster's ``kubernetes-admin`` has them
ADMIN_USER = "airflow-argo-eci:local-admin"
ADMIN_GROUP = "system:masters"
#: SelfSubjectAccessReviews: every authenticated identity may create them
SSAR_GROUP = "authorization.k8s.io"
SSAR_PLURAL = "selfsubjectaccessreviews"
#: paths every authenticated identity may read (``system:discovery`` / ``system:public-info-viewer``)
_PUBLIC_PATHS = frozenset({"/api", "/api/", "/apis", "/apis/", "/version", "/version/", "/healthz", "/livez",
                           "/readyz", "/openapi/v2"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}
_RULE_KEYS = {"apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"}


def _strings(rule: Mapping[str, Any], key: str, *, required: bool) -> tuple[str, ...]:
    value = rule.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value) or (
            required and not value):
        raise ValueError(f"PolicyRule.{key} must be a {'non-empty ' if required else ''}list of strings, "
                         f"got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class PolicyRule:
    """One RBAC rule: ``verbs`` on ``resources`` (``pods``, ``pods/log``, ``*``, ``*/status``) of
    ``api_groups`` (``""`` is the core group), optionally only the objects ``resource_names``."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any]) -> PolicyRule:
        """A rule from its Kubernetes form (``apiGroups``, ``resources``, ``verbs``,
        ``resourceNames``); ValueError names the field that is wrong."""
        if not isinstance(rule, Mapping):
            raise ValueError(f"a PolicyRule must be a mapping, got {type(rule).__name__}")
        unknown = set(rule) - _RULE_KEYS
        if unknown:
            raise ValueError(f"unknown PolicyRule fields: {', '.join(sorted(unknown))}")
        if rule.get("nonResourceURLs"):
            raise ValueError("PolicyRule.nonResourceURLs is not supported by the local cluster")
        return cls(_strings(rule, "apiGroups", required=True), _strings(rule, "resources", required=True),
                   _strings(rule, "verbs", required=True), _strings(rule, "resourceNames", required=False))

    def allows(self, attrs: Attributes) -> bool:
        """RBAC's rule match: verb, API group, resource (with subresource) and resource name."""
        if "*" not in self.verbs and attrs.verb not in self.verbs:
            return False
        if "*" not in self.api_groups and attrs.group not in self.api_groups:
            return False
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        if not any(r == "*" or r == combined or (attrs.subresource and r == f"*/{attrs.subresource}")
                   for r in self.resources):
            return False
        return not self.resource_names or attrs.name in self.resource_names


@dataclass(frozen=True)
class Attributes:
    """What a request asks for, as Kubernetes' authorizer sees it (``authorizer.Attributes``)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    #: a non-resource request's path ("" for resource requests)
    path: str = ""

    @property
    def is_resource(self) -> bool:
        """Whether this is a resource request (else a non-resource path)."""
        return not self.path


@dataclass(frozen=True)
class Identity:
    """Who a token is: the admin, or a restricted user with rules (and maybe namespaces)."""

    name: str
    admin: bool = False
    rules: tuple[PolicyRule, ...] = ()
    #: the namespaces the rules hold in (None: every namespace and the cluster scope)
    namespaces: frozenset[str] | None = None
    groups: tuple[str, ...] = field(default=("system:authenticated",))


@dataclass(frozen=True)
class Decision:
    """An authorizer's answer: allowed, and why."""

    allowed: bool
    reason: str


def authorize(identity: Identity, attrs: Attributes) -> Decision:
    """Whether ``identity`` may do ``attrs``, with the reason an SSAR reports."""
    if identity.admin:
        return Decision(True, f'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
                              f'to Group "{ADMIN_GROUP}" (the local cluster\'s admin identity "{identity.name}", '
                              "the kubeconfig's token)")
    if not attrs.is_resource:
        if _public_path(attrs.path) and attrs.verb == "get":
            return Decision(True, 'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole '
                                  '"system:discovery" to Group "system:authenticated"')
        return Decision(False, f'the local cluster allows path "{attrs.path}" to its admin identity only')
    if attrs.group == SSAR_GROUP and attrs.resource == SSAR_PLURAL and attrs.verb == "create":
        return Decision(True, 'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole '
                              '"system:basic-user" to Group "system:authenticated"')
    if identity.namespaces is not None and attrs.namespace not in identity.namespaces:
        scope = f'namespace "{attrs.namespace}"' if attrs.namespace else "the cluster scope"
        return Decision(False, f'the rules of "{identity.name}" hold only in namespaces '
                               f'{", ".join(sorted(identity.namespaces))}, not in {scope}')
    for index, rule in enumerate(identity.rules):
        if rule.allows(attrs):
            return Decision(True, f'RBAC: allowed by rule {index} of local token "{identity.name}"')
    return Decision(False, "")


def _public_path(path: str) -> bool:
    if path in _PUBLIC_PATHS or path.startswith("/openapi/v3"):
        return True
    parts = [p for p in path.split("/") if p]
    # discovery documents: /api/v1, /apis/<group>, /apis/<group>/<version>
    return (len(parts) == 2 and parts[0] == "api") or (2 <= len(parts) <= 3 and parts[0] == "apis")


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes | None:
    """Kubernetes' request-info rules: the attributes of a resource request under ``/api/v1`` or
    ``/apis/<group>/<version>``; None for any other path (a non-resource request). The core group's
    first segment must be ``namespaces``, ``watch`` or a core plural, so the Argo Server REST routes
    (``/api/v1/workflows/...``) are not taken for Kubernetes resources."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
        if rest[0] not in ("namespaces", "watch") and resources.lookup("", rest[0]) is None:
            return None
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    verb = _METHOD_VERBS.get(method.upper(), method.lower())
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
        if not rest:
            return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "").lower() in ("true", "1") else "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, group, resource, subresource, namespace, name)


def forbidden(identity: Identity, attrs: Attributes, reason: str = "") -> ApiError:
    """The 403 ``Status`` Kubernetes answers a denied request with."""
    if not attrs.is_resource:
        message = f'forbidden: User "{identity.name}" cannot {attrs.verb} path "{attrs.path}"'
        if reason:
            message += f": {reason}"
        return ApiError(403, "Forbidden", message)
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    detail = (f'User "{identity.name}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.group}" '
              f"{where}")
    if reason:
        detail += f": {reason}"
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    message = (f'{qualified} "{attrs.name}" is forbidden: {detail}' if attrs.name
               else f"{qualified} is forbidden: {detail}")
    # as Go's omitempty leaves them out: no empty name or group in the details
    return ApiError(403, "Forbidden", message, name=attrs.name or None, group=attrs.group or None,
                    kind=attrs.resource)


class Tokens:
    """The bearer tokens the API accepts and the identity behind each (thread-safe). Lookups
    compare the supplied token against every known token in constant time."""

    def __init__(self, admin_token: str) -> None:
        if not admin_token:
            raise ValueError("the API token must not be empty")
        self._lock = threading.Lock()
        self._tokens: tuple[tuple[bytes, Identity], ...] = (
            (admin_token.encode(), Identity(ADMIN_USER, admin=True, groups=(ADMIN_GROUP, "system:authenticated"))),
        )

    def add(self, name: str, rules: Iterable[Mapping[str, Any]], *,
            namespaces: Iterable[str] | None = None) -> str:
        """A new bearer token for the restricted identity ``name`` holding ``rules`` (RBAC
        PolicyRule dicts), in ``namespaces`` only when given; ValueError for a malformed rule."""
        if not name or not isinstance(name, str):
            raise ValueError("an identity needs a non-empty name")
        parsed = tuple(PolicyRule.from_dict(rule) for rule in rules)
        scope = None if namespaces is None else frozenset(namespaces)
        token = secrets.token_urlsafe(32)
        with self._lock:
            if any(identity.name == name for _, identity in self._tokens):
                raise ValueError(f"an identity named {name!r} exists already")
            self._tokens = (*self._tokens, (token.encode(), Identity(name, rules=parsed, namespaces=scope)))
        return token

    def identity(self, supplied: bytes) -> Identity | None:
        """The identity of the token ``supplied`` (the bytes after ``Bearer``), or None."""
        found: Identity | None = None
        for token, identity in self._tokens:  # no early exit: the time does not tell which one matched
            if hmac.compare_digest(supplied, token):
                found = identity
        return found

"""``authorization.k8s.io/v1`` SelfSubjectAccessReview: "may I?" answered from the calling token's
identity (:mod:`~airflow_argo_eci.local.api.rbac`), create only, as ``kubectl auth can-i`` asks it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from airflow_argo_eci.local.api import errors
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.limits import json_response, read_json_body
from airflow_argo_eci.local.api.rbac import SSAR_GROUP, SSAR_PLURAL, Attributes, Identity, authorize

SSAR_VERSION = "v1"
SSAR_KIND = "SelfSubjectAccessReview"
#: the API path reviews are created at
SSAR_PATH = f"/apis/{SSAR_GROUP}/{SSAR_VERSION}/{SSAR_PLURAL}"
#: what discovery lists for the kind (``/apis/authorization.k8s.io/v1``)
SSAR_DISCOVERY: dict[str, Any] = {
    "groupVersion": f"{SSAR_GROUP}/{SSAR_VERSION}",
    "resource": {"name": SSAR_PLURAL, "singularName": "selfsubjectaccessreview", "namespaced": False,
                 "kind": SSAR_KIND, "verbs": ["create"]},
}
_RESOURCE_FIELDS = ("namespace", "verb", "group", "version", "resource", "subresource", "name")


def _invalid(field: str, message: str) -> ApiError:
    return errors.invalid(SSAR_PLURAL, SSAR_GROUP, "", [{"reason": "FieldValueInvalid", "field": field,
                                                         "message": message}])


def review_attributes(body: Any) -> Attributes:
    """The attributes a review asks about; 400 for a body that is not an object, 422 naming the
    field when the spec is not exactly one of ``resourceAttributes`` / ``nonResourceAttributes``
    or a field is not a string."""
    if not isinstance(body, dict):
        raise errors.bad_request(f"the body of a {SSAR_KIND} must be a JSON object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "", SSAR_KIND):
        raise _invalid("kind", f'Invalid value: "{kind}": must be {SSAR_KIND}')
    if api_version not in (None, "", SSAR_DISCOVERY["groupVersion"]):
        raise _invalid("apiVersion", f'Invalid value: "{api_version}": must be {SSAR_DISCOVERY["groupVersion"]}')
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise _invalid("spec", "Required value: a SelfSubjectAccessReview needs a spec")
    res, non_res = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (res is None) == (non_res is None):
        raise _invalid("spec.resourceAttributes",
                       "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified")
    attrs = res if res is not None else non_res
    if not isinstance(attrs, dict):
        field = "spec.resourceAttributes" if res is not None else "spec.nonResourceAttributes"
        raise _invalid(field, "Invalid value: must be an object")
    for key, value in attrs.items():
        if value is not None and not isinstance(value, str):
            where = "resourceAttributes" if res is not None else "nonResourceAttributes"
            raise _invalid(f"spec.{where}.{key}", f"Invalid value: {value!r}: must be a string")
    if non_res is not None:
        return Attributes(str(attrs.get("verb") or ""), path=str(attrs.get("path") or "/"))
    return Attributes(str(attrs.get("verb") or ""), str(attrs.get("group") or ""), str(attrs.get("resource") or ""),
                      str(attrs.get("subresource") or ""), str(attrs.get("namespace") or ""),
                      str(attrs.get("name") or ""))


def review(identity: Identity, body: dict[str, Any]) -> dict[str, Any]:
    """The created review: the spec echoed, ``status.allowed`` and ``status.reason`` (``denied`` is
    left out, as RBAC has no explicit deny)."""
    decision = authorize(identity, review_attributes(body))
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return {"kind": SSAR_KIND, "apiVersion": SSAR_DISCOVERY["groupVersion"],
            "metadata": {"creationTimestamp": None}, "spec": body.get("spec"), "status": status}


def install_access_review_route(app: FastAPI) -> None:
    """Serve ``POST`` :data:`SSAR_PATH` on ``app`` (other methods are 405); the caller's identity is
    the ``k8s_identity`` the token middleware put into the scope."""

    async def create_review(request: Request) -> Response:
        identity: Identity | None = request.scope.get("k8s_identity")
        if identity is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        body = await read_json_body(request)
        return await json_response(review(identity, body), status_code=201)

    app.add_api_route(SSAR_PATH, create_review, methods=["POST"], include_in_schema=False)

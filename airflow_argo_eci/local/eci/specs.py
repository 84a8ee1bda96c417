"""ImageCache spec checks: the 422 ``Invalid`` causes of a bad ``spec``, field by field."""

from __future__ import annotations

from typing import Any

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci.local.api.validation import Cause, dns1123_label, dns1123_subdomain


def _cause(reason: str, field: str, message: str) -> Cause:
    return {"reason": reason, "field": field, "message": message}


def _shown(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def _int_in_range(spec: dict[str, Any], key: str, low: int, high: int) -> list[Cause]:
    value = spec.get(key)
    if value is None:
        return []
    field = f"spec.{key}"
    if isinstance(value, bool) or not isinstance(value, int):
        return [_cause("FieldValueInvalid", field, f'Invalid value: "{_shown(value)}": must be an integer')]
    if not low <= value <= high:
        return [_cause("FieldValueInvalid", field,
                       f"Invalid value: {value}: must be between {low} and {high}, inclusive")]
    return []


def _images_causes(images: Any) -> list[Cause]:
    if images is None:
        return [_cause("FieldValueRequired", "spec.images", "Required value: at least one image is required")]
    if not isinstance(images, list):
        return [_cause("FieldValueInvalid", "spec.images", "Invalid value: must be a list of image names")]
    if not images:
        return [_cause("FieldValueRequired", "spec.images", "Required value: at least one image is required")]
    return [
        _cause("FieldValueInvalid", f"spec.images[{i}]",
               f'Invalid value: "{_shown(image)}": must be a non-empty image name')
        for i, image in enumerate(images)
        if not isinstance(image, str) or not image.strip()
    ]


def pull_secret_problems(ref: str) -> list[str]:
    """Problems of one ``imagePullSecrets`` entry (``namespace:name``); empty when valid."""
    namespace, sep, name = ref.partition(":")
    if not sep:
        return ['must be "namespace:name" (the Secret\'s namespace, a colon, its name)']
    problems = [f"namespace: {p}" for p in dns1123_label(namespace)]
    problems += [f"name: {p}" for p in dns1123_subdomain(name)]
    return problems


def _secrets_causes(refs: Any) -> list[Cause]:
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [_cause("FieldValueInvalid", "spec.imagePullSecrets",
                       'Invalid value: must be a list of "namespace:name" strings')]
    causes = []
    for i, ref in enumerate(refs):
        field = f"spec.imagePullSecrets[{i}]"
        if not isinstance(ref, str):
            causes.append(_cause("FieldValueInvalid", field,
                                 f'Invalid value: "{_shown(ref)}": must be a "namespace:name" string'))
            continue
        for problem in pull_secret_problems(ref):
            causes.append(_cause("FieldValueInvalid", field, f'Invalid value: "{ref}": {problem}'))
    return causes


def image_cache_causes(obj: dict[str, Any]) -> list[Cause]:
    """Why the ImageCache ``obj`` is invalid, one cause per bad field (empty when valid): ``spec.images``
    a non-empty list of non-empty strings, ``imageCacheSize`` and ``retentionDays`` integers in
    range, each ``imagePullSecrets`` entry ``namespace:name`` of valid DNS names."""
    spec = obj.get("spec")
    if spec is None:
        return [_cause("FieldValueRequired", "spec", "Required value: spec.images is required")]
    if not isinstance(spec, dict):
        return [_cause("FieldValueInvalid", "spec", "Invalid value: must be an object")]
    return [
        *_images_causes(spec.get("images")),
        *_int_in_range(spec, "imageCacheSize", eci.IMAGE_CACHE_SIZE_MIN_GB, eci.IMAGE_CACHE_SIZE_MAX_GB),
        *_int_in_range(spec, "retentionDays", eci.RETENTION_DAYS_MIN, eci.RETENTION_DAYS_MAX),
        *_secrets_causes(spec.get("imagePullSecrets")),
    ]

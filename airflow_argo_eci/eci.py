"""ECI / ACS settings for Argo Workflows, as one validated, immutable value.

:class:`EciProfile` turns the settings of Alibaba Cloud's "run Argo Workflows on ECI" guidance
into the labels, annotations, ``podSpecPatch``, ``retryStrategy`` and ``parallelism`` of a
Workflow, without clobbering anything the Workflow already sets. Example (the seed document's
``parallelism-limit1`` workflow)::

    profile = EciProfile(
        use_specs=("ecs.c6.large", "ecs.c5.large", "2-4Gi"),
        schedule_strategy="VSwitchRandom",
        fail_strategy="fail-fast",
        retry_strategy=RetryStrategy(limit=3, retry_policy="Always"),
        parallelism=10,
    )
    workflow = profile.apply(load_workflow("parallelism-limit1.yaml"))

Image caches (the seed's ``parallelism-limit1`` with a pinned cache)::

    profile.replace(image_cache_id="imc-2zeedp8bxor2kcxxx", image_pull_policy="IfNotPresent")

The cache annotations and the ``imagePullPolicy`` walk live in :mod:`airflow_argo_eci.eci_images`,
:class:`RetryStrategy` / :class:`Backoff` in :mod:`airflow_argo_eci.eci_retry` (both re-exported here).
The module is pure (no Airflow, no HTTP) and every invalid value raises
:class:`~airflow_argo_eci.errors.WorkflowSpecError` naming the field and the fix, before anything
is sent anywhere.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from airflow_argo_eci.eci_conventions import (
    ANNOTATION_AUTO_IMAGE_CACHE,
    ANNOTATION_IMAGE_CACHE_ID,
    ANNOTATION_IMAGE_CACHE_PERFECT_MATCH,
    ANNOTATION_LEGACY_IMAGE_CACHE,
    ANNOTATION_LEGACY_IMAGE_SNAPSHOT_ID,
    ANNOTATION_VSWITCH,
)
from airflow_argo_eci.eci_datasets import DatasetMount, coerce_mounts, mount_datasets
from airflow_argo_eci.eci_images import (
    IMAGE_PULL_POLICIES,
    check_image_cache_id,
    check_legacy_annotations,
    image_cache_annotations,
    is_template,
    not_if_not_present,
    resolve_image_cache_id,
    set_image_pull_policy,
)
from airflow_argo_eci.eci_retry import RETRY_POLICIES as RETRY_POLICIES
from airflow_argo_eci.eci_retry import Backoff, RetryStrategy, check_keys, same_retry
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.fluid_conventions import LABEL_FLUID_SIDECAR_TARGET
from airflow_argo_eci.workflows import is_valid_label_key, is_valid_label_value, merge_string_map

__all__ = [
    "ANNOTATION_AUTO_IMAGE_CACHE",
    "ANNOTATION_EXTRA_EPHEMERAL_STORAGE",
    "ANNOTATION_FAIL_STRATEGY",
    "ANNOTATION_IMAGE_CACHE_ID",
    "ANNOTATION_IMAGE_CACHE_PERFECT_MATCH",
    "ANNOTATION_IMAGE_SNAPSHOT_ID",
    "ANNOTATION_SCHEDULE_STRATEGY",
    "ANNOTATION_SPOT_DURATION",
    "ANNOTATION_SPOT_PRICE_LIMIT",
    "ANNOTATION_SPOT_STRATEGY",
    "ANNOTATION_USE_SPECS",
    "ANNOTATION_VSWITCH",
    "LABEL_COMPUTE_CLASS",
    "LABEL_COMPUTE_QOS",
    "LABEL_ECI",
    "Backoff",
    "DatasetMount",
    "EciProfile",
    "RetryStrategy",
]

#: pod label that makes the ECI admission webhook place the pod on a virtual node
LABEL_ECI = "alibabacloud.com/eci"
#: ACS compute class of the pod
LABEL_COMPUTE_CLASS = "alibabacloud.com/compute-class"
#: ACS computing-power QoS of the pod
LABEL_COMPUTE_QOS = "alibabacloud.com/compute-qos"
ANNOTATION_USE_SPECS = "k8s.aliyun.com/eci-use-specs"
ANNOTATION_SCHEDULE_STRATEGY = "k8s.aliyun.com/eci-schedule-strategy"
ANNOTATION_FAIL_STRATEGY = "k8s.aliyun.com/eci-fail-strategy"
ANNOTATION_SPOT_STRATEGY = "k8s.aliyun.com/eci-spot-strategy"
ANNOTATION_SPOT_PRICE_LIMIT = "k8s.aliyun.com/eci-spot-price-limit"
ANNOTATION_SPOT_DURATION = "k8s.aliyun.com/eci-spot-duration"
#: legacy spelling of :data:`ANNOTATION_IMAGE_CACHE_ID`: accepted on workflows, never rendered
ANNOTATION_IMAGE_SNAPSHOT_ID = ANNOTATION_LEGACY_IMAGE_SNAPSHOT_ID
ANNOTATION_EXTRA_EPHEMERAL_STORAGE = "k8s.aliyun.com/eci-extra-ephemeral-storage"

SCHEDULE_STRATEGIES = ("VSwitchOrdered", "VSwitchRandom")
FAIL_STRATEGIES = ("fail-back", "fail-over", "fail-fast")
SPOT_STRATEGIES = ("SpotAsPriceGo", "SpotWithPriceLimit")
SPOT_DURATIONS = (0, 1)
COMPUTE_CLASSES = ("general-purpose", "performance", "gpu", "gpu-hpn")
COMPUTE_QOS_CLASSES = ("default", "best-effort")

_OWNED_LABELS = {
    LABEL_ECI: "enabled",
    LABEL_COMPUTE_CLASS: "compute_class",
    LABEL_COMPUTE_QOS: "compute_qos",
}
_OWNED_ANNOTATIONS = {
    ANNOTATION_USE_SPECS: "use_specs",
    ANNOTATION_SCHEDULE_STRATEGY: "schedule_strategy",
    ANNOTATION_FAIL_STRATEGY: "fail_strategy",
    ANNOTATION_VSWITCH: "vswitch_ids",
    ANNOTATION_SPOT_STRATEGY: "spot_strategy",
    ANNOTATION_SPOT_PRICE_LIMIT: "spot_price_limit",
    ANNOTATION_SPOT_DURATION: "spot_duration",
    ANNOTATION_AUTO_IMAGE_CACHE: "auto_match_image_cache",
    ANNOTATION_LEGACY_IMAGE_CACHE: "auto_match_image_cache",
    ANNOTATION_IMAGE_CACHE_PERFECT_MATCH: "image_cache_perfect_match",
    ANNOTATION_IMAGE_CACHE_ID: "image_cache_id",
    ANNOTATION_LEGACY_IMAGE_SNAPSHOT_ID: "image_cache_id",
    ANNOTATION_EXTRA_EPHEMERAL_STORAGE: "extra_ephemeral_storage",
}

# ecs.<family>[-<variant>].<size>, e.g. ecs.c6.large, ecs.gn6i-c4g1.xlarge, ecs.g7.16xlarge
_INSTANCE_TYPE_RE = re.compile(
    r"^ecs\.[a-z][a-z0-9]*(?:-[a-z0-9]+)*\.(?:nano|micro|small|medium|large|xlarge|[1-9][0-9]*xlarge)$")
# <vCPU>-<memory>Gi, e.g. 2-4Gi, 0.5-1Gi, 0.25-0.5Gi
_CPU_MEM_RE = re.compile(r"^(?P<cpu>(?:0|[1-9][0-9]*)(?:\.[0-9]+)?)-(?P<mem>(?:0|[1-9][0-9]*)(?:\.[0-9]+)?)Gi$")
_VSWITCH_RE = re.compile(r"^vsw-[a-z0-9]+$")
_GIB_RE = re.compile(r"^[1-9][0-9]*Gi$")
_SCHEDULER_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$")
# template kinds that run a pod of their own (retryStrategy defaults go there)
_POD_TEMPLATE_KINDS = ("container", "script", "containerSet", "resource", "data")


def _fail(message: str) -> NoReturn:
    raise WorkflowSpecError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(where: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        _fail(f"{where}: {value!r} is not supported: use one of {', '.join(allowed)}")


def _string_tuple(where: str, value: Any) -> tuple[str, ...]:
    """A tuple from a tuple/list of strings or a comma-separated string."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: Iterable[Any] = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        _fail(f"{where} must be a list of strings (or one comma-separated string), got {type(value).__name__}")
    result = tuple(items)
    for i, item in enumerate(result):
        if not isinstance(item, str) or not item:
            _fail(f"{where}[{i}] must be a non-empty string, got {item!r}")
    duplicates = sorted({item for item in result if result.count(item) > 1})
    if duplicates:
        _fail(f"{where} lists {', '.join(duplicates)} more than once: list each entry once")
    return result


class _FrozenMap(dict[str, str]):
    """A read-only dict: profile labels/annotations cannot change behind a frozen profile's back.

    It stays a ``dict`` so it pickles, deep-copies and JSON-serializes like one.
    """

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("EciProfile labels/annotations are read-only: use EciProfile.replace(labels=...)")

    __setitem__ = __delitem__ = _readonly
    clear = pop = popitem = setdefault = update = __ior__ = _readonly

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __deepcopy__(self, memo: dict[int, Any]) -> _FrozenMap:
        return self

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))


@dataclass(frozen=True, slots=True)
class EciProfile:
    """ECI/ACS settings applied to an Argo Workflow (see :meth:`apply`).

    Every field is optional except that ECI placement is on by default. Pod-level settings go to
    ``spec.podMetadata`` (or a template's ``metadata``); nothing the workflow already sets is
    overwritten: the same value is fine, a different one raises :class:`WorkflowSpecError`.

    :param enabled: add the pod label ``alibabacloud.com/eci: "true"`` so pods are scheduled to ECI.
    :param scheduler_name: ``schedulerName`` merged into ``podSpecPatch`` (``"eci-scheduler"``
        keeps pods off regular nodes while the ECI webhook is briefly unavailable); ``None`` skips it.
    :param use_specs: ordered instance specifications tried in turn, each an ECS instance type
        (``ecs.c6.large``) or a ``<vCPU>-<memory>Gi`` pair (``2-4Gi``, ``0.5-1Gi``) ->
        annotation ``k8s.aliyun.com/eci-use-specs``. A comma-separated string is accepted too.
    :param schedule_strategy: multi-zone strategy ``VSwitchOrdered`` or ``VSwitchRandom`` ->
        ``k8s.aliyun.com/eci-schedule-strategy``.
    :param fail_strategy: pod creation failure handling ``fail-back``, ``fail-over`` or
        ``fail-fast`` -> ``k8s.aliyun.com/eci-fail-strategy``.
    :param vswitch_ids: vSwitch IDs (``vsw-...``) overriding the cluster's eci-profile for
        multi-zone placement -> ``k8s.aliyun.com/eci-vswitch`` (comma-separated).
    :param spot_strategy: ``SpotAsPriceGo`` (follow the market price) or ``SpotWithPriceLimit``
        -> ``k8s.aliyun.com/eci-spot-strategy``.
    :param spot_price_limit: maximum hourly price (> 0, at most 3 decimals); required with, and
        only allowed with, ``SpotWithPriceLimit`` -> ``k8s.aliyun.com/eci-spot-price-limit``.
    :param spot_duration: spot protection period in hours, ``1`` (ECI's default) or ``0`` (none);
        needs a ``spot_strategy`` -> ``k8s.aliyun.com/eci-spot-duration``.
    :param auto_match_image_cache: let ECI match (and create) image caches automatically ->
        ``k8s.aliyun.com/eci-auto-imc`` (``"true"``/``"false"``); ``None`` keeps ECI's default (true).
    :param image_cache_perfect_match: with automatic matching, use a cache only when it holds every
        image of the pod -> ``k8s.aliyun.com/imc-perfect-match`` (``"true"``/``"false"``).
    :param image_cache_id: pin one image cache, the ``imc-...`` ``status.imageCacheId`` of a Ready
        ImageCache -> ``k8s.aliyun.com/eci-imc-id`` (a pin takes precedence over automatic
        matching). An Airflow template such as ``"{{ ti.xcom_pull(task_ids='cache_images') }}"``
        is accepted too: :class:`~airflow_argo_eci.operators.argo.ArgoWorkflowOperator` renders
        and validates it before applying the profile; :meth:`apply` refuses it unrendered. ECI's
        docs and the seed pair a pin with ``image_pull_policy="IfNotPresent"``: without it (an
        image tagged ``:latest`` pulls ``Always`` by default) pods pull the image again, so
        :meth:`apply` warns (``UserWarning``) naming the containers that would.
    :param image_snapshot_id: LEGACY alias of ``image_cache_id``, from the older ECI/ACK pages that
        spell the annotation ``k8s.aliyun.com/eci-image-snapshot-id``. It is accepted and moved to
        ``image_cache_id`` (it reads ``None`` afterwards); the profile renders the current key
        ``k8s.aliyun.com/eci-imc-id`` only. Both set to different values is an error.
        A workflow that already carries a legacy annotation (``eci-image-snapshot-id`` or
        ``eci-image-cache``, the old spelling of ``eci-auto-imc``) holds the same setting: the
        same value is fine, a different one is an error naming both keys.
    :param image_pull_policy: ``Always``, ``IfNotPresent`` or ``Never``, set on every container of
        the workflow's pods: ``container``, ``script``, ``containerSet.containers[]``,
        ``initContainers[]`` and ``sidecars[]`` of every template and of ``spec.templateDefaults``
        (the seed sets ``IfNotPresent`` with an image cache). A container that sets another policy
        is an error naming the template, the container and both values.
    :param extra_ephemeral_storage: extra temporary storage in whole GiB, e.g. ``"50Gi"`` ->
        ``k8s.aliyun.com/eci-extra-ephemeral-storage``.
    :param compute_class: ACS compute class ``general-purpose``, ``performance``, ``gpu`` or
        ``gpu-hpn`` -> label ``alibabacloud.com/compute-class``.
    :param compute_qos: ACS computing-power QoS ``default`` or ``best-effort`` -> label
        ``alibabacloud.com/compute-qos``.
    :param retry_strategy: a :class:`RetryStrategy` (or its Argo-spelled mapping) set on every
        pod-running template (container, script, containerSet, resource, data) that has no
        ``retryStrategy`` of its own; see :meth:`apply`.
    :param parallelism: workflow ``spec.parallelism`` (int >= 1): how many pods run at once.
    :param datasets: Fluid Datasets to mount (:class:`~airflow_argo_eci.eci_datasets.DatasetMount`
        or its mapping): each Dataset's PVC becomes a volume of the templates it names, mounted at
        its ``mount_path``; with ``enabled``, pods get ``alibabacloud.com/fluid-sidecar-target: eci``.
    :param labels: extra pod labels (valid Kubernetes labels; not the keys the fields above own).
    :param annotations: extra pod annotations (not the keys the fields above own).
    """

    enabled: bool = True
    scheduler_name: str | None = "eci-scheduler"
    use_specs: tuple[str, ...] = ()
    schedule_strategy: str | None = None
    fail_strategy: str | None = None
    vswitch_ids: tuple[str, ...] = ()
    spot_strategy: str | None = None
    spot_price_limit: float | None = None
    spot_duration: int | None = None
    auto_match_image_cache: bool | None = None
    image_cache_perfect_match: bool | None = None
    image_cache_id: str | None = None
    image_snapshot_id: str | None = None
    image_pull_policy: str | None = None
    extra_ephemeral_storage: str | None = None
    compute_class: str | None = None
    compute_qos: str | None = None
    retry_strategy: RetryStrategy | None = None
    parallelism: int | None = None
    datasets: tuple[DatasetMount, ...] = ()
    labels: Mapping[str, str] = field(default_factory=_FrozenMap)
    annotations: Mapping[str, str] = field(default_factory=_FrozenMap)

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            _fail(f"EciProfile.enabled must be true or false, got {self.enabled!r}")
        if self.scheduler_name is not None and (
                not isinstance(self.scheduler_name, str) or not _SCHEDULER_RE.match(self.scheduler_name)):
            _fail(f"EciProfile.scheduler_name: {self.scheduler_name!r} is not a valid scheduler name: use e.g. "
                  "'eci-scheduler', or None to leave the scheduler alone")
        self._check_use_specs()
        _choice("EciProfile.schedule_strategy", self.schedule_strategy, SCHEDULE_STRATEGIES)
        _choice("EciProfile.fail_strategy", self.fail_strategy, FAIL_STRATEGIES)
        vswitches = _string_tuple("EciProfile.vswitch_ids", self.vswitch_ids)
        for i, vswitch in enumerate(vswitches):
            if not _VSWITCH_RE.match(vswitch):
                _fail(f"EciProfile.vswitch_ids[{i}]: {vswitch!r} is not a vSwitch ID: use IDs like 'vsw-bp1abc...'")
        object.__setattr__(self, "vswitch_ids", vswitches)
        self._check_spot()
        if self.auto_match_image_cache is not None and not isinstance(self.auto_match_image_cache, bool):
            _fail(f"EciProfile.auto_match_image_cache must be true, false or None, got {self.auto_match_image_cache!r}")
        if self.image_cache_perfect_match is not None and not isinstance(self.image_cache_perfect_match, bool):
            _fail("EciProfile.image_cache_perfect_match must be true, false or None, got "
                  f"{self.image_cache_perfect_match!r}")
        check_image_cache_id("image_cache_id", self.image_cache_id)
        check_image_cache_id("image_snapshot_id", self.image_snapshot_id)
        object.__setattr__(self, "image_cache_id", resolve_image_cache_id(self.image_cache_id, self.image_snapshot_id))
        object.__setattr__(self, "image_snapshot_id", None)
        _choice("EciProfile.image_pull_policy", self.image_pull_policy, IMAGE_PULL_POLICIES)
        if self.extra_ephemeral_storage is not None and (
                not isinstance(self.extra_ephemeral_storage, str) or not _GIB_RE.match(self.extra_ephemeral_storage)):
            _fail(f"EciProfile.extra_ephemeral_storage: {self.extra_ephemeral_storage!r} is not a size in GiB: use "
                  "a whole number of GiB like '50Gi'")
        _choice("EciProfile.compute_class", self.compute_class, COMPUTE_CLASSES)
        _choice("EciProfile.compute_qos", self.compute_qos, COMPUTE_QOS_CLASSES)
        if isinstance(self.retry_strategy, Mapping):
            object.__setattr__(self, "retry_strategy", RetryStrategy.from_dict(self.retry_strategy))
        elif self.retry_strategy is not None and not isinstance(self.retry_strategy, RetryStrategy):
            _fail("EciProfile.retry_strategy must be a RetryStrategy or a mapping like "
                  f"{{'limit': 3, 'retryPolicy': 'Always'}}, got {type(self.retry_strategy).__name__}")
        if self.parallelism is not None and (not _is_int(self.parallelism) or self.parallelism < 1):
            _fail(f"EciProfile.parallelism must be an int >= 1, got {self.parallelism!r}")
        object.__setattr__(self, "datasets", coerce_mounts(self.datasets))
        self._check_extra("labels", self.labels, _OWNED_LABELS, label_values=True)
        if self.datasets and self.enabled and self.labels.get(LABEL_FLUID_SIDECAR_TARGET, "eci") != "eci":
            _fail(f"EciProfile.labels.{LABEL_FLUID_SIDECAR_TARGET} must be 'eci' when datasets are mounted on ECI")
        self._check_extra("annotations", self.annotations, _OWNED_ANNOTATIONS, label_values=False)

    def _check_use_specs(self) -> None:
        specs = _string_tuple("EciProfile.use_specs", self.use_specs)
        for i, spec in enumerate(specs):
            if _INSTANCE_TYPE_RE.match(spec):
                continue
            match = _CPU_MEM_RE.match(spec)
            if match and float(match["cpu"]) > 0 and float(match["mem"]) > 0:
                continue
            _fail(f"EciProfile.use_specs[{i}]: {spec!r} is neither an ECS instance type nor a <vCPU>-<memory>Gi "
                  "pair: use e.g. 'ecs.c6.large' or '2-4Gi'")
        object.__setattr__(self, "use_specs", specs)

    def _check_spot(self) -> None:
        _choice("EciProfile.spot_strategy", self.spot_strategy, SPOT_STRATEGIES)
        limit = self.spot_price_limit
        if self.spot_strategy == "SpotWithPriceLimit" and limit is None:
            _fail("EciProfile.spot_price_limit is required with spot_strategy='SpotWithPriceLimit': set the maximum "
                  "hourly price, or use spot_strategy='SpotAsPriceGo'")
        if limit is not None:
            if self.spot_strategy != "SpotWithPriceLimit":
                _fail("EciProfile.spot_price_limit is only used with spot_strategy='SpotWithPriceLimit': set that "
                      "strategy or drop the price limit")
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) \
                    or limit <= 0:
                _fail(f"EciProfile.spot_price_limit must be a number > 0 (hourly price), got {limit!r}")
            if abs(round(limit, 3) - limit) > 1e-9:
                _fail(f"EciProfile.spot_price_limit {limit!r} has more than 3 decimal places: ECI accepts at most 3")
        if self.spot_duration is not None:
            if self.spot_strategy is None:
                _fail("EciProfile.spot_duration needs a spot_strategy: set spot_strategy or drop spot_duration")
            if not _is_int(self.spot_duration) or self.spot_duration not in SPOT_DURATIONS:
                _fail(f"EciProfile.spot_duration must be 1 (one hour of protection) or 0 (none), "
                      f"got {self.spot_duration!r}")

    def _check_extra(self, name: str, values: Any, owned: Mapping[str, str], *, label_values: bool) -> None:
        if not isinstance(values, Mapping):
            _fail(f"EciProfile.{name} must be a mapping of strings, got {type(values).__name__}")
        for key, value in values.items():
            if not isinstance(key, str) or not is_valid_label_key(key):
                _fail(f"EciProfile.{name}: {key!r} is not a valid Kubernetes key: use [prefix/]name")
            if key in owned:
                _fail(f"EciProfile.{name}: {key} is set by the profile itself: use EciProfile.{owned[key]} instead")
            if not isinstance(value, str):
                _fail(f"EciProfile.{name}.{key}: value must be a string, got {value!r}")
            if label_values and not is_valid_label_value(value):
                _fail(f"EciProfile.{name}.{key}: {value!r} is not a valid label value: at most 63 characters of "
                      "[-_.A-Za-z0-9], starting and ending with a letter or digit")
        if not isinstance(values, _FrozenMap):
            object.__setattr__(self, name, _FrozenMap(values))

    # ----------------------------------------------------------------------------------------
    # construction
    # ----------------------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The keys :meth:`from_dict` and :meth:`replace` accept."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EciProfile:
        """A profile from a mapping of field names (``retry_strategy`` may be Argo-spelled)."""
        check_keys("EciProfile", data, cls.field_names())
        return cls(**dict(data))

    @classmethod
    def coerce(cls, value: EciProfile | Mapping[str, Any] | None) -> EciProfile | None:
        """``value`` as a profile: a profile as is, a mapping via :meth:`from_dict`, ``None`` as ``None``."""
        if value is None or isinstance(value, EciProfile):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        _fail(f"eci must be an EciProfile or a mapping of its fields, got {type(value).__name__}")

    def replace(self, **changes: Any) -> EciProfile:
        """A new, validated profile with ``changes`` applied (e.g. for a per-template override)."""
        check_keys("EciProfile.replace", changes, self.field_names())
        return dataclasses.replace(self, **changes)

    def templated_values(self) -> dict[str, str]:
        """The fields holding an Airflow (Jinja) template still to be rendered (only ``image_cache_id``
        accepts one), by name: what :class:`~airflow_argo_eci.operators.argo.ArgoWorkflowOperator`
        renders before applying the profile."""
        return {f.name: value for f in dataclasses.fields(self) if is_template(value := getattr(self, f.name))}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable mapping that :meth:`from_dict` turns back into an equal profile.

        Only fields that differ from their defaults are included.
        """
        result: dict[str, Any] = {}
        defaults = EciProfile()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == getattr(defaults, f.name):
                continue
            if isinstance(value, RetryStrategy):
                value = value.to_argo()
            elif isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, DatasetMount) else v for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            result[f.name] = value
        return result

    # ----------------------------------------------------------------------------------------
    # rendering
    # ----------------------------------------------------------------------------------------

    def pod_labels(self) -> dict[str, str]:
        """The labels this profile puts on every pod."""
        labels: dict[str, str] = {}
        if self.enabled:
            labels[LABEL_ECI] = "true"
        if self.compute_class is not None:
            labels[LABEL_COMPUTE_CLASS] = self.compute_class
        if self.compute_qos is not None:
            labels[LABEL_COMPUTE_QOS] = self.compute_qos
        if self.datasets and self.enabled:
            labels[LABEL_FLUID_SIDECAR_TARGET] = "eci"
        labels.update(self.labels)
        return labels

    def pod_annotations(self) -> dict[str, str]:
        """The annotations this profile puts on every pod."""
        annotations: dict[str, str] = {}
        if self.use_specs:
            annotations[ANNOTATION_USE_SPECS] = ",".join(self.use_specs)
        if self.schedule_strategy is not None:
            annotations[ANNOTATION_SCHEDULE_STRATEGY] = self.schedule_strategy
        if self.fail_strategy is not None:
            annotations[ANNOTATION_FAIL_STRATEGY] = self.fail_strategy
        if self.vswitch_ids:
            annotations[ANNOTATION_VSWITCH] = ",".join(self.vswitch_ids)
        if self.spot_strategy is not None:
            annotations[ANNOTATION_SPOT_STRATEGY] = self.spot_strategy
        if self.spot_price_limit is not None:
            annotations[ANNOTATION_SPOT_PRICE_LIMIT] = f"{self.spot_price_limit:.3f}".rstrip("0").rstrip(".")
        if self.spot_duration is not None:
            annotations[ANNOTATION_SPOT_DURATION] = str(self.spot_duration)
        annotations.update(image_cache_annotations(self.auto_match_image_cache, self.image_cache_perfect_match,
                                                   self.image_cache_id))
        if self.extra_ephemeral_storage is not None:
            annotations[ANNOTATION_EXTRA_EPHEMERAL_STORAGE] = self.extra_ephemeral_storage
        annotations.update(self.annotations)
        return annotations

    def apply(self, workflow: Mapping[str, Any], *,
              templates: Mapping[str, Mapping[str, Any] | EciProfile] | None = None) -> dict[str, Any]:
        """A new workflow with this profile applied; ``workflow`` itself is not modified.

        - labels/annotations are merged into ``spec.podMetadata``;
        - ``scheduler_name`` is merged into ``spec.podSpecPatch`` (JSON or YAML; parsed and written
          back as JSON only when something is added), unless ``spec.schedulerName`` already names it;
        - ``parallelism`` sets ``spec.parallelism``;
        - ``retry_strategy`` is set on each pod-running template without a ``retryStrategy`` of its
          own (not via ``templateDefaults``, which would also retry whole steps/DAG templates and
          multiply the attempts). A workflow without inline templates (``workflowTemplateRef``)
          gets ``spec.templateDefaults.retryStrategy`` instead;
        - ``image_pull_policy`` is set on every container of every template and of
          ``spec.templateDefaults`` (a ``workflowTemplateRef`` workflow cannot take it); a legacy
          image-cache annotation the workflow carries (``eci-image-snapshot-id``,
          ``eci-image-cache``) must agree with the profile's current one; a pinned cache with
          containers that do not pull ``IfNotPresent`` warns (``UserWarning``).

        No-clobber rule, everywhere: a value the workflow already has is kept when equal and is an
        error (:class:`WorkflowSpecError` naming the field) when different; a template's own
        ``retryStrategy`` always wins.

        ``templates`` overrides fields for named templates, e.g.
        ``{"train": {"use_specs": ["ecs.gn6i-c4g1.xlarge"]}}``: the differences between
        ``self.replace(**changes)`` and this profile go to that template's ``metadata``,
        ``podSpecPatch``, ``retryStrategy`` and ``parallelism`` (Argo lets template metadata
        override ``spec.podMetadata`` per key). An override cannot remove a label or annotation
        the workflow-level profile sets, since Argo merges ``spec.podMetadata`` into every pod.
        A whole :class:`EciProfile` may be given instead of the changes.
        """
        result = copy.deepcopy(dict(workflow))
        spec = result.get("spec")
        if not isinstance(spec, dict):
            _fail("workflow.spec is missing: load the workflow with load_workflow() before applying an EciProfile")
        template_list = spec.get("templates")
        if template_list is not None and not isinstance(template_list, list):
            _fail("workflow.spec.templates must be a list of templates")
        by_name: dict[str, dict[str, Any]] = {
            str(t.get("name")): t for t in template_list or [] if isinstance(t, dict)}
        overrides: dict[str, EciProfile] = {}
        for name, changes in (templates or {}).items():
            if name not in by_name:
                known = ", ".join(str(n) for n in by_name) or "none"
                _fail(f"EciProfile template override {name!r} names no template of the workflow: templates are "
                      f"{known}")
            if isinstance(changes, EciProfile):
                overrides[name] = changes
            else:
                overrides[name] = self.replace(**dict(changes))
            if overrides[name].datasets != self.datasets:
                _fail(f"EciProfile template override {name!r}: datasets are set on the workflow-level profile only "
                      "(each DatasetMount names its templates)")

        had_pod_metadata = "podMetadata" in spec
        pod_metadata = _mapping_at(spec, "podMetadata", "workflow.spec.podMetadata")
        check_legacy_annotations(pod_metadata.get("annotations"), self.pod_annotations(),
                                 "workflow.spec.podMetadata.annotations")
        for kind, values in (("labels", self.pod_labels()), ("annotations", self.pod_annotations())):
            if values:
                target = _mapping_at(pod_metadata, kind, f"workflow.spec.podMetadata.{kind}")
                merge_string_map(target, values, where=f"workflow.spec.podMetadata.{kind}",
                                 check_label_values=kind == "labels")
        if not pod_metadata and not had_pod_metadata:
            spec.pop("podMetadata")
        self._apply_scheduler(spec, "workflow.spec")
        if self.parallelism is not None:
            _set_once(spec, "parallelism", self.parallelism, "workflow.spec.parallelism")

        for tmpl_name, tmpl in by_name.items():
            effective = overrides.get(tmpl_name, self)
            where = f"workflow.spec.templates[{tmpl_name}]"
            if tmpl_name in overrides:
                self._apply_delta(tmpl, effective, where)
            scheduler = effective.scheduler_name
            if scheduler is not None and tmpl.get("schedulerName") not in (None, scheduler) \
                    and _patch_scheduler(tmpl.get("podSpecPatch"), f"{where}.podSpecPatch") is None:
                _fail(f"{where}.schedulerName is {tmpl['schedulerName']!r}, but the workflow's podSpecPatch sets "
                      f"schedulerName {scheduler!r} and would override it: remove one of them, or set "
                      f"scheduler_name for this template")
        self._apply_retry(spec, by_name, overrides)
        self._apply_images(spec, by_name, overrides)
        mount_datasets(by_name, self.datasets)
        return result

    def apply_to_template(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """A new template with the whole profile applied at template level.

        Labels/annotations go to the template's ``metadata``, ``scheduler_name`` to its
        ``podSpecPatch``, ``retry_strategy`` to its ``retryStrategy`` (unless it has its own) and
        ``parallelism`` to its ``parallelism`` — all of which Argo honours per template. The same
        no-clobber rule as :meth:`apply` holds.
        """
        result = copy.deepcopy(dict(template))
        where = f"template {result.get('name', '')!r}"
        self._render_template(result, where, labels=self.pod_labels(), annotations=self.pod_annotations(),
                              scheduler=self.scheduler_name, parallelism=self.parallelism)
        if self.retry_strategy is not None and "retryStrategy" not in result:
            result["retryStrategy"] = self.retry_strategy.to_argo()
        self._apply_images({}, {str(result.get("name", "")): result}, {}, where=where)
        mount_datasets({str(result.get("name", "")): result},
                       [m for m in self.datasets if result.get("name") in m.templates])
        return result

    # ----------------------------------------------------------------------------------------
    # internals
    # ----------------------------------------------------------------------------------------

    def _apply_scheduler(self, holder: dict[str, Any], where: str) -> None:
        if self.scheduler_name is None:
            return
        if holder.get("schedulerName") == self.scheduler_name:
            return
        if holder.get("schedulerName") is not None:
            _fail(f"{where}.schedulerName is {holder['schedulerName']!r}, which conflicts with scheduler_name "
                  f"{self.scheduler_name!r}: remove it from the workflow or give the same value")
        _merge_scheduler_patch(holder, self.scheduler_name, f"{where}.podSpecPatch")

    def _apply_delta(self, tmpl: dict[str, Any], override: EciProfile, where: str) -> None:
        base_labels, base_annotations = self.pod_labels(), self.pod_annotations()
        labels, annotations = override.pod_labels(), override.pod_annotations()
        for kind, base, new in (("label", base_labels, labels), ("annotation", base_annotations, annotations)):
            removed = [k for k in base if k not in new]
            if removed:
                _fail(f"{where}: the override removes the {kind}(s) {', '.join(removed)} that the workflow-level "
                      "profile sets; Argo merges spec.podMetadata into every pod, so it cannot be unset per "
                      "template: leave it out of the workflow-level profile instead")
        if self.scheduler_name is not None and override.scheduler_name is None:
            _fail(f"{where}: the override sets scheduler_name=None, but the workflow-level podSpecPatch sets "
                  f"{self.scheduler_name!r} for every pod: leave it out of the workflow-level profile instead")
        self._render_template(
            tmpl, where,
            labels={k: v for k, v in labels.items() if base_labels.get(k) != v},
            annotations={k: v for k, v in annotations.items() if base_annotations.get(k) != v},
            scheduler=override.scheduler_name if override.scheduler_name != self.scheduler_name else None,
            parallelism=override.parallelism if override.parallelism != self.parallelism else None,
        )

    @staticmethod
    def _render_template(tmpl: dict[str, Any], where: str, *, labels: Mapping[str, str],
                         annotations: Mapping[str, str], scheduler: str | None, parallelism: int | None) -> None:
        if labels or annotations:
            metadata = _mapping_at(tmpl, "metadata", f"{where}.metadata")
            for kind, values in (("labels", labels), ("annotations", annotations)):
                if values:
                    merge_string_map(_mapping_at(metadata, kind, f"{where}.metadata.{kind}"), values,
                                     where=f"{where}.metadata.{kind}", check_label_values=kind == "labels")
        if scheduler is not None:
            if tmpl.get("schedulerName") not in (None, scheduler):
                _fail(f"{where}.schedulerName is {tmpl['schedulerName']!r}, which conflicts with scheduler_name "
                      f"{scheduler!r}: remove it from the template or give the same value")
            if tmpl.get("schedulerName") != scheduler:
                _merge_scheduler_patch(tmpl, scheduler, f"{where}.podSpecPatch")
        if parallelism is not None:
            _set_once(tmpl, "parallelism", parallelism, f"{where}.parallelism")

    def _apply_images(self, spec: dict[str, Any], by_name: Mapping[str, dict[str, Any]],
                      overrides: Mapping[str, EciProfile], *, where: str | None = None) -> None:
        """Legacy cache annotations of the templates checked, ``image_pull_policy`` set on every
        container, and a warning when a pinned cache meets containers that pull anyway."""
        defaults = spec.get("templateDefaults")
        if self.image_pull_policy is not None:
            if not by_name and "templates" not in spec and where is None:
                _fail("EciProfile.image_pull_policy needs the workflow's templates inline (this one refers to a "
                      "WorkflowTemplate): set imagePullPolicy in the WorkflowTemplate instead")
            if isinstance(defaults, dict):
                set_image_pull_policy(defaults, self.image_pull_policy, "workflow.spec.templateDefaults")
        for name, tmpl in by_name.items():
            effective = overrides.get(name, self)
            at = where or f"workflow.spec.templates[{name}]"
            metadata = tmpl.get("metadata")
            if isinstance(metadata, Mapping):
                check_legacy_annotations(metadata.get("annotations"), effective.pod_annotations(),
                                         f"{at}.metadata.annotations")
            if effective.image_pull_policy is not None:
                set_image_pull_policy(tmpl, effective.image_pull_policy, at)
        pinned = {name: tmpl for name, tmpl in by_name.items() if overrides.get(name, self).image_cache_id}
        pulling = not_if_not_present(pinned)
        if pulling:
            cache_ids = sorted({str(overrides.get(name, self).image_cache_id) for name in pinned})
            warnings.warn(
                f"EciProfile pins image cache {', '.join(cache_ids)}, but these containers do not pull with "
                f"imagePullPolicy IfNotPresent: {', '.join(pulling)}; their pods pull the image again (an image "
                "tagged :latest pulls Always by default): ECI's docs and the seed pair a pinned cache with "
                "image_pull_policy='IfNotPresent'", UserWarning, stacklevel=3)

    def _apply_retry(self, spec: dict[str, Any], by_name: Mapping[str, dict[str, Any]],
                     overrides: Mapping[str, EciProfile]) -> None:
        defaults = spec.get("templateDefaults")
        if defaults is not None and not isinstance(defaults, dict):
            _fail("workflow.spec.templateDefaults must be a mapping")
        default_retry = (defaults or {}).get("retryStrategy")
        wanted = self.retry_strategy.to_argo() if self.retry_strategy is not None else None
        if wanted is not None and default_retry is not None and not same_retry(default_retry, wanted):
            _fail(f"workflow.spec.templateDefaults.retryStrategy is {default_retry!r}, which conflicts with "
                  f"retry_strategy {wanted!r}: remove one of them or make them equal")
        if not by_name:
            if wanted is not None and default_retry is None:
                spec.setdefault("templateDefaults", {})["retryStrategy"] = wanted
            return
        for name, tmpl in by_name.items():
            effective = overrides.get(name, self).retry_strategy
            if effective is None or "retryStrategy" in tmpl or not any(k in tmpl for k in _POD_TEMPLATE_KINDS):
                continue
            rendered = effective.to_argo()
            if default_retry is not None and same_retry(default_retry, rendered):
                continue  # templateDefaults already gives this template the same strategy
            tmpl["retryStrategy"] = rendered


def _mapping_at(holder: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = holder.setdefault(key, {})
    if value is None:
        value = holder[key] = {}
    if not isinstance(value, dict):
        _fail(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _set_once(holder: dict[str, Any], key: str, value: Any, where: str) -> None:
    current = holder.get(key)
    if current is None:
        holder[key] = value
    elif str(current) != str(value):
        _fail(f"{where} is already {current!r}, which conflicts with {value!r}: remove it from the workflow or "
              "give the same value")


def _parse_patch(text: Any, where: str) -> dict[str, Any]:
    if not isinstance(text, str):
        _fail(f"{where} must be a string holding a JSON or YAML pod spec patch, got {type(text).__name__}")
    try:
        patch = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            patch = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            _fail(f"{where} is neither JSON nor YAML{at}, so schedulerName cannot be merged into it: fix it, add "
                  "schedulerName to it yourself and set scheduler_name=None")
    if patch is None:
        return {}
    if not isinstance(patch, dict):
        _fail(f"{where} must hold a mapping (a partial pod spec), got {type(patch).__name__}")
    return patch


def _patch_scheduler(text: Any, where: str) -> Any:
    if text is None:
        return None
    return _parse_patch(text, where).get("schedulerName")


def _merge_scheduler_patch(holder: dict[str, Any], scheduler: str, where: str) -> None:
    text = holder.get("podSpecPatch")
    patch = _parse_patch(text, where) if text is not None else {}
    current = patch.get("schedulerName")
    if current == scheduler:
        return  # already there: keep the user's text exactly as written
    if current is not None:
        _fail(f"{where} sets schedulerName {current!r}, which conflicts with scheduler_name {scheduler!r}: remove "
              "it from the patch or give the same value")
    patch["schedulerName"] = scheduler
    holder["podSpecPatch"] = json.dumps(patch, ensure_ascii=False)

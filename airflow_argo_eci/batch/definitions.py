"""Batch job definitions: :class:`JobDefinition`, validated, rendered as Argo container templates.

A job definition is what a batch system calls a "job definition": the image, the command, the
resources of one container, its retries and timeout, and the compute environment
(:class:`~airflow_argo_eci.eci.EciProfile`) it runs in. :meth:`JobDefinition.template` renders it
as an Argo template; :meth:`JobDefinition.register` stores it as a WorkflowTemplate named after it,
which a :class:`~airflow_argo_eci.batch.jobs.Job` can then reference by name (``templateRef``).

Pure: no Airflow, no HTTP (``register`` calls the hook it is given). Every invalid value raises
:class:`~airflow_argo_eci.errors.WorkflowSpecError` naming the field and the fix.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, Protocol

from airflow_argo_eci.conventions import API_VERSION
from airflow_argo_eci.eci import EciProfile
from airflow_argo_eci.eci_datasets import DatasetMount, mount_datasets
from airflow_argo_eci.eci_retry import RETRY_POLICIES, Backoff
from airflow_argo_eci.errors import WorkflowSpecError

__all__ = [
    "ARRAY_INDEX_ENV",
    "ARRAY_INDEX_PARAMETER",
    "ITEM_ENV",
    "ITEM_PARAMETER",
    "VARIANTS",
    "JobDefinition",
    "TemplateStore",
    "check_name",
    "check_parameter_name",
    "variant_template_name",
]

#: the env var and input parameter that carry an array child's index (``start`` .. ``start+size-1``)
ARRAY_INDEX_ENV = "BATCH_JOB_ARRAY_INDEX"
ARRAY_INDEX_PARAMETER = "job-index"
#: the env var and input parameter that carry an array child's item (JSON for non-strings)
ITEM_ENV = "BATCH_JOB_ITEM"
ITEM_PARAMETER = "item"
#: the template variants of a definition: a single job, an array child, an items-array child
VARIANTS = ("job", "array", "items")

# a lower-case DNS-1123 label: a WorkflowTemplate / template / task name that is also a pod-name part
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_MAX = 57  # leaves room for the "-items" variant suffix within a 63-character label
# Argo's parameter names (workflow/validate: "[-a-zA-Z0-9_]+")
_PARAM_RE = re.compile(r"^[-a-zA-Z0-9_]+$")
# Kubernetes' env var names (C_IDENTIFIER-ish: letters, digits, "_", "-", ".", not starting with a digit)
_ENV_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# a Kubernetes resource quantity (apimachinery resource.Quantity)
_QUANTITY_RE = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def _fail(message: str) -> NoReturn:
    raise WorkflowSpecError(message)


def check_name(where: str, value: Any) -> str:
    """``value`` if it is a lower-case DNS label of at most 57 characters, else an error naming ``where``."""
    if not isinstance(value, str) or not _NAME_RE.match(value) or len(value) > _NAME_MAX:
        _fail(f"{where}: {value!r} is not a valid name: use lower-case letters, digits and '-', starting and "
              f"ending with a letter or digit, at most {_NAME_MAX} characters, e.g. 'train-model'")
    return value


def check_parameter_name(where: str, value: Any) -> str:
    """``value`` if it is a valid Argo parameter name, else an error naming ``where``."""
    if not isinstance(value, str) or not _PARAM_RE.match(value):
        _fail(f"{where}: {value!r} is not a valid Argo parameter name: use letters, digits, '-' and '_' only")
    return value


def quantity(where: str, value: Any, *, example: str) -> str:
    """``value`` as a positive Kubernetes quantity string, else an error naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        _fail(f"{where}: {value!r} is not a Kubernetes quantity: use e.g. {example!r}")
    text = str(value).strip()
    if not _QUANTITY_RE.match(text):
        _fail(f"{where}: {value!r} is not a Kubernetes quantity: use e.g. {example!r} (suffixes Ki Mi Gi Ti "
              "or k M G T, no spaces)")
    number = re.match(r"^[0-9.]+(?:[eE][+-]?\d+)?", text)
    try:
        positive = number is not None and Decimal(number.group(0)) > 0
    except InvalidOperation:  # pragma: no cover - the regex admits only decimal numbers
        positive = False
    if not positive:
        _fail(f"{where}: {value!r} must be greater than zero, e.g. {example!r}")
    return text


def _cpu(value: Any) -> str:
    """vCPUs as Kubernetes spells them: ``2`` -> ``"2"``, ``0.5`` -> ``"500m"``; a quantity string as is."""
    if isinstance(value, str):
        return quantity("JobDefinition.vcpu", value, example="2")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        _fail(f"JobDefinition.vcpu must be a number of vCPUs > 0 (e.g. 2 or 0.5) or a quantity like '500m', "
              f"got {value!r}")
    millis = Decimal(str(value)) * 1000
    if millis != millis.to_integral_value():
        _fail(f"JobDefinition.vcpu: {value!r} is finer than a millicore: round it to 3 decimals")
    if millis % 1000 == 0:
        return str(int(millis // 1000))
    return f"{int(millis)}m"


def variant_template_name(definition: str, variant: str) -> str:
    """The template name of ``definition``'s ``variant`` (see :data:`VARIANTS`): ``train``,
    ``train-array``, ``train-items``."""
    if variant not in VARIANTS:
        _fail(f"template variant {variant!r} is not one of {', '.join(VARIANTS)}")
    return definition if variant == "job" else f"{definition}-{variant}"


class TemplateStore(Protocol):
    """What :meth:`JobDefinition.register` needs of a hook (``ArgoWorkflowsHook`` has it)."""

    def apply_workflow_template(self, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create the WorkflowTemplate ``body``, or update the one of that name; return the stored one."""


@dataclass(frozen=True)
class JobDefinition:
    """One kind of batch job: a container image, command, resources, retries and environment.

    :param name: the definition's name (lower-case DNS label): its template name, and the
        WorkflowTemplate's name once registered.
    :param image: the container image (required, non-empty).
    :param command: the container's ``command`` (entrypoint), optional.
    :param args: the container's ``args``, optional; may use ``{{inputs.parameters.X}}``.
    :param env: environment variables, name -> value (names as Kubernetes allows).
    :param vcpu: vCPUs, a number > 0 (``0.5`` renders ``"500m"``, ``2`` renders ``"2"``) or a quantity.
    :param memory: memory, a Kubernetes quantity (``"2Gi"``).
    :param ephemeral_storage: ephemeral storage, a Kubernetes quantity, optional.
        Resources are rendered as requests = limits (what ECI bills and sizes the pod by).
    :param parameters: the input parameters the command uses as ``{{inputs.parameters.X}}``: names
        (required by every job), or a mapping name -> default value.
    :param outputs: output parameters, name -> file path in the container (read when the job ends).
    :param retries: how many times a failed job is retried (>= 0) -> ``retryStrategy.limit``.
    :param retry_policy: ``Always``, ``OnFailure``, ``OnError`` or ``OnTransientError``.
    :param backoff: a :class:`~airflow_argo_eci.eci_retry.Backoff` (or ``{duration, factor,
        maxDuration}``) between retries, optional.
    :param timeout: seconds (> 0) after which an attempt is killed -> ``activeDeadlineSeconds``.
    :param eci: the compute environment, an :class:`~airflow_argo_eci.eci.EciProfile` applied at
        template level (so a registered definition carries it too).
    :param volumes: :class:`~airflow_argo_eci.eci_datasets.DatasetMount` (Fluid datasets, mounted
        into this definition whatever its ``templates`` say) and Argo input artifacts (mappings with
        ``name`` and ``path``, e.g. ``{"name": "data", "path": "/data", "oss": {"key": "in/data"}}``).
    """

    name: str
    image: str
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    vcpu: float | int | str = 1
    memory: str = "2Gi"
    ephemeral_storage: str | None = None
    parameters: Sequence[str] | Mapping[str, str] = ()
    outputs: Mapping[str, str] = field(default_factory=dict)
    retries: int = 0
    retry_policy: str = "OnFailure"
    backoff: Backoff | Mapping[str, Any] | None = None
    timeout: int | None = None
    eci: EciProfile | None = None
    volumes: Sequence[DatasetMount | Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        check_name("JobDefinition.name", self.name)
        where = f"JobDefinition({self.name!r})"
        if not isinstance(self.image, str) or not self.image.strip():
            _fail(f"{where}.image is empty: set the container image, e.g. 'python:3.12-slim'")
        for key in ("command", "args"):
            value = getattr(self, key)
            if isinstance(value, str) or not isinstance(value, Sequence) \
                    or not all(isinstance(v, str) for v in value):
                _fail(f"{where}.{key} must be a list of strings, e.g. ['python', 'main.py'], got {value!r}")
            object.__setattr__(self, key, tuple(value))
        if not isinstance(self.env, Mapping):
            _fail(f"{where}.env must be a mapping of name -> value, got {type(self.env).__name__}")
        for env_name, env_value in self.env.items():
            if not isinstance(env_name, str) or not _ENV_RE.match(env_name):
                _fail(f"{where}.env: {env_name!r} is not a valid environment variable name: use letters, digits, "
                      "'_', '-' and '.', not starting with a digit")
            if env_name in (ARRAY_INDEX_ENV, ITEM_ENV):
                _fail(f"{where}.env: {env_name} is set by array jobs: choose another name")
            if not isinstance(env_value, str):
                _fail(f"{where}.env[{env_name}] must be a string, got {env_value!r}: quote it")
        object.__setattr__(self, "env", dict(self.env))
        _cpu(self.vcpu)
        quantity(f"{where}.memory", self.memory, example="2Gi")
        if self.ephemeral_storage is not None:
            quantity(f"{where}.ephemeral_storage", self.ephemeral_storage, example="20Gi")
        self._check_parameters(where)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            _fail(f"{where}.retries must be an int >= 0 (0 = no retry), got {self.retries!r}")
        if self.retry_policy not in RETRY_POLICIES:
            _fail(f"{where}.retry_policy: {self.retry_policy!r} is not one of Argo's policies: use "
                  f"{', '.join(RETRY_POLICIES)}")
        if isinstance(self.backoff, Mapping):
            object.__setattr__(self, "backoff", Backoff.from_dict(self.backoff))
        elif self.backoff is not None and not isinstance(self.backoff, Backoff):
            _fail(f"{where}.backoff must be a Backoff or {{duration, factor, maxDuration}}, got {self.backoff!r}")
        if self.timeout is not None and (isinstance(self.timeout, bool) or not isinstance(self.timeout, int)
                                         or self.timeout <= 0):
            _fail(f"{where}.timeout must be a whole number of seconds > 0, got {self.timeout!r}")
        if self.eci is not None and not isinstance(self.eci, EciProfile):
            object.__setattr__(self, "eci", EciProfile.coerce(self.eci))
        self._check_volumes(where)

    def _check_parameters(self, where: str) -> None:
        params = self.parameters
        if isinstance(params, str) or not isinstance(params, (Sequence, Mapping)):
            _fail(f"{where}.parameters must be a list of names or a mapping name -> default, got {params!r}")
        names = list(params)
        for name in names:
            check_parameter_name(f"{where}.parameters", name)
            if name in (ARRAY_INDEX_PARAMETER, ITEM_PARAMETER):
                _fail(f"{where}.parameters: {name!r} is given by array jobs: do not declare it")
        if len(set(names)) != len(names):
            _fail(f"{where}.parameters: duplicate names in {names!r}")
        if isinstance(params, Mapping):
            for name, default in params.items():
                if not isinstance(default, str):
                    _fail(f"{where}.parameters[{name}]: the default must be a string, got {default!r}")
            object.__setattr__(self, "parameters", dict(params))
        else:
            object.__setattr__(self, "parameters", tuple(params))
        if not isinstance(self.outputs, Mapping):
            _fail(f"{where}.outputs must be a mapping of name -> file path, got {self.outputs!r}")
        for name, path in self.outputs.items():
            check_parameter_name(f"{where}.outputs", name)
            if not isinstance(path, str) or not path.startswith("/"):
                _fail(f"{where}.outputs[{name}]: {path!r} must be an absolute file path, e.g. '/tmp/{name}'")
        object.__setattr__(self, "outputs", dict(self.outputs))

    def _check_volumes(self, where: str) -> None:
        if isinstance(self.volumes, (str, Mapping)) or not isinstance(self.volumes, Sequence):
            _fail(f"{where}.volumes must be a list of DatasetMount or input artifacts, got {self.volumes!r}")
        volumes: list[DatasetMount | dict[str, Any]] = []
        for volume in self.volumes:
            if isinstance(volume, DatasetMount):
                volumes.append(volume)
            elif isinstance(volume, Mapping) and isinstance(volume.get("path"), str) and "name" in volume:
                check_parameter_name(f"{where}.volumes (artifact name)", volume["name"])
                volumes.append(copy.deepcopy(dict(volume)))
            else:
                _fail(f"{where}.volumes: {volume!r} is neither a DatasetMount nor an input artifact "
                      "{name, path, ...}")
        object.__setattr__(self, "volumes", tuple(volumes))

    # ----------------------------------------------------------------------------------------

    @property
    def parameter_defaults(self) -> dict[str, str | None]:
        """Every declared input parameter -> its default (``None``: a job must give a value)."""
        if isinstance(self.parameters, Mapping):
            return dict(self.parameters)
        return {name: None for name in self.parameters}

    @property
    def cpu(self) -> str:
        """The vCPUs as a Kubernetes quantity (``"2"``, ``"500m"``)."""
        return _cpu(self.vcpu)

    def resources(self) -> dict[str, str]:
        """The container's resources, used as both requests and limits."""
        result = {"cpu": self.cpu, "memory": str(self.memory)}
        if self.ephemeral_storage is not None:
            result["ephemeral-storage"] = str(self.ephemeral_storage)
        return result

    def template(self, variant: str = "job") -> dict[str, Any]:
        """The Argo container template of this definition.

        ``variant`` ``"job"`` (named ``name``) runs one job; ``"array"`` (``name-array``) is an
        array child: input parameter ``job-index`` and env ``BATCH_JOB_ARRAY_INDEX``; ``"items"``
        (``name-items``) is an items-array child: also input ``item`` and env ``BATCH_JOB_ITEM``.
        """
        tmpl_name = variant_template_name(self.name, variant)
        params: list[dict[str, Any]] = []
        env = [{"name": k, "value": v} for k, v in self.env.items()]
        if variant in ("array", "items"):
            params.append({"name": ARRAY_INDEX_PARAMETER})
            env.append({"name": ARRAY_INDEX_ENV, "value": f"{{{{inputs.parameters.{ARRAY_INDEX_PARAMETER}}}}}"})
        if variant == "items":
            params.append({"name": ITEM_PARAMETER})
            env.append({"name": ITEM_ENV, "value": f"{{{{inputs.parameters.{ITEM_PARAMETER}}}}}"})
        for name, default in self.parameter_defaults.items():
            params.append({"name": name} if default is None else {"name": name, "value": default})
        container: dict[str, Any] = {"image": self.image}
        if self.command:
            container["command"] = list(self.command)
        if self.args:
            container["args"] = list(self.args)
        if env:
            container["env"] = env
        resources = self.resources()
        container["resources"] = {"requests": dict(resources), "limits": dict(resources)}
        tmpl: dict[str, Any] = {"name": tmpl_name}
        inputs: dict[str, Any] = {}
        if params:
            inputs["parameters"] = params
        artifacts = [dict(v) for v in self.volumes if isinstance(v, dict)]
        if artifacts:
            inputs["artifacts"] = artifacts
        if inputs:
            tmpl["inputs"] = inputs
        if self.outputs:
            tmpl["outputs"] = {"parameters": [{"name": k, "valueFrom": {"path": v}} for k, v in self.outputs.items()]}
        tmpl["container"] = container
        if self.retries:
            retry: dict[str, Any] = {"limit": self.retries, "retryPolicy": self.retry_policy}
            if isinstance(self.backoff, Backoff):
                retry["backoff"] = self.backoff.to_argo()
            tmpl["retryStrategy"] = retry
        if self.timeout is not None:
            tmpl["activeDeadlineSeconds"] = self.timeout
        mounts = [DatasetMount(dataset=m.dataset, mount_path=m.mount_path, templates=(tmpl_name,),
                               volume_name=m.volume_name, read_only=m.read_only)
                  for m in self.volumes if isinstance(m, DatasetMount)]
        mount_datasets({tmpl_name: tmpl}, mounts)
        if self.eci is not None:
            tmpl = self.eci.apply_to_template(tmpl)
        return tmpl

    def workflow_template(self, namespace: str | None = None) -> dict[str, Any]:
        """The WorkflowTemplate :meth:`register` stores: every variant, entrypoint the single job."""
        metadata: dict[str, Any] = {"name": self.name}
        if namespace:
            metadata["namespace"] = namespace
        return {
            "apiVersion": API_VERSION,
            "kind": "WorkflowTemplate",
            "metadata": metadata,
            "spec": {"entrypoint": self.name, "templates": [self.template(v) for v in VARIANTS]},
        }

    def register(self, hook: TemplateStore, namespace: str | None = None) -> dict[str, Any]:
        """Create or update (idempotently) the WorkflowTemplate named after this definition.

        ``hook`` is an ``ArgoWorkflowsHook`` (or anything with ``apply_workflow_template``);
        ``namespace`` defaults to the hook's. Jobs then use the definition by name
        (``Job("train", name="step")``), rendered as a ``templateRef``. Returns the stored object.
        """
        return hook.apply_workflow_template(self.workflow_template(namespace), namespace=namespace)

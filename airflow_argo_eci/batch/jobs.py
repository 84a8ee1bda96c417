"""Batch jobs and their dependencies: :class:`Job`, :class:`ArrayJob`, :class:`Dependency`.

A job runs a :class:`~airflow_argo_eci.batch.definitions.JobDefinition` (inline, or a registered
one by name) once; an array job runs it ``size`` times (or once per item). ``b.after(a)`` makes
``b`` wait for ``a``; between two arrays of equal size, ``mode="each"`` makes child ``i`` of ``b``
wait only for child ``i`` of ``a``. There is no free ``after`` function: dependencies are declared
on the jobs themselves and :class:`~airflow_argo_eci.batch.graph.JobGraph` takes the jobs.

Values are checked here as far as a job alone allows; the graph-wide checks (cycles, unknown
dependencies, array sizes against the cap, ``each`` between different sizes) are
:meth:`JobGraph.validate`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from airflow_argo_eci.batch.definitions import (
    ARRAY_INDEX_PARAMETER,
    ITEM_PARAMETER,
    JobDefinition,
    check_name,
    check_parameter_name,
)
from airflow_argo_eci.errors import WorkflowSpecError

__all__ = ["MODES", "ArrayJob", "Dependency", "Job"]

#: dependency modes: ``all`` waits for the whole dependency, ``each`` pairs array children by index
MODES = ("all", "each")

_J = TypeVar("_J", bound="Job")


def _fail(message: str) -> NoReturn:
    raise WorkflowSpecError(message)


def _parameter_value(where: str, value: Any) -> str:
    """A parameter value as Argo passes it: strings as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        _fail(f"{where}: {value!r} is neither a string nor JSON-serializable")


@dataclass(frozen=True)
class Dependency:
    """``job`` must finish before the dependent starts; ``mode`` is ``"all"`` or ``"each"``."""

    job: Job
    mode: str = "all"


class Job:
    """One batch job: a run of a definition, with parameters and dependencies.

    :param definition: a :class:`JobDefinition`, or the name of a registered one (a WorkflowTemplate
        created by :meth:`JobDefinition.register`; rendered as ``templateRef``).
    :param name: the job's name, unique in its graph (lower-case DNS label); its DAG task's name.
    :param parameters: values of the definition's input parameters (non-strings are passed as JSON).
    :param continue_on_failure: when this job fails, its dependents still run (Argo's
        ``continueOn: {failed: true}``); by default a failed job cancels its dependents.
    """

    def __init__(self, definition: JobDefinition | str, name: str, parameters: Mapping[str, Any] | None = None,
                 continue_on_failure: bool = False) -> None:
        self.name = check_name("Job.name", name)
        where = f"Job({name!r})"
        if isinstance(definition, str):
            check_name(f"{where}.definition", definition)
        elif not isinstance(definition, JobDefinition):
            _fail(f"{where}.definition must be a JobDefinition or a registered definition's name, "
                  f"got {type(definition).__name__}")
        self.definition: JobDefinition | str = definition
        if parameters is not None and not isinstance(parameters, Mapping):
            _fail(f"{where}.parameters must be a mapping name -> value, got {type(parameters).__name__}")
        self.parameters: dict[str, str] = {}
        for key, value in (parameters or {}).items():
            check_parameter_name(f"{where}.parameters", key)
            if key in (ARRAY_INDEX_PARAMETER, ITEM_PARAMETER):
                _fail(f"{where}.parameters: {key!r} is set by array jobs: do not pass it")
            self.parameters[key] = _parameter_value(f"{where}.parameters[{key}]", value)
        if not isinstance(continue_on_failure, bool):
            _fail(f"{where}.continue_on_failure must be true or false, got {continue_on_failure!r}")
        self.continue_on_failure = continue_on_failure
        self.dependencies: list[Dependency] = []
        self._check_parameters(where)

    def _check_parameters(self, where: str) -> None:
        if not isinstance(self.definition, JobDefinition):
            return
        defaults = self.definition.parameter_defaults
        unknown = sorted(set(self.parameters) - set(defaults))
        if unknown:
            _fail(f"{where}.parameters: {', '.join(unknown)} not declared by JobDefinition "
                  f"{self.definition.name!r} (it declares: {', '.join(defaults) or 'none'})")
        missing = [k for k, v in defaults.items() if v is None and k not in self.parameters]
        if missing:
            _fail(f"{where}: parameter(s) {', '.join(missing)} of JobDefinition {self.definition.name!r} have no "
                  "default: give them in Job(..., parameters={...})")

    @property
    def definition_name(self) -> str:
        """The definition's name (its template name, or the registered WorkflowTemplate's)."""
        return self.definition if isinstance(self.definition, str) else self.definition.name

    @property
    def is_array(self) -> bool:
        """Whether this job fans out into children."""
        return False

    def after(self: _J, *deps: Job, mode: str = "all") -> _J:
        """Make this job wait for ``deps`` and return it (calls chain: ``c.after(a).after(b)``).

        ``mode="all"``: wait for every child of an array dependency. ``mode="each"`` (both this job
        and the dependency arrays of the same size): child ``i`` waits only for child ``i``.
        """
        if mode not in MODES:
            _fail(f"Job({self.name!r}).after: mode {mode!r} is not one of {', '.join(MODES)}")
        for dep in deps:
            if not isinstance(dep, Job):
                _fail(f"Job({self.name!r}).after: {dep!r} is not a Job")
            if mode == "each" and not (self.is_array and dep.is_array):
                non_array = self.name if not self.is_array else dep.name
                _fail(f"Job({self.name!r}).after({dep.name!r}, mode='each'): {non_array!r} is not an array job; "
                      "'each' pairs the children of two arrays of equal size: use mode='all'")
            self.dependencies.append(Dependency(dep, mode))
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.definition_name!r}, name={self.name!r})"


class ArrayJob(Job):
    """An array job: ``size`` children (indexes ``start`` .. ``start+size-1``) or one per item.

    Each child gets input parameter ``job-index`` and env ``BATCH_JOB_ARRAY_INDEX`` (its index);
    with ``items`` also parameter ``item`` and env ``BATCH_JOB_ITEM`` (the item; JSON for
    non-strings). ``parallelism`` caps how many children run at once. Give ``size`` or ``items``.
    """

    def __init__(self, definition: JobDefinition | str, name: str, size: int | None = None,
                 items: Sequence[Any] | None = None, start: int = 0, parallelism: int | None = None,
                 parameters: Mapping[str, Any] | None = None, continue_on_failure: bool = False) -> None:
        super().__init__(definition, name, parameters=parameters, continue_on_failure=continue_on_failure)
        where = f"ArrayJob({name!r})"
        if (size is None) == (items is None):
            _fail(f"{where}: give either size (a number of children) or items (one child per item)")
        if items is not None:
            if isinstance(items, (str, Mapping)) or not isinstance(items, Sequence):
                _fail(f"{where}.items must be a list, got {type(items).__name__}")
            self.items: tuple[str, ...] | None = tuple(
                _parameter_value(f"{where}.items[{i}]", item) for i, item in enumerate(items))
            size = len(self.items)
        else:
            self.items = None
        if isinstance(size, bool) or not isinstance(size, int):
            _fail(f"{where}.size must be an int, got {size!r}")
        self.size: int = size
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            _fail(f"{where}.start must be an int >= 0, got {start!r}")
        self.start = start
        if parallelism is not None and (isinstance(parallelism, bool) or not isinstance(parallelism, int)
                                        or parallelism < 1):
            _fail(f"{where}.parallelism must be an int >= 1, got {parallelism!r}")
        self.parallelism = parallelism

    @property
    def is_array(self) -> bool:
        """Always true."""
        return True

    @property
    def indexes(self) -> range:
        """The children's ``job-index`` values."""
        return range(self.start, self.start + self.size)

"""A graph of batch jobs: :class:`JobGraph`, its validation and its fan-out units.

:meth:`JobGraph.validate` refuses, naming the job, everything Argo would refuse or run wrongly:
duplicate names, dependencies outside the graph, cycles, arrays of size 0 or above the cap,
``each`` between arrays of different sizes, clashing template names. :meth:`JobGraph.render`
turns the graph into an Argo Workflow (see :mod:`airflow_argo_eci.batch.render`).

Jobs linked by ``mode="each"`` form one *unit*: they run as one fanned-out DAG task whose
template is the chain of those jobs for one index (:meth:`JobGraph.units`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_argo_eci.batch.definitions import (
    VARIANTS,
    JobDefinition,
    check_name,
    variant_template_name,
)
from airflow_argo_eci.batch.jobs import ArrayJob, Job
from airflow_argo_eci.batch.render import EACH_PREFIX, ENTRYPOINT, Unit, render_workflow, unit_template_names
from airflow_argo_eci.eci import EciProfile
from airflow_argo_eci.errors import WorkflowSpecError

if TYPE_CHECKING:  # pragma: no cover
    from airflow_argo_eci.batch.queues import JobQueue

__all__ = ["DEFAULT_MAX_ARRAY_SIZE", "JobGraph", "Unit"]

#: the largest array a graph accepts unless told otherwise (AWS Batch's cap)
DEFAULT_MAX_ARRAY_SIZE = 10_000


def _fail(message: str) -> NoReturn:
    raise WorkflowSpecError(message)


class JobGraph:
    """Batch jobs and their dependencies, rendered as one Argo Workflow.

    :param name: the workflow's name prefix (``metadata.generateName`` is ``name + "-"``).
    :param jobs: every job of the graph; dependencies (:meth:`Job.after`) must be among them.
    :param max_array_size: the largest array accepted (default 10 000).
    :param namespace: the workflow's namespace (``metadata.namespace``), optional.
    :param eci: a workflow-level compute environment, applied with :meth:`EciProfile.apply`.

    Failure semantics: a failed job cancels its dependents (Argo leaves them ``Omitted`` and
    the workflow fails); jobs that do not depend on it still run to the end (the DAG has
    ``failFast: false``). A job with ``continue_on_failure=True`` lets its dependents run anyway.
    Jobs linked by ``mode="each"`` run as one per-index chain: a job depending (``mode="all"``)
    on any job of the chain waits for the whole chain, and runs if the chain succeeded (or if
    every job of the chain continues on failure).
    """

    def __init__(self, name: str, jobs: Sequence[Job], max_array_size: int = DEFAULT_MAX_ARRAY_SIZE,
                 namespace: str | None = None, eci: EciProfile | Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.jobs = tuple(jobs) if isinstance(jobs, Sequence) and not isinstance(jobs, str) else jobs
        self.max_array_size = max_array_size
        self.namespace = namespace
        self.eci = EciProfile.coerce(eci)

    # ----------------------------------------------------------------------------------------
    # validation
    # ----------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`WorkflowSpecError` naming the job at the first problem, else return."""
        check_name("JobGraph.name", self.name)
        if isinstance(self.max_array_size, bool) or not isinstance(self.max_array_size, int) \
                or self.max_array_size < 1:
            _fail(f"JobGraph.max_array_size must be an int >= 1, got {self.max_array_size!r}")
        if not isinstance(self.jobs, tuple) or not self.jobs:
            _fail(f"JobGraph({self.name!r}).jobs must be a non-empty list of Job")
        seen: dict[str, Job] = {}
        for job in self.jobs:
            if not isinstance(job, Job):
                _fail(f"JobGraph({self.name!r}).jobs: {job!r} is not a Job")
            if job.name in seen:
                _fail(f"job {job.name!r} appears twice in JobGraph {self.name!r}: job names must be unique")
            seen[job.name] = job
        for job in self.jobs:
            self._check_job(job, seen)
        units = self.units(self.topological_order())
        self._check_templates(units)
        self._check_units(units)

    def _check_job(self, job: Job, seen: Mapping[str, Job]) -> None:
        if isinstance(job.definition, JobDefinition):
            try:  # a definition is checked when made; again here, so a changed copy cannot slip through
                dataclasses.replace(job.definition)
            except WorkflowSpecError as exc:
                _fail(f"job {job.name!r}: {exc}")
        if isinstance(job, ArrayJob):
            if job.size < 1:
                _fail(f"array job {job.name!r} has size {job.size}: an array needs at least 1 child")
            if job.size > self.max_array_size:
                _fail(f"array job {job.name!r} has size {job.size}, above the cap of {self.max_array_size}: "
                      "split it or raise JobGraph(max_array_size=...)")
        for dep in job.dependencies:
            if seen.get(dep.job.name) is not dep.job:
                _fail(f"job {job.name!r} depends on {dep.job.name!r}, which is not in JobGraph {self.name!r}: "
                      "add it to the graph's jobs")
            if dep.job is job:
                _fail(f"job {job.name!r} depends on itself")
            if dep.mode == "each":
                size, dep_size = getattr(job, "size", None), getattr(dep.job, "size", None)
                if size != dep_size:
                    _fail(f"job {job.name!r} (size {size}) depends on {dep.job.name!r} (size {dep_size}) with "
                          "mode 'each': both arrays must have the same size, or use mode 'all'")

    def topological_order(self) -> list[Job]:
        """The jobs, every job after its dependencies (graph order among independent ones); a cycle
        raises naming its jobs."""
        state: dict[str, int] = {}  # 1 visiting, 2 done
        order: list[Job] = []

        def visit(job: Job, path: list[str]) -> None:
            if state.get(job.name) == 2:
                return
            if state.get(job.name) == 1:
                cycle = [*path[path.index(job.name):], job.name]
                _fail(f"jobs form a cycle: {' -> '.join(cycle)} (each waits for the next): remove one dependency")
            state[job.name] = 1
            for dep in job.dependencies:
                visit(dep.job, [*path, job.name])
            state[job.name] = 2
            order.append(job)

        for job in self.jobs:
            visit(job, [])
        return order

    def _check_templates(self, units: Sequence[Unit]) -> None:
        """Inline definitions of one name must be equal, and no template name may be taken twice."""
        definitions: dict[str, tuple[JobDefinition, str]] = {}
        for job in self.jobs:
            if isinstance(job.definition, JobDefinition):
                known = definitions.get(job.definition.name)
                if known is not None and known[0] != job.definition:
                    _fail(f"jobs {known[1]!r} and {job.name!r} use two different JobDefinitions named "
                          f"{job.definition.name!r}: rename one")
                definitions[job.definition.name] = (job.definition, job.name)
        taken: dict[str, str] = {ENTRYPOINT: "the entrypoint DAG"}
        for unit in units:
            for tmpl in unit_template_names(unit):
                taken[tmpl] = f"the template running {', '.join(j.name for j in unit.jobs)}"
        for name, (_, job_name) in definitions.items():
            for variant in VARIANTS:
                tmpl = variant_template_name(name, variant)
                if tmpl in taken and taken[tmpl] != f"JobDefinition {name!r}":
                    _fail(f"job {job_name!r}: template name {tmpl!r} of JobDefinition {name!r} is already "
                          f"{taken[tmpl]}: rename the definition")
                taken[tmpl] = f"JobDefinition {name!r}"

    def _check_units(self, units: Sequence[Unit]) -> None:
        names = {job.name for job in self.jobs}
        for unit in units:
            if unit.is_chain and unit.name in names:
                _fail(f"job {unit.name!r} has the name of the task running the 'each' chain "
                      f"{', '.join(j.name for j in unit.jobs)}: rename the job")
            members = {j.name for j in unit.jobs}
            for job in unit.jobs:
                for dep in job.dependencies:
                    if dep.mode == "all" and dep.job.name in members:
                        _fail(f"job {job.name!r} depends on {dep.job.name!r} with mode 'all', but both are linked by "
                              "'each' into one per-index chain: make the dependency mode 'each' too")
        # the units themselves must not form a cycle (a job both after and before an 'each' chain)
        by_name = {u.name: u for u in units}
        state: dict[str, int] = {}

        def visit(unit: Unit) -> None:
            if state.get(unit.name) == 2:
                return
            if state.get(unit.name) == 1:
                _fail(f"job(s) {', '.join(j.name for j in unit.jobs)} would wait for themselves: the 'each' chain "
                      "they are in runs as one task, and another job both depends on it and is depended on by it")
            state[unit.name] = 1
            for dep in unit.dependencies:
                visit(by_name[dep])
            state[unit.name] = 2

        for unit in units:
            visit(unit)

    # ----------------------------------------------------------------------------------------
    # structure
    # ----------------------------------------------------------------------------------------

    def units(self, order: Sequence[Job] | None = None) -> list[Unit]:
        """The top-level DAG tasks: jobs linked by ``each`` merged into one unit, in dependency order."""
        order = list(order) if order is not None else self.topological_order()
        parent: dict[str, str] = {job.name: job.name for job in order}

        def find(name: str) -> str:
            while parent[name] != name:
                parent[name] = parent[parent[name]]
                name = parent[name]
            return name

        for job in order:
            for dep in job.dependencies:
                if dep.mode == "each":
                    a, b = find(job.name), find(dep.job.name)
                    if a != b:
                        parent[a] = b
        members: dict[str, list[Job]] = {}
        for job in order:
            members.setdefault(find(job.name), []).append(job)
        unit_of: dict[str, str] = {}
        for jobs in members.values():
            name = jobs[0].name if len(jobs) == 1 else EACH_PREFIX + jobs[0].name
            for job in jobs:
                unit_of[job.name] = name
        units: list[Unit] = []
        for jobs in members.values():
            name = unit_of[jobs[0].name]
            deps: list[str] = []
            for job in jobs:
                for dep in job.dependencies:
                    target = unit_of[dep.job.name]
                    if target != name and target not in deps:
                        deps.append(target)
            units.append(Unit(name=name, jobs=tuple(jobs), dependencies=tuple(deps)))
        return units

    def job(self, name: str) -> Job:
        """The job named ``name``."""
        for job in self.jobs:
            if job.name == name:
                return job
        _fail(f"JobGraph {self.name!r} has no job named {name!r}")

    # ----------------------------------------------------------------------------------------
    # rendering
    # ----------------------------------------------------------------------------------------

    def render(self, queue: JobQueue | None = None) -> dict[str, Any]:
        """The graph as a plain Argo Workflow dict (built with Hera), validated first; with a
        ``queue``, :meth:`JobQueue.apply_to` is applied to it."""
        self.validate()
        workflow = render_workflow(self.name, self.units(), namespace=self.namespace, eci=self.eci)
        if queue is not None:
            workflow = queue.apply_to(workflow)
        return workflow

"""Rendering a job graph as an Argo Workflow (through Hera), and the node names it produces.

The workflow's entrypoint is the DAG ``dag``; each :class:`Unit` is one of its tasks:

- a single job: a task calling its definition's template (``templateRef`` for a registered one);
- an array job: a task looping ``withSequence`` (``job-index`` = ``{{item}}``) or, with items,
  ``withItems`` over ``{index, item}`` maps; with ``parallelism``, the looping task sits in a
  DAG template of its own (``fanout-<job>``) whose ``parallelism`` caps the running children;
- jobs linked by ``mode="each"``: one task ``each-<first job>`` looping over the indexes, whose
  template (also ``each-<first job>``) is a small DAG of the chain for one index, so child ``i``
  of a job starts as soon as child ``i`` of its dependency is done.

Every job task has ``continueOn: {failed: true}`` when the job continues on failure; the DAGs
have ``failFast: false`` so independent jobs finish even when one failed (a failed job's
dependents are not run: Argo marks them Omitted). Node names are Argo's: a DAG task's node is
``<parent>.<task>``, a loop child ``<parent>.<task>(<position>:<item>)``; :func:`locate_job_nodes`
is the one place that maps them back to jobs and indexes.

Pure: no Airflow, no HTTP; imports only the job types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hera.workflows import DAG, Parameter, Task, Workflow
from hera.workflows import models as m

from airflow_argo_eci.batch.definitions import (
    ARRAY_INDEX_PARAMETER,
    ITEM_PARAMETER,
    JobDefinition,
    variant_template_name,
)
from airflow_argo_eci.batch.jobs import ArrayJob, Job
from airflow_argo_eci.eci import EciProfile

__all__ = [
    "EACH_PREFIX",
    "ENTRYPOINT",
    "FANOUT_PREFIX",
    "JobNodes",
    "Unit",
    "locate_job_nodes",
    "render_workflow",
    "unit_template_names",
]

#: the rendered workflow's entrypoint: the DAG of the graph's units
ENTRYPOINT = "dag"
#: the name prefix of a unit (task and template) running jobs linked by "each"
EACH_PREFIX = "each-"
#: the name prefix of the DAG template wrapping an array's loop to cap its parallelism
FANOUT_PREFIX = "fanout-"


@dataclass(frozen=True)
class Unit:
    """One task of the rendered top-level DAG: a single job, an array, or jobs linked by ``each``.

    :param name: the task's name: the job's name, or ``each-<first job>`` for an ``each`` chain.
    :param jobs: the jobs it runs, dependencies first (one, unless an ``each`` chain).
    :param dependencies: the names of the units it waits for.
    """

    name: str
    jobs: tuple[Job, ...]
    dependencies: tuple[str, ...]

    @property
    def is_chain(self) -> bool:
        """Whether the unit is a chain of arrays linked by ``each``."""
        return self.name.startswith(EACH_PREFIX) and len(self.jobs) > 1

    @property
    def is_loop(self) -> bool:
        """Whether the unit's task loops (an array or a chain of arrays)."""
        return isinstance(self.jobs[0], ArrayJob)

    @property
    def parallelism(self) -> int | None:
        """The smallest ``parallelism`` of the unit's arrays, if any sets one."""
        caps = [j.parallelism for j in self.jobs if isinstance(j, ArrayJob) and j.parallelism is not None]
        return min(caps) if caps else None


def unit_template_names(unit: Unit) -> list[str]:
    """The templates a unit adds besides its jobs' definitions (the chain DAG, the fan-out DAG)."""
    names = [unit.name] if unit.is_chain else []
    if unit.parallelism is not None:
        names.append(FANOUT_PREFIX + unit.name)
    return names


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def _variant(job: Job) -> str:
    if isinstance(job, ArrayJob):
        return "items" if job.items is not None else "array"
    return "job"


def _call(job: Job) -> dict[str, Any]:
    """The Task keyword arguments that call ``job``'s template."""
    tmpl = variant_template_name(job.definition_name, _variant(job))
    if isinstance(job.definition, str):
        return {"template_ref": m.TemplateRef(name=job.definition, template=tmpl)}
    return {"template": tmpl}


def _job_task(job: Job, extra: Mapping[str, str], dependencies: Sequence[str], **loop: Any) -> Task:
    params = [Parameter(name=k, value=v) for k, v in {**extra, **job.parameters}.items()]
    return Task(
        name=job.name,
        arguments=params or None,
        dependencies=list(dependencies) or None,
        continue_on=m.ContinueOn(failed=True) if job.continue_on_failure else None,
        **_call(job),
        **loop,
    )


def _sequence(start: int, count: int) -> m.Sequence:
    return m.Sequence(start=m.IntOrString(root=str(start)), count=m.IntOrString(root=str(count)))


def _array_loop(job: ArrayJob) -> tuple[dict[str, str], dict[str, Any]]:
    """An ungrouped array's arguments and loop."""
    if job.items is None:
        return ({ARRAY_INDEX_PARAMETER: "{{item}}"},
                {"with_sequence": _sequence(job.start, job.size)})
    items = [{"index": str(i), "item": v} for i, v in zip(job.indexes, job.items, strict=True)]
    return {ARRAY_INDEX_PARAMETER: "{{item.index}}", ITEM_PARAMETER: "{{item.item}}"}, {"with_items": items}


def _chain(unit: Unit) -> tuple[DAG, dict[str, str], dict[str, Any]]:
    """The per-index DAG of an ``each`` chain, the outer task's arguments and its loop."""
    arrays = [j for j in unit.jobs if isinstance(j, ArrayJob)]
    simple = all(j.items is None and j.start == arrays[0].start for j in arrays)
    inner_args: dict[str, dict[str, str]] = {}
    inputs: list[Parameter] = []
    outer: dict[str, str] = {}
    if simple:
        inputs.append(Parameter(name=ARRAY_INDEX_PARAMETER))
        outer[ARRAY_INDEX_PARAMETER] = "{{item}}"
        for job in arrays:
            inner_args[job.name] = {ARRAY_INDEX_PARAMETER: f"{{{{inputs.parameters.{ARRAY_INDEX_PARAMETER}}}}}"}
        loop: dict[str, Any] = {"with_sequence": _sequence(arrays[0].start, arrays[0].size)}
    else:
        rows: list[dict[str, str]] = [{} for _ in range(arrays[0].size)]
        for k, job in enumerate(arrays):
            inner_args[job.name] = {ARRAY_INDEX_PARAMETER: f"{{{{inputs.parameters.i{k}}}}}"}
            inputs.append(Parameter(name=f"i{k}"))
            outer[f"i{k}"] = f"{{{{item.i{k}}}}}"
            for pos, index in enumerate(job.indexes):
                rows[pos][f"i{k}"] = str(index)
            if job.items is not None:
                inner_args[job.name][ITEM_PARAMETER] = f"{{{{inputs.parameters.v{k}}}}}"
                inputs.append(Parameter(name=f"v{k}"))
                outer[f"v{k}"] = f"{{{{item.v{k}}}}}"
                for pos, item in enumerate(job.items):
                    rows[pos][f"v{k}"] = item
        loop = {"with_items": rows}
    members = {j.name for j in unit.jobs}
    tasks: list[Task | m.DAGTask] = [_job_task(job, inner_args[job.name],
                       [d.job.name for d in job.dependencies if d.job.name in members]) for job in arrays]
    dag = DAG(name=unit.name, inputs=inputs, tasks=tasks, fail_fast=False)
    return dag, outer, loop


def _unit_task(unit: Unit, templates: list[Any]) -> Task:
    """The top-level task of ``unit``; adds the chain / fan-out templates it needs to ``templates``."""
    job = unit.jobs[0]
    deps = list(unit.dependencies)
    if not unit.is_loop:
        return _job_task(job, {}, deps)
    if unit.is_chain:
        dag, args, loop = _chain(unit)
        templates.append(dag)
        loop_task = Task(name=unit.name, template=unit.name,
                         arguments=[Parameter(name=k, value=v) for k, v in args.items()],
                         continue_on=m.ContinueOn(failed=True) if all(j.continue_on_failure for j in unit.jobs)
                         else None, **loop)
    else:
        assert isinstance(job, ArrayJob)
        args, loop = _array_loop(job)
        loop_task = _job_task(job, args, [], **loop)
    if unit.parallelism is None:
        loop_task.dependencies = deps or None
        return loop_task
    fanout_tasks: list[Task | m.DAGTask] = [loop_task]
    fanout = DAG(name=FANOUT_PREFIX + unit.name, tasks=fanout_tasks, parallelism=unit.parallelism, fail_fast=False)
    templates.append(fanout)
    return Task(name=unit.name, template=fanout.name, dependencies=deps or None,
                continue_on=loop_task.continue_on)


def render_workflow(name: str, units: Sequence[Unit], namespace: str | None = None,
                    eci: EciProfile | None = None) -> dict[str, Any]:
    """The Argo Workflow (a plain dict, built with Hera) running ``units`` (from
    :meth:`JobGraph.units`); ``eci`` is applied with :meth:`EciProfile.apply`."""
    definitions: dict[str, dict[str, Any]] = {}
    extra: list[Any] = []
    tasks: list[Task | m.DAGTask] = [_unit_task(unit, extra) for unit in units]
    for unit in units:
        for job in unit.jobs:
            if isinstance(job.definition, JobDefinition):
                tmpl = job.definition.template(_variant(job))
                definitions.setdefault(tmpl["name"], tmpl)
    templates: list[Any] = [DAG(name=ENTRYPOINT, tasks=tasks, fail_fast=False), *extra]
    templates += [m.Template.model_validate(t) for t in definitions.values()]
    workflow = Workflow(generate_name=f"{name}-", namespace=namespace, entrypoint=ENTRYPOINT, templates=templates)
    result: dict[str, Any] = workflow.to_dict()
    if eci is not None:
        result = eci.apply(result)
    return result


# ---------------------------------------------------------------------------------------------
# node names
# ---------------------------------------------------------------------------------------------


@dataclass
class JobNodes:
    """The status nodes of one job: ``node`` (the task's node: a single job's, or an array's
    loop node) and, for arrays, ``children`` by ``job-index``."""

    node: dict[str, Any] | None = None
    children: dict[int, dict[str, Any]] | None = None


def _loop_children(nodes: Mapping[str, Mapping[str, Any]], prefix: str, suffix: str) -> dict[int, dict[str, Any]]:
    """Nodes named ``<prefix>(<position>:<item>)<suffix>`` by position; a retried child's attempts
    (``...(n)`` after it) are skipped: the shortest name per position is the child."""
    found: dict[int, dict[str, Any]] = {}
    opening = prefix + "("
    for node in nodes.values():
        node_name = str(node.get("name", ""))
        if not node_name.startswith(opening) or not node_name.endswith(suffix):
            continue
        head = node_name[len(opening):]
        position, colon, _ = head.partition(":")
        if not colon or not position.isdigit():
            continue
        if suffix and not node_name[: len(node_name) - len(suffix)].endswith(")"):
            continue
        pos = int(position)
        if pos not in found or len(node_name) < len(str(found[pos].get("name", ""))):
            found[pos] = dict(node)
    return found


def _loop_prefix(workflow_name: str, unit: Unit) -> str:
    """The name of the loop's node (its children are ``<this>(<pos>:<item>)``)."""
    if unit.parallelism is not None:
        return f"{workflow_name}.{unit.name}.{unit.name}"
    return f"{workflow_name}.{unit.name}"


def locate_job_nodes(workflow_name: str, units: Sequence[Unit],
                     nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, JobNodes]:
    """Each job's status nodes in a workflow rendered by :func:`render_workflow` from ``units``.

    A single job's node is ``<workflow>.<job>``; an array's loop node ``<workflow>.<job>`` (or
    ``<workflow>.<job>.<job>`` under a fan-out DAG) with children ``...(<position>:<item>)``;
    a job of an ``each`` chain has no loop node of its own (``node`` is the chain's loop node)
    and its children are ``<workflow>.<chain>(<position>:<item>).<job>``. Positions are turned
    into ``job-index`` values (``start + position``).
    """
    by_name = {str(n.get("name", "")): dict(n) for n in nodes.values() if isinstance(n, Mapping)}
    result: dict[str, JobNodes] = {}
    for unit in units:
        loop = _loop_prefix(workflow_name, unit)
        for job in unit.jobs:
            if not isinstance(job, ArrayJob):
                result[job.name] = JobNodes(node=by_name.get(f"{workflow_name}.{job.name}"))
                continue
            suffix = f".{job.name}" if unit.is_chain else ""
            children = _loop_children(by_name, loop, suffix)
            result[job.name] = JobNodes(node=by_name.get(loop),
                                        children={job.start + pos: node for pos, node in children.items()})
    return result

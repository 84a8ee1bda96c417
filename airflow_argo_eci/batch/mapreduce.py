"""``MapReduce``: split -> map over the shards (``withParam``) -> reduce, as a job graph on OSS artifacts.

The shape is Argo's own ``map-reduce`` example, with key-only OSS artifacts (the workflow's artifact
repository supplies the bucket and the keys):

1. ``split`` writes one file per shard into :attr:`MapReduce.shards_dir` and the JSON list of those
   file names into :attr:`MapReduce.shard_list`; the directory is saved (unarchived) under
   ``{{workflow.name}}/shards/`` and the list becomes the output parameter ``shards``;
2. ``map`` fans out over that list (``withParam``): child ``i`` finds its shard at
   :attr:`MapReduce.shard_path` (its name in env ``BATCH_SHARD`` and parameter ``shard``) and
   writes its result to :attr:`MapReduce.result_path`, saved as ``{{workflow.name}}/results/<shard>``;
3. ``reduce`` gets the whole ``{{workflow.name}}/results`` directory at :attr:`MapReduce.results_dir`.

Each command also finds these paths in environment variables (``BATCH_SHARDS_DIR``,
``BATCH_SHARD_LIST``, ``BATCH_SHARD_FILE``, ``BATCH_RESULT_FILE``, ``BATCH_RESULTS_DIR``), so a
definition need not repeat them. A :class:`MapReduce` is a
:class:`~airflow_argo_eci.batch.graph.JobGraph` of three jobs named ``split``, ``map`` and
``reduce``: :func:`~airflow_argo_eci.batch.results.job_results` reports the map's children by their
position in the shard list, and ``EciBatchOperator`` runs it like any graph.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from hera.workflows import DAG, Parameter, Task, Workflow
from hera.workflows import models as m

from airflow_argo_eci.batch.definitions import JobDefinition, check_name
from airflow_argo_eci.batch.graph import DEFAULT_MAX_ARRAY_SIZE, JobGraph
from airflow_argo_eci.batch.jobs import ArrayJob, Job
from airflow_argo_eci.batch.render import ENTRYPOINT, FANOUT_PREFIX
from airflow_argo_eci.eci import EciProfile
from airflow_argo_eci.errors import WorkflowSpecError

if TYPE_CHECKING:  # pragma: no cover
    from airflow_argo_eci.batch.queues import JobQueue

__all__ = [
    "MAP_JOB",
    "REDUCE_JOB",
    "SHARDS_OUTPUT",
    "SHARD_ENV",
    "SHARD_PARAMETER",
    "SPLIT_JOB",
    "MapReduce",
    "ShardMapJob",
]

#: the names of the three jobs (their DAG tasks, and the keys of the job results)
SPLIT_JOB, MAP_JOB, REDUCE_JOB = "split", "map", "reduce"
#: the split's output parameter holding the JSON list of shard names (what ``map`` loops over)
SHARDS_OUTPUT = "shards"
#: the map's input parameter naming its shard, and the environment variable holding it
SHARD_PARAMETER = "shard"
SHARD_ENV = "BATCH_SHARD"
#: the artifact names
_SHARDS_ARTIFACT, _SHARD_ARTIFACT, _RESULT_ARTIFACT, _RESULTS_ARTIFACT = "shards", "shard", "result", "results"
#: the OSS keys, relative to the artifact repository's bucket
SHARDS_KEY = "{{workflow.name}}/shards"
RESULTS_KEY = "{{workflow.name}}/results"
#: where the default paths are: the job container's /tmp (not the host's)
_IN_JOB = "/tmp"  # noqa: S108
_PATH_FIELDS = ("shards_dir", "shard_list", "shard_path", "result_path", "results_dir")
_PATH_ENV = {
    "shards_dir": "BATCH_SHARDS_DIR",
    "shard_list": "BATCH_SHARD_LIST",
    "shard_path": "BATCH_SHARD_FILE",
    "result_path": "BATCH_RESULT_FILE",
    "results_dir": "BATCH_RESULTS_DIR",
}


def _fail(message: str) -> NoReturn:
    raise WorkflowSpecError(message)


class ShardMapJob(ArrayJob):
    """The map step of a :class:`MapReduce`: an array job whose children are the split's shards,
    counted only when the split has run (``withParam``). ``size`` is 1, the least it runs; its
    children in the job results are keyed by position in the shard list (``"0"``, ``"1"``, ...)."""

    def __init__(self, definition: JobDefinition, parallelism: int | None = None) -> None:
        super().__init__(definition, MAP_JOB, size=1, parallelism=parallelism)


class MapReduce(JobGraph):
    """A map-reduce over shards, as one job graph: ``split`` -> ``map`` (one child per shard) -> ``reduce``.

    :param name: the workflow's name prefix (a lower-case DNS label).
    :param split: the definition writing the shard files into ``shards_dir`` and their names, a JSON
        list of strings, into ``shard_list``.
    :param map: the definition run once per shard: reads ``shard_path``, writes ``result_path``.
    :param reduce: the definition reading every map result in ``results_dir``; its ``outputs`` are
        the job's outputs in the results.
    :param parallelism: the most map children running at once, optional.
    :param shards_dir: the directory the split writes the shards into (saved as one artifact).
    :param shard_list: the file the split writes the JSON list of shard names into.
    :param shard_path: where each map child finds its shard.
    :param result_path: the file each map child writes its result to.
    :param results_dir: the directory where reduce finds every map result, one file per shard, named
        after the shard.
    :param max_array_size: checked against ``parallelism`` (the shard count is known only at run time).
    :param namespace: the workflow's namespace, optional.
    :param eci: a workflow-level compute environment (:class:`~airflow_argo_eci.eci.EciProfile`).

    The three definitions must differ in name and be given inline (their templates are extended with
    the shard parameter and the artifacts). Invalid values raise
    :class:`~airflow_argo_eci.errors.WorkflowSpecError` naming the field.
    """

    def __init__(self, name: str, split: JobDefinition, map: JobDefinition,
                 reduce: JobDefinition, *, parallelism: int | None = None,
                 shards_dir: str = _IN_JOB + "/shards", shard_list: str = _IN_JOB + "/shard-list",
                 shard_path: str = _IN_JOB + "/shard", result_path: str = _IN_JOB + "/result",
                 results_dir: str = _IN_JOB + "/results", max_array_size: int = DEFAULT_MAX_ARRAY_SIZE,
                 namespace: str | None = None, eci: EciProfile | Mapping[str, Any] | None = None) -> None:
        where = f"MapReduce({name!r})"
        for role, definition in ((SPLIT_JOB, split), (MAP_JOB, map), (REDUCE_JOB, reduce)):
            if not isinstance(definition, JobDefinition):
                _fail(f"{where}.{role} must be a JobDefinition (inline: its template gets the shard artifacts), "
                      f"got {type(definition).__name__}")
        self.shards_dir, self.shard_list, self.shard_path = shards_dir, shard_list, shard_path
        self.result_path, self.results_dir = result_path, results_dir
        self._check_fields(where, split, map, reduce)
        self.split_job = Job(split, SPLIT_JOB)
        self.map_job = ShardMapJob(map, parallelism=parallelism).after(self.split_job)
        self.reduce_job = Job(reduce, REDUCE_JOB).after(self.map_job)
        super().__init__(name, [self.split_job, self.map_job, self.reduce_job], max_array_size=max_array_size,
                         namespace=namespace, eci=eci)

    def _check_fields(self, where: str, split: JobDefinition, map_def: JobDefinition,
                      reduce: JobDefinition) -> None:
        names = {SPLIT_JOB: split.name, MAP_JOB: map_def.name, REDUCE_JOB: reduce.name}
        for role, def_name in names.items():
            others = [r for r, n in names.items() if n == def_name and r != role]
            if others:
                _fail(f"{where}.{role}: JobDefinition {def_name!r} is also the {others[0]}: each step needs a "
                      "definition of its own name")
        if SHARD_PARAMETER in map_def.parameter_defaults:
            _fail(f"{where}.map: JobDefinition {map_def.name!r} declares parameter {SHARD_PARAMETER!r}, which "
                  "the map-reduce sets to the shard's name: rename it")
        for role, definition in ((SPLIT_JOB, split), (MAP_JOB, map_def), (REDUCE_JOB, reduce)):
            clash = sorted((set(_PATH_ENV.values()) | {SHARD_ENV}) & set(definition.env))
            if clash:
                _fail(f"{where}.{role}: env {', '.join(clash)} is set by the map-reduce: choose another name")
        seen: dict[str, str] = {}
        for field_name in _PATH_FIELDS:
            path = getattr(self, field_name)
            if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") == "" \
                    or posixpath.normpath(path) != path:
                _fail(f"{where}.{field_name}: {path!r} must be a normalized absolute path, e.g. '/tmp/{field_name}'")
            if path in seen:
                _fail(f"{where}.{field_name}: {path!r} is also {seen[path]}: use another path")
            seen[path] = field_name
        if self.shard_list.startswith(self.shards_dir + "/"):
            _fail(f"{where}.shard_list: {self.shard_list!r} is inside shards_dir {self.shards_dir!r}: the list "
                  "would be taken for a shard")

    def validate(self) -> None:
        """The graph's checks (names, resources, the cap on ``parallelism``), then the map-reduce's own."""
        check_name("MapReduce.name", self.name)
        super().validate()
        parallelism = self.map_job.parallelism
        if parallelism is not None and parallelism > self.max_array_size:
            _fail(f"MapReduce({self.name!r}).parallelism: {parallelism} is above the cap of {self.max_array_size}")

    # ----------------------------------------------------------------------------------------
    # rendering
    # ----------------------------------------------------------------------------------------

    def _env(self, template: dict[str, Any], names: tuple[str, ...], extra: Mapping[str, str] | None = None) -> None:
        env = template["container"].setdefault("env", [])
        env.extend({"name": _PATH_ENV[n], "value": getattr(self, n)} for n in names)
        env.extend({"name": k, "value": v} for k, v in (extra or {}).items())

    def _split_template(self) -> dict[str, Any]:
        assert isinstance(self.split_job.definition, JobDefinition)
        tmpl = copy.deepcopy(self.split_job.definition.template("job"))
        self._env(tmpl, ("shards_dir", "shard_list"))
        outputs = tmpl.setdefault("outputs", {})
        outputs.setdefault("parameters", []).append(
            {"name": SHARDS_OUTPUT, "valueFrom": {"path": self.shard_list}})
        outputs.setdefault("artifacts", []).append(
            {"name": _SHARDS_ARTIFACT, "path": self.shards_dir, "archive": {"none": {}},
             "oss": {"key": SHARDS_KEY + "/"}})
        return tmpl

    def _map_template(self) -> dict[str, Any]:
        assert isinstance(self.map_job.definition, JobDefinition)
        tmpl = copy.deepcopy(self.map_job.definition.template("job"))
        self._env(tmpl, ("shard_path", "result_path"),
                  {SHARD_ENV: f"{{{{inputs.parameters.{SHARD_PARAMETER}}}}}"})
        inputs = tmpl.setdefault("inputs", {})
        inputs.setdefault("parameters", []).insert(0, {"name": SHARD_PARAMETER})
        inputs.setdefault("artifacts", []).append({"name": _SHARD_ARTIFACT, "path": self.shard_path})
        tmpl.setdefault("outputs", {}).setdefault("artifacts", []).append(
            {"name": _RESULT_ARTIFACT, "path": self.result_path, "archive": {"none": {}},
             "oss": {"key": f"{RESULTS_KEY}/{{{{inputs.parameters.{SHARD_PARAMETER}}}}}"}})
        return tmpl

    def _reduce_template(self) -> dict[str, Any]:
        assert isinstance(self.reduce_job.definition, JobDefinition)
        tmpl = copy.deepcopy(self.reduce_job.definition.template("job"))
        self._env(tmpl, ("results_dir",))
        tmpl.setdefault("inputs", {}).setdefault("artifacts", []).append(
            {"name": _RESULTS_ARTIFACT, "path": self.results_dir, "oss": {"key": RESULTS_KEY}})
        return tmpl

    def _map_task(self, templates: list[Any]) -> Task:
        loop = Task(
            name=MAP_JOB,
            template=self.map_job.definition_name,
            arguments=[Parameter(name=SHARD_PARAMETER, value="{{item}}"),
                       m.Artifact(name=_SHARD_ARTIFACT, oss=m.OSSArtifact(key=SHARDS_KEY + "/{{item}}"))],
            with_param=f"{{{{tasks.{SPLIT_JOB}.outputs.parameters.{SHARDS_OUTPUT}}}}}",
        )
        if self.map_job.parallelism is None:
            loop.dependencies = [SPLIT_JOB]
            return loop
        loop.with_param = f"{{{{inputs.parameters.{SHARDS_OUTPUT}}}}}"
        fanout = DAG(name=FANOUT_PREFIX + MAP_JOB, inputs=[Parameter(name=SHARDS_OUTPUT)], tasks=[loop],
                     parallelism=self.map_job.parallelism, fail_fast=False)
        templates.append(fanout)
        return Task(name=MAP_JOB, template=fanout.name, dependencies=[SPLIT_JOB], arguments=[Parameter(
            name=SHARDS_OUTPUT, value=f"{{{{tasks.{SPLIT_JOB}.outputs.parameters.{SHARDS_OUTPUT}}}}}")])

    def render(self, queue: JobQueue | None = None) -> dict[str, Any]:
        """The map-reduce as a plain Argo Workflow dict (built with Hera), validated first; with a
        ``queue``, :meth:`JobQueue.apply_to` is applied to it."""
        self.validate()
        extra: list[Any] = []
        tasks: list[Task | m.DAGTask] = [
            Task(name=SPLIT_JOB, template=self.split_job.definition_name),
            self._map_task(extra),
            Task(name=REDUCE_JOB, template=self.reduce_job.definition_name, dependencies=[MAP_JOB]),
        ]
        templates: list[Any] = [DAG(name=ENTRYPOINT, tasks=tasks, fail_fast=False), *extra]
        templates += [m.Template.model_validate(t)
                      for t in (self._split_template(), self._map_template(), self._reduce_template())]
        workflow = Workflow(generate_name=f"{self.name}-", namespace=self.namespace, entrypoint=ENTRYPOINT,
                            templates=templates)
        result: dict[str, Any] = workflow.to_dict()
        if self.eci is not None:
            result = self.eci.apply(result)
        if queue is not None:
            result = queue.apply_to(result)
        return result

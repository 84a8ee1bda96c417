"""JobGraph.validate and the jobs' own checks: every invalid graph is refused naming the job."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_argo_eci.batch import ArrayJob, Job, JobDefinition, JobGraph
from airflow_argo_eci.errors import WorkflowSpecError

WORK = JobDefinition("work", image="busybox", command=["true"], vcpu=0.5, memory="64Mi")
PARAM = JobDefinition("echo", image="busybox", command=["echo", "{{inputs.parameters.message}}"],
                      parameters=["message"])


def _refused(graph: JobGraph, message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        graph.validate()
    with pytest.raises(WorkflowSpecError, match=message):
        graph.render()


def test_a_valid_graph_passes() -> None:
    a = Job(WORK, "a")
    b = ArrayJob(WORK, "b", size=3).after(a)
    JobGraph("ok", [a, b]).validate()


def test_duplicate_job_names() -> None:
    _refused(JobGraph("g", [Job(WORK, "a"), Job(WORK, "a")]),
             r"job 'a' appears twice in JobGraph 'g': job names must be unique")


def test_dependency_not_in_the_graph() -> None:
    a = Job(WORK, "a")
    b = Job(WORK, "b").after(a)
    _refused(JobGraph("g", [b]), r"job 'b' depends on 'a', which is not in JobGraph 'g': add it to the graph's jobs")


def test_dependency_on_a_same_named_other_job() -> None:
    b = Job(WORK, "b").after(Job(WORK, "a"))
    _refused(JobGraph("g", [Job(WORK, "a"), b]), r"job 'b' depends on 'a', which is not in JobGraph 'g'")


def test_self_dependency() -> None:
    a = Job(WORK, "a")
    a.after(a)
    _refused(JobGraph("g", [a]), r"job 'a' depends on itself")


def test_cycle_names_its_jobs() -> None:
    a, b, c = Job(WORK, "a"), Job(WORK, "b"), Job(WORK, "c")
    a.after(c)
    b.after(a)
    c.after(b)
    _refused(JobGraph("g", [a, b, c]), r"jobs form a cycle: a -> c -> b -> a \(each waits for the next\)")


@pytest.mark.parametrize(("job", "cap", "message"), [
    (ArrayJob(WORK, "arr", size=0), 10, r"array job 'arr' has size 0: an array needs at least 1 child"),
    (ArrayJob(WORK, "arr", items=[]), 10, r"array job 'arr' has size 0"),
    (ArrayJob(WORK, "arr", size=11), 10, r"array job 'arr' has size 11, above the cap of 10: split it or raise"),
    (ArrayJob(WORK, "arr", size=10_001), None, r"array job 'arr' has size 10001, above the cap of 10000"),
])
def test_array_size(job: ArrayJob, cap: int | None, message: str) -> None:
    graph = JobGraph("g", [job]) if cap is None else JobGraph("g", [job], max_array_size=cap)
    _refused(graph, message)


def test_each_between_different_sizes() -> None:
    a = ArrayJob(WORK, "a", size=3)
    b = ArrayJob(WORK, "b", size=4).after(a, mode="each")
    _refused(JobGraph("g", [a, b]), r"job 'b' \(size 4\) depends on 'a' \(size 3\) with mode 'each': both arrays "
                                    r"must have the same size, or use mode 'all'")


def test_each_needs_two_arrays() -> None:
    with pytest.raises(WorkflowSpecError, match=r"Job\('b'\).after\('a', mode='each'\): 'a' is not an array job"):
        ArrayJob(WORK, "b", size=2).after(Job(WORK, "a"), mode="each")
    with pytest.raises(WorkflowSpecError, match=r"'b' is not an array job; 'each' pairs the children"):
        Job(WORK, "b").after(ArrayJob(WORK, "a", size=2), mode="each")


def test_all_inside_an_each_chain() -> None:
    a = ArrayJob(WORK, "a", size=2)
    b = ArrayJob(WORK, "b", size=2).after(a, mode="each")
    c = ArrayJob(WORK, "c", size=2).after(b, mode="each").after(a)
    _refused(JobGraph("g", [a, b, c]), r"job 'c' depends on 'a' with mode 'all', but both are linked by 'each'")


def test_job_both_before_and_after_an_each_chain() -> None:
    a = ArrayJob(WORK, "a", size=2)
    x = Job(WORK, "x").after(a)
    b = ArrayJob(WORK, "b", size=2).after(a, mode="each").after(x)
    _refused(JobGraph("g", [a, x, b]), r"job\(s\) a, b would wait for themselves: the 'each' chain")


def test_job_named_like_an_each_chain() -> None:
    a = ArrayJob(WORK, "a", size=2)
    b = ArrayJob(WORK, "b", size=2).after(a, mode="each")
    _refused(JobGraph("g", [a, b, Job(WORK, "each-a")]),
             r"job 'each-a' has the name of the task running the 'each' chain")


def test_bad_resource_string_names_the_job() -> None:
    definition = JobDefinition("work", image="busybox", memory="2Gi")
    object.__setattr__(definition, "memory", "2GB")  # e.g. a definition deserialized without its checks
    _refused(JobGraph("g", [Job(WORK, "ok"), Job(definition, "a")]),
             r"job 'a': JobDefinition\('work'\).memory: '2GB' is not a Kubernetes quantity: use e.g. '2Gi'")


def test_two_definitions_with_one_name() -> None:
    other = JobDefinition("work", image="alpine")
    _refused(JobGraph("g", [Job(WORK, "a"), Job(other, "b")]),
             r"jobs 'a' and 'b' use two different JobDefinitions named 'work': rename one")


def test_definition_named_like_a_template_of_another() -> None:
    clash = JobDefinition("work-array", image="busybox")
    _refused(JobGraph("g", [Job(WORK, "a"), Job(clash, "b")]),
             r"template name 'work-array' of JobDefinition 'work' is already JobDefinition 'work-array'|"
             r"template name 'work-array' of JobDefinition 'work-array' is already JobDefinition 'work'")
    _refused(JobGraph("g", [Job(JobDefinition("dag", image="busybox"), "a")]),
             r"job 'a': template name 'dag' of JobDefinition 'dag' is already the entrypoint DAG")
    fanout = JobDefinition("fanout-arr", image="busybox")
    _refused(JobGraph("g", [ArrayJob(WORK, "arr", size=2, parallelism=1), Job(fanout, "b")]),
             r"template name 'fanout-arr' of JobDefinition 'fanout-arr' is already the template running arr")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "Bad"}, r"JobGraph.name: 'Bad' is not a valid name"),
    ({"jobs": []}, r"JobGraph\('g'\).jobs must be a non-empty list of Job"),
    ({"jobs": ["a"]}, r"JobGraph\('g'\).jobs: 'a' is not a Job"),
    ({"max_array_size": 0}, r"JobGraph.max_array_size must be an int >= 1"),
])
def test_graph_fields(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"name": "g", "jobs": [Job(WORK, "a")]}
    fields.update(kwargs)
    _refused(JobGraph(**fields), message)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Job(WORK, "Upper"), r"Job.name: 'Upper' is not a valid name"),
    (lambda: Job(42, "a"), r"Job\('a'\).definition must be a JobDefinition or a registered definition's name"),
    (lambda: Job("Not-A-Name", "a"), r"Job\('a'\).definition: 'Not-A-Name' is not a valid name"),
    (lambda: Job(WORK, "a", parameters={"x": "1"}), r"Job\('a'\).parameters: x not declared by JobDefinition 'work'"),
    (lambda: Job(PARAM, "a"), r"Job\('a'\): parameter\(s\) message of JobDefinition 'echo' have no default"),
    (lambda: Job(PARAM, "a", parameters=["message"]), r"Job\('a'\).parameters must be a mapping"),
    (lambda: Job(PARAM, "a", parameters={"message": object()}), r"neither a string nor JSON-serializable"),
    (lambda: Job("registered", "a", parameters={"job-index": 1}), r"'job-index' is set by array jobs: do not pass"),
    (lambda: Job(WORK, "a", continue_on_failure="yes"), r"continue_on_failure must be true or false"),
    (lambda: Job(WORK, "a").after(Job(WORK, "b"), mode="any"), r"mode 'any' is not one of all, each"),
    (lambda: Job(WORK, "a").after("b"), r"Job\('a'\).after: 'b' is not a Job"),
    (lambda: ArrayJob(WORK, "a"), r"ArrayJob\('a'\): give either size .* or items"),
    (lambda: ArrayJob(WORK, "a", size=2, items=["x"]), r"give either size"),
    (lambda: ArrayJob(WORK, "a", size="2"), r"ArrayJob\('a'\).size must be an int"),
    (lambda: ArrayJob(WORK, "a", items="xyz"), r"ArrayJob\('a'\).items must be a list"),
    (lambda: ArrayJob(WORK, "a", size=2, start=-1), r"ArrayJob\('a'\).start must be an int >= 0"),
    (lambda: ArrayJob(WORK, "a", size=2, parallelism=0), r"ArrayJob\('a'\).parallelism must be an int >= 1"),
])
def test_job_fields(build: Any, message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        build()


def test_parameters_are_strings_or_json() -> None:
    job = Job(PARAM, "a", parameters={"message": {"b": 1, "a": [1, 2]}})
    assert job.parameters == {"message": '{"a": [1, 2], "b": 1}'}
    array = ArrayJob(WORK, "arr", items=["x", 3, {"k": True}], start=2)
    assert array.items == ("x", "3", '{"k": true}') and list(array.indexes) == [2, 3, 4]


def test_units_merge_each_chains_in_dependency_order() -> None:
    a = ArrayJob(WORK, "a", size=2)
    b = ArrayJob(WORK, "b", size=2).after(a, mode="each")
    c = Job(WORK, "c").after(b)
    d = ArrayJob(WORK, "d", size=2).after(c)
    units = JobGraph("g", [d, c, b, a]).units()
    assert [(u.name, [j.name for j in u.jobs], list(u.dependencies)) for u in units] == [
        ("each-a", ["a", "b"], []), ("c", ["c"], ["each-a"]), ("d", ["d"], ["c"])]

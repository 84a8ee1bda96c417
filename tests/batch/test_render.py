"""JobGraph.render: goldens of the seed's loop and diamond, and the shapes of arrays, ``each`` chains,
fan-out caps, registered definitions, failure handling, compute environments and queues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_argo_eci.batch import ArrayJob, Job, JobDefinition, JobGraph, JobQueue
from airflow_argo_eci.eci import EciProfile
from tests.goldens import assert_golden

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "batch"

PRINT_PET = JobDefinition(
    "print-pet",
    image="acr-multiple-clusters-registry.cn-hangzhou.cr.aliyuncs.com/ack-multiple-clusters/print-pet",
    command=["/tmp/print-pet.sh"], args=["{{inputs.parameters.job-index}}"], vcpu=0.5, memory="512Mi")
ECHO = JobDefinition("echo", image="alpine:3.7", command=["echo", "{{inputs.parameters.message}}"],
                     parameters=["message"], vcpu=0.25, memory="64Mi")
WORK = JobDefinition("work", image="busybox", command=["true"], vcpu=0.5, memory="64Mi")


def loop_graph() -> JobGraph:
    """The seed's loop: print-pet with job-index 1 .. 5."""
    return JobGraph("loops", [ArrayJob(PRINT_PET, "print-pet", size=5, start=1)])


def diamond_graph() -> JobGraph:
    """The seed's diamond: A; B and C after A; D after B and C."""
    a = Job(ECHO, "a", parameters={"message": "A"})
    b = Job(ECHO, "b", parameters={"message": "B"}).after(a)
    c = Job(ECHO, "c", parameters={"message": "C"}).after(a)
    d = Job(ECHO, "d", parameters={"message": "D"}).after(b, c)
    return JobGraph("dag-diamond", [a, b, c, d])


def _dump(workflow: dict[str, Any]) -> str:
    return yaml.safe_dump(workflow, sort_keys=False, default_flow_style=False, width=120)


@pytest.mark.parametrize("case", ["loops", "dag-diamond"])
def test_golden(case: str) -> None:
    rendered = _dump({"loops": loop_graph, "dag-diamond": diamond_graph}[case]().render())
    golden = GOLDEN / f"{case}.yaml"
    assert_golden(golden, rendered)


def _templates(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in workflow["spec"]["templates"]}


def _tasks(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in template["dag"]["tasks"]}


def test_loop_is_a_with_sequence_task_of_the_seed() -> None:
    workflow = loop_graph().render()
    assert workflow["metadata"] == {"generateName": "loops-"}
    assert workflow["spec"]["entrypoint"] == "dag"
    templates = _templates(workflow)
    task = _tasks(templates["dag"])["print-pet"]
    assert task["withSequence"] == {"start": "1", "count": "5"}
    assert task["arguments"] == {"parameters": [{"name": "job-index", "value": "{{item}}"}]}
    assert task["template"] == "print-pet-array"
    child = templates["print-pet-array"]
    assert child["inputs"] == {"parameters": [{"name": "job-index"}]}
    assert child["container"]["args"] == ["{{inputs.parameters.job-index}}"]
    assert child["container"]["resources"]["requests"] == child["container"]["resources"]["limits"] == {
        "cpu": "500m", "memory": "512Mi"}


def test_diamond_dependencies_and_failure_handling() -> None:
    templates = _templates(diamond_graph().render())
    assert templates["dag"]["dag"]["failFast"] is False
    tasks = _tasks(templates["dag"])
    assert {n: t.get("dependencies") for n, t in tasks.items()} == {"a": None, "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert tasks["d"]["arguments"] == {"parameters": [{"name": "message", "value": "D"}]}
    assert all("continueOn" not in t for t in tasks.values())
    assert list(templates) == ["dag", "echo"]


def test_each_chain_is_one_fanned_out_task_of_a_per_index_dag() -> None:
    a = ArrayJob(WORK, "a", size=3)
    b = ArrayJob(WORK, "b", size=3, continue_on_failure=True).after(a, mode="each")
    c = Job(WORK, "c").after(b)
    templates = _templates(JobGraph("g", [a, b, c]).render())
    top = _tasks(templates["dag"])
    assert set(top) == {"each-a", "c"}
    assert top["each-a"]["template"] == "each-a"
    assert top["each-a"]["withSequence"] == {"start": "0", "count": "3"}
    assert top["each-a"]["arguments"] == {"parameters": [{"name": "job-index", "value": "{{item}}"}]}
    assert "continueOn" not in top["each-a"]  # a does not continue on failure
    assert top["c"]["dependencies"] == ["each-a"]
    chain = templates["each-a"]
    assert chain["inputs"] == {"parameters": [{"name": "job-index"}]}
    inner = _tasks(chain)
    index = {"parameters": [{"name": "job-index", "value": "{{inputs.parameters.job-index}}"}]}
    assert inner == {
        "a": {"name": "a", "template": "work-array", "arguments": index},
        "b": {"name": "b", "template": "work-array", "arguments": index, "dependencies": ["a"],
              "continueOn": {"failed": True}},
    }


def test_each_chain_of_items_and_offsets_loops_over_maps() -> None:
    a = ArrayJob(WORK, "a", items=["x", {"k": 1}])
    b = ArrayJob(WORK, "b", size=2, start=5).after(a, mode="each")
    templates = _templates(JobGraph("g", [a, b]).render())
    top = _tasks(templates["dag"])["each-a"]
    assert top["withItems"] == [{"i0": "0", "v0": "x", "i1": "5"}, {"i0": "1", "v0": '{"k": 1}', "i1": "6"}]
    assert top["arguments"]["parameters"] == [
        {"name": "i0", "value": "{{item.i0}}"}, {"name": "v0", "value": "{{item.v0}}"},
        {"name": "i1", "value": "{{item.i1}}"}]
    inner = _tasks(templates["each-a"])
    assert inner["a"]["template"] == "work-items"
    assert inner["a"]["arguments"]["parameters"] == [
        {"name": "job-index", "value": "{{inputs.parameters.i0}}"},
        {"name": "item", "value": "{{inputs.parameters.v0}}"}]
    assert inner["b"]["arguments"]["parameters"] == [{"name": "job-index", "value": "{{inputs.parameters.i1}}"}]


def test_items_array_and_parallelism_cap() -> None:
    arr = ArrayJob(WORK, "arr", items=["x", 2], parallelism=1, continue_on_failure=True)
    after = Job(WORK, "after").after(arr)
    templates = _templates(JobGraph("g", [arr, after]).render())
    top = _tasks(templates["dag"])
    assert top["arr"] == {"name": "arr", "template": "fanout-arr", "continueOn": {"failed": True}}
    fanout = templates["fanout-arr"]
    assert fanout["parallelism"] == 1
    loop = _tasks(fanout)["arr"]
    assert loop["withItems"] == [{"index": "0", "item": "x"}, {"index": "1", "item": "2"}]
    assert loop["template"] == "work-items"
    assert top["after"]["dependencies"] == ["arr"]


def test_registered_definitions_are_template_refs() -> None:
    single = Job("trainer", "single", parameters={"lr": 0.1})
    arr = ArrayJob("trainer", "arr", size=2).after(single)
    workflow = JobGraph("g", [single, arr]).render()
    tasks = _tasks(_templates(workflow)["dag"])
    assert tasks["single"]["templateRef"] == {"name": "trainer", "template": "trainer"}
    assert tasks["single"]["arguments"] == {"parameters": [{"name": "lr", "value": "0.1"}]}
    assert tasks["arr"]["templateRef"] == {"name": "trainer", "template": "trainer-array"}
    assert list(_templates(workflow)) == ["dag"]


def test_graph_level_compute_environment_and_namespace() -> None:
    profile = EciProfile(use_specs=("ecs.c6.large",), parallelism=4)
    workflow = JobGraph("g", [Job(WORK, "a")], namespace="batch", eci=profile).render()
    assert workflow["metadata"]["namespace"] == "batch"
    assert workflow["spec"]["parallelism"] == 4
    assert workflow["spec"]["podMetadata"]["labels"]["alibabacloud.com/eci"] == "true"
    assert workflow == profile.apply(JobGraph("g", [Job(WORK, "a")], namespace="batch").render())


def test_queue_is_applied() -> None:
    queue = JobQueue("high", priority=10, max_concurrent=2)
    workflow = diamond_graph().render(queue)
    assert workflow["spec"]["priority"] == 10
    echo = _templates(workflow)["echo"]
    assert echo["synchronization"]["semaphores"] == [queue.semaphore()]
    assert "synchronization" not in _templates(workflow)["dag"]

"""MapReduce (``airflow_argo_eci.batch.mapreduce``): the rendered workflow (golden), validation naming
the field, and a word count over shards run on the local cluster with its per-job results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.batch import JobDefinition, JobQueue, job_results
from airflow_argo_eci.batch.mapreduce import MapReduce, ShardMapJob
from airflow_argo_eci.errors import WorkflowSpecError
from tests.goldens import assert_golden
from tests.local.argo import clusterwf
from tests.test_eci import _dump

GOLDEN_DIR = Path(__file__).parent.parent / "golden" / "batch"
TEXT = "the quick brown fox\njumps over\nthe lazy dog\nand runs\naway"
SMALL = {"vcpu": 0.25, "memory": "64Mi"}


def word_count(parallelism: int | None = None, failing_shard: str | None = None) -> MapReduce:
    """Words of ``TEXT`` counted over shards of two lines: split (``split -l 2``), ``wc -w`` per shard, a sum."""
    split = JobDefinition(
        "wc-split", image="alpine:3.19", command=["sh", "-c"],
        args=['mkdir -p "$BATCH_SHARDS_DIR" && cd "$BATCH_SHARDS_DIR" && printf "%s\\n" "$TEXT" | split -l 2 - part- '
              '&& ls | awk \'BEGIN {printf "["} {printf "%s\\"%s\\"", (NR > 1 ? "," : ""), $0} END {print "]"}\' '
              '> "$BATCH_SHARD_LIST"'],
        env={"TEXT": "{{inputs.parameters.text}}"}, parameters={"text": TEXT}, **SMALL)
    count = JobDefinition(
        "wc-map", image="alpine:3.19", command=["sh", "-c"],
        args=[(f'[ "$BATCH_SHARD" != {failing_shard} ] || exit 3; ' if failing_shard else "")
              + 'wc -w < "$BATCH_SHARD_FILE" | tr -d " " > "$BATCH_RESULT_FILE"'],
        outputs={"words": "/tmp/result"}, **SMALL)
    total = JobDefinition(
        "wc-reduce", image="alpine:3.19", command=["sh", "-c"],
        args=['cat "$BATCH_RESULTS_DIR"/* | awk \'{s += $1} END {print s}\' > /tmp/total'],
        outputs={"total": "/tmp/total"}, **SMALL)
    return MapReduce("wordcount", split, count, total, parallelism=parallelism)


@pytest.mark.parametrize("parallelism", [None, 2])
def test_render_golden(parallelism: int | None) -> None:
    body = word_count(parallelism).render()
    golden = GOLDEN_DIR / f"mapreduce.wordcount{'' if parallelism is None else '-parallelism'}.yaml"
    rendered = _dump(body)
    assert_golden(golden, rendered)
    templates = {t["name"]: t for t in body["spec"]["templates"]}
    tasks = {t["name"]: t for t in templates["dag"]["dag"]["tasks"]}
    assert list(tasks) == ["split", "map", "reduce"]
    loop = tasks["map"] if parallelism is None else templates["fanout-map"]["dag"]["tasks"][0]
    assert loop["withParam"] in ("{{tasks.split.outputs.parameters.shards}}", "{{inputs.parameters.shards}}")
    assert loop["arguments"]["artifacts"] == [{"name": "shard", "oss": {"key": "{{workflow.name}}/shards/{{item}}"}}]
    assert templates["wc-split"]["outputs"]["artifacts"][0]["oss"] == {"key": "{{workflow.name}}/shards/"}
    assert templates["wc-map"]["outputs"]["artifacts"][0]["oss"] == {
        "key": "{{workflow.name}}/results/{{inputs.parameters.shard}}"}
    assert templates["wc-reduce"]["inputs"]["artifacts"] == [
        {"name": "results", "oss": {"key": "{{workflow.name}}/results"}, "path": "/tmp/results"}]
    if parallelism is not None:
        assert templates["fanout-map"]["parallelism"] == parallelism


def test_a_queue_caps_every_step() -> None:
    body = word_count().render(JobQueue("mr", priority=3, max_concurrent=2))
    assert body["spec"]["priority"] == 3
    semaphores = {t["name"]: t.get("synchronization") for t in body["spec"]["templates"]}
    expected = {"semaphores": [{"configMapKeyRef": {"name": "batch-queue-mr", "key": "limit"}}]}
    assert semaphores == {"dag": None, "wc-split": expected, "wc-map": expected, "wc-reduce": expected}


def _defs(**overrides: Any) -> dict[str, Any]:
    base = {role: JobDefinition(f"d-{role}", image="alpine:3.19") for role in ("split", "map", "reduce")}
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"map": "wc-map"}, "MapReduce('mr').map must be a JobDefinition"),
        ({"reduce": JobDefinition("d-split", image="alpine")},
         "MapReduce('mr').split: JobDefinition 'd-split' is also the reduce"),
        ({"map": JobDefinition("d-map", image="alpine", parameters=["shard"])},
         "MapReduce('mr').map: JobDefinition 'd-map' declares parameter 'shard'"),
        ({"split": JobDefinition("d-split", image="alpine", env={"BATCH_SHARD_LIST": "/x"})},
         "MapReduce('mr').split: env BATCH_SHARD_LIST is set by the map-reduce"),
        ({"shard_path": "tmp/shard"}, "MapReduce('mr').shard_path: 'tmp/shard' must be a normalized absolute path"),
        ({"results_dir": "/tmp/results/../x"}, "MapReduce('mr').results_dir: '/tmp/results/../x' must be"),
        ({"result_path": "/tmp/shard"}, "MapReduce('mr').result_path: '/tmp/shard' is also shard_path"),
        ({"shard_list": "/tmp/shards/list.json"}, "MapReduce('mr').shard_list: '/tmp/shards/list.json' is inside"),
        ({"parallelism": 0}, "ArrayJob('map').parallelism must be an int >= 1"),
    ],
)
def test_invalid_map_reduces_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    roles = {k: kwargs.pop(k) for k in ("split", "map", "reduce") if k in kwargs}
    defs = _defs(**roles)
    with pytest.raises(WorkflowSpecError) as info:
        MapReduce("mr", defs["split"], defs["map"], defs["reduce"], **kwargs)
    assert message in str(info.value)


def test_validate_names_the_graph_and_the_cap() -> None:
    defs = _defs()
    with pytest.raises(WorkflowSpecError, match=r"MapReduce\.name"):
        MapReduce("Bad_Name", defs["split"], defs["map"], defs["reduce"]).validate()
    with pytest.raises(WorkflowSpecError, match=r"MapReduce\('mr'\).parallelism: 5 is above the cap of 4"):
        MapReduce("mr", defs["split"], defs["map"], defs["reduce"], parallelism=5, max_array_size=4).validate()
    graph = MapReduce("mr", defs["split"], defs["map"], defs["reduce"])
    assert [j.name for j in graph.jobs] == ["split", "map", "reduce"]
    assert isinstance(graph.map_job, ShardMapJob)
    assert [d.job.name for d in graph.reduce_job.dependencies] == ["map"]


@pytest.mark.slow
@pytest.mark.parametrize("parallelism", [None, 2])
def test_word_count_on_the_local_cluster(kube_api_client: Any, parallelism: int | None) -> None:
    graph = word_count(parallelism)
    workflow = clusterwf.run(kube_api_client, graph.render(), timeout=90)
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
    results = job_results(workflow, graph)
    assert results["split"]["phase"] == "Succeeded"
    assert results["reduce"]["outputs"] == {"total": str(len(TEXT.split()))}
    # five lines in shards of two: part-aa (4 + 2 words), part-ab (3 + 2), part-ac (1)
    children = results["map"]["children"]
    assert results["map"]["phase"] == "Succeeded" and sorted(children) == ["0", "1", "2"]
    assert [children[i]["outputs"]["words"] for i in ("0", "1", "2")] == ["6", "5", "1"]
    assert all(c["phase"] == "Succeeded" and c["exit_code"] == 0 for c in children.values())


@pytest.mark.slow
def test_a_failed_shard_cancels_the_reduce(kube_api_client: Any) -> None:
    graph = word_count(failing_shard="part-ab")
    workflow = clusterwf.run(kube_api_client, graph.render(), timeout=90)
    assert workflow["status"]["phase"] == "Failed"
    results = job_results(workflow, graph)
    children = results["map"]["children"]
    assert results["map"]["phase"] == "Failed"
    assert {i: (c["phase"], c["exit_code"]) for i, c in children.items()} == {
        "0": ("Succeeded", 0), "1": ("Failed", 3), "2": ("Succeeded", 0)}
    assert results["reduce"]["phase"] in ("Omitted", "NotRun") and results["reduce"]["outputs"] == {}

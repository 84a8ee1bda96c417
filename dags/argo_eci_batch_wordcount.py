"""A MapReduce counting words: split a text into shards, count each shard's words, sum the counts.

:class:`~airflow_argo_eci.batch.MapReduce` renders Argo's map-reduce shape on OSS: the
split writes shard files (saved as one unarchived artifact) and their names as a JSON list; the map
fans out over that list (``withParam``), one child per shard, each reading its shard from OSS and
writing its count back; the reduce downloads every count and sums them. The text is the DAG param
``text`` (an Argo workflow parameter); the task returns each job's result, the total in
``reduce.outputs.total``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_argo_eci.batch import JobDefinition, MapReduce
from airflow_argo_eci.operators.batch import EciBatchOperator

TEXT = "\n".join([
    "Cloud-native offline workflow orchestration",
    "runs batch jobs as containers",
    "on serverless elastic container instances",
    "with Argo Workflows",
    "driven from Airflow",
])
SMALL: dict[str, Any] = {"vcpu": 0.25, "memory": "64Mi", "timeout": 120}

SPLIT = JobDefinition(
    "wc-split",
    image="alpine:3.19",
    command=["sh", "-c"],
    # two lines per shard; the shard list is the JSON list of the shard files' names
    args=['mkdir -p "$BATCH_SHARDS_DIR" && cd "$BATCH_SHARDS_DIR" && printf "%s\\n" "$TEXT" | split -l 2 - part- '
          '&& ls | awk \'BEGIN {printf "["} {printf "%s\\"%s\\"", (NR > 1 ? "," : ""), $0} END {print "]"}\' '
          '> "$BATCH_SHARD_LIST"'],
    env={"TEXT": "{{workflow.parameters.text}}"},
    **SMALL,
)
COUNT = JobDefinition(
    "wc-map",
    image="alpine:3.19",
    command=["sh", "-c"],
    args=['wc -w < "$BATCH_SHARD_FILE" | tr -d " " > "$BATCH_RESULT_FILE"'],
    outputs={"words": "/tmp/result"},
    **SMALL,
)
SUM = JobDefinition(
    "wc-reduce",
    image="alpine:3.19",
    command=["sh", "-c"],
    args=['cat "$BATCH_RESULTS_DIR"/* | awk \'{s += $1} END {print s}\' > /tmp/total'],
    outputs={"total": "/tmp/total"},
    **SMALL,
)

GRAPH = MapReduce("batch-wordcount", split=SPLIT, map=COUNT, reduce=SUM, parallelism=4)

with DAG(
    dag_id="argo_eci_batch_wordcount",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"text": Param(TEXT, type="string", minLength=1, description="the text whose words are counted")},
    tags=["argo", "eci", "batch", "mapreduce", "example"],
) as dag:
    EciBatchOperator(task_id="wordcount", graph=GRAPH, parameters={"text": "{{ params.text }}"},
                     poll_interval=1, timeout=600)

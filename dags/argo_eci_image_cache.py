"""The seed's image-cache advice as a DAG: cache a fan-out's images, then run it with the cache pinned.

The seed guide recommends creating an image cache ahead of a high-concurrency Argo run and using
it with ``imagePullPolicy: IfNotPresent``, so that pods skip the image pull (their events show
``SuccessfulHitImageCache``):

1. ``cache_images`` (:class:`~airflow_argo_eci.operators.eci.EciImageCacheOperator`) creates an ECI
   ``ImageCache`` holding the fan-out's image, or reuses a Ready one that already holds it, waits
   (deferred) until it is ``Ready`` and returns its ``imageCacheId``;
2. ``fanout`` runs the seed's ``parallelism-limit1`` workflow (``steps`` sleeping steps, DAG params:
   10 steps of 1 s by default; the seed runs 100 of 30 s) on ECI with the seed's settings
   (several instance specs, random multi-zone placement, fail-fast, retries), the cache pinned by
   the id the first task returned (``k8s.aliyun.com/eci-imc-id``) and ``IfNotPresent`` on every
   container. The id is an Airflow template, rendered and validated when the task runs.

Both tasks carry one quick retry: a task that resumed from deferral can be marked ``failed``
although it succeeded (apache/airflow#72716, #71580); the retry reattaches to the cache or the
workflow the first try created.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_argo_eci.eci import EciProfile, RetryStrategy
from airflow_argo_eci.operators.argo import ArgoWorkflowOperator
from airflow_argo_eci.operators.eci import EciImageCacheOperator

#: the fan-out's image (the seed's)
IMAGE = "alpine:latest"

#: the seed's image-cache workflow settings, with the cache the first task made pinned
ECI = EciProfile(
    use_specs=("ecs.c6.large", "ecs.c5.large", "2-4Gi"),
    schedule_strategy="VSwitchRandom",
    fail_strategy="fail-fast",
    retry_strategy=RetryStrategy(limit=3, retry_policy="Always"),
    parallelism=100,
    image_cache_id="{{ ti.xcom_pull(task_ids='cache_images') }}",
    image_pull_policy="IfNotPresent",
)

with DAG(
    dag_id="argo_eci_image_cache",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "steps": Param(10, type="integer", minimum=1, maximum=1000, description="sleeping steps of the fan-out"),
        "sleep": Param(1, type="integer", minimum=0, maximum=3600, description="seconds each step sleeps"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(seconds=5)},
    tags=["argo", "eci", "image-cache", "example"],
) as dag:
    cache_images = EciImageCacheOperator(
        task_id="cache_images",
        images=[IMAGE],
        retention_days=1,
        deferrable=True,
        poll_interval=1,
        timeout=1800,
    )
    fanout = ArgoWorkflowOperator(
        task_id="fanout",
        workflow="workflows/parallelism-limit1.yaml",
        parameters={"steps": "{{ params.steps }}", "seconds": "{{ params.sleep }}"},
        labels={"app": "image-cache"},
        eci=ECI,
        deferrable=True,
        poll_interval=1,
        timeout=1800,
    )
    cache_images >> fanout

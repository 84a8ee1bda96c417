"""Batch-compute jobs on Argo Workflows: job definitions, jobs, array jobs, job graphs and queues.

The concepts of a batch system (AWS Batch, Alibaba Cloud BatchCompute) mapped onto Argo::

    train = JobDefinition("train", image="python:3.12-slim", command=["python", "-c", "..."],
                          vcpu=0.5, memory="1Gi", retries=2)
    prep = ArrayJob(train, name="prep", size=5, start=1)        # job-index 1..5
    fit = Job(train, name="fit").after(prep)                     # waits for every child
    workflow = JobGraph("nightly", [prep, fit]).render()         # a plain Argo Workflow dict

Pure: no Airflow, no HTTP (``register``/``ensure`` call the hook they are given).
"""

from airflow_argo_eci.batch.definitions import (
    ARRAY_INDEX_ENV,
    ARRAY_INDEX_PARAMETER,
    ITEM_ENV,
    ITEM_PARAMETER,
    JobDefinition,
)
from airflow_argo_eci.batch.graph import DEFAULT_MAX_ARRAY_SIZE, JobGraph
from airflow_argo_eci.batch.jobs import ArrayJob, Dependency, Job
from airflow_argo_eci.batch.mapreduce import MapReduce
from airflow_argo_eci.batch.queues import JobQueue
from airflow_argo_eci.batch.results import job_results

__all__ = [
    "ARRAY_INDEX_ENV",
    "ARRAY_INDEX_PARAMETER",
    "DEFAULT_MAX_ARRAY_SIZE",
    "ITEM_ENV",
    "ITEM_PARAMETER",
    "ArrayJob",
    "Dependency",
    "Job",
    "JobDefinition",
    "JobGraph",
    "JobQueue",
    "MapReduce",
    "job_results",
]

"""The seed's loop as a batch array job: five children, each printing row ``job-index`` of a file.

In a batch system this is an array job of size 5 over one job definition; the seed's Argo version
is a ``withSequence`` loop passing ``job-index`` 1..5 to ``print-pet.sh``, which prints that row of
``pets.input``. Here the definition writes ``pets.input`` itself (the seed packs it into its image)
and prints its row with ``sed``; :class:`~airflow_argo_eci.batch.ArrayJob` renders the loop, and the
task returns each child's printed row (output ``pet``) keyed by its ``job-index``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_argo_eci.batch import ArrayJob, JobDefinition, JobGraph
from airflow_argo_eci.eci import EciProfile
from airflow_argo_eci.operators.batch import EciBatchOperator

#: the rows of the seed's ``pets.input``
PETS = ("dog", "cat", "bird", "fish", "hamster")

PRINT_PET = JobDefinition(
    "print-pet",
    image="alpine:3.19",
    command=["sh", "-c"],
    args=["printf '%s\\n' " + " ".join(PETS) + " > /tmp/pets.input && "
          "sed -n '{{inputs.parameters.job-index}}p' /tmp/pets.input | tee /tmp/pet"],
    outputs={"pet": "/tmp/pet"},
    vcpu=0.25,
    memory="64Mi",
    timeout=120,
    # the compute environment: ECI instances of these specs, in any zone
    eci=EciProfile(use_specs=("2-4Gi", "ecs.c6.large"), schedule_strategy="VSwitchRandom"),
)

GRAPH = JobGraph("batch-loop", [ArrayJob(PRINT_PET, name="print-pet", size=len(PETS), start=1)])

with DAG(
    dag_id="argo_eci_batch_loop",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["argo", "eci", "batch", "example"],
) as dag:
    EciBatchOperator(task_id="loop", graph=GRAPH, poll_interval=1, timeout=600)

"""``airflow-argo-eci``: the command line (``local up|down|status|env``, ``stack up|status|down``, ``doctor``).

Composes the ``local`` group (:mod:`airflow_argo_eci.local.cli`, the cluster alone, no Airflow) and
the ``stack`` group (:mod:`airflow_argo_eci.stack.cli`, the cluster plus Airflow's services).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from airflow_argo_eci.local import cli as local_cli
from airflow_argo_eci.preflight_cli import add_doctor_parser
from airflow_argo_eci.stack.cli import add_stack_parser

DESCRIPTION = "Airflow + serverless Argo Workflows on this machine: the local cluster and the stack."


def running_local_cluster() -> tuple[Path, str] | None:
    """The kubeconfig and namespace of the local cluster running in the default state directory
    (``$AIRFLOW_ARGO_ECI_STATE_DIR``), or None: ``doctor``'s default target."""
    from airflow_argo_eci.local.connections import DEFAULT_NAMESPACE
    from airflow_argo_eci.local.paths import StatePaths, default_state_dir

    paths = StatePaths(default_state_dir())
    return (paths.kubeconfig, DEFAULT_NAMESPACE) if local_cli.server_info(paths) else None


def main(argv: list[str] | None = None) -> int:
    """Run ``airflow-argo-eci`` with its command groups and ``doctor``; returns the command's exit code."""
    return local_cli.main(argv, add_stack_parser, partial(add_doctor_parser, find_local=running_local_cluster),
                          description=DESCRIPTION)


if __name__ == "__main__":
    raise SystemExit(main())

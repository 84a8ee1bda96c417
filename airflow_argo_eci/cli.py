"""``airflow-argo-eci``: the command line (``local up|down|status|env``, ``stack up|status|down``).

Composes the ``local`` group (:mod:`airflow_argo_eci.local.cli`, the cluster alone, no Airflow) and
the ``stack`` group (:mod:`airflow_argo_eci.stack.cli`, the cluster plus Airflow's services).
"""

from __future__ import annotations

from airflow_argo_eci.local import cli as local_cli
from airflow_argo_eci.stack.cli import add_stack_parser

DESCRIPTION = "Airflow + serverless Argo Workflows on this machine: the local cluster and the stack."


def main(argv: list[str] | None = None) -> int:
    """Run ``airflow-argo-eci`` with both command groups; returns the command's exit code."""
    return local_cli.main(argv, add_stack_parser, description=DESCRIPTION)


if __name__ == "__main__":
    raise SystemExit(main())

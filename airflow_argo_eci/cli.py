"""``airflow-argo-eci``: the command line (``local up|down|status|env``, ``stack up|status|down``).

Composes the ``local`` group (:mod:`airflow_argo_eci.local.cli`, the cluster alone, no Airflow) and
the ``stack`` group (:mod:`airflow_argo_eci.stack.cli`, the cluster plus Airflow's services).
"""

from __future__ import annotations

import argparse

from airflow_argo_eci.local.cli import add_local_parser
from airflow_argo_eci.stack.cli import add_stack_parser


def build_parser() -> argparse.ArgumentParser:
    """The ``airflow-argo-eci`` parser with both command groups."""
    parser = argparse.ArgumentParser(prog="airflow-argo-eci",
                                     description="Airflow + serverless Argo Workflows on this machine.")
    top = parser.add_subparsers(dest="group", required=True)
    add_local_parser(top)
    add_stack_parser(top)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns its exit code."""
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())

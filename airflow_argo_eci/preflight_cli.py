"""``airflow-argo-eci doctor``: the preflight as a command (a table, or ``--json``; exit code 1 on a failed check).

The target, first found: ``--conn-id`` (an Airflow ``argo_workflows`` connection), ``--kubeconfig``
(with ``--context``), a running local cluster (``airflow-argo-eci local up``; the top-level command
hands its locator in), ``$KUBECONFIG``, ``~/.kube/config``. Exit codes: 0 when no check ends in one
of ``--fail-on`` (default ``fail``: ``unknown`` and ``warn`` are reported, not failures, since a
managed control plane legitimately hides the controller; ``--fail-on fail,unknown`` makes them
count), 1 when one does, 2 when nothing could be checked (no target, bad arguments, cluster
unreachable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_argo_eci.eci_conventions import ARGO_NAMESPACE
from airflow_argo_eci.errors import ArgoEciError
from airflow_argo_eci.preflight_checks import STATUSES

DESCRIPTION = """\
Check a cluster against the practices of Argo on ECI: Argo's CRDs, version, resources and executor,
the artifact repository, ECI's vSwitches, the ImageCache and Fluid CRDs (--require), RBAC.

Target, first found: --conn-id, --kubeconfig, a running local cluster, $KUBECONFIG, ~/.kube/config.
Exit codes: 0 no check in --fail-on (default: fail; unknown and warn are reported only, e.g. a
managed control plane hides the controller: --fail-on fail,unknown makes unknown count), 1 some
check in --fail-on, 2 nothing checked (no target, bad arguments, cluster unreachable)."""

#: finds a running local cluster: ``(kubeconfig, namespace)`` or None
LocalLocator = Callable[[], "tuple[Path, str] | None"]


class DoctorError(ArgoEciError):
    """Nothing to check, or the arguments do not make sense (exit code 2)."""


def _default_kubeconfig() -> Path | None:
    value = os.environ.get("KUBECONFIG", "")
    candidates = [Path(value.split(os.pathsep)[0]).expanduser()] if value else []
    candidates.append(Path("~/.kube/config").expanduser())
    return next((p for p in candidates if p.is_file()), None)


def make_reader(args: argparse.Namespace, find_local: LocalLocator | None) -> tuple[Any, str | None]:
    """``(reader, namespace hint)`` of the target the arguments name (see the module docstring)."""
    if args.conn_id:
        if args.kubeconfig or args.context:
            raise DoctorError("--conn-id and --kubeconfig/--context are alternatives: give one")
        from airflow_argo_eci.hooks.cluster import ClusterHook

        return ClusterHook(argo_conn_id=args.conn_id).get_conn(), None
    from airflow_argo_eci.hooks.argo_connection import parse_connection
    from airflow_argo_eci.hooks.cluster import ClusterReader

    kubeconfig: Path | None = Path(args.kubeconfig).expanduser() if args.kubeconfig else None
    namespace: str | None = None
    if kubeconfig is None and find_local is not None:
        found = find_local()
        if found is not None:
            kubeconfig, namespace = found
    if kubeconfig is None:
        kubeconfig = _default_kubeconfig()
    if kubeconfig is None:
        raise DoctorError("nothing to check: no --conn-id or --kubeconfig, no running local cluster "
                          "(start one: airflow-argo-eci local up --detach), no $KUBECONFIG and no ~/.kube/config")
    if not kubeconfig.is_file():
        raise DoctorError(f"kubeconfig {kubeconfig} does not exist")
    extra: dict[str, Any] = {"kube_config_path": str(kubeconfig)}
    if args.context:
        extra["context"] = args.context
    return ClusterReader(parse_connection("doctor", extra)), namespace


def _fail_on(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in values if v not in STATUSES]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(STATUSES)} (comma-separated), got {text!r}")
    return values


def cmd_doctor(args: argparse.Namespace) -> int:
    """Run the preflight and print it; the exit code of the module docstring."""
    from airflow_argo_eci.preflight import PreflightOptions, parse_require, run_preflight

    reader = None
    try:
        reader, hint = make_reader(args, getattr(args, "find_local", None))
        namespace = args.namespace or hint or reader.default_namespace()
        options = PreflightOptions(namespace, args.argo_namespace, parse_require(args.require))
        report = run_preflight(reader, options)
    except ArgoEciError as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return 2
    finally:
        if reader is not None:
            reader.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table())
    if report.error:
        print(f"doctor: cannot reach {report.target}: {report.error}", file=sys.stderr)
        return 2
    return 1 if report.matching(args.fail_on) else 0


def add_doctor_parser(top: Any, find_local: LocalLocator | None = None) -> None:
    """Add ``doctor`` to the top-level command's subparsers ``top``; ``find_local`` locates a running
    local cluster (the default target)."""
    doctor = top.add_parser("doctor", help="check a cluster against the practices of Argo on ECI",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    doctor.add_argument("--kubeconfig", help="the kubeconfig of the cluster to check")
    doctor.add_argument("--context", help="the kubeconfig context (default: its current context)")
    doctor.add_argument("--conn-id", help="an Airflow argo_workflows connection instead of a kubeconfig")
    doctor.add_argument("--namespace", help="the workflows' namespace (default: the target's)")
    doctor.add_argument("--argo-namespace", default=ARGO_NAMESPACE,
                        help="where Argo is installed (default: %(default)s)")
    doctor.add_argument("--require", default="", help="optional components the DAGs use: imagecache,fluid")
    doctor.add_argument("--fail-on", type=_fail_on, default=("fail",), metavar="STATUSES",
                        help="statuses that make the exit code 1 (default: fail; e.g. fail,unknown)")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(func=cmd_doctor, find_local=find_local)

"""The main job: run the flagship example DAG end to end on a local cluster.

Starts a local cluster, points Airflow at it (``AIRFLOW_CONN_ARGO_DEFAULT`` with the generated
kubeconfig, exactly as for ACK), migrates a throwaway Airflow metadata database, and runs
``airflow dags test argo_eci_fanout``: an ECI fan-out submitted and waited on synchronously
(logs streamed), the same deferred to the triggerer, a sensor on it, and a task reading its
outputs from XCom. Then it prints what the cluster saw.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_DAG = "argo_eci_fanout"


def _summary(cluster: Any, dag_id: str) -> list[str]:
    from airflow_argo_eci.local.api.resources import PODS, WORKFLOWS

    lines = []
    workflows, _, _ = cluster.store.list(WORKFLOWS, "argo", label_selector=f"airflow.apache.org/dag-id={dag_id}")
    for wf in workflows:
        status = wf.get("status") or {}
        name = wf["metadata"]["name"]
        pods, _, _ = cluster.store.list(PODS, "argo", label_selector=f"workflows.argoproj.io/workflow={name}")
        nodes = sorted({(p.get("spec") or {}).get("nodeName", "?") for p in pods})
        eci = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get("alibabacloud.com/eci") == "true")
        root = (status.get("nodes") or {}).get(name) or {}
        outputs = {p["name"]: p.get("value") for p in (root.get("outputs") or {}).get("parameters") or []}
        lines.append(f"workflow {name} ({wf['metadata']['labels'].get('airflow.apache.org/task-id')}): "
                     f"{status.get('phase')} {status.get('progress', '')}, {len(pods)} pods on {nodes}, "
                     f"{eci} with the ECI label, outputs {outputs}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dag", default=DEFAULT_DAG, help="the example DAG to run (default: %(default)s)")
    parser.add_argument("--dags-folder", type=Path, default=Path("dags"), help="where the example DAGs are")
    parser.add_argument("--date", default="2026-11-23", help="logical date of the run")
    args = parser.parse_args(argv)
    dags_folder = args.dags_folder.resolve()
    if not (dags_folder / f"{args.dag}.py").is_file():
        print(f"no DAG file {args.dag}.py in {dags_folder}; run from the repository or pass --dags-folder",
              file=sys.stderr)
        return 2
    from airflow_argo_eci.local.connections import argo_kubernetes_connection, oss_connection
    from airflow_argo_eci.local.server import LocalCluster

    with tempfile.TemporaryDirectory(prefix="argo-eci-demo-") as tmp, LocalCluster(Path(tmp) / "cluster") as cluster:
        home = Path(tmp) / "airflow"
        assert cluster.oss is not None
        conns = {"AIRFLOW_CONN_ARGO_DEFAULT": argo_kubernetes_connection(cluster.paths),
                 "AIRFLOW_CONN_OSS_DEFAULT": oss_connection(cluster.paths, cluster.oss.endpoint,
                                                            region=cluster.oss.region)}
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **{k: json.dumps(v) for k, v in conns.items()}}
        print(f"local cluster on {cluster.url}; Airflow home {home}", flush=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"airflow dags test {args.dag} {args.date}", flush=True)
        run = subprocess.run([sys.executable, "-m", "airflow", "dags", "test", args.dag, args.date], env=env)
        print("\n".join(["", "what the cluster saw:", *_summary(cluster, args.dag)]))
        print(f"DAG run {'succeeded' if run.returncode == 0 else 'FAILED'}")
        return run.returncode


if __name__ == "__main__":
    sys.exit(main())

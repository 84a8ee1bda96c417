"""Provider metadata: discovered through the entry point, valid against Airflow's schema, and
every class it names imports."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema

import airflow_argo_eci


def test_entry_point_points_at_provider_info() -> None:
    (ep,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_argo_eci")]
    assert ep.load() is airflow_argo_eci.get_provider_info


def test_provider_info_is_valid_and_importable() -> None:
    info = airflow_argo_eci.get_provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    for group in ("operators", "sensors", "hooks", "triggers"):
        for entry in info[group]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for path in [c["hook-class-name"] for c in info["connection-types"]] + info["extra-links"]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path
    assert info["connection-types"][0]["connection-type"] == "argo_workflows"


def test_operator_import_stays_light() -> None:
    """DAG parsing imports the operator: no kubernetes, hera or oss2 on that path."""
    probe = ("import sys, airflow_argo_eci.operators.argo, airflow_argo_eci.sensors.argo, "
             "airflow_argo_eci.operators.oss, airflow_argo_eci.sensors.oss, airflow_argo_eci.triggers.oss; "
             "print(sorted(m for m in ('kubernetes', 'kubernetes_asyncio', 'hera', 'oss2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"

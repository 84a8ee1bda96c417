"""The plugin ships with the provider: registered through the provider info's ``plugins`` and
loaded by Airflow's own plugin manager (which, in Airflow 3.3, loads provider plugins only with
``[core] lazy_discover_providers = False``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_argo_eci import get_provider_info
from airflow_argo_eci.plugins.argo_view import URL_PREFIX, ArgoEciPlugin

PROBE = """
import json
from airflow import plugins_manager as pm
apps, _ = pm.get_fastapi_plugins()
views, _ = pm._get_ui_plugins()
print(json.dumps({"apps": [a["url_prefix"] for a in apps],
                  "views": [[v["url_route"], v["destination"]] for v in views],
                  "errors": pm._get_plugins()[1]}))
"""


def test_provider_info_names_the_plugin_class() -> None:
    plugins = get_provider_info()["plugins"]
    assert plugins == [{"name": "argo_eci", "plugin-class": "airflow_argo_eci.plugins.argo_view.ArgoEciPlugin"}]
    assert ArgoEciPlugin.name == "argo_eci"


def test_airflow_loads_the_plugin_from_the_provider(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False",
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=180,
                         check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert URL_PREFIX in loaded["apps"]
    assert ["argo-workflow", "task_instance"] in loaded["views"]
    assert ["argo-workflows", "nav"] in loaded["views"]
    assert loaded["errors"] == {}


def test_static_files_are_in_the_package() -> None:

    static = Path(__file__).resolve().parents[2] / "airflow_argo_eci" / "plugins" / "static"
    for name in ("argo.css", "argo.js"):
        text = (static / name).read_text()
        assert "http://" not in text and "https://" not in text, f"{name} must not load anything from the internet"

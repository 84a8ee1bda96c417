"""The e2e tier on a real cluster: ``run.sh`` (kind + pinned Argo Workflows + artifact repository).

It needs a Docker engine, kind and kubectl, and takes about ten minutes, so it runs only where those
exist and ``AIRFLOW_ARGO_ECI_KIND=1`` asks for it; otherwise it is skipped with the reason. What can
be checked without them is checked here: the script parses, pins every version it installs, and
refuses with a clear message when a prerequisite is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

RUN = Path(__file__).with_name("run.sh")


def _kind_unavailable() -> str | None:
    missing = [tool for tool in ("docker", "kind", "kubectl") if shutil.which(tool) is None]
    if missing:
        return f"needs a Docker engine, kind and kubectl; missing on this machine: {', '.join(missing)}"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        return "needs a Docker engine; `docker info` cannot reach one on this machine"
    if os.environ.get("AIRFLOW_ARGO_ECI_KIND") != "1":
        return "set AIRFLOW_ARGO_ECI_KIND=1 to create a kind cluster and run the tier on it (about 10 minutes)"
    return None


def test_e2e_tier_on_kind() -> None:
    reason = _kind_unavailable()
    if reason:
        pytest.skip(reason)
    result = subprocess.run([str(RUN)], timeout=3600)
    assert result.returncode == 0


def test_script_parses_and_pins_what_it_installs() -> None:
    subprocess.run(["bash", "-n", str(RUN)], check=True)
    text = RUN.read_text()
    assert re.search(r"^ARGO_VERSION=v\d+\.\d+\.\d+\s", text, re.M)
    assert "releases/download/$ARGO_VERSION/install.yaml" in text
    images = re.findall(r"^\w+_IMAGE=(\S+)", text, re.M)
    assert len(images) >= 3, images
    for image in images:
        _, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{image} is not pinned"
    assert "emissary" in text and "artifact-repositories" in text


def test_script_names_a_missing_prerequisite(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "mktemp", "rm", "printf"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    result = subprocess.run([str(RUN)], capture_output=True, text=True, timeout=60,
                            env={"PATH": str(bin_dir), "TMPDIR": str(tmp_path)})
    assert result.returncode == 2
    assert "docker is not installed" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["bin"]  # the work directory was cleaned up

"""EciProfile.datasets: a Fluid Dataset's PVC mounted in the templates that ask for it, golden
against the seed document's ``parallelism-fluid`` workflow, and the errors that name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from airflow_argo_eci.eci import EciProfile
from airflow_argo_eci.eci_datasets import DatasetMount
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.fluid_conventions import LABEL_FLUID_SIDECAR_TARGET
from airflow_argo_eci.workflows import load_workflow
from tests.goldens import assert_golden
from tests.test_eci import GOLDEN, _dump

SEED_MOUNT = DatasetMount("serverless-data", "/data", ("md5sum",), volume_name="data-vol")
PROFILE = EciProfile(use_specs=("8-16Gi",), parallelism=100, datasets=(SEED_MOUNT,))


def _input() -> dict[str, Any]:
    return load_workflow(GOLDEN / "parallelism-fluid-mount.input.yaml")


def test_golden() -> None:
    rendered = _dump(PROFILE.apply(_input()))
    golden = GOLDEN / "parallelism-fluid-mount.yaml"
    assert_golden(golden, rendered)


def test_rendering_equals_the_seed_document() -> None:
    """The seed's Fluid workflow (volume, mount, sidecar label) is what the profile makes of the bare one."""
    assert PROFILE.apply(_input()) == yaml.safe_load((GOLDEN / "seed" / "parallelism-fluid.yaml").read_text())


def test_applying_twice_changes_nothing_and_the_input_is_kept() -> None:
    workflow = _input()
    before = copy.deepcopy(workflow)
    once = PROFILE.apply(workflow)
    assert workflow == before
    assert PROFILE.apply(once) == once


def test_mapping_form_and_round_trip() -> None:
    profile = EciProfile.from_dict({"datasets": [{"dataset": "serverless-data", "mount_path": "/data",
                                                  "templates": ["md5sum"], "volume_name": "data-vol"}],
                                    "use_specs": ["8-16Gi"], "parallelism": 100})
    assert profile == PROFILE
    assert EciProfile.from_dict(PROFILE.to_dict()) == PROFILE
    assert PROFILE.to_dict()["datasets"] == [{"dataset": "serverless-data", "mount_path": "/data",
                                              "templates": ["md5sum"], "volume_name": "data-vol"}]


def test_defaults_read_only_and_no_label_off_eci() -> None:
    profile = EciProfile(enabled=False, scheduler_name=None,
                         datasets=[{"dataset": "ds", "mount_path": "/mnt/ds", "templates": "md5sum",
                                    "read_only": True}])
    result = profile.apply(_input())
    md5 = next(t for t in result["spec"]["templates"] if t["name"] == "md5sum")
    assert md5["volumes"] == [{"name": "ds", "persistentVolumeClaim": {"claimName": "ds"}}]
    assert md5["container"]["volumeMounts"] == [{"name": "ds", "mountPath": "/mnt/ds", "readOnly": True}]
    assert LABEL_FLUID_SIDECAR_TARGET not in (result["spec"].get("podMetadata") or {}).get("labels", {})


def test_apply_to_template_mounts_only_when_named() -> None:
    md5 = next(t for t in _input()["spec"]["templates"] if t["name"] == "md5sum")
    assert PROFILE.apply_to_template(md5)["volumes"][0]["persistentVolumeClaim"] == {"claimName": "serverless-data"}
    assert "volumes" not in PROFILE.apply_to_template({**md5, "name": "other"})


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ({"dataset": "Bad_Name", "mount_path": "/d", "templates": ["md5sum"]}, "DatasetMount.dataset: 'Bad_Name'"),
        ({"dataset": "ds", "mount_path": "data", "templates": ["md5sum"]}, "mount_path: 'data' must be an absolute"),
        ({"dataset": "ds", "mount_path": "/", "templates": ["md5sum"]}, "other than '/'"),
        ({"dataset": "ds", "mount_path": "/d", "templates": []}, "templates must name at least one template"),
        ({"dataset": "ds", "mount_path": "/d", "templates": ["md5sum"], "size": 1}, "unknown field(s) size"),
        ({"dataset": "ds", "mount_path": "/d", "templates": ["nope"]}, "'nope' names no template of the workflow"),
        ({"dataset": "ds", "mount_path": "/d", "templates": ["parallelism-fluid"]}, "has no container or script"),
    ],
)
def test_bad_mounts_name_the_field(mount: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError) as info:
        EciProfile(datasets=[mount]).apply(_input())
    assert message in str(info.value)


def test_conflicts_are_refused() -> None:
    workflow = _input()
    md5 = next(t for t in workflow["spec"]["templates"] if t["name"] == "md5sum")
    md5["volumes"] = [{"name": "data-vol", "emptyDir": {}}]
    with pytest.raises(WorkflowSpecError, match=r"templates\[md5sum\].volumes already has a volume named 'data-vol'"):
        PROFILE.apply(workflow)
    md5["volumes"] = []
    md5["container"]["volumeMounts"] = [{"name": "scratch", "mountPath": "/data"}]
    with pytest.raises(WorkflowSpecError, match="/data is already the mount path of volume 'scratch'"):
        PROFILE.apply(workflow)
    with pytest.raises(WorkflowSpecError, match="must be 'eci' when datasets are mounted"):
        EciProfile(datasets=(SEED_MOUNT,), labels={LABEL_FLUID_SIDECAR_TARGET: "runc"})
    with pytest.raises(WorkflowSpecError, match="datasets are set on the workflow-level profile only"):
        PROFILE.apply(_input(), templates={"md5sum": {"datasets": []}})

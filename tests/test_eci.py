"""EciProfile: golden renderings of the seed documents' workflows, validation, no-clobber merging,
and a profiled workflow's pods on the local cluster."""

from __future__ import annotations

import copy
import json
import pickle
import time
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_argo_eci.eci import Backoff, EciProfile, RetryStrategy
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.workflows import load_workflow
from tests.goldens import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "eci"

SEED_MULTISPEC = EciProfile(
    use_specs=("ecs.c6.large", "ecs.c5.large", "2-4Gi"),
    schedule_strategy="VSwitchRandom",
    fail_strategy="fail-fast",
    retry_strategy=RetryStrategy(limit=3, retry_policy="Always"),
    parallelism=10,
)

#: the image cache the seed's pods hit (its SuccessfulHitImageCache event)
SEED_CACHE_ID = "imc-2zeedp8bxor2kcxxx"

#: case -> (input file stem, profile, per-template overrides, whether seed/<case>.yaml holds the document's YAML)
CASES: dict[str, tuple[str, EciProfile, dict[str, dict[str, Any]] | None, bool]] = {
    "parallelism-limit1": ("parallelism-limit1", EciProfile(parallelism=10), None, True),
    "parallelism-limit1-multispec": ("parallelism-limit1-multispec", SEED_MULTISPEC, None, True),
    "parallelism-limit1-imagecache": (
        "parallelism-limit1-imagecache", SEED_MULTISPEC.replace(parallelism=100), None, True),
    "parallelism-fluid": (
        "parallelism-fluid",
        EciProfile(use_specs=("8-16Gi",), parallelism=100, labels={"alibabacloud.com/fluid-sidecar-target": "eci"}),
        None, True),
    "artifact-large-file": (
        "artifact-large-file",
        EciProfile(enabled=False, scheduler_name=None),
        {"main": {"extra_ephemeral_storage": "20Gi", "use_specs": ["ecs.g7.xlarge"]}},
        True),
    "parallelism-limit1-imagesnapshot": (
        "parallelism-limit1-imagecache",
        SEED_MULTISPEC.replace(parallelism=100, image_snapshot_id="imc-2zeedp8bxor2kcxxx",
                               auto_match_image_cache=False, extra_ephemeral_storage="50Gi"),
        None, False),
    "parallelism-limit1-imc-pinned": (
        "parallelism-limit1-imc",
        SEED_MULTISPEC.replace(parallelism=100, image_cache_id=SEED_CACHE_ID, image_pull_policy="IfNotPresent"),
        None, False),
    "parallelism-limit1-imc-auto": (
        "parallelism-limit1-imc",
        SEED_MULTISPEC.replace(parallelism=100, auto_match_image_cache=True, image_cache_perfect_match=True,
                               image_pull_policy="IfNotPresent"),
        None, False),
    "pull-policy-containers": ("pull-policy-containers", EciProfile(image_pull_policy="IfNotPresent"), None, False),
    "dag-spot": (
        "dag-spot",
        EciProfile(
            use_specs=("2-4Gi", "4-8Gi", "ecs.c6.xlarge"),
            vswitch_ids=("vsw-2ze23nqzig8inprou", "vsw-2ze94pjtfuj9vaymf"),
            schedule_strategy="VSwitchOrdered",
            fail_strategy="fail-back",
            spot_strategy="SpotWithPriceLimit",
            spot_price_limit=0.25,
            spot_duration=0,
            retry_strategy=RetryStrategy(limit=2, retry_policy="OnError",
                                         backoff=Backoff(duration="10s", factor=2, max_duration="5m")),
        ),
        {"diamond": {"parallelism": 2}},
        False),
    "loops-acs": (
        "loops-acs",
        EciProfile(enabled=False, scheduler_name=None, compute_class="performance", compute_qos="best-effort",
                   parallelism=5),
        None, False),
}


def _render(case: str) -> dict[str, Any]:
    stem, profile, overrides, _ = CASES[case]
    return profile.apply(load_workflow(GOLDEN / f"{stem}.input.yaml"), templates=overrides)


class _GoldenDumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as literal blocks, so golden files read like the documents."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_GoldenDumper.add_representer(str, _str_representer)


def _dump(workflow: dict[str, Any]) -> str:
    return yaml.dump(workflow, Dumper=_GoldenDumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=120)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    rendered = _dump(_render(case))
    golden = GOLDEN / f"{case}.yaml"
    assert_golden(golden, rendered)


@pytest.mark.parametrize("case", sorted(c for c, (_, _, _, seed) in CASES.items() if seed))
def test_rendering_equals_the_seed_document(case: str) -> None:
    """The seed documents' workflows are exactly what the profile produces from the plain ones."""
    seed = yaml.safe_load((GOLDEN / "seed" / f"{case}.yaml").read_text())
    assert _render(case) == seed


def test_input_is_not_modified() -> None:
    workflow = load_workflow(GOLDEN / "parallelism-fluid.input.yaml")
    before = copy.deepcopy(workflow)
    result = SEED_MULTISPEC.apply(workflow)
    assert workflow == before
    assert result is not workflow and result["spec"]["templates"] is not workflow["spec"]["templates"]


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"enabled": "yes"}, "EciProfile.enabled must be true or false"),
        ({"scheduler_name": "ECI Scheduler"}, "EciProfile.scheduler_name: 'ECI Scheduler'"),
        ({"use_specs": ("ecs.c6.large", "ecs.c6")}, "EciProfile.use_specs[1]: 'ecs.c6'"),
        ({"use_specs": ("2-4G",)}, "EciProfile.use_specs[0]: '2-4G' is neither"),
        ({"use_specs": ("0-4Gi",)}, "EciProfile.use_specs[0]: '0-4Gi'"),
        ({"use_specs": ("2-0Gi",)}, "EciProfile.use_specs[0]: '2-0Gi'"),
        ({"use_specs": ("c6.large",)}, "use e.g. 'ecs.c6.large' or '2-4Gi'"),
        ({"use_specs": ("2-4Gi", "2-4Gi")}, "EciProfile.use_specs lists 2-4Gi more than once"),
        ({"use_specs": "2-4Gi,,4-8Gi"}, "EciProfile.use_specs[1] must be a non-empty string"),
        ({"use_specs": 4}, "EciProfile.use_specs must be a list of strings"),
        ({"schedule_strategy": "VSwitchFirst"}, "EciProfile.schedule_strategy: 'VSwitchFirst' is not supported: "
                                                "use one of VSwitchOrdered, VSwitchRandom"),
        ({"fail_strategy": "fail-slow"}, "use one of fail-back, fail-over, fail-fast"),
        ({"vswitch_ids": ("vsw-abc", "subnet-1")}, "EciProfile.vswitch_ids[1]: 'subnet-1' is not a vSwitch ID"),
        ({"spot_strategy": "Cheap"}, "EciProfile.spot_strategy: 'Cheap' is not supported"),
        ({"spot_strategy": "SpotWithPriceLimit"}, "EciProfile.spot_price_limit is required with "
                                                  "spot_strategy='SpotWithPriceLimit'"),
        ({"spot_price_limit": 0.5}, "EciProfile.spot_price_limit is only used with spot_strategy='SpotWithPriceLimit'"),
        ({"spot_strategy": "SpotAsPriceGo", "spot_price_limit": 0.5}, "only used with"),
        ({"spot_strategy": "SpotWithPriceLimit", "spot_price_limit": 0}, "must be a number > 0"),
        ({"spot_strategy": "SpotWithPriceLimit", "spot_price_limit": -1.0}, "must be a number > 0"),
        ({"spot_strategy": "SpotWithPriceLimit", "spot_price_limit": float("nan")}, "must be a number > 0"),
        ({"spot_strategy": "SpotWithPriceLimit", "spot_price_limit": "0.5"}, "must be a number > 0"),
        ({"spot_strategy": "SpotWithPriceLimit", "spot_price_limit": 0.1234}, "more than 3 decimal places"),
        ({"spot_duration": 1}, "EciProfile.spot_duration needs a spot_strategy"),
        ({"spot_strategy": "SpotAsPriceGo", "spot_duration": 2}, "EciProfile.spot_duration must be 1"),
        ({"auto_match_image_cache": "true"}, "EciProfile.auto_match_image_cache must be true, false or None"),
        ({"image_snapshot_id": "snap-123"}, "EciProfile.image_snapshot_id: 'snap-123' is not an image cache ID"),
        ({"extra_ephemeral_storage": "50G"}, "EciProfile.extra_ephemeral_storage: '50G' is not a size in GiB"),
        ({"extra_ephemeral_storage": "0Gi"}, "EciProfile.extra_ephemeral_storage: '0Gi'"),
        ({"compute_class": "gpu-fast"}, "use one of general-purpose, performance, gpu, gpu-hpn"),
        ({"compute_qos": "guaranteed"}, "use one of default, best-effort"),
        ({"retry_strategy": 3}, "EciProfile.retry_strategy must be a RetryStrategy or a mapping"),
        ({"retry_strategy": {"limit": 3, "policy": "Always"}}, "retry_strategy: unknown key(s) 'policy': allowed keys "
                                                               "are limit, retryPolicy, backoff"),
        ({"retry_strategy": {"retryPolicy": "Always"}}, "retry_strategy.limit is missing"),
        ({"retry_strategy": {"limit": -1}}, "retry_strategy.limit must be an int >= 0"),
        ({"retry_strategy": {"limit": 1, "retryPolicy": "Sometimes"}}, "retry_strategy.retryPolicy: 'Sometimes'"),
        ({"retry_strategy": {"limit": 1, "backoff": {"duration": "soon"}}}, "retry_strategy.backoff.duration: 'soon'"),
        ({"retry_strategy": {"limit": 1, "backoff": {"factor": 2}}}, "retry_strategy.backoff.duration is missing"),
        ({"retry_strategy": {"limit": 1, "backoff": {"duration": "1s", "factor": 0}}}, "backoff.factor must be an int"),
        ({"retry_strategy": {"limit": 1, "backoff": {"duration": "1s", "maxDuration": "1 day"}}},
         "retry_strategy.backoff.max_duration: '1 day'"),
        ({"parallelism": 0}, "EciProfile.parallelism must be an int >= 1"),
        ({"parallelism": True}, "EciProfile.parallelism must be an int >= 1"),
        ({"parallelism": "10"}, "EciProfile.parallelism must be an int >= 1"),
        ({"labels": {"team": "data science"}}, "EciProfile.labels.team: 'data science' is not a valid label value"),
        ({"labels": {"bad key": "x"}}, "EciProfile.labels: 'bad key' is not a valid Kubernetes key"),
        ({"labels": {"alibabacloud.com/eci": "false"}}, "set by the profile itself: use EciProfile.enabled"),
        ({"labels": {"team": 1}}, "EciProfile.labels.team: value must be a string"),
        ({"annotations": {"k8s.aliyun.com/eci-use-specs": "2-4Gi"}}, "use EciProfile.use_specs instead"),
        ({"annotations": ["a"]}, "EciProfile.annotations must be a mapping"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError) as info:
        EciProfile(**kwargs)
    assert message in str(info.value)
    with pytest.raises(WorkflowSpecError, match=r"EciProfile|retry_strategy"):
        EciProfile.from_dict(kwargs)


@pytest.mark.parametrize("spec", ["ecs.c6.large", "ecs.gn6i-c4g1.xlarge", "ecs.g7.16xlarge", "ecs.t6-c1m1.small",
                                  "2-4Gi", "0.5-1Gi", "0.25-0.5Gi", "64-512Gi"])
def test_valid_use_specs(spec: str) -> None:
    assert EciProfile(use_specs=(spec,)).pod_annotations()["k8s.aliyun.com/eci-use-specs"] == spec


def test_from_dict_rejects_unknown_keys_and_lists_the_allowed_ones() -> None:
    with pytest.raises(WorkflowSpecError) as info:
        EciProfile.from_dict({"use_spec": ["2-4Gi"]})
    message = str(info.value)
    assert "unknown key(s) 'use_spec'" in message
    assert "use_specs" in message and "retry_strategy" in message and "compute_qos" in message


def test_from_dict_to_dict_round_trip() -> None:
    profile = CASES["dag-spot"][1].replace(labels={"team": "data"}, annotations={"example.com/owner": "me"})
    data = profile.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["retry_strategy"] == {"limit": "2", "retryPolicy": "OnError",
                                      "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}}
    assert EciProfile.from_dict(data) == profile
    assert EciProfile().to_dict() == {}
    assert EciProfile.coerce(data) == profile
    assert EciProfile.coerce(profile) is profile and EciProfile.coerce(None) is None
    with pytest.raises(WorkflowSpecError, match="eci must be an EciProfile or a mapping"):
        EciProfile.coerce("eci")  # type: ignore[arg-type]


def test_profile_is_immutable_hashable_and_picklable() -> None:
    profile = EciProfile(labels={"team": "data"})
    with pytest.raises(FrozenInstanceError):
        profile.parallelism = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="read-only"):
        profile.labels["team"] = "other"  # type: ignore[index]
    assert pickle.loads(pickle.dumps(profile)) == profile
    assert copy.deepcopy(profile) == profile
    assert hash(profile) == hash(EciProfile(labels={"team": "data"}))


def test_replace_validates_and_rejects_unknown_fields() -> None:
    assert SEED_MULTISPEC.replace(parallelism=3).parallelism == 3
    with pytest.raises(WorkflowSpecError, match=r"EciProfile\.parallelism must be an int >= 1"):
        SEED_MULTISPEC.replace(parallelism=0)
    with pytest.raises(WorkflowSpecError, match=r"unknown key.*'paralelism'"):
        SEED_MULTISPEC.replace(paralelism=3)


def test_spot_and_image_cache_annotations() -> None:
    profile = EciProfile(spot_strategy="SpotWithPriceLimit", spot_price_limit=0.1, spot_duration=1,
                         auto_match_image_cache=True, image_snapshot_id="imc-abc123")
    assert profile.pod_annotations() == {
        "k8s.aliyun.com/eci-spot-strategy": "SpotWithPriceLimit",
        "k8s.aliyun.com/eci-spot-price-limit": "0.1",
        "k8s.aliyun.com/eci-spot-duration": "1",
        "k8s.aliyun.com/eci-auto-imc": "true",
        "k8s.aliyun.com/eci-imc-id": "imc-abc123",  # the legacy field renders the current key
    }
    assert EciProfile(spot_strategy="SpotWithPriceLimit", spot_price_limit=2).pod_annotations()[
        "k8s.aliyun.com/eci-spot-price-limit"] == "2"


# --------------------------------------------------------------------------------------------
# merging without clobbering
# --------------------------------------------------------------------------------------------


def _plain(**spec: Any) -> dict[str, Any]:
    return load_workflow({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "t-"},
        "spec": {"entrypoint": "main", **spec,
                 "templates": spec.pop("templates", None) or [{"name": "main", "container": {"image": "alpine"}}]},
    })


def test_existing_equal_values_are_kept() -> None:
    workflow = _plain(parallelism=10, podMetadata={"labels": {"alibabacloud.com/eci": "true", "team": "a"},
                                                   "annotations": {"k8s.aliyun.com/eci-fail-strategy": "fail-fast"}},
                      podSpecPatch="schedulerName: eci-scheduler\n")
    result = SEED_MULTISPEC.apply(workflow)
    assert result["spec"]["podMetadata"]["labels"] == {"alibabacloud.com/eci": "true", "team": "a"}
    assert result["spec"]["podSpecPatch"] == "schedulerName: eci-scheduler\n"  # untouched text
    assert result["spec"]["parallelism"] == 10


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"podMetadata": {"labels": {"alibabacloud.com/eci": "false"}}},
         "workflow.spec.podMetadata.labels.alibabacloud.com/eci is already set to 'false', which conflicts with "
         "'true'"),
        ({"podMetadata": {"annotations": {"k8s.aliyun.com/eci-use-specs": "2-4Gi"}}},
         "workflow.spec.podMetadata.annotations.k8s.aliyun.com/eci-use-specs is already set to '2-4Gi'"),
        ({"podMetadata": {"labels": {"alibabacloud.com/eci": True}}},
         "workflow.spec.podMetadata.labels.alibabacloud.com/eci is already set to True"),
        ({"podMetadata": {"labels": ["x"]}}, "workflow.spec.podMetadata.labels must be a mapping"),
        ({"podSpecPatch": '{"schedulerName": "default-scheduler"}'},
         "workflow.spec.podSpecPatch sets schedulerName 'default-scheduler', which conflicts with scheduler_name "
         "'eci-scheduler'"),
        ({"podSpecPatch": "{not: [valid"}, "workflow.spec.podSpecPatch is neither JSON nor YAML at line 1"),
        ({"podSpecPatch": "- a\n- b\n"}, "workflow.spec.podSpecPatch must hold a mapping"),
        ({"podSpecPatch": {"schedulerName": "x"}}, "workflow.spec.podSpecPatch must be a string"),
        ({"schedulerName": "default-scheduler"},
         "workflow.spec.schedulerName is 'default-scheduler', which conflicts with scheduler_name 'eci-scheduler'"),
        ({"parallelism": 5}, "workflow.spec.parallelism is already 5, which conflicts with 10"),
        ({"templateDefaults": {"retryStrategy": {"limit": "1"}}},
         "workflow.spec.templateDefaults.retryStrategy is {'limit': '1'}, which conflicts with retry_strategy"),
        ({"templates": [{"name": "main", "schedulerName": "default-scheduler", "container": {"image": "alpine"}}]},
         "workflow.spec.templates[main].schedulerName is 'default-scheduler', but the workflow's podSpecPatch sets "
         "schedulerName 'eci-scheduler'"),
    ],
)
def test_conflicts_raise_naming_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError) as info:
        SEED_MULTISPEC.apply(_plain(**spec))
    assert message in str(info.value)


def test_scheduler_is_merged_into_a_yaml_pod_spec_patch() -> None:
    workflow = _plain(podSpecPatch="terminationGracePeriodSeconds: 0\ncontainers:\n- name: main\n  env: []\n")
    patch = json.loads(EciProfile().apply(workflow)["spec"]["podSpecPatch"])
    assert patch == {"terminationGracePeriodSeconds": 0, "containers": [{"name": "main", "env": []}],
                     "schedulerName": "eci-scheduler"}


def test_spec_scheduler_name_or_none_means_no_patch() -> None:
    assert "podSpecPatch" not in EciProfile().apply(_plain(schedulerName="eci-scheduler"))["spec"]
    assert "podSpecPatch" not in EciProfile(scheduler_name=None).apply(_plain())["spec"]
    bare = EciProfile(enabled=False, scheduler_name=None).apply(_plain())
    assert bare == _plain()


def test_retry_goes_to_pod_templates_without_their_own() -> None:
    own = {"limit": "1", "retryPolicy": "OnError"}
    workflow = _plain(templates=[
        {"name": "main", "steps": [[{"name": "a", "template": "a"}, {"name": "b", "template": "b"}]]},
        {"name": "a", "container": {"image": "alpine"}},
        {"name": "b", "script": {"image": "alpine", "source": "true"}, "retryStrategy": own},
        {"name": "wait", "suspend": {}},
    ])
    templates = {t["name"]: t for t in SEED_MULTISPEC.apply(workflow)["spec"]["templates"]}
    assert templates["a"]["retryStrategy"] == {"limit": "3", "retryPolicy": "Always"}
    assert templates["b"]["retryStrategy"] == own  # the template's own strategy wins
    assert "retryStrategy" not in templates["main"] and "retryStrategy" not in templates["wait"]


def test_retry_already_in_template_defaults_is_not_repeated() -> None:
    workflow = _plain(templateDefaults={"retryStrategy": {"limit": 3, "retryPolicy": "Always"}})
    result = SEED_MULTISPEC.apply(workflow)
    assert "retryStrategy" not in result["spec"]["templates"][0]


def test_template_ref_workflow_gets_template_defaults() -> None:
    workflow = load_workflow({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                              "metadata": {"generateName": "x-"}, "spec": {"workflowTemplateRef": {"name": "x"}}})
    spec = SEED_MULTISPEC.apply(workflow)["spec"]
    assert spec["templateDefaults"] == {"retryStrategy": {"limit": "3", "retryPolicy": "Always"}}
    assert spec["podMetadata"]["labels"] == {"alibabacloud.com/eci": "true"}


def test_apply_needs_a_spec() -> None:
    with pytest.raises(WorkflowSpecError, match=r"workflow\.spec is missing"):
        EciProfile().apply({"kind": "Workflow"})


# --------------------------------------------------------------------------------------------
# per-template overrides
# --------------------------------------------------------------------------------------------


def _two_templates() -> dict[str, Any]:
    return _plain(templates=[
        {"name": "main", "steps": [[{"name": "small", "template": "small"}, {"name": "big", "template": "big"}]]},
        {"name": "small", "container": {"image": "alpine"}},
        {"name": "big", "container": {"image": "alpine"}},
    ])


def test_template_override_writes_only_the_differences() -> None:
    profile = EciProfile(use_specs=("2-4Gi",), fail_strategy="fail-fast", retry_strategy=RetryStrategy(limit=1))
    result = profile.apply(_two_templates(), templates={
        "big": {"use_specs": ["ecs.g7.xlarge", "8-16Gi"], "extra_ephemeral_storage": "100Gi",
                "scheduler_name": "custom-scheduler", "retry_strategy": None},
    })
    templates = {t["name"]: t for t in result["spec"]["templates"]}
    assert templates["big"]["metadata"] == {"annotations": {
        "k8s.aliyun.com/eci-use-specs": "ecs.g7.xlarge,8-16Gi",
        "k8s.aliyun.com/eci-extra-ephemeral-storage": "100Gi",
    }}
    assert json.loads(templates["big"]["podSpecPatch"]) == {"schedulerName": "custom-scheduler"}
    assert "retryStrategy" not in templates["big"]
    assert templates["small"] == {"name": "small", "container": {"image": "alpine"}, "retryStrategy": {"limit": "1"}}
    whole = profile.replace(use_specs=("ecs.g7.xlarge", "8-16Gi"), extra_ephemeral_storage="100Gi",
                            scheduler_name="custom-scheduler", retry_strategy=None)
    assert profile.apply(_two_templates(), templates={"big": whole}) == result
    assert result["spec"]["podMetadata"]["annotations"] == {"k8s.aliyun.com/eci-use-specs": "2-4Gi",
                                                            "k8s.aliyun.com/eci-fail-strategy": "fail-fast"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nope": {"parallelism": 1}}, "EciProfile template override 'nope' names no template of the workflow: "
                                       "templates are main, small, big"),
        ({"big": {"fail_strategy": None}}, "workflow.spec.templates[big]: the override removes the annotation(s) "
                                           "k8s.aliyun.com/eci-fail-strategy"),
        ({"big": {"enabled": False}}, "removes the label(s) alibabacloud.com/eci"),
        ({"big": {"scheduler_name": None}}, "the override sets scheduler_name=None"),
        ({"big": {"use_specs": ["huge"]}}, "EciProfile.use_specs[0]: 'huge'"),
        ({"big": {"spec": 1}}, "EciProfile.replace: unknown key(s) 'spec'"),
    ],
)
def test_bad_template_overrides(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError) as info:
        EciProfile(fail_strategy="fail-fast").apply(_two_templates(), templates=overrides)
    assert message in str(info.value)


def test_apply_to_template() -> None:
    template = {"name": "big", "metadata": {"labels": {"team": "a"}}, "podSpecPatch": '{"hostNetwork": false}',
                "retryStrategy": {"limit": "9"}, "container": {"image": "alpine"}}
    result = SEED_MULTISPEC.replace(compute_qos="best-effort").apply_to_template(template)
    assert result["metadata"] == {
        "labels": {"team": "a", "alibabacloud.com/eci": "true", "alibabacloud.com/compute-qos": "best-effort"},
        "annotations": {"k8s.aliyun.com/eci-use-specs": "ecs.c6.large,ecs.c5.large,2-4Gi",
                        "k8s.aliyun.com/eci-schedule-strategy": "VSwitchRandom",
                        "k8s.aliyun.com/eci-fail-strategy": "fail-fast"},
    }
    assert json.loads(result["podSpecPatch"]) == {"hostNetwork": False, "schedulerName": "eci-scheduler"}
    assert result["retryStrategy"] == {"limit": "9"}
    assert result["parallelism"] == 10
    assert template["metadata"] == {"labels": {"team": "a"}}  # input untouched
    with pytest.raises(WorkflowSpecError, match=r"template 'x'.metadata.labels.alibabacloud.com/eci is already set"):
        EciProfile().apply_to_template({"name": "x", "metadata": {"labels": {"alibabacloud.com/eci": "false"}}})
    with pytest.raises(WorkflowSpecError, match=r"template 'x'.schedulerName is 'other'"):
        EciProfile().apply_to_template({"name": "x", "schedulerName": "other"})


# --------------------------------------------------------------------------------------------
# on the local cluster
# --------------------------------------------------------------------------------------------


def test_profiled_pods_on_the_local_cluster(local_cluster: Any, kube_api_client: Any) -> None:
    """A profiled workflow runs, and its Pod objects carry what the profile asked for."""
    from kubernetes import client

    workflow = load_workflow(GOLDEN / "parallelism-limit1.input.yaml")
    workflow["metadata"] = {"name": "eci-profiled"}
    workflow["spec"]["templates"][0]["steps"][0][0]["withSequence"]["end"] = "2"
    workflow["spec"]["templates"][1]["container"]["command"] = ["sh", "-c", "echo on eci"]
    profile = SEED_MULTISPEC.replace(spot_strategy="SpotAsPriceGo", compute_qos="default")
    body = profile.apply(workflow, templates={"sleep": {"use_specs": ["4-8Gi"]}})

    objects = client.CustomObjectsApi(kube_api_client)
    objects.create_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", body)
    deadline = time.monotonic() + 30
    while True:
        wf = objects.get_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", "eci-profiled")
        if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            break
        assert time.monotonic() < deadline, f"workflow did not finish: {wf.get('status')}"
        time.sleep(0.1)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert wf["spec"]["parallelism"] == 10

    pods = client.CoreV1Api(kube_api_client).list_namespaced_pod(
        "argo", label_selector="workflows.argoproj.io/workflow=eci-profiled").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.metadata.labels["alibabacloud.com/eci"] == "true"
        assert pod.metadata.labels["alibabacloud.com/compute-qos"] == "default"
        annotations = pod.metadata.annotations
        assert annotations["k8s.aliyun.com/eci-use-specs"] == "4-8Gi"  # the template override wins
        assert annotations["k8s.aliyun.com/eci-schedule-strategy"] == "VSwitchRandom"
        assert annotations["k8s.aliyun.com/eci-fail-strategy"] == "fail-fast"
        assert annotations["k8s.aliyun.com/eci-spot-strategy"] == "SpotAsPriceGo"
        assert pod.spec.scheduler_name == "eci-scheduler"
        assert pod.spec.node_name == "virtual-kubelet"

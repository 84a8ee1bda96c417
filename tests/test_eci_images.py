"""EciProfile's image-cache options and imagePullPolicy: the seed's pinned-cache workflow, the
current annotations and their legacy aliases, the pull-policy walk over every container, and
the warning for a pin that pulls anyway."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import yaml

from airflow_argo_eci.eci import ANNOTATION_IMAGE_CACHE_ID, ANNOTATION_IMAGE_SNAPSHOT_ID, EciProfile
from airflow_argo_eci.eci_conventions import ANNOTATION_LEGACY_IMAGE_CACHE
from airflow_argo_eci.eci_images import containers_of, is_template
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.workflows import load_workflow
from tests.test_eci import GOLDEN, SEED_CACHE_ID, _render

TEMPLATE = "{{ ti.xcom_pull(task_ids='cache_images') }}"


def test_pinned_cache_with_if_not_present_is_the_seed_document() -> None:
    """The seed's image-cache workflow, from the plain one with the cache pinned and IfNotPresent:
    the document's YAML exactly, plus the pin's annotation (the document relies on automatic
    matching; the pin is what this profile adds)."""
    seed = yaml.safe_load((GOLDEN / "seed" / "parallelism-limit1-imagecache.yaml").read_text())
    seed["spec"]["podMetadata"]["annotations"]["k8s.aliyun.com/eci-imc-id"] = SEED_CACHE_ID
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # paired as the seed does: no warning
        assert _render("parallelism-limit1-imc-pinned") == seed


def test_cache_annotations_use_the_current_keys() -> None:
    profile = EciProfile(auto_match_image_cache=False, image_cache_perfect_match=True, image_cache_id="imc-abc123")
    assert profile.pod_annotations() == {
        "k8s.aliyun.com/eci-auto-imc": "false",
        "k8s.aliyun.com/imc-perfect-match": "true",
        "k8s.aliyun.com/eci-imc-id": "imc-abc123",
    }
    assert ANNOTATION_IMAGE_CACHE_ID == "k8s.aliyun.com/eci-imc-id"
    assert ANNOTATION_IMAGE_SNAPSHOT_ID == "k8s.aliyun.com/eci-image-snapshot-id"  # the legacy name stays public


def test_legacy_alias_is_the_same_setting() -> None:
    legacy = EciProfile(image_snapshot_id="imc-abc123")
    assert legacy == EciProfile(image_cache_id="imc-abc123")
    assert legacy.image_cache_id == "imc-abc123" and legacy.image_snapshot_id is None
    assert legacy.pod_annotations() == {"k8s.aliyun.com/eci-imc-id": "imc-abc123"}
    assert EciProfile(image_cache_id="imc-abc123", image_snapshot_id="imc-abc123") == legacy
    with pytest.raises(WorkflowSpecError) as info:
        EciProfile(image_cache_id="imc-abc123", image_snapshot_id="imc-other1")
    message = str(info.value)
    assert "EciProfile.image_cache_id is 'imc-abc123' and EciProfile.image_snapshot_id (its legacy alias) is " \
           "'imc-other1'" in message and "set only image_cache_id" in message
    with pytest.raises(WorkflowSpecError, match="its legacy alias"):
        legacy.replace(image_snapshot_id="imc-other1")


def test_round_trip_of_the_new_fields() -> None:
    profile = EciProfile(auto_match_image_cache=True, image_cache_perfect_match=False, image_cache_id="imc-abc123",
                         image_pull_policy="IfNotPresent")
    data = profile.to_dict()
    assert data == {"auto_match_image_cache": True, "image_cache_perfect_match": False,
                    "image_cache_id": "imc-abc123", "image_pull_policy": "IfNotPresent"}
    assert EciProfile.from_dict(data) == profile
    assert EciProfile.from_dict({"image_snapshot_id": "imc-abc123"}).to_dict() == {"image_cache_id": "imc-abc123"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_cache_id": "snap-123"}, "EciProfile.image_cache_id: 'snap-123' is not an image cache ID: use the "
                                         "'imc-...' ID of an ImageCache"),
        ({"image_cache_id": "imc-ABC"}, "EciProfile.image_cache_id: 'imc-ABC' is not an image cache ID"),
        ({"image_cache_id": 42}, "EciProfile.image_cache_id: 42 is not an image cache ID"),
        ({"image_snapshot_id": "imc_1"}, "EciProfile.image_snapshot_id: 'imc_1' is not an image cache ID"),
        ({"image_cache_perfect_match": "yes"}, "EciProfile.image_cache_perfect_match must be true, false or None"),
        ({"image_pull_policy": "IfMissing"}, "EciProfile.image_pull_policy: 'IfMissing' is not supported: use one of "
                                             "Always, IfNotPresent, Never"),
        ({"annotations": {"k8s.aliyun.com/eci-imc-id": "imc-1"}}, "use EciProfile.image_cache_id instead"),
        ({"annotations": {"k8s.aliyun.com/eci-image-snapshot-id": "imc-1"}}, "use EciProfile.image_cache_id instead"),
        ({"annotations": {"k8s.aliyun.com/eci-image-cache": "true"}}, "use EciProfile.auto_match_image_cache"),
        ({"annotations": {"k8s.aliyun.com/imc-perfect-match": "true"}}, "use EciProfile.image_cache_perfect_match"),
    ],
)
def test_invalid_image_options_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError) as info:
        EciProfile(**kwargs)
    assert message in str(info.value)


def test_a_template_id_waits_for_rendering() -> None:
    """A Jinja template is accepted (ArgoWorkflowOperator renders it), never applied unrendered."""
    assert is_template(TEMPLATE) and not is_template("imc-abc123")
    profile = EciProfile(image_cache_id=TEMPLATE, image_pull_policy="IfNotPresent")
    assert EciProfile.from_dict(profile.to_dict()) == profile
    with pytest.raises(WorkflowSpecError) as info:
        profile.apply(load_workflow(GOLDEN / "parallelism-limit1-imc.input.yaml"))
    assert "EciProfile.image_cache_id is the unrendered template" in str(info.value)
    assert "ArgoWorkflowOperator" in str(info.value)


# --------------------------------------------------------------------------------------------
# a workflow that already has cache annotations (current or legacy)
# --------------------------------------------------------------------------------------------


def _workflow(annotations: dict[str, str] | None = None, template_annotations: dict[str, str] | None = None,
              **container: Any) -> dict[str, Any]:
    template: dict[str, Any] = {"name": "main", "container": {"image": "alpine:3.20", **container}}
    if template_annotations is not None:
        template["metadata"] = {"annotations": template_annotations}
    spec: dict[str, Any] = {"entrypoint": "main", "templates": [template]}
    if annotations is not None:
        spec["podMetadata"] = {"annotations": annotations}
    return load_workflow({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                          "metadata": {"generateName": "t-"}, "spec": spec})


PINNED = EciProfile(image_cache_id="imc-abc123", auto_match_image_cache=True, image_pull_policy="IfNotPresent")


@pytest.mark.parametrize("annotations", [
    {ANNOTATION_IMAGE_SNAPSHOT_ID: "imc-abc123"},
    {ANNOTATION_IMAGE_CACHE_ID: "imc-abc123"},
    {ANNOTATION_LEGACY_IMAGE_CACHE: "true"},
])
def test_the_same_value_under_a_legacy_or_current_key_is_fine(annotations: dict[str, str]) -> None:
    result = PINNED.apply(_workflow(annotations))
    kept = result["spec"]["podMetadata"]["annotations"]
    assert kept.items() >= annotations.items()
    assert kept[ANNOTATION_IMAGE_CACHE_ID] == "imc-abc123"
    result = PINNED.apply(_workflow(template_annotations=annotations))
    assert result["spec"]["templates"][0]["metadata"]["annotations"] == annotations


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({ANNOTATION_IMAGE_SNAPSHOT_ID: "imc-other1"},
         "workflow.spec.podMetadata.annotations.k8s.aliyun.com/eci-image-snapshot-id is 'imc-other1', but the "
         "profile sets k8s.aliyun.com/eci-imc-id (the current spelling of the same setting) to 'imc-abc123'"),
        ({ANNOTATION_LEGACY_IMAGE_CACHE: "false"},
         "k8s.aliyun.com/eci-image-cache is 'false', but the profile sets k8s.aliyun.com/eci-auto-imc"),
        ({ANNOTATION_IMAGE_CACHE_ID: "imc-other1"},
         "workflow.spec.podMetadata.annotations.k8s.aliyun.com/eci-imc-id is already set to 'imc-other1', which "
         "conflicts with 'imc-abc123'"),
    ],
)
def test_a_different_value_raises_naming_both_keys(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(WorkflowSpecError) as info:
        PINNED.apply(_workflow(annotations))
    assert message in str(info.value)


def test_a_legacy_pin_on_a_template_conflicts_too() -> None:
    with pytest.raises(WorkflowSpecError) as info:
        PINNED.apply(_workflow(template_annotations={ANNOTATION_IMAGE_SNAPSHOT_ID: "imc-other1"}))
    assert str(info.value).startswith(
        "workflow.spec.templates[main].metadata.annotations.k8s.aliyun.com/eci-image-snapshot-id is 'imc-other1'")
    override = PINNED.apply(_workflow(template_annotations={ANNOTATION_IMAGE_SNAPSHOT_ID: "imc-other1"}),
                            templates={"main": {"image_cache_id": "imc-other1"}})
    assert override["spec"]["templates"][0]["metadata"]["annotations"] == {
        ANNOTATION_IMAGE_SNAPSHOT_ID: "imc-other1", ANNOTATION_IMAGE_CACHE_ID: "imc-other1"}


# --------------------------------------------------------------------------------------------
# imagePullPolicy on every container
# --------------------------------------------------------------------------------------------


def test_every_container_gets_the_policy() -> None:
    result = _render("pull-policy-containers")
    spec = result["spec"]
    assert spec["templateDefaults"]["container"]["imagePullPolicy"] == "IfNotPresent"
    found = [where for name, tmpl in ((t["name"], t) for t in spec["templates"])
             for where, container in containers_of(tmpl, name) if container["imagePullPolicy"] == "IfNotPresent"]
    assert found == ["build.container (main)", "build.initContainers[fetch]", "test.script (main)",
                     "serve.containerSet.containers[api]", "serve.containerSet.containers[probe]",
                     "serve.sidecars[cache]"]
    assert "imagePullPolicy" not in spec["templates"][0]  # the steps template runs no container


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"name": "t", "container": {"image": "a", "imagePullPolicy": "Always"}},
         "workflow.spec.templates[t].container (main) has imagePullPolicy 'Always', which conflicts with "
         "image_pull_policy 'IfNotPresent'"),
        ({"name": "t", "script": {"name": "run", "image": "a", "source": "x", "imagePullPolicy": "Never"}},
         "workflow.spec.templates[t].script (run) has imagePullPolicy 'Never'"),
        ({"name": "t", "container": {"image": "a"},
          "sidecars": [{"name": "db", "image": "b", "imagePullPolicy": "Always"}]},
         "workflow.spec.templates[t].sidecars[db] has imagePullPolicy 'Always'"),
        ({"name": "t", "containerSet": {"containers": [{"name": "x", "image": "a", "imagePullPolicy": "Always"}]}},
         "workflow.spec.templates[t].containerSet.containers[x] has imagePullPolicy 'Always'"),
        ({"name": "t", "container": {"image": "a"}, "initContainers": {"name": "x"}},
         "workflow.spec.templates[t].initContainers must be a list of containers"),
    ],
)
def test_a_different_policy_is_never_clobbered(template: dict[str, Any], message: str) -> None:
    workflow = load_workflow({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                              "metadata": {"generateName": "t-"}, "spec": {"entrypoint": "t", "templates": [template]}})
    with pytest.raises(WorkflowSpecError) as info:
        EciProfile(image_pull_policy="IfNotPresent").apply(workflow)
    assert message in str(info.value)


def test_template_defaults_conflict_and_overrides() -> None:
    workflow = _workflow()
    workflow["spec"]["templateDefaults"] = {"container": {"imagePullPolicy": "Always"}}
    with pytest.raises(WorkflowSpecError, match=r"workflow\.spec\.templateDefaults\.container \(main\) has "
                                                r"imagePullPolicy 'Always'"):
        EciProfile(image_pull_policy="IfNotPresent").apply(workflow)
    overridden = EciProfile(image_pull_policy="IfNotPresent").apply(
        _workflow(imagePullPolicy="Always"), templates={"main": {"image_pull_policy": "Always"}})
    assert overridden["spec"]["templates"][0]["container"]["imagePullPolicy"] == "Always"
    template = EciProfile(image_pull_policy="Never").apply_to_template(
        {"name": "x", "container": {"image": "a"}, "sidecars": [{"name": "s", "image": "b"}]})
    assert template["container"]["imagePullPolicy"] == "Never" == template["sidecars"][0]["imagePullPolicy"]
    with pytest.raises(WorkflowSpecError, match=r"template 'x'.container \(main\) has imagePullPolicy 'Always'"):
        EciProfile(image_pull_policy="Never").apply_to_template(
            {"name": "x", "container": {"image": "a", "imagePullPolicy": "Always"}})


def test_a_template_ref_workflow_cannot_take_a_policy() -> None:
    workflow = load_workflow({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                              "metadata": {"generateName": "x-"}, "spec": {"workflowTemplateRef": {"name": "x"}}})
    with pytest.raises(WorkflowSpecError, match="set imagePullPolicy in the WorkflowTemplate instead"):
        EciProfile(image_pull_policy="IfNotPresent").apply(workflow)


def test_a_pin_that_pulls_anyway_warns() -> None:
    with pytest.warns(UserWarning) as record:
        EciProfile(image_cache_id="imc-abc123").apply(_workflow())
    (warning,) = record
    text = str(warning.message)
    assert "EciProfile pins image cache imc-abc123, but these containers do not pull with imagePullPolicy " \
           "IfNotPresent: templates[main].container (main); their pods pull the image again" in text
    assert "image_pull_policy='IfNotPresent'" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EciProfile(image_cache_id="imc-abc123").apply(_workflow(imagePullPolicy="IfNotPresent"))
        EciProfile(image_cache_id="imc-abc123", image_pull_policy="IfNotPresent").apply(_workflow())
        EciProfile(image_pull_policy="Always").apply(_workflow())  # no pin: nothing to say

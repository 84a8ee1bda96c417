"""Resource templates of a reconcile pass (Argo's ``argoexec resource``): the controller applies the
manifest to the store as an API client would (create, apply, patch, delete, get), waits for the
``successCondition`` / ``failureCondition`` and reads the output parameters (``jsonPath``,
``jqFilter``).

As in Argo the node is of type ``Pod`` and has a pod (named by the usual pod-name rule, so the
template's ``{{pod.name}}`` exists and may be patched): here the pod is a record the runtime never
runs; it is Running while the action waits and ends Succeeded or Failed with the node.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from airflow_argo_eci.conventions import (
    ANNOTATION_NODE_ID,
    ANNOTATION_NODE_NAME,
    ANNOTATION_OUTPUTS,
    ANNOTATION_TEMPLATE,
    API_VERSION,
    ARGO_VERSION,
    LABEL_COMPLETED,
    LABEL_WORKFLOW,
    pod_name,
)
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.patch import JSON_PATCH, MERGE_PATCH
from airflow_argo_eci.local.api.resources import PODS, REGISTRY, ResourceType
from airflow_argo_eci.local.argo.artifacts import ArtifactError, load_artifact
from airflow_argo_eci.local.argo.jsonquery import QueryError, jq, jsonpath, parse_condition
from airflow_argo_eci.local.argo.nodes import go_json, go_string
from airflow_argo_eci.local.argo.reconcile.artifact_io import ArtifactIO
from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.templates import SpecError, TemplateContext, artifacts_of, params_of
from airflow_argo_eci.local.argo.variables import unresolved_tags

#: on a resource template's pod: the object its action touched (``namespace/plural.group/name``)
ANNOTATION_RESOURCE = "local.airflow-argo-eci/resource"
#: seconds between two checks of a resource's conditions (Argo: RESOURCE_STATE_CHECK_INTERVAL, 5s)
CHECK_INTERVAL = 1.0
ACTIONS = ("get", "create", "apply", "delete", "patch", "replace")
#: the largest manifest read from an artifact (the API's request body limit)
MAX_MANIFEST_BYTES = 3 << 20
#: the executor image Argo runs resource templates in (recorded on the pod)
EXECUTOR_IMAGE = f"quay.io/argoproj/argoexec:{ARGO_VERSION}"


class ResourceFailure(Exception):
    """The action or a condition failed: the node fails with this message."""


@dataclass(frozen=True)
class _Flags:
    """What a template's kubectl-style ``flags`` name."""

    kind: ResourceType | None
    name: str
    namespace: str
    selector: str


class ResourceRunner:
    """Runs (or continues) resource templates as controller-side actions on the store."""

    def __init__(self, state: PassState) -> None:
        self.state = state

    def execute_resource(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                         ctx: TemplateContext, tmpl: dict[str, Any], boundary: str) -> dict[str, Any] | None:
        """Run the resource template ``tmpl`` as node ``node_name``: act once, then check its
        conditions each pass until one holds."""
        pod = pod_name(self.state.name, node_name, tmpl.get("name", ""))
        if node is None:
            if self.state.spec.get("suspend"):
                return None
            node = self.state.init_node(node_name, "Pod", display, ctx, tmpl, holder, boundary, "Running")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
            self.state.active_pods += 1
        if self.state.fulfilled(node):
            return node
        obj = self.state.host.get_pod(self.state.namespace, pod)
        try:
            if obj is None:
                obj = self._create_pod(pod, node, tmpl)
            phase = (obj.get("status") or {}).get("phase")
            if phase not in ("Pending", "Running"):
                return node  # killed or finished: the pod sync reads its outcome
            target = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_RESOURCE)
            if target is None:
                target = self._act(tmpl)
                self._annotate(pod, {ANNOTATION_RESOURCE: target})
            live = self._read(target) if target else None
            if target and not self._conditions_met(tmpl, live):
                self.state.requeue(CHECK_INTERVAL)
                return node
            params = self._outputs(tmpl, live)
        except ResourceFailure as exc:
            self._finish(node, pod, "Failed", str(exc), [])
            return node
        self._finish(node, pod, "Succeeded", "", params)
        return node

    # ------------------------------------------------------------------ the pod record

    def _create_pod(self, pod: str, node: dict[str, Any], tmpl: dict[str, Any]) -> dict[str, Any]:
        action = str((tmpl.get("resource") or {}).get("action", ""))
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "labels": {LABEL_WORKFLOW: self.state.name, LABEL_COMPLETED: "false"},
                "annotations": {ANNOTATION_NODE_NAME: node["name"], ANNOTATION_NODE_ID: node["id"],
                                ANNOTATION_TEMPLATE: go_json({"name": tmpl.get("name", ""), "outputs": {}})},
                "ownerReferences": [self._owner()],
            },
            "spec": {"containers": [{"name": "main", "image": EXECUTOR_IMAGE,
                                     "command": ["argoexec", "resource", action]}],
                     "restartPolicy": "Never", "serviceAccountName": "default", "nodeName": "local"},
            "status": {"phase": "Running", "startTime": self.state.now},
        }
        try:
            return self.state.store.create(PODS, self.state.namespace, obj)
        except ApiError as exc:
            if exc.code == 409:  # created by a pass whose status write lost a race
                found = self.state.host.get_pod(self.state.namespace, pod)
                if found is not None:
                    return found
            raise ResourceFailure(exc.message) from exc

    def _owner(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "Workflow", "name": self.state.name, "uid": self.state.uid,
                "blockOwnerDeletion": True, "controller": True}

    def _annotate(self, pod: str, annotations: dict[str, str]) -> None:
        def mutate(obj: dict[str, Any]) -> None:
            obj["metadata"].setdefault("annotations", {}).update(annotations)

        try:
            self.state.store.update(PODS, self.state.namespace, pod, mutate)
        except ApiError:
            return  # deleted meanwhile: the pod sync fails the node

    def _finish(self, node: dict[str, Any], pod: str, phase: str, message: str,
                params: list[dict[str, Any]]) -> None:
        exit_code = 0 if phase == "Succeeded" else 1
        info = {"phase": phase, "exitCode": exit_code, "message": message, "startedAt": node.get("startedAt"),
                "finishedAt": self.state.now}
        recorded = {"name": node.get("templateName", ""), "outputs": {"parameters": params}}

        def mutate(obj: dict[str, Any]) -> None:
            status = obj.setdefault("status", {})
            status["phase"] = phase
            if message:
                status["message"] = message
            status["containerStatuses"] = [{
                "name": "main", "ready": False, "restartCount": 0, "image": EXECUTOR_IMAGE,
                "imageID": "local://" + EXECUTOR_IMAGE,
                "state": {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                         "startedAt": node.get("startedAt"), "finishedAt": self.state.now,
                                         **({"message": message} if message else {})}}}]
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations[ANNOTATION_OUTPUTS] = json.dumps(info, separators=(",", ":"))
            annotations[ANNOTATION_TEMPLATE] = go_json(recorded)
            obj["metadata"].setdefault("labels", {})[LABEL_COMPLETED] = "true"

        try:
            self.state.store.update(PODS, self.state.namespace, pod, mutate)
        except ApiError:
            pass  # the pod is gone (e.g. the action deleted it): the node still ends here
        outputs: dict[str, Any] = {"exitCode": str(exit_code)}
        if params:
            outputs["parameters"] = params
        node["outputs"] = outputs
        node["hostNodeName"] = "local"
        for p in params:
            if p.get("globalName"):
                self.state.set_global_output(str(p["globalName"]), str(p["value"]))
        self.state.mark(node, phase, message)
        self.state.active_pods = max(0, self.state.active_pods - 1)

    # ------------------------------------------------------------------ the action

    def _act(self, tmpl: dict[str, Any]) -> str:
        """Apply the action once; the touched object as ``namespace/group/plural/name`` ("" when
        there is none to watch: deleted, or a ``get`` of nothing)."""
        res = tmpl.get("resource") or {}
        action = str(res.get("action") or "")
        if action not in ACTIONS:
            raise ResourceFailure(f"resource.action: {action!r} is not one of {', '.join(ACTIONS)}")
        leftovers = unresolved_tags(res)
        if leftovers:
            raise ResourceFailure(f"failed to resolve {leftovers[0]}")
        manifest_text = res.get("manifest")
        if not manifest_text and res.get("manifestFrom"):
            manifest_text = self._manifest_from(res["manifestFrom"], tmpl)
        flags = [str(f) for f in (res.get("flags") or [])]
        if not manifest_text and not flags:
            raise ResourceFailure("Must provide at least one of flags or manifest.")
        parsed = self._parse_flags(flags)
        flag_rt, flag_name, namespace = parsed.kind, parsed.name, parsed.namespace
        if parsed.selector and (action != "delete" or flag_name or manifest_text or flag_rt is None):
            raise ResourceFailure("resource.flags: --selector works with action delete and a kind alone, e.g. "
                                  "[configmap, --selector, app=x]")
        if action == "patch":
            return self._patch(res, str(manifest_text or ""), flag_rt, flag_name, namespace)
        if parsed.selector and flag_rt is not None:
            return self._delete_selected(flag_rt, namespace or self.state.namespace, parsed.selector)
        if manifest_text:
            manifest = self._manifest(str(manifest_text))
            if not isinstance(manifest, dict):
                raise ResourceFailure("resource.manifest must be one Kubernetes object (a YAML/JSON mapping)")
            rt = self._type_of(manifest)
            meta = manifest.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise ResourceFailure("resource.manifest: metadata must be a mapping")
            ns = str(meta.get("namespace") or namespace or self.state.namespace)
            name = str(meta.get("name") or "")
        elif flag_rt is not None and flag_name:
            rt, ns, name, manifest, meta = flag_rt, namespace or self.state.namespace, flag_name, {}, {}
        else:
            raise ResourceFailure(f"resource.flags {flags}: name a kind and an object (e.g. [pod, my-pod]) or give "
                                  "a manifest")
        if res.get("setOwnerReference") and action in ("create", "apply", "replace"):
            owners = meta.setdefault("ownerReferences", [])
            owners.append(self._owner())
        try:
            if action == "create":
                return self._ref(rt, self.state.store.create(rt, ns, manifest))
            if action in ("apply", "replace"):
                return self._apply(rt, ns, name, manifest, action)
            if not name:
                raise ResourceFailure(f"resource.manifest: metadata.name is required for action {action}")
            if action == "delete":
                try:
                    self.state.store.delete(rt, ns, name)
                except ApiError as exc:
                    if exc.code != 404:  # Argo deletes with --ignore-not-found
                        raise
                return ""
            return self._ref(rt, self.state.store.get(rt, ns, name))
        except ApiError as exc:
            raise ResourceFailure(exc.message) from exc

    def _manifest_from(self, source: Any, tmpl: dict[str, Any]) -> str:
        """The manifest in the input artifact that ``manifestFrom.artifact.name`` names (raw data, or
        the object in the artifact repository, at most :data:`MAX_MANIFEST_BYTES`)."""
        name = (source.get("artifact") or {}).get("name") if isinstance(source, dict) else None
        if not name:
            raise ResourceFailure("resource.manifestFrom.artifact.name is required")
        art = next((a for a in artifacts_of(tmpl.get("inputs")) if a.get("name") == name), None)
        if art is None:
            raise ResourceFailure(f"resource.manifestFrom.artifact: '{name}' is not an input artifact of the template")
        if art.get("raw") is not None:
            return str((art.get("raw") or {}).get("data", ""))
        io = ArtifactIO(self.state)
        try:
            oss, key = io.place(art, f"templates.{tmpl.get('name', '')}.inputs.artifacts.{name}")
            if key is None:
                raise ResourceFailure(f"resource.manifestFrom.artifact: input artifact '{name}' has no key")
            with tempfile.TemporaryDirectory(prefix="manifest-from-") as scratch:
                dest = Path(scratch) / "manifest"
                load_artifact(self.state.host.oss_clients, {**art, "mode": None}, dest, io.location(oss, key))
                if not dest.is_file():
                    raise ResourceFailure(f"resource.manifestFrom.artifact: '{name}' is a directory, not one manifest")
                if dest.stat().st_size > MAX_MANIFEST_BYTES:
                    raise ResourceFailure(f"resource.manifestFrom.artifact: '{name}' is larger than "
                                          f"{MAX_MANIFEST_BYTES} bytes")
                return dest.read_text(errors="replace")
        except (ArtifactError, SpecError) as exc:
            raise ResourceFailure(f"resource.manifestFrom.artifact: {exc}") from exc

    def _apply(self, rt: ResourceType, ns: str, name: str, manifest: dict[str, Any], action: str) -> str:
        if not name:
            if action == "replace":
                raise ResourceFailure("resource.manifest: metadata.name is required for action replace")
            return self._ref(rt, self.state.store.create(rt, ns, manifest))
        try:
            self.state.store.get(rt, ns, name)
        except ApiError as exc:
            if exc.code != 404 or action == "replace":
                raise
            return self._ref(rt, self.state.store.create(rt, ns, manifest))
        if action == "replace":
            return self._ref(rt, self.state.store.replace(rt, ns, name, manifest))
        return self._ref(rt, self.state.store.patch(rt, ns, name, manifest, MERGE_PATCH))

    def _patch(self, res: dict[str, Any], text: str, flag_rt: ResourceType | None, flag_name: str,
               namespace: str) -> str:
        strategy = str(res.get("mergeStrategy") or "strategic")
        if strategy not in ("strategic", "merge", "json"):
            raise ResourceFailure(f"resource.mergeStrategy: {strategy!r} is not one of strategic, merge, json")
        if not text.strip():
            raise ResourceFailure("resource.manifest: a patch needs the patch as its manifest")
        patch = self._manifest(text)
        if flag_rt is not None and flag_name:
            rt, name, ns = flag_rt, flag_name, namespace or self.state.namespace
        elif isinstance(patch, dict):
            rt = self._type_of(patch)
            found = patch.get("metadata")
            meta: dict[str, Any] = found if isinstance(found, dict) else {}
            name = str(meta.get("name") or "")
            ns = str(meta.get("namespace") or namespace or self.state.namespace)
            if not name:
                raise ResourceFailure("resource.manifest: metadata.name is required for action patch")
        else:
            raise ResourceFailure("resource.flags: a JSON patch needs the object to patch as flags, e.g. "
                                  "[pod, my-pod]")
        if strategy == "json" and not isinstance(patch, list):
            raise ResourceFailure("resource.manifest: mergeStrategy json needs a list of JSON-patch operations")
        if strategy != "json" and not isinstance(patch, dict):
            raise ResourceFailure(f"resource.manifest: mergeStrategy {strategy} needs a mapping")
        try:
            return self._ref(rt, self.state.store.patch(rt, ns, name, patch,
                                                        JSON_PATCH if strategy == "json" else MERGE_PATCH))
        except ApiError as exc:
            raise ResourceFailure(exc.message) from exc

    @staticmethod
    def _manifest(text: str) -> Any:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise ResourceFailure(f"resource.manifest is not valid YAML/JSON: {exc}") from exc
        if len(docs) != 1:
            raise ResourceFailure(f"resource.manifest must hold exactly one object, found {len(docs)}")
        return docs[0]

    @staticmethod
    def _type_of(manifest: dict[str, Any]) -> ResourceType:
        api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
        if not api_version or not kind:
            raise ResourceFailure("resource.manifest: apiVersion and kind are required")
        for rt in REGISTRY.values():
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        served = ", ".join(sorted(f"{rt.kind} ({rt.api_version})" for rt in REGISTRY.values()))
        raise ResourceFailure(f'no matches for kind "{kind}" in version "{api_version}": the local cluster '
                              f"serves {served}")

    def _delete_selected(self, rt: ResourceType, ns: str, selector: str) -> str:
        """``kubectl delete KIND --selector S``: every matching object of the namespace."""
        try:
            items, _, _ = self.state.store.list(rt, ns if rt.namespaced else None, label_selector=selector)
            for obj in items:
                try:
                    self.state.store.delete(rt, ns if rt.namespaced else None, obj["metadata"]["name"])
                except ApiError as exc:
                    if exc.code != 404:
                        raise
        except ApiError as exc:
            raise ResourceFailure(exc.message) from exc
        return ""

    def _parse_flags(self, flags: list[str]) -> _Flags:
        """The kind, name, namespace and selector named by kubectl-style flags: ``[pod, NAME]``,
        ``[pod/NAME]``, ``-n NS`` / ``--namespace=NS``, ``-l S`` / ``--selector=S``; harmless kubectl
        options are accepted and ignored."""
        positional: list[str] = []
        namespace = selector = ""
        i = 0
        while i < len(flags):
            flag = flags[i]
            if flag in ("-n", "--namespace", "-l", "--selector"):
                if i + 1 >= len(flags):
                    raise ResourceFailure(f"resource.flags: {flag} needs a value")
                if flag in ("-n", "--namespace"):
                    namespace = flags[i + 1]
                else:
                    selector = flags[i + 1]
                i += 2
                continue
            if flag.startswith("--namespace="):
                namespace = flag.split("=", 1)[1]
            elif flag.startswith("--selector="):
                selector = flag.split("=", 1)[1]
            elif flag.startswith("-"):
                name = flag.split("=", 1)[0]
                if name not in ("--ignore-not-found", "--validate", "--wait", "--cascade", "--overwrite",
                                "--save-config", "--record"):
                    raise ResourceFailure(f"resource.flags: {name} is not supported by the local cluster (it "
                                          "understands [KIND, NAME], KIND/NAME, -n/--namespace and -l/--selector)")
            else:
                positional.append(flag)
            i += 1
        if not positional:
            return _Flags(None, "", namespace, selector)
        kind, name = positional[0], ""
        if "/" in kind:
            kind, name = kind.split("/", 1)
        elif len(positional) > 1:
            name = positional[1]
        return _Flags(self._type_named(kind), name, namespace, selector)

    @staticmethod
    def _type_named(word: str) -> ResourceType:
        kind, _, group = word.lower().partition(".")
        for rt in REGISTRY.values():
            names = {rt.plural, rt.singular, rt.kind.lower(), *rt.short_names}
            if kind in names and (not group or rt.group.startswith(group)):
                return rt
        raise ResourceFailure(f'resource.flags: the server doesn\'t have a resource type "{word}"')

    @staticmethod
    def _ref(rt: ResourceType, obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return json.dumps([rt.group, rt.plural, meta.get("namespace") or "", meta.get("name", "")])

    def _read(self, target: str) -> dict[str, Any]:
        group, plural, ns, name = json.loads(target)
        rt = REGISTRY.get((group, plural))
        if rt is None:
            raise ResourceFailure(f"resource type {plural}.{group} is no longer served")
        try:
            return self.state.store.get(rt, ns or None, name)
        except ApiError as exc:
            if exc.code == 404:
                raise ResourceFailure("The resource has been deleted while its status was still being checked. "
                                      f"Will not be retried: {exc.message}") from exc
            raise ResourceFailure(exc.message) from exc

    # ------------------------------------------------------------------ conditions and outputs

    @staticmethod
    def _conditions_met(tmpl: dict[str, Any], live: dict[str, Any] | None) -> bool:
        """Whether the success condition holds; :class:`ResourceFailure` when the failure condition
        does (or a condition does not parse), as Argo's ``matchConditions``."""
        res = tmpl.get("resource") or {}
        success, failure = str(res.get("successCondition") or ""), str(res.get("failureCondition") or "")
        if not success and not failure:
            return True
        try:
            success_reqs = parse_condition(success) if success else []
        except QueryError as exc:
            raise ResourceFailure(f"success condition '{success}' failed to parse: {exc}") from exc
        try:
            failure_reqs = parse_condition(failure) if failure else []
        except QueryError as exc:
            raise ResourceFailure(f"fail condition '{failure}' failed to parse: {exc}") from exc
        for req in failure_reqs:
            if req.matches(live):
                raise ResourceFailure(f"failure condition '{req}' evaluated true")
        return all(req.matches(live) for req in success_reqs)

    @staticmethod
    def _outputs(tmpl: dict[str, Any], live: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The output parameters (Argo's ``SaveResourceParameters``)."""
        params: list[dict[str, Any]] = []
        for p in params_of(tmpl.get("outputs")):
            vf = p.get("valueFrom")
            if not isinstance(vf, dict):
                continue
            default = go_string(vf["default"]) if vf.get("default") is not None else None
            value: str | None
            if live is None:
                value = default or ""
            else:
                try:
                    if vf.get("jsonPath"):
                        value = jsonpath(live, str(vf["jsonPath"]))
                    elif vf.get("jqFilter"):
                        value = jq(live, str(vf["jqFilter"]))
                    else:
                        continue
                except QueryError as exc:
                    if default is None:
                        raise ResourceFailure(f"outputs.parameters.{p.get('name')}: {exc}") from exc
                    value = default
            params.append({"name": p.get("name"), "value": value, "valueFrom": vf,
                           **({"globalName": p["globalName"]} if p.get("globalName") else {})})
        return params

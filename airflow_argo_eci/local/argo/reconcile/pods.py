"""Pods of a reconcile pass: a container/script node's pod (spec, env, metadata, deadline), its
creation within the parallelism limits, and the sync of a pod's status and outputs into its node."""

from __future__ import annotations

import copy
import json
import math
import time
from typing import Any

from airflow_argo_eci.conventions import (
    ANNOTATION_NODE_ID,
    ANNOTATION_NODE_NAME,
    ANNOTATION_OUTPUTS,
    ANNOTATION_TEMPLATE,
    API_VERSION,
    LABEL_COMPLETED,
    LABEL_WORKFLOW,
    TERMINAL_PHASES,
    pod_name,
)
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import PERSISTENT_VOLUME_CLAIMS, PODS
from airflow_argo_eci.local.argo.artifacts import ArtifactError
from airflow_argo_eci.local.argo.budget import MAX_POD_CREATIONS_PER_PASS
from airflow_argo_eci.local.argo.container_set import (
    container_phase,
    container_set_problem,
    set_retries,
)
from airflow_argo_eci.local.argo.container_set import set_containers as container_set_containers
from airflow_argo_eci.local.argo.expressions import ExpressionError, evaluate
from airflow_argo_eci.local.argo.nodes import (
    go_json,
    go_string,
    mem_units,
    parse_cpu,
    parse_duration,
    parse_time,
    seconds_between,
)
from airflow_argo_eci.local.argo.podspec import POD_SPEC_FIELDS, apply_pod_spec_patch, field_ref_value
from airflow_argo_eci.local.argo.podstatus import is_ready
from airflow_argo_eci.local.argo.reconcile.artifact_io import ArtifactIO
from airflow_argo_eci.local.argo.reconcile.state import PassState
from airflow_argo_eci.local.argo.reconcile.volumes import (
    MissingClaimError,
    ensure_claims,
    pod_mounts,
    pod_spec_volumes,
    runtime_volumes,
)
from airflow_argo_eci.local.argo.templates import SpecError, TemplateContext, deep_merge, params_of, spec_seconds
from airflow_argo_eci.local.argo.variables import TemplateError, substitute, unresolved_tags
from airflow_argo_eci.local.runtime import PodRequest


class PodRunner:
    """Creates the pods of container/script nodes and reads their results back into the nodes."""

    def __init__(self, state: PassState, artifacts: ArtifactIO) -> None:
        self.state = state
        self.artifacts = artifacts

    def _parallelism_ok(self, boundary: str) -> bool:
        if self.state.parallelism is not None and self.state.active_pods >= self.state.parallelism:
            return False
        limit = self.state.boundary_limits.get(boundary)
        if limit is not None:
            running = sum(1 for n in self.state.nodes.values()
                          if n.get("boundaryID") == boundary and n.get("phase") in ("Pending", "Running")
                          and n.get("type") not in ("StepGroup", "TaskGroup"))
            if running >= limit:
                return False
        return True

    def execute_pod(self, node: dict[str, Any] | None, node_name: str, display: str, holder: dict[str, Any],
                    ctx: TemplateContext, tmpl: dict[str, Any], boundary: str, retries: int
                    ) -> dict[str, Any] | None:
        """Run (or continue) the container/script template ``tmpl`` as pod node ``node_name``: create its
        pod when the limits allow (None when not yet), else sync the node with its pod."""
        pod = pod_name(self.state.name, node_name, tmpl.get("name", ""))
        if node is None:
            if self.state.spec.get("suspend"):
                return None
            if not self._parallelism_ok(boundary):
                return None
            if self.state.created_pods >= MAX_POD_CREATIONS_PER_PASS:
                self.state.requeue(0.05)  # the next pass creates the next batch (Argo's resourceRateLimit)
                return None
            self.state.created_pods += 1
            node = self.state.init_node(node_name, "Pod", display, ctx, tmpl, holder, boundary, "Pending")
            if tmpl.get("inputs"):
                node["inputs"] = tmpl["inputs"]
            self.state.active_pods += 1
            try:
                self._create_pod(pod, node, tmpl)
            except (SpecError, TemplateError, ExpressionError, ArtifactError) as exc:
                self.state.mark(node, "Error", str(exc))
                self.state.active_pods -= 1
                return node
        elif node.get("phase") == "Pending" and self._unscheduled(pod):
            if not self._claims_exist(pod):
                self.state.requeue(1.0)  # the scheduler retries once the claim exists
                return node
            self.state.store.delete(PODS, self.state.namespace, pod)
            try:
                self._create_pod(pod, node, tmpl)
            except (SpecError, TemplateError, ExpressionError, ArtifactError) as exc:
                self.state.mark(node, "Error", str(exc))
                self.state.active_pods -= 1
                return node
            node.pop("message", None)
        self._sync_pod(node, pod, tmpl)
        return node

    def _unscheduled(self, pod: str) -> bool:
        """Whether the pod waits for a claim that did not exist (never handed to the runtime)."""
        obj = self.state.host.get_pod(self.state.namespace, pod) or {}
        return any(c.get("reason") == "Unschedulable" for c in (obj.get("status") or {}).get("conditions") or [])

    def _claims_exist(self, pod: str) -> bool:
        obj = self.state.host.get_pod(self.state.namespace, pod) or {}
        for volume in (obj.get("spec") or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                try:
                    self.state.store.get(PERSISTENT_VOLUME_CLAIMS, self.state.namespace, str(claim))
                except ApiError:
                    return False
        return True

    def _create_pod(self, pod: str, node: dict[str, Any], tmpl: dict[str, Any]) -> None:
        leftovers = unresolved_tags({k: tmpl.get(k) for k in ("container", "script", "containerSet")})
        if leftovers:
            raise TemplateError(f"failed to resolve {leftovers[0]}")
        set_containers = self._set_containers(tmpl, pod) if tmpl.get("containerSet") is not None else None
        source = None
        if set_containers is not None:
            container = next((c for c in set_containers if c["name"] == "main"), set_containers[0])
        else:
            kind = "script" if tmpl.get("script") is not None else "container"
            container = copy.deepcopy(tmpl[kind])
            source = container.pop("source", None) if kind == "script" else None
            container["name"] = "main"
            self._finish_container(container, tmpl, pod)
        metadata_labels: dict[str, str] = {}
        metadata_annotations: dict[str, str] = {}
        for source_md in (self.state.spec.get("podMetadata") or {}, tmpl.get("metadata") or {}):
            metadata_labels.update({k: str(v) for k, v in (source_md.get("labels") or {}).items()})
            metadata_annotations.update({k: str(v) for k, v in (source_md.get("annotations") or {}).items()})
        labels = {**metadata_labels, LABEL_WORKFLOW: self.state.name, LABEL_COMPLETED: "false"}
        annotations = {**metadata_annotations, ANNOTATION_NODE_NAME: node["name"], ANNOTATION_NODE_ID: node["id"]}
        out_params = [p for p in params_of(tmpl.get("outputs"))]
        recorded: dict[str, Any] = {"name": tmpl.get("name", ""), "outputs": {"parameters": out_params}}
        if tmpl.get("daemon"):
            recorded["daemon"] = True
        annotations[ANNOTATION_TEMPLATE] = go_json(recorded)
        init_containers, sidecars = self._extra_containers(tmpl, container, pod)
        spec: dict[str, Any] = {"containers": [*(set_containers or [container]), *sidecars], "restartPolicy": "Never"}
        if init_containers:
            spec["initContainers"] = init_containers
        all_mounts = [m for c in (container, *init_containers, *sidecars) for m in c.get("volumeMounts") or []]
        for key in POD_SPEC_FIELDS:
            value = tmpl.get(key, self.state.spec.get(key))
            if value is not None:
                spec[key] = copy.deepcopy(value)
        spec.setdefault("serviceAccountName", "default")
        ensure_claims(self.state)
        volumes = pod_spec_volumes(self.state, tmpl, all_mounts)
        spec.pop("volumes", None)
        if volumes:
            spec["volumes"] = volumes
        deadline = self._deadline(tmpl)
        if deadline is not None:
            spec["activeDeadlineSeconds"] = math.ceil(deadline)
        for patch_src, where in ((self.state.spec.get("podSpecPatch"), "spec.podSpecPatch"),
                                 (tmpl.get("podSpecPatch"), f"templates.{tmpl.get('name', '')}.podSpecPatch")):
            if patch_src:
                text = substitute(str(patch_src), self.state.global_scope)
                spec = apply_pod_spec_patch(spec, text, where)
        main = next((c for c in spec.get("containers") or [] if c.get("name") == container["name"]), container)
        set_names = {str(c["name"]) for c in set_containers or []}
        eci = labels.get("alibabacloud.com/eci") == "true" or spec.get("schedulerName") == "eci-scheduler"
        spec["nodeName"] = "virtual-kubelet" if eci else "local"
        pod_obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "namespace": self.state.namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [{
                    "apiVersion": API_VERSION, "kind": "Workflow", "name": self.state.name,
                    "uid": self.state.uid, "controller": True, "blockOwnerDeletion": True,
                }],
            },
            "spec": spec,
            "status": {"phase": "Pending"},
        }
        node["hostNodeName"] = spec["nodeName"]
        where = f"templates.{tmpl.get('name', '')}"
        try:
            pod_volumes, mounts = runtime_volumes(self.state, spec.get("volumes") or [], pod_mounts(spec), where)
        except MissingClaimError as exc:  # the scheduler leaves it Pending; the deadline ends it
            message = f"0/1 nodes are available: {exc}."
            pod_obj["status"]["conditions"] = [{"type": "PodScheduled", "status": "False",
                                                "reason": "Unschedulable", "message": message}]
            self.state.store.create(PODS, self.state.namespace, pod_obj)
            node["message"] = f"Unschedulable: {message}"
            self.state.requeue(1.0)
            return
        output_paths = [str((p.get("valueFrom") or {}).get("path")) for p in out_params
                        if (p.get("valueFrom") or {}).get("path")]
        inputs_plan = self.artifacts.input_plan(node, tmpl)
        outputs_plan, key_prefix = self.artifacts.output_plan(tmpl, pod)
        request = PodRequest(
            namespace=self.state.namespace,
            pod_name=pod,
            container=main,
            script_source=source,
            output_paths=output_paths,
            cpu=parse_cpu(((main.get("resources") or {}).get("requests") or {}).get("cpu"), 0.1),
            deadline_seconds=deadline,
            labels=labels,
            annotations=annotations,
            input_paths=[str(a["path"]) for a, _ in inputs_plan],
            artifact_paths=[str(a["path"]) for a, _, _, _ in outputs_plan],
            prepare=self.artifacts.loader(inputs_plan) if inputs_plan else None,
            security_context=spec.get("securityContext"),
            host_network=spec.get("hostNetwork", False),
            volumes=pod_volumes,
            volume_mounts=mounts,
            init_containers=list(spec.get("initContainers") or []),
            sidecars=[c for c in spec.get("containers") or [] if c is not main and c.get("name") not in set_names],
            container_set=None if set_containers is None else [
                c for c in spec.get("containers") or [] if c is not main and c.get("name") in set_names],
            container_retries=set_retries(tmpl) if set_containers is not None else 0,
            network=f"{self.state.namespace}/{self.state.uid or self.state.name}"
            if tmpl.get("daemon") or self.state.uses_daemons() else None,
        )
        saver = self.artifacts.saver(outputs_plan, key_prefix) if outputs_plan else None
        if set_containers is not None:
            self._add_container_nodes(node, tmpl, [str(c["name"]) for c in set_containers])
        self.state.host.create_and_submit(pod_obj, request, save_artifacts=saver)

    def _finish_container(self, container: dict[str, Any], tmpl: dict[str, Any], pod: str) -> None:
        """Give a pod container the workflow's ``podResources`` and its env with ``valueFrom`` resolved."""
        resources = deep_merge(self.state.spec.get("podResources") or {}, container.get("resources") or {})
        if resources:
            container["resources"] = resources
        env = self._env(container, tmpl, pod)
        if env:
            container["env"] = env

    def _set_containers(self, tmpl: dict[str, Any], pod: str) -> list[dict[str, Any]]:
        """A ``containerSet`` template's containers as pod containers: the set's ``volumeMounts``
        added to each, env resolved (:func:`.container_set.container_set_problem` checks the set)."""
        problem = container_set_problem(f"templates.{tmpl.get('name', '')}", tmpl.get("containerSet"),
                                        bool(tmpl.get("outputs") or {}))
        if problem:
            raise SpecError(problem)
        containers = container_set_containers(tmpl)
        for container in containers:
            self._finish_container(container, tmpl, pod)
        return containers

    def _add_container_nodes(self, node: dict[str, Any], tmpl: dict[str, Any], names: list[str]) -> None:
        """Argo's ``Container`` nodes of a container set: ``<pod node>.<container>``, children of
        the pod's node, Pending until the pod ends."""
        for name in names:
            child = self.state.init_node(f"{node['name']}.{name}", "Container", name, None, tmpl, None,
                                         str(node.get("boundaryID") or ""), "Pending")
            if node.get("templateScope"):
                child["templateScope"] = node["templateScope"]
            self.state.add_child(node, child["id"])

    def _sync_container_nodes(self, node: dict[str, Any], codes: dict[str, Any], pod_phase: str) -> None:
        """Give each ``Container`` node of a finished container set its container's outcome."""
        for child_id in node.get("children") or []:
            child = self.state.nodes.get(child_id)
            if child is None or child.get("type") != "Container" or child.get("phase") not in ("Pending", "Running"):
                continue
            code = codes.get(str(child.get("displayName")))
            phase, message = container_phase(code if isinstance(code, int) else None, pod_phase)
            if isinstance(code, int):
                child["outputs"] = {"exitCode": str(code)}
            child["startedAt"] = node.get("startedAt", child.get("startedAt"))
            self.state.mark(child, phase, message)

    def _extra_containers(self, tmpl: dict[str, Any], main: dict[str, Any], pod: str
                          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The template's ``initContainers`` and ``sidecars`` as pod containers: env resolved,
        ``mirrorVolumeMounts`` replaced by main's mounts."""
        out: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        names = {"main", "wait", "init"}  # Argo's own container names
        for kind, target in (("initContainers", out[0]), ("sidecars", out[1])):
            for index, raw in enumerate(tmpl.get(kind) or []):
                if not isinstance(raw, dict) or not raw.get("name"):
                    raise SpecError(f"templates.{tmpl.get('name', '')}.{kind}[{index}].name is required")
                if raw["name"] in names:
                    where = f"templates.{tmpl.get('name', '')}.{kind}[{index}].name"
                    raise SpecError(f'pods "{pod}" is invalid: {where}: '
                                    f'Duplicate value: "{raw["name"]}" (every container of a pod needs its own name; '
                                    "main, wait and init are Argo's)")
                names.add(str(raw["name"]))
                extra = copy.deepcopy(raw)
                if extra.pop("mirrorVolumeMounts", False):
                    extra["volumeMounts"] = [*(extra.get("volumeMounts") or []),
                                             *copy.deepcopy(main.get("volumeMounts") or [])]
                env = self._env(extra, tmpl, pod)
                extra.pop("env", None)
                if env:
                    extra["env"] = env
                target.append(extra)
        return out

    def _env(self, container: dict[str, Any], tmpl: dict[str, Any], pod: str) -> list[dict[str, Any]]:
        """The container's env with every ``valueFrom`` (ConfigMap, Secret, fieldRef) resolved to a value."""
        env: list[dict[str, Any]] = []
        for i, e in enumerate(container.get("env") or []):
            if not isinstance(e, dict) or not e.get("name"):
                raise SpecError(f"templates.{tmpl.get('name', '')}.container.env[{i}].name is required")
            if e.get("valueFrom"):
                vf = e["valueFrom"]
                field = f"templates.{tmpl.get('name', '')}.container.env[{i}].valueFrom"
                if vf.get("configMapKeyRef"):
                    value = self.state.config_map_value(vf["configMapKeyRef"], field)
                elif vf.get("secretKeyRef"):
                    value = self.state.secret_value(vf["secretKeyRef"], field)
                elif vf.get("fieldRef"):
                    value = field_ref_value(vf["fieldRef"], pod, self.state.namespace,
                                            self.state.host.pod_address(self.state.namespace, pod),
                                            pod_object=self._downward_view(tmpl), field=f"{field}.fieldRef")
                else:
                    raise SpecError(f"{field}: only configMapKeyRef, secretKeyRef and fieldRef are supported "
                                    "by the local cluster")
                env.append({"name": e["name"], "value": value})
            else:
                env.append({"name": e["name"], "value": go_string(e.get("value", ""))})
        return env

    def _downward_view(self, tmpl: dict[str, Any]) -> dict[str, Any]:
        """What the downward API reads of the pod before it exists: its labels and annotations from
        the pod metadata, its node and service account (its uid is only known once it is created)."""
        labels: dict[str, str] = {}
        annotations: dict[str, str] = {}
        for source in (self.state.spec.get("podMetadata") or {}, tmpl.get("metadata") or {}):
            labels.update({k: str(v) for k, v in (source.get("labels") or {}).items()})
            annotations.update({k: str(v) for k, v in (source.get("annotations") or {}).items()})
        labels.update({LABEL_WORKFLOW: self.state.name, LABEL_COMPLETED: "false"})
        eci = labels.get("alibabacloud.com/eci") == "true" or \
            tmpl.get("schedulerName", self.state.spec.get("schedulerName")) == "eci-scheduler"
        account = tmpl.get("serviceAccountName", self.state.spec.get("serviceAccountName")) or "default"
        return {"metadata": {"labels": labels, "annotations": annotations},
                "spec": {"nodeName": "virtual-kubelet" if eci else "local", "serviceAccountName": account}}

    def _deadline(self, tmpl: dict[str, Any]) -> float | None:
        candidates = []
        ads = tmpl.get("activeDeadlineSeconds")
        if ads not in (None, ""):
            candidates.append(parse_duration(ads, field=f"templates.{tmpl.get('name', '')}.activeDeadlineSeconds"))
        if tmpl.get("timeout"):
            candidates.append(parse_duration(tmpl["timeout"], field=f"templates.{tmpl.get('name', '')}.timeout"))
        wf_ads = self.state.spec.get("activeDeadlineSeconds")
        started = parse_time(self.state.status.get("startedAt"))
        if wf_ads not in (None, "") and started is not None:
            candidates.append(max(1.0, spec_seconds(wf_ads, "spec.activeDeadlineSeconds")
                                  - (time.time() - started.timestamp())))
        return min(candidates) if candidates else None

    def sync_active_pods(self) -> None:
        """Bring every Pending/Running pod node up to date, also those the walk no longer visits
        (e.g. under a DAG that failFast already decided)."""
        for node in list(self.state.nodes.values()):
            if node.get("type") == "Pod" and node.get("phase") in ("Pending", "Running"):
                self._sync_pod(node, self.state.pod_name_of(node), None)

    def _sync_pod(self, node: dict[str, Any], pod: str, tmpl: dict[str, Any] | None) -> None:
        obj = self.state.host.get_pod(self.state.namespace, pod)
        if obj is not None and tmpl is None:
            recorded = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TEMPLATE)
            tmpl = json.loads(recorded) if recorded else {}
        if obj is None:
            node.pop("daemoned", None)
            self.state.mark(node, "Error", "pod deleted")
            self.state.active_pods = max(0, self.state.active_pods - 1)
            return
        phase = (obj.get("status") or {}).get("phase", "Pending")
        if phase == "Pending" and self.state.host.pod_is_running(self.state.namespace, pod):
            self.state.host.mark_pod_running(self.state.namespace, pod)
            obj = self.state.host.get_pod(self.state.namespace, pod) or obj
            phase = (obj.get("status") or {}).get("phase", "Running")
        daemon = bool((tmpl or {}).get("daemon"))
        if phase == "Running":
            if not daemon:
                if node["phase"] == "Pending":
                    self.state.mark(node, "Running")
            elif not self.state.daemoned(node) and is_ready(obj.get("status") or {}):
                # Argo: a daemon's node is up once its pod runs and every container is ready
                node["daemoned"] = True
                node["podIP"] = (obj.get("status") or {}).get("podIP", "")
                self.state.mark(node, "Running")
                self.state.note_daemon()
            return
        if phase not in ("Succeeded", "Failed"):
            return
        node.pop("daemoned", None)
        tmpl = tmpl or {}
        raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_OUTPUTS)
        info: dict[str, Any] = json.loads(raw) if raw else {}
        outputs: dict[str, Any] = {}
        exit_code = info.get("exitCode")
        node_phase = info.get("phase") or phase
        message = info.get("message", "")
        if exit_code is not None:
            outputs["exitCode"] = str(exit_code)
        if info.get("result") is not None and (node_phase != "Error" or info.get("result")):
            outputs["result"] = info["result"]
        files: dict[str, Any] = info.get("files") or {}
        params: list[dict[str, Any]] = []
        for p in params_of(tmpl.get("outputs")):
            vf = p.get("valueFrom") or {}
            value: str | None = None
            if vf.get("path"):
                content = files.get(vf["path"])
                if content is not None:
                    value = content[:-1] if content.endswith("\n") else content
            if value is None and p.get("value") is not None:
                value = go_string(p["value"])
            if value is None and vf.get("default") is not None:
                value = go_string(vf["default"])
            if value is None and vf.get("expression"):
                try:
                    value = go_string(evaluate(str(vf["expression"]), self.state.global_scope.env()))
                except ExpressionError:
                    value = None
            if value is None:
                if node_phase == "Succeeded":
                    node_phase = "Error"
                    message = (f"Error (exit code 1): failed to get output parameter '{p.get('name')}': "
                               f"open {vf.get('path', '')}: no such file or directory")
                continue
            entry: dict[str, Any] = {"name": p.get("name"), "value": value}
            if vf:
                entry["valueFrom"] = vf
            if p.get("globalName"):
                entry["globalName"] = p["globalName"]
                self.state.set_global_output(str(p["globalName"]), value)
            params.append(entry)
        if params:
            outputs["parameters"] = params
        saved_arts = [a for a in (info.get("artifacts") or []) if isinstance(a, dict)]
        if saved_arts:
            outputs["artifacts"] = saved_arts
            for a in saved_arts:
                if a.get("globalName"):
                    self.state.set_global_artifact(str(a["globalName"]), a)
        if outputs:
            node["outputs"] = outputs
        if isinstance(info.get("containers"), dict):
            self._sync_container_nodes(node, info["containers"], node_phase)
        node["hostNodeName"] = (obj.get("spec") or {}).get("nodeName", "local")
        if info.get("startedAt"):
            node["startedAt"] = info["startedAt"]
        if info.get("finishedAt"):
            node["finishedAt"] = info["finishedAt"]
        duration = max(1.0, seconds_between(node.get("startedAt"), node.get("finishedAt")))
        container = ((obj.get("spec") or {}).get("containers") or [{}])[0]
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu = parse_cpu(requests.get("cpu"), 1.0)
        node["resourcesDuration"] = {"cpu": max(1, round(duration * cpu)),
                                     "memory": max(1, round(duration * mem_units(requests.get("memory"))))}
        if daemon and node_phase == "Succeeded":  # a daemon runs until its scope ends (Argo: Failed)
            node_phase = "Failed"
            message = message or "the daemon's pod exited (exit code 0) before its scope ended"
        self.state.mark(node, node_phase if node_phase in TERMINAL_PHASES else "Error", message)
        self.state.active_pods = max(0, self.state.active_pods - 1)

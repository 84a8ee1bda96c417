"""Compose the local cluster: store, runtime, controller and the HTTP API, in one process."""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.conventions import ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY
from airflow_argo_eci.local.httpserve import LOOPBACK, LocalClusterError, serve_in_thread
from airflow_argo_eci.local.kubeconfig import write_kubeconfig, write_private
from airflow_argo_eci.local.paths import StatePaths
from airflow_argo_eci.local.tls import ensure_certificate

if TYPE_CHECKING:
    import uvicorn

    from airflow_argo_eci.local.api.rbac import Tokens
    from airflow_argo_eci.local.api.store import Store
    from airflow_argo_eci.local.argo.controller import Controller
    from airflow_argo_eci.local.controllers import Controllers
    from airflow_argo_eci.local.eci.image_caches import ImageCacheController
    from airflow_argo_eci.local.fluid.controller import FluidController
    from airflow_argo_eci.local.node_link import NodeProcess
    from airflow_argo_eci.local.oss.server import OSSServer
    from airflow_argo_eci.local.runtime.runner import Runtime

log = logging.getLogger(__name__)

#: the bucket ``local up`` creates for workflow artifacts
ARTIFACT_BUCKET = "argo-artifacts"
#: the Secret holding the local OSS store's keys, in every initial namespace
OSS_CREDENTIALS_SECRET = "argo-oss-credentials"  # noqa: S105  # a Secret name
#: the repository key of the ``artifact-repositories`` ConfigMap
ARTIFACT_REPOSITORY_KEY = "default-v1"
#: records the data this server last wrote into a ConfigMap/Secret it manages: an object whose data
#: still matches is refreshed (e.g. a new OSS port), one a user edited is left alone
MANAGED_ANNOTATION = "local.airflow-argo-eci.io/managed-data"


class LocalCluster:
    """A Kubernetes-API-compatible endpoint with an Argo-compatible executor on 127.0.0.1.

    All state lives under ``state_dir`` (SQLite database, pod logs, per-pod scratch, the
    kubeconfig with the bearer token). Restarting on the same ``state_dir`` keeps every object;
    pods that were running when it stopped end as ``Error`` and their ``retryStrategy`` applies.

    ``sandbox``: ``"auto"`` (default) and ``"bwrap"`` run every pod in the full sandbox (see
    ``runtime/sandbox.py``) and :meth:`start` raises :class:`LocalClusterError` naming each missing
    piece when this machine lacks one; ``"none"`` runs pods without any isolation and must be asked
    for explicitly. ``sandbox_uid``: the unprivileged host uid pods run as when the cluster runs as
    root (default 65534). :attr:`sandbox_report` says what holds. ``oss_bandwidth``: a cap (bytes
    per second) on the OSS store for all clients together (``local up --oss-bandwidth``); none by
    default. The Fluid controller (``local/fluid/``) runs with the workflow controller.
    ``node_process``: the controllers and the pod runtime run in a process of their own
    (``local/node_process.py``) on the same database, so that the API server's event loop does
    not share the interpreter lock with a fan-out's work (:attr:`controller`, :attr:`runtime`,
    :attr:`fluid` and :attr:`image_caches` are then None in this process).

    The server only ever binds the loopback interface, serves HTTPS with a self-signed
    certificate that the kubeconfig pins, and rejects any request without the random bearer token
    written into the kubeconfig, because it executes commands.
    """

    def __init__(
        self,
        state_dir: str | Path,
        *,
        port: int = 0,
        capacity_vcpu: float = 8.0,
        sandbox: str = "auto",
        pids_limit: int | None = 1024,
        token: str | None = None,
        run_controller: bool = True,
        sandbox_uid: int | None = None,
        oss_bandwidth: int | None = None,
        node_process: bool = False,
    ) -> None:
        if capacity_vcpu <= 0:
            raise ValueError(f"capacity_vcpu must be > 0 (got {capacity_vcpu}); it bounds concurrent pods")
        if sandbox not in ("auto", "bwrap", "none"):
            raise ValueError(f"sandbox must be 'auto', 'bwrap' or 'none' (got {sandbox!r})")
        if node_process and not run_controller:
            raise ValueError("node_process=True runs the controllers in a process of their own: "
                             "it needs run_controller=True")
        self.paths = StatePaths(Path(state_dir).expanduser().resolve())
        self.port = port
        self.capacity_vcpu = capacity_vcpu
        self.sandbox = sandbox
        #: the unprivileged host uid pods run as when the cluster runs as root (None: 65534)
        self.sandbox_uid = sandbox_uid
        #: processes and threads per pod (the kubelet's podPidsLimit); None: no limit
        self.pids_limit = pids_limit
        self.token = token or secrets.token_urlsafe(32)
        self.run_controller = run_controller
        #: the OSS store's bandwidth cap in bytes per second for all clients together (None: none)
        self.oss_bandwidth = oss_bandwidth
        self.node_process = node_process
        #: the node process (``node_process=True``) and its ready answer; see :meth:`_start_node`
        self._node: NodeProcess | None = None
        #: a file the node process appends (resourceVersion, monotonic time) of its Pod commits to
        #: (``bench/fanout.py``); "" for none
        self.commit_times = ""
        self.store: Store | None = None
        self.runtime: Runtime | None = None
        #: the controllers, when they run in this process (``local/controllers.py``)
        self._controllers: Controllers | None = None
        self.oss: OSSServer | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._tokens: Tokens | None = None

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def controller(self) -> Controller | None:
        """The workflow controller, when it runs in this process."""
        return self._controllers.workflows if self._controllers is not None else None

    @property
    def fluid(self) -> FluidController | None:
        """The Fluid controller (runs with the workflow controller)."""
        return self._controllers.fluid if self._controllers is not None else None

    @property
    def image_caches(self) -> ImageCacheController | None:
        """The ImageCache controller and its pod hook (``local/eci/``; runs with the workflow controller)."""
        return self._controllers.image_caches if self._controllers is not None else None

    @property
    def sandbox_report(self) -> dict[str, Any] | None:
        """What the pods' sandbox holds and lacks (:class:`.runtime.isolation.SandboxReport` as a
        dict: mode, requested, holds, missing, notes), once started; recorded in ``server.json``."""
        if self._node is not None:
            return self._node.ready.get("sandbox")
        report = self.runtime.sandbox.report if self.runtime is not None else None
        return report.to_dict() if report is not None else None

    @property
    def limits_method(self) -> str:
        """How pods' resource limits are enforced (cgroup v2, v1, rlimits), once started."""
        if self._node is not None:
            return str(self._node.ready.get("limits") or "")
        return self.runtime.limits_method if self.runtime is not None else ""

    @property
    def kubeconfig_path(self) -> Path:
        return self.paths.kubeconfig

    @property
    def tokens(self) -> Tokens:
        """The bearer tokens the API accepts: :attr:`token` (the admin) and those of :meth:`add_token`."""
        from airflow_argo_eci.local.api.rbac import Tokens

        if self._tokens is None:
            self._tokens = Tokens(self.token)
        return self._tokens

    def add_token(self, name: str, rules: list[dict[str, Any]], namespaces: list[str] | None = None) -> str:
        """A new bearer token for a restricted identity ``name`` allowed only what ``rules`` (RBAC
        PolicyRule dicts: apiGroups, resources incl. ``pods/log``, verbs, resourceNames; ``*``
        wildcards) allow, in ``namespaces`` only when given. Enforced on every request of the token
        (403 otherwise; the Argo Server routes are admin-only); kept in memory, not across restarts."""
        return self.tokens.add(name, rules, namespaces=namespaces)

    def build_app(self) -> Any:
        """The FastAPI application: Kubernetes API routes plus the Argo Server REST subset."""
        from airflow_argo_eci.local.api.app import create_app
        from airflow_argo_eci.local.api.argo_server import build_argo_server_router
        from airflow_argo_eci.local.api.request_log import RequestLog

        assert self.store is not None
        app = create_app(self.store, token=self.token, paths=self.paths, tokens=self.tokens, manage_crds=True)
        #: the API's recent requests since this start (method, path, query, content type, small
        #: bodies): what clients sent, for tests; never served over HTTP
        self.request_log: RequestLog = app.state.request_log
        oss_clients = self.controller.oss_clients if self.controller else None
        if oss_clients is None and self._node is not None:
            from airflow_argo_eci.local.argo.artifacts import OSSClients

            oss_clients = OSSClients(self.paths.tls_cert)
        app.include_router(build_argo_server_router(
            self.store, self.paths, oss_clients=oss_clients,
            artifact_credentials=next(iter(self.oss_credentials().items())) if self.oss is not None else None))
        return app

    def start(self, *, timeout: float = 30.0) -> LocalCluster:
        """Open the store, start runtime, controller and the HTTP server; return when it listens."""
        from airflow_argo_eci.local.api.store import Store
        from airflow_argo_eci.local.controllers import Controllers
        from airflow_argo_eci.local.runtime.runner import Runtime
        from airflow_argo_eci.local.runtime.sandbox import SandboxError

        self.paths.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.paths.root, 0o700)
        if self.node_process:
            from airflow_argo_eci.local.node_link import NodeProcess

            self._node = NodeProcess()
        self.store = Store(self.paths.db, peer=self._node.peer if self._node is not None else None)
        if self._node is None:
            try:  # refuses an incomplete sandbox (isolation.py) before anything listens
                self.runtime = Runtime(self.paths, capacity_vcpu=self.capacity_vcpu, sandbox=self.sandbox,
                                       pids_limit=self.pids_limit, sandbox_uid=self.sandbox_uid)
            except SandboxError as exc:
                self.stop()
                raise LocalClusterError(str(exc)) from exc
            except Exception:
                self.stop()
                raise
        cert, key = ensure_certificate(self.paths.tls_cert, self.paths.tls_key)
        try:
            self.oss = self._start_oss(cert, key)
            self.setup_artifact_repository()
            if self._node is not None:  # the node process refuses an incomplete sandbox likewise
                self._start_node(timeout)
        except Exception:
            self.stop()
            raise
        if self.run_controller and self.runtime is not None:
            self._controllers = Controllers.start(
                self.store, self.runtime, self.paths, oss_endpoint=self.oss.endpoint,
                oss_credentials=next(iter(self.oss_credentials().items())),
                artifact_repository={"oss": self.artifact_repository_spec(default=True)})
        try:
            self._server, self._thread, self.port = serve_in_thread(
                self.build_app(), port=self.port, ssl_certfile=str(cert), ssl_keyfile=str(key), timeout=timeout)
        except LocalClusterError:
            self.stop()
            raise
        write_private(self.paths.token, self.token + "\n")
        write_kubeconfig(self.paths.kubeconfig, self.url, self.token, ca_pem=cert.read_bytes())
        write_private(
            self.paths.server_info,
            json.dumps({"url": self.url, "port": self.port, "pid": os.getpid(), "started_at": time.time(),
                        "oss_endpoint": self.oss.endpoint, "oss_region": self.oss.region,
                        "oss_bandwidth": self.oss_bandwidth,
                        "limits": self.limits_method, "sandbox": self.sandbox_report,
                        "node_pid": self._node.pid if self._node is not None else None}),
        )
        log.info("local cluster listening on %s (state in %s)", self.url, self.paths.root)
        return self

    def _start_node(self, timeout: float) -> None:
        """Start the node process (controllers and runtime) and wait for its ready answer."""
        from airflow_argo_eci.local.node_process import NodeConfig

        assert self._node is not None and self.oss is not None
        key_id, secret = next(iter(self.oss_credentials().items()))
        self._node.start(NodeConfig(
            state_dir=str(self.paths.root), capacity_vcpu=self.capacity_vcpu,
            sandbox=self.sandbox, pids_limit=self.pids_limit, sandbox_uid=self.sandbox_uid,
            oss_endpoint=self.oss.endpoint, oss_credentials=(key_id, secret),
            artifact_repository={"oss": self.artifact_repository_spec(default=True)},
            commit_times=self.commit_times, log_level=logging.getLogger("airflow_argo_eci").getEffectiveLevel()),
            timeout=timeout)

    @property
    def _oss_port_file(self) -> Path:
        return self.paths.root / "oss-port"

    def _start_oss(self, cert: Path, key: Path) -> OSSServer:
        """Start the OSS store on the port it had before (so recorded endpoints stay valid across
        restarts), or a new one when that port is taken."""
        from airflow_argo_eci.local.oss.server import OSSServer

        try:
            previous = int(self._oss_port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            previous = 0
        try:
            server = OSSServer(self.paths.oss_dir, self.oss_credentials(), port=previous, tls=(cert, key),
                               bandwidth=self.oss_bandwidth).start()
        except LocalClusterError:
            if not previous:
                raise
            log.warning("the OSS store's previous port %d is taken; using a new one", previous)
            server = OSSServer(self.paths.oss_dir, self.oss_credentials(), tls=(cert, key),
                               bandwidth=self.oss_bandwidth).start()
        write_private(self._oss_port_file, f"{server.port}\n")
        return server

    def artifact_repository_spec(self, *, default: bool = False) -> dict[str, Any]:
        """The ``oss`` artifact repository of the local store (Argo's ``OSSArtifactRepository``);
        ``default=True`` gives the controller's default, which names no Secret (keys are built in)."""
        assert self.oss is not None
        spec: dict[str, Any] = {"endpoint": self.oss.endpoint, "bucket": ARTIFACT_BUCKET,
                                "keyFormat": "{{workflow.name}}/{{pod.name}}"}
        if not default:
            spec["accessKeySecret"] = {"name": OSS_CREDENTIALS_SECRET, "key": "accessKey"}
            spec["secretKeySecret"] = {"name": OSS_CREDENTIALS_SECRET, "key": "secretKey"}
        return spec

    def setup_artifact_repository(self) -> None:
        """Create the artifacts bucket and, in each initial namespace, the Secret
        ``argo-oss-credentials`` and the ConfigMap ``artifact-repositories`` (default key
        ``default-v1``) as an Argo installation on ACK One has them. Idempotent; objects a user
        edited are never overwritten."""
        import base64

        import oss2
        import yaml

        from airflow_argo_eci.eci_conventions import ARGO_NAMESPACE, CONTROLLER_CONFIGMAP
        from airflow_argo_eci.local.api.install_objects import controller_configmap_data, seed_install_objects
        from airflow_argo_eci.local.api.resources import CONFIGMAPS, SECRETS
        from airflow_argo_eci.local.api.store import INITIAL_NAMESPACES

        assert self.oss is not None and self.store is not None
        key_id, secret = next(iter(self.oss_credentials().items()))
        session = self.oss.session()
        try:
            bucket = oss2.Bucket(oss2.Auth(key_id, secret), self.oss.endpoint, ARTIFACT_BUCKET, session=session)
            try:
                bucket.create_bucket()
            except oss2.exceptions.OssError as exc:
                if exc.status != 409:  # BucketAlreadyExists: kept from an earlier start
                    raise
        finally:
            session.session.close()
        repo_yaml = yaml.safe_dump({"oss": self.artifact_repository_spec()}, sort_keys=False)
        secret_data = {"accessKey": base64.b64encode(key_id.encode()).decode(),
                       "secretKey": base64.b64encode(secret.encode()).decode()}
        for namespace in INITIAL_NAMESPACES:
            self._ensure_managed(SECRETS, namespace, OSS_CREDENTIALS_SECRET,
                                 {"type": "Opaque", "data": secret_data}, {})
            self._ensure_managed(
                CONFIGMAPS, namespace, "artifact-repositories", {"data": {ARTIFACT_REPOSITORY_KEY: repo_yaml}},
                {ANNOTATION_DEFAULT_ARTIFACT_REPOSITORY: ARTIFACT_REPOSITORY_KEY})
        # the controller's ConfigMap: its artifactRepository is the controller's default repository
        self._ensure_managed(CONFIGMAPS, ARGO_NAMESPACE, CONTROLLER_CONFIGMAP,
                             {"data": controller_configmap_data({"oss": self.artifact_repository_spec()})}, {})
        seed_install_objects(self.store)

    def _ensure_managed(self, rt: Any, namespace: str, name: str, body: dict[str, Any],
                        annotations: dict[str, str]) -> None:
        import hashlib

        from airflow_argo_eci.local.api.errors import ApiError

        assert self.store is not None
        digest = hashlib.sha256(json.dumps(body.get("data"), sort_keys=True).encode()).hexdigest()
        obj = {"apiVersion": "v1", "kind": rt.kind,
               "metadata": {"name": name, "namespace": namespace,
                            "annotations": {**annotations, MANAGED_ANNOTATION: digest}}, **body}
        try:
            self.store.create(rt, namespace, obj)
            return
        except ApiError as exc:
            if exc.code != 409:
                raise

        def refresh(current: dict[str, Any]) -> dict[str, Any] | None:
            meta = current.setdefault("metadata", {})
            recorded = (meta.get("annotations") or {}).get(MANAGED_ANNOTATION)
            actual = hashlib.sha256(json.dumps(current.get("data"), sort_keys=True).encode()).hexdigest()
            if recorded != actual or actual == digest:
                return current  # edited by a user, or already up to date: leave it
            current["data"] = body["data"]
            meta.setdefault("annotations", {})[MANAGED_ANNOTATION] = digest
            return None

        self.store.update(rt, namespace, name, refresh)

    def oss_credentials(self) -> dict[str, str]:
        """``{access key id: secret}`` of the local OSS store: made once per state directory and
        kept (mode 0600) so clients configured earlier keep working after a restart."""
        try:
            creds = json.loads(self.paths.oss_credentials.read_text())
        except FileNotFoundError:
            creds = {"access_key_id": "LTAI" + secrets.token_hex(8).upper(),
                     "access_key_secret": secrets.token_urlsafe(24)}
            write_private(self.paths.oss_credentials, json.dumps(creds))
        return {str(creds["access_key_id"]): str(creds["access_key_secret"])}

    def stop(self) -> None:
        """Stop the HTTP servers, the controller and every running pod; close the stores."""
        node, self._node = self._node, None
        if node is not None:  # first: its controllers and pods use the OSS store and the API's
            node.stop()
        controllers, self._controllers = self._controllers, None
        if controllers is not None:  # first too: Fluid's loads and the pods' artifacts use the OSS store
            controllers.stop()
        if self.oss is not None:
            self.oss.stop()
            self.oss = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.runtime is not None:
            self.runtime.shutdown()
        if self.store is not None:
            self.store.close()
        if node is not None:
            node.close_wake()
        self._server = self._thread = None
        self.runtime = None
        self.store = None
        try:
            self.paths.server_info.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

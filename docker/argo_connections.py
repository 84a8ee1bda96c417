"""Write the Airflow connections of the docker-compose deployment into one JSON file.

The compose file configures Airflow's ``LocalFilesystemBackend`` with
``/opt/airflow/argo/connections.json`` (a volume every Airflow container mounts). Which cluster
the connections point at is decided by the compose profile, and each profile's service writes
this file with this script before the Airflow services start:

* ``from-local STATE_DIR OUT``: profile ``local``. Reads the connections of the running local
  cluster through its public CLI (``airflow-argo-eci local env``), exactly those a shell user gets.
* ``from-kubeconfig KUBECONFIG OUT``: profile ``cluster`` (ACK / ECI). Copies the mounted
  kubeconfig next to OUT (readable by the Airflow user only), checks that it is self-contained,
  and writes ``argo_default`` (plus ``oss_default`` when the ``OSS_*`` variables are set).
* ``empty OUT``: write ``{}`` when OUT is missing (``airflow-init``), so the backend never fails
  on a missing file when neither profile is used.

Only the standard library, PyYAML and this package's CLI are used; every error names the field or
variable and the fix, and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: kubeconfig fields that name a file on the host, which does not exist inside the container
_FILE_FIELDS = {
    "clusters": ("certificate-authority",),
    "users": ("client-certificate", "client-key", "tokenFile"),
}
#: the ``oss_default`` connection in the cluster profile, from these variables
OSS_VARIABLES = ("OSS_ENDPOINT", "OSS_REGION", "OSS_BUCKET", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET")


class ConfigError(Exception):
    """A bad input; the message names the field and the fix."""


def write_json(out: Path, data: dict[str, Any]) -> None:
    """Replace ``out`` atomically with ``data`` (mode 0600), so a reader never sees half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".connections-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, out)


def parse_env_exports(text: str) -> dict[str, dict[str, Any]]:
    """The ``AIRFLOW_CONN_<ID>`` exports of ``local env`` as ``{conn_id: connection dict}``."""
    connections: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) != 2 or words[0] != "export" or "=" not in words[1]:
            continue
        name, value = words[1].split("=", 1)
        if name.startswith("AIRFLOW_CONN_"):
            connections[name[len("AIRFLOW_CONN_"):].lower()] = json.loads(value)
    if "argo_default" not in connections:
        raise ConfigError("`airflow-argo-eci local env` printed no AIRFLOW_CONN_ARGO_DEFAULT; "
                          "is the local cluster running with this --state-dir?")
    return connections


def from_local(state_dir: Path, cli: str = "airflow-argo-eci") -> dict[str, dict[str, Any]]:
    """Connections to the local cluster running on ``state_dir``."""
    result = subprocess.run([cli, "local", "env", "--state-dir", str(state_dir)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigError(f"no local cluster is running on --state-dir {state_dir} (`local env` exited "
                          f"{result.returncode}); start it with `airflow-argo-eci local up --state-dir {state_dir}`")
    return parse_env_exports(result.stdout)


def check_kubeconfig(path: Path) -> dict[str, Any]:
    """Parse ``path`` and refuse a kubeconfig that depends on files or programs of the host."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"kubeconfig {path} does not exist: set KUBECONFIG_FILE to your ACK cluster's "
                          f"kubeconfig (docker compose mounts it there)")
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"kubeconfig {path} is not valid YAML ({exc}); download it again from the ACK console") \
            from exc
    if not isinstance(config, dict) or not config.get("clusters") or not config.get("users"):
        raise ConfigError(f"kubeconfig {path} has no `clusters`/`users`; download it again from the ACK console")
    for section, fields in _FILE_FIELDS.items():
        for entry in config.get(section) or []:
            body = (entry or {}).get(section[:-1]) or {}
            for field in fields:
                if field in body:
                    raise ConfigError(
                        f"kubeconfig {section}[{entry.get('name')!r}].{field} names a host file that does not "
                        f"exist in the container; embed it instead ({field}-data, e.g. "
                        f"`kubectl config view --raw --flatten --minify > ack.yaml`)")
    for entry in config.get("users") or []:
        if ((entry or {}).get("user") or {}).get("exec"):
            raise ConfigError(
                f"kubeconfig users[{entry.get('name')!r}].exec runs a program of the host that the Airflow image "
                f"lacks; use a kubeconfig with an embedded client certificate or token (ACK console: "
                f"Cluster information > Connection information)")
    return config


def oss_from_env(env: dict[str, str]) -> dict[str, Any] | None:
    """``oss_default`` from the ``OSS_*`` variables: all of them, or none."""
    given = {name: env.get(name, "") for name in OSS_VARIABLES}
    if not any(given.values()):
        return None
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise ConfigError(f"oss_default needs {', '.join(OSS_VARIABLES)}; missing: {', '.join(missing)} "
                          f"(set them in docker/.env or unset all of them to skip oss_default)")
    return {"conn_type": "oss", "schema": given["OSS_BUCKET"],
            "extra": {"auth_type": "AK", "access_key_id": given["OSS_ACCESS_KEY_ID"],
                      "access_key_secret": given["OSS_ACCESS_KEY_SECRET"], "region": given["OSS_REGION"],
                      "endpoint": given["OSS_ENDPOINT"]}}


def from_kubeconfig(source: Path, out: Path, *, namespace: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Copy ``source`` next to ``out`` and return the connections that use the copy."""
    if not namespace:
        raise ConfigError("ARGO_NAMESPACE is empty: set it to the namespace Argo Workflows runs workflows in")
    check_kubeconfig(source)
    target = out.parent / "kubeconfig"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    os.chmod(target, 0o600)
    connections: dict[str, dict[str, Any]] = {
        "argo_default": {"conn_type": "argo_workflows",
                         "extra": {"transport": "kubernetes", "kube_config_path": str(target),
                                   "namespace": namespace}}}
    oss = oss_from_env(env)
    if oss is not None:
        connections["oss_default"] = oss
    return connections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    local = sub.add_parser("from-local", help="connections to the local cluster running on STATE_DIR")
    local.add_argument("state_dir", type=Path)
    local.add_argument("out", type=Path)
    local.add_argument("--cli", default="airflow-argo-eci", help="the airflow-argo-eci command (default: on PATH)")
    cluster = sub.add_parser("from-kubeconfig", help="connections to a real cluster through KUBECONFIG")
    cluster.add_argument("kubeconfig", type=Path)
    cluster.add_argument("out", type=Path)
    cluster.add_argument("--namespace", default=os.environ.get("ARGO_NAMESPACE", "argo"))
    empty = sub.add_parser("empty", help="write {} when OUT is missing")
    empty.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "empty":
            if not args.out.exists():
                write_json(args.out, {})
            return 0
        if args.command == "from-local":
            connections = from_local(args.state_dir, args.cli)
        else:
            connections = from_kubeconfig(args.kubeconfig, args.out, namespace=args.namespace, env=dict(os.environ))
        write_json(args.out, connections)
    except ConfigError as exc:
        print(f"argo_connections: {exc}", file=sys.stderr)
        return 2
    print(f"argo_connections: wrote {', '.join(sorted(connections))} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which host tools stand in for a container image.

The local cluster pulls no images: a pod runs the host's tools. Each known image maps to

* an **entrypoint** (what runs when the container spec has no ``command``, like an image's
  ``ENTRYPOINT``/``CMD``), and
* optionally a **bin directory** of shims prepended to ``PATH`` (``python`` -> this interpreter,
  ``node`` -> the host's node, ``argosay``/``cowsay``/``nginx``/``curl``/``nc``/``apk``/``influxd``
  -> the bundled scripts in ``images/``).

A pod may not bind a port below 1024 (it has no capability): the bundled servers (``nginx``,
``influxd``, ``nc -l``) then listen on the port + 8000 (80 -> 8080) and the bundled ``curl`` and
``nc`` connect there for a privileged port on a loopback address (``images/ports.py``).

Built-in images (matched on the repository, any tag; ``docker.io/`` and ``library/`` ignored):

==========================  =============================  ===========================================
image                       entrypoint                     shims
==========================  =============================  ===========================================
``python``                  ``python3``                    ``python``, ``python3``, ``pip`` -> sys.executable
``node``                    ``node``                       ``node`` -> host ``node``
``alpine``                  ``sh``                         (host sh and coreutils), ``nc`` (images/nc.py),
                                                           ``apk`` (images/apk.py: packages are host tools),
                                                           ``curl`` (images/curl.py) when the host has none
``busybox``                 ``sh``                         (host sh and coreutils), ``nc`` (images/nc.py)
``ubuntu``, ``debian``,     ``bash``                       (host bash and coreutils)
``bash``
``argoproj/argosay:v2``     ``argosay``                    ``argosay`` (bundled, see images/argosay.py)
``argoproj/argosay:v1``     ``argosay``                    ``argosay`` (v1: echoes its arguments), ``cowsay``
``docker/whalesay``         ``cowsay``                     ``cowsay`` (with the Docker whale)
``curlimages/curl``         ``curl``                       ``curl`` (host curl, or images/curl.py's stand-in),
                                                           ``sh`` -> host bash (the image's ash takes ``>&``),
                                                           ``nc`` (images/nc.py)
``nginx``                   ``nginx -g 'daemon off;'``     ``nginx`` (bundled static server, images/nginx.py)
``influxdb``                ``influxd``                    ``influxd`` (InfluxDB 1.x HTTP API in memory,
                                                           images/influxd.py)
==========================  =============================  ===========================================

More images: ``AIRFLOW_ARGO_ECI_IMAGE_MAP`` names a JSON or YAML file mapping an image (with tag,
or the repository alone for every tag) to its entrypoint, a list of strings::

    {"ghcr.io/acme/tool:1.2": ["/usr/local/bin/tool", "--serve"], "acme/other": ["other"]}

Entries of that file win over the built-in table.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

IMAGE_MAP_ENV = "AIRFLOW_ARGO_ECI_IMAGE_MAP"

#: where the bundled entrypoint scripts live
BUNDLED_DIR = Path(__file__).resolve().parent / "images"


class ImageError(ValueError):
    """An image cannot run locally, or the image map file is invalid."""


@dataclass(frozen=True)
class ResolvedImage:
    """How to run one image on this host."""

    image: str
    #: the image's entrypoint; ``None`` when the image is unknown (a ``command`` is then required)
    entrypoint: list[str] | None
    #: host directory of shims to prepend to PATH (``None``: the host PATH is enough)
    bin_dir: Path | None


def split_image(image: str) -> tuple[str, str]:
    """``(repository, tag)`` of an image reference; the registry ``docker.io/`` and ``library/``
    are dropped, a digest counts as the tag, the tag defaults to ``latest``."""
    ref = image.strip()
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
    if ref.startswith("library/"):
        ref = ref[len("library/"):]
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


def load_image_map(path: str | Path) -> dict[str, list[str]]:
    """Read and validate an image map file (JSON or YAML): image -> entrypoint list."""
    file = Path(path).expanduser()
    try:
        text = file.read_text()
    except OSError as exc:
        raise ImageError(f"{IMAGE_MAP_ENV}={path}: cannot read the image map file: {exc}") from exc
    try:
        data: Any = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ImageError(f"{IMAGE_MAP_ENV}={path}: not valid JSON/YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ImageError(
            f"{IMAGE_MAP_ENV}={path}: must map image names to entrypoint lists, got {type(data).__name__}"
        )
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key.strip():
            raise ImageError(f"{IMAGE_MAP_ENV}={path}: image names must be non-empty strings, got {key!r}")
        if isinstance(value, str):
            value = shlex.split(value)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ImageError(
                f"{IMAGE_MAP_ENV}={path}: the entrypoint of image {key!r} must be a non-empty list of "
                f"non-empty strings, got {value!r}"
            )
        out[key.strip()] = list(value)
    return out


def _sh_quote(text: str) -> str:
    return shlex.quote(text)


def _path_safe(tag: str) -> str:
    """An image tag as a directory name component."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", tag)


class ImageTable:
    """Resolves images to entrypoints and builds the shim directories under ``shims_root``."""

    def __init__(self, shims_root: Path, image_map: dict[str, list[str]] | None = None) -> None:
        """``image_map`` defaults to the file named by ``AIRFLOW_ARGO_ECI_IMAGE_MAP`` (if set)."""
        self.shims_root = shims_root
        if image_map is None:
            env = os.environ.get(IMAGE_MAP_ENV, "").strip()
            image_map = load_image_map(env) if env else {}
        self.image_map = image_map
        self._lock = threading.Lock()
        self._built: dict[str, Path] = {}

    # ------------------------------------------------------------------ shims

    def _shim_dir(self, key: str, shims: dict[str, list[str]]) -> Path:
        """A directory holding one ``#!/bin/sh`` exec shim per name (built once per runtime)."""
        with self._lock:
            if key in self._built:
                return self._built[key]
            target = self.shims_root / key / "bin"
            target.mkdir(parents=True, exist_ok=True)
            for name, argv in shims.items():
                script = target / name
                tmp = target / f".{name}.tmp"
                tmp.write_text("#!/bin/sh\nexec " + " ".join(_sh_quote(a) for a in argv) + ' "$@"\n')
                tmp.chmod(0o755)
                tmp.replace(script)
            self._built[key] = target
            return target

    def _bundled(self, script: str, *args: str) -> list[str]:
        return [sys.executable, str(BUNDLED_DIR / script), *args]

    # ------------------------------------------------------------------ resolve

    def resolve(self, image: str) -> ResolvedImage:
        """How to run ``image``; unknown images resolve with ``entrypoint=None``."""
        if not isinstance(image, str) or not image.strip():
            raise ImageError("container.image must be a non-empty string")
        image = image.strip()
        repo, tag = split_image(image)
        for key in (image, f"{repo}:{tag}", repo):
            if key in self.image_map:
                return ResolvedImage(image, list(self.image_map[key]), None)

        if repo == "python":
            python = {"python": [sys.executable], "python3": [sys.executable],
                      "pip": [sys.executable, "-m", "pip"], "pip3": [sys.executable, "-m", "pip"]}
            return ResolvedImage(image, ["python3"], self._shim_dir("python", python))
        if repo == "node":
            node = shutil.which("node")
            if node is None:
                raise ImageError(
                    f"image {image!r} needs Node.js: install `node` on the host PATH (the local cluster "
                    "runs the host's node for node:* images)"
                )
            return ResolvedImage(image, ["node"], self._shim_dir("node", {"node": [node]}))
        if repo == "alpine":
            shims = {"nc": self._bundled("nc.py"), "apk": self._bundled("apk.py", tag)}
            if shutil.which("curl") is None:  # so that `apk add curl && curl ...` works without a host curl
                shims["curl"] = self._bundled("curl.py", "-")
            return ResolvedImage(image, ["sh"], self._shim_dir(f"alpine-{_path_safe(tag)}", shims))
        if repo == "busybox":
            return ResolvedImage(image, ["sh"], self._shim_dir("busybox", {"nc": self._bundled("nc.py")}))
        if repo in ("ubuntu", "debian", "bash"):
            return ResolvedImage(image, ["bash"], None)
        if repo == "argoproj/argosay":
            if tag == "v1":
                shims = {"argosay": self._bundled("argosay.py", "v1"),
                         "cowsay": self._bundled("cowsay.py", "cow")}
                return ResolvedImage(image, ["argosay"], self._shim_dir("argosay-v1", shims))
            shims = {"argosay": self._bundled("argosay.py", "v2")}
            return ResolvedImage(image, ["argosay"], self._shim_dir("argosay-v2", shims))
        if repo == "docker/whalesay":
            shims = {"cowsay": self._bundled("cowsay.py", "whale")}
            return ResolvedImage(image, ["cowsay"], self._shim_dir("whalesay", shims))
        if repo == "curlimages/curl":
            shims = {"curl": self._bundled("curl.py", shutil.which("curl") or "-"), "nc": self._bundled("nc.py")}
            bash = shutil.which("bash")
            if bash is not None:  # the image's sh (busybox ash) takes bash forms such as `>& file`; dash does not
                shims["sh"] = [bash]
            return ResolvedImage(image, ["curl"], self._shim_dir("curl-sh", shims))
        if repo == "nginx":
            shims = {"nginx": self._bundled("nginx.py")}
            return ResolvedImage(image, ["nginx", "-g", "daemon off;"], self._shim_dir("nginx", shims))
        if repo == "influxdb":
            shims = {"influxd": self._bundled("influxd.py", tag)}
            return ResolvedImage(image, ["influxd"], self._shim_dir(f"influxdb-{_path_safe(tag)}", shims))
        return ResolvedImage(image, None, None)

    @staticmethod
    def unknown_image_message(image: str) -> str:
        """The message of a pod whose image has no local entrypoint and no ``command``."""
        return (
            f"image {image!r} has no local entrypoint: the local cluster runs host tools instead of "
            f"images, and it does not know what {image!r} runs. Either set `command:` in the template "
            f"(it then runs on the host PATH), or register the image in a JSON/YAML file mapping image "
            f'-> entrypoint list (e.g. {{"{image}": ["/usr/local/bin/tool"]}}) and point '
            f"{IMAGE_MAP_ENV} at it"
        )

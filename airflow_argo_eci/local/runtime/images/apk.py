"""A local stand-in for alpine's ``apk``: packages are the host's tools, nothing is installed.

``apk.py TAG ARGS...`` (``TAG``: the alpine image's tag, for the branch it names). ``apk update``
succeeds; ``apk add [--no-cache] [-t NAME] PKG...`` succeeds when each package's main program is
already on the pod's ``PATH`` (the host's tools and the image's bundled stand-ins, e.g. ``curl``)
and otherwise fails as apk does for a package it cannot find, saying how to get one; ``apk del``,
``apk upgrade`` and ``apk info [-e] PKG...`` answer from the same rule. Nothing on the host changes.
"""

from __future__ import annotations

import re
import shutil
import sys

VERSION = "apk-tools 2.14.6, compiled for x86_64."
IMAGE_MAP_ENV = "AIRFLOW_ARGO_ECI_IMAGE_MAP"
#: package -> the programs that show it is present (any one of them); () -> nothing to check (data only)
PACKAGES: dict[str, tuple[str, ...]] = {
    "bash": ("bash",), "bc": ("bc",), "bind-tools": ("dig",), "busybox": ("sh",), "ca-certificates": (),
    "ca-certificates-bundle": (), "coreutils": ("ls",), "curl": ("curl",), "diffutils": ("diff",),
    "file": ("file",), "findutils": ("find",), "gawk": ("gawk", "awk"), "gettext": ("envsubst",),
    "git": ("git",), "grep": ("grep",), "gzip": ("gzip",), "iputils": ("ping",), "jq": ("jq",),
    "less": ("less",), "make": ("make",), "nano": ("nano",), "netcat-openbsd": ("nc",), "nodejs": ("node",),
    "npm": ("npm",), "openssh-client": ("ssh",), "openssl": ("openssl",), "perl": ("perl",), "procps": ("ps",),
    "py3-pip": ("pip3", "pip"), "python3": ("python3",), "rsync": ("rsync",), "sed": ("sed",),
    "tar": ("tar",), "tzdata": (), "unzip": ("unzip",), "util-linux": ("lsblk",), "vim": ("vim",),
    "wget": ("wget",), "xz": ("xz",), "yq": ("yq",), "zip": ("zip",),
}
_VALUE_OPTIONS = {"-X", "--repository", "-t", "--virtual", "-p", "--root", "--repositories-file",
                  "--cache-dir", "--arch", "--keys-dir"}


def branch(tag: str) -> str:
    """The alpine release branch of an image tag (``3.23.2`` -> ``v3.23``)."""
    match = re.match(r"(\d+)\.(\d+)", tag)
    return f"v{match.group(1)}.{match.group(2)}" if match else "latest-stable"


def split_args(args: list[str]) -> tuple[list[str], list[str], bool]:
    """``(command words, options, quiet)``: options (with their values) apart from the rest."""
    words: list[str] = []
    options: list[str] = []
    quiet = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("-") and arg != "-":
            options.append(arg)
            quiet = quiet or arg in ("-q", "--quiet")
            if arg in _VALUE_OPTIONS and i < len(args):
                options.append(args[i])
                i += 1
            continue
        words.append(arg)
    return words, options, quiet


def package_name(spec: str) -> str:
    """``curl=8.5.0-r0`` / ``curl>8`` / ``curl@edge`` -> ``curl``."""
    return re.split(r"[=<>~@]", spec, maxsplit=1)[0]


def provider(name: str) -> str | None:
    """Where package ``name`` is on the pod's PATH (``""``: a data package, nothing to check), else None."""
    if name.startswith("cmd:"):
        programs: tuple[str, ...] = (name[4:],)
    else:
        programs = PACKAGES.get(name, (name,))
    if not programs:
        return ""
    for program in programs:
        found = shutil.which(program)
        if found:
            return found
    return None


def missing_message(missing: list[str]) -> str:
    """apk's error for packages it cannot select, and how to get them on the local cluster."""
    lines = ["ERROR: unable to select packages:"]
    for name in missing:
        lines += [f"  {name} (no such package):", f"    required by: world[{name}]"]
    lines.append(
        f"local cluster: apk installs no packages here; a pod runs the host's tools, and the host has no "
        f"{', '.join(repr(m) for m in missing)}. Install it on the host, or run the step in an image that has it "
        f"and map that image to a host entrypoint in a JSON/YAML file named by {IMAGE_MAP_ENV}")
    return "\n".join(lines) + "\n"


def add(packages: list[str], quiet: bool) -> int:
    """``apk add``: succeed when every package is present, else apk's error (exit 1)."""
    if not packages:
        sys.stderr.write("ERROR: apk add: requires at least one package name\n")
        return 1
    names = [package_name(p) for p in packages]
    found = {name: provider(name) for name in names}
    missing = [name for name in names if found[name] is None]
    if missing:
        sys.stderr.write(missing_message(missing))
        return 1
    if not quiet:
        for index, name in enumerate(names, 1):
            where = f"host {found[name]}" if found[name] else "no files needed"
            sys.stdout.write(f"({index}/{len(names)}) Installing {name} (local: {where})\n")
        sys.stdout.write(f"OK: {len(names)} packages provided by the host (the local cluster installs nothing)\n")
    return 0


def update(tag: str, quiet: bool) -> int:
    """``apk update``: nothing to fetch; say what stands in for the repositories."""
    if not quiet:
        for repo in ("main", "community"):
            sys.stdout.write(f"{branch(tag)} [local cluster: the host's tools stand in for "
                             f"https://dl-cdn.alpinelinux.org/alpine/{branch(tag)}/{repo}]\n")
        present = sum(1 for name in PACKAGES if provider(name) is not None)
        sys.stdout.write(f"OK: {present} distinct packages available\n")
    return 0


def main(argv: list[str]) -> int:
    """``apk.py TAG [OPTIONS] COMMAND [ARGS...]``."""
    tag, args = (argv[0] if argv else "latest"), argv[1:]
    words, options, quiet = split_args(args)
    if any(o in ("-V", "--version") for o in options) and not words:
        sys.stdout.write(VERSION + "\n")
        return 0
    command, rest = (words[0], words[1:]) if words else ("", [])
    if command == "update" or (not command and any(o in ("-U", "--update-cache") for o in options)):
        return update(tag, quiet)
    if command == "add":
        if any(o in ("-U", "--update-cache", "--update") for o in options):
            update(tag, True)
        return add(rest, quiet)
    if command in ("del", "upgrade", "fix", "cache"):
        if not quiet:
            sys.stdout.write(f"OK: the local cluster's packages are the host's tools ({command}: nothing changed)\n")
        return 0
    if command == "info":
        names = [package_name(p) for p in rest] or sorted(n for n in PACKAGES if provider(n) is not None)
        present = [n for n in names if provider(n) is not None]
        if "-e" not in options and "--installed" not in options:
            sys.stdout.write("".join(f"{n}\n" for n in present))
        return 0 if len(present) == len(names) else 1
    sys.stderr.write(f"{VERSION}\n\nusage: apk [<OPTIONS>...] COMMAND [<ARGUMENTS>...]\n\nlocal stand-in: "
                     f"{'unknown command ' + repr(command) if command else 'no command'}; it answers add, del, "
                     "update, upgrade, info (packages are the host's tools)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

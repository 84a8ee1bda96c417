"""Pure renderers for the Argo view: a workflow's summary, its node tree as ``argo get`` prints it,
and an SVG graph of its steps / DAG drawn on the server (node colour by phase).

Everything here takes a Workflow object (a dict as the Kubernetes API returns it) and returns
text; nothing reads the network or the clock unless ``now`` is left out, so the output is stable
enough for golden tests.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_argo_eci.conventions import workflow_pod_name
from airflow_argo_eci.workflows import workflow_nodes

#: the phase symbols ``argo get`` prints in front of each step
PHASE_SYMBOLS = {
    "Succeeded": "✔", "Failed": "✖", "Error": "⚠", "Running": "●", "Pending": "◷",
    "Skipped": "○", "Omitted": "○",
}

#: fill colour of a node in the SVG graph, by phase (the Argo UI's palette, roughly)
PHASE_COLOURS = {
    "Succeeded": "#18be94", "Failed": "#e96d76", "Error": "#e96d76", "Running": "#0dadea",
    "Pending": "#f4c030", "Skipped": "#cccccc", "Omitted": "#cccccc",
}
UNKNOWN_COLOUR = "#8fa4b1"

_GROUP_TYPES = ("StepGroup", "TaskGroup")


@dataclass(frozen=True)
class TreeRow:
    """One line of the node tree: ``prefix`` holds the box-drawing characters of its depth."""

    node_id: str
    prefix: str
    display_name: str
    type: str
    phase: str
    duration: str
    message: str
    pod: str
    template: str


def parse_time(stamp: Any) -> datetime | None:
    """An RFC 3339 timestamp (``2026-01-01T00:00:00Z``) as an aware datetime; None if absent or bad."""
    if not isinstance(stamp, str) or not stamp:
        return None
    text = stamp[:-1] + "+00:00" if stamp.endswith(("Z", "z")) else stamp
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_duration(seconds: float | None) -> str:
    """``argo get``'s compact durations: ``42s``, ``3m5s``, ``2h0m``; empty for None."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def duration_of(item: Mapping[str, Any], now: datetime | None = None) -> str:
    """``finishedAt - startedAt`` of a node or workflow status; a running one counts up to ``now``."""
    started = parse_time(item.get("startedAt"))
    if started is None:
        return ""
    finished = parse_time(item.get("finishedAt")) or now or datetime.now(timezone.utc)
    return format_duration((finished - started).total_seconds())


def summary(workflow: Mapping[str, Any], now: datetime | None = None) -> dict[str, str]:
    """Name, namespace, phase, start, duration, message, progress and ``resourcesDuration`` as text."""
    meta = workflow.get("metadata") or {}
    status = workflow.get("status") or {}
    resources = status.get("resourcesDuration") or {}
    return {
        "name": str(meta.get("name") or ""),
        "namespace": str(meta.get("namespace") or ""),
        "phase": str(status.get("phase") or "Pending"),
        "started": str(status.get("startedAt") or ""),
        "finished": str(status.get("finishedAt") or ""),
        "duration": duration_of(status, now),
        "message": str(status.get("message") or ""),
        "progress": str(status.get("progress") or ""),
        "resources_duration": ", ".join(f"{value}s*({key})" for key, value in sorted(resources.items())),
    }


def _root_id(workflow: Mapping[str, Any], nodes: Mapping[str, Any]) -> str | None:
    name = (workflow.get("metadata") or {}).get("name")
    if name in nodes:
        return str(name)
    children = {child for node in nodes.values() for child in node.get("children") or []}
    roots = sorted(node_id for node_id in nodes if node_id not in children)
    return roots[0] if roots else None


def _children(node: Mapping[str, Any], nodes: Mapping[str, Any]) -> list[str]:
    """The children of a node that exist, in start order (then by display name)."""
    present = [c for c in node.get("children") or [] if c in nodes]
    return sorted(present, key=lambda c: (str(nodes[c].get("startedAt") or "~"),
                                          str(nodes[c].get("displayName") or c)))


def node_tree(workflow: Mapping[str, Any], now: datetime | None = None) -> list[TreeRow]:
    """The nodes in the order and shape ``argo get`` prints them; nodes that no parent reaches
    (the exit handler, ``onExit``) follow as further roots. Each node appears once."""
    nodes = workflow_nodes(workflow.get("status"))
    rows: list[TreeRow] = []
    seen: set[str] = set()

    def visit(node_id: str, lead: str, branch: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        node = nodes[node_id]
        phase = str(node.get("phase") or "Pending")
        kind = str(node.get("type") or "")
        rows.append(TreeRow(
            node_id=node_id,
            prefix=f"{lead}{branch}{PHASE_SYMBOLS.get(phase, '?')} ",
            display_name=str(node.get("displayName") or node.get("name") or node_id),
            type=kind, phase=phase, duration=duration_of(node, now),
            message=str(node.get("message") or ""),
            pod=workflow_pod_name(workflow, node_id, node) if kind == "Pod" else "",
            template=str(node.get("templateName") or ""),
        ))
        kids = [c for c in _children(node, nodes) if c not in seen]
        child_lead = lead + ("" if not branch else ("│ " if branch == "├─" else "  "))
        for index, child in enumerate(kids):
            visit(child, child_lead, "└─" if index == len(kids) - 1 else "├─")

    root = _root_id(workflow, nodes)
    if root is not None:
        visit(root, "", "")
    for node_id in sorted(nodes, key=lambda n: (str(nodes[n].get("startedAt") or "~"), n)):
        if node_id not in seen and not any(node_id in (nodes[p].get("children") or []) for p in nodes):
            visit(node_id, "", "")
    for node_id in sorted(nodes):
        visit(node_id, "", "")  # anything left (a cycle would be a controller bug; show it anyway)
    return rows


def render_tree_text(workflow: Mapping[str, Any], now: datetime | None = None) -> str:
    """The node tree as ``argo get`` prints it: STEP, TEMPLATE, PODNAME, DURATION, MESSAGE columns
    (plus TYPE and PHASE, which ``argo get`` shows only as the symbol)."""
    rows = node_tree(workflow, now)
    header = ("STEP", "TYPE", "PHASE", "TEMPLATE", "PODNAME", "DURATION", "MESSAGE")
    table = [header] + [(f"{r.prefix}{r.display_name}", r.type, r.phase, r.template, r.pod, r.duration, r.message)
                        for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    out = []
    for line in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])] + [line[-1]]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- SVG graph

_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _MARGIN, _GROUP_R = 170, 34, 24, 36, 16, 7


def _layers(workflow: Mapping[str, Any], nodes: Mapping[str, Any]) -> list[list[str]]:
    """Nodes by depth (longest path from the root, so a DAG task sits below all it depends on)."""
    depth: dict[str, int] = {}
    order = [row.node_id for row in node_tree(workflow, now=datetime.now(timezone.utc))]
    for _ in range(len(order) + 1):  # relax until stable: depth = 1 + max(depth of parents)
        changed = False
        for node_id in order:
            base = depth.setdefault(node_id, 0)
            for child in nodes[node_id].get("children") or []:
                if child in nodes and depth.get(child, -1) < base + 1 and child != node_id:
                    if base + 1 > len(order):
                        continue  # a cycle: stop pushing it down
                    depth[child] = base + 1
                    changed = True
        if not changed:
            break
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node_id in order:
        layers[depth[node_id]].append(node_id)
    return layers


def _fit(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_svg(workflow: Mapping[str, Any]) -> str:
    """The workflow's graph as a standalone SVG document: one box per node (steps / tasks / pods),
    one small circle per step or task group, edges from parent to child, filled by phase."""
    nodes = workflow_nodes(workflow.get("status"))
    layers = _layers(workflow, nodes)
    widest = max((len(layer) for layer in layers), default=0)
    width = max(1, widest) * (_BOX_W + _GAP_X) - _GAP_X + 2 * _MARGIN
    height = max(1, len(layers)) * (_BOX_H + _GAP_Y) - _GAP_Y + 2 * _MARGIN
    centre: dict[str, tuple[float, float]] = {}
    for row, layer in enumerate(layers):
        offset = (width - (len(layer) * (_BOX_W + _GAP_X) - _GAP_X)) / 2
        for col, node_id in enumerate(layer):
            centre[node_id] = (offset + col * (_BOX_W + _GAP_X) + _BOX_W / 2,
                               _MARGIN + row * (_BOX_H + _GAP_Y) + _BOX_H / 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="argo-graph" width="{width:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
             f'aria-label="workflow graph">']
    for node_id in centre:
        x1, y1 = centre[node_id]
        for child in nodes[node_id].get("children") or []:
            if child in centre:
                x2, y2 = centre[child]
                parts.append(f'<line class="edge" x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                             'stroke="#9aa5b1" stroke-width="1.5"/>')
    for node_id, (cx, cy) in centre.items():
        node = nodes[node_id]
        phase = str(node.get("phase") or "Pending")
        colour = PHASE_COLOURS.get(phase, UNKNOWN_COLOUR)
        name = str(node.get("displayName") or node.get("name") or node_id)
        title = html.escape(f"{name} ({node.get('type', '')}): {phase}", quote=True)
        ident = html.escape(node_id, quote=True)
        if node.get("type") in _GROUP_TYPES:
            parts.append(f'<g class="node group" data-node="{ident}" data-phase="{html.escape(phase)}">'
                         f'<title>{title}</title><circle cx="{cx:.0f}" cy="{cy:.0f}" r="{_GROUP_R}" '
                         f'fill="{colour}"/></g>')
            continue
        parts.append(
            f'<g class="node" data-node="{ident}" data-phase="{html.escape(phase)}"><title>{title}</title>'
            f'<rect x="{cx - _BOX_W / 2:.0f}" y="{cy - _BOX_H / 2:.0f}" width="{_BOX_W}" height="{_BOX_H}" '
            f'rx="6" fill="{colour}" stroke="#33415c" stroke-width="1"/>'
            f'<text x="{cx:.0f}" y="{cy + 4:.0f}" text-anchor="middle" font-family="sans-serif" '
            f'font-size="12" fill="#10202c">{html.escape(_fit(name))}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"

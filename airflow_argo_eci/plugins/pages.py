"""HTML of the Argo view: the task-instance page and the list of workflows Airflow created.

Pure functions from already-authorized data to HTML text. Every value is escaped; styles and
scripts come from ``static/`` beside this module (relative URLs, so the pages work wherever the
app is mounted). No file comes from the internet.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from airflow_argo_eci.plugins.render import PHASE_COLOURS, UNKNOWN_COLOUR, node_tree, render_svg, summary


@dataclass(frozen=True)
class TIKey:
    """The task instance a page is about (``map_index`` -1: not mapped)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    def query(self, **extra: str) -> str:
        params = {"dag_id": self.dag_id, "run_id": self.run_id, "task_id": self.task_id,
                  "map_index": str(self.map_index), **extra}
        return urlencode(params)

    def ui_path(self) -> str:
        """The Airflow UI path of this task instance (relative to the UI's root)."""
        path = "/".join(["dags", quote(self.dag_id, safe=''), "runs", quote(self.run_id, safe=''),
                         "tasks", quote(self.task_id, safe='')])
        return path + (f"/mapped/{self.map_index}" if self.map_index >= 0 else "")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _badge(phase: str) -> str:
    colour = PHASE_COLOURS.get(phase, UNKNOWN_COLOUR)
    return f'<span class="phase" style="background:{colour}">{_e(phase)}</span>'


def page(title: str, body: str, root: str = "") -> str:
    """A whole HTML document; ``root`` is the relative path back to the app's root (``""`` or ``"../"``)."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title>"
        f'<link rel="stylesheet" href="{root}static/argo.css">'
        f'<script src="{root}static/argo.js" defer></script></head>'
        f'<body><main class="argo-eci"><h1>{_e(title)}</h1>\n{body}\n</main></body></html>\n'
    )


def no_workflow_page(key: TIKey) -> str:
    """The task-instance page of a task that created no workflow (yet)."""
    return page("Argo Workflow", f"<p class=\"empty\">Task {_e(key.task_id)} of run {_e(key.run_id)} "
                "has not created an Argo workflow (yet).</p>")


def offloaded_page(key: TIKey, workflow: Mapping[str, Any], reason: str) -> str:
    """The task-instance page of a workflow whose nodes Argo offloaded to its database: the
    Kubernetes object does not hold them, so there is no graph to draw; says where to read them."""
    name = (workflow.get("metadata") or {}).get("name", "")
    return page("Argo Workflow", f"<p class=\"empty\">Workflow {_e(name)} of task {_e(key.task_id)}: "
                f"{_e(reason)}</p>"
                f'<p class="back"><a target="_top" href="../{_e(key.ui_path())}">Task instance in Airflow</a></p>')


def ti_page(key: TIKey, workflow: Mapping[str, Any], *, can_edit: bool, tries: int = 1) -> str:
    """The task-instance view: summary, actions, graph, node tree with logs, outputs and artifacts."""
    from airflow_argo_eci.hooks.oss import workflow_artifacts
    from airflow_argo_eci.workflows import workflow_result

    info = summary(workflow)
    result = workflow_result(workflow)
    rows = [
        ("Workflow", f"{_e(info['namespace'])}/{_e(info['name'])}"),
        ("Phase", _badge(info["phase"])),
        ("Started", _e(info["started"])),
        ("Finished", _e(info["finished"])),
        ("Duration", _e(info["duration"])),
        ("Progress", _e(info["progress"])),
        ("Resources duration", _e(info["resources_duration"])),
        ("Message", _e(info["message"])),
    ]
    if tries > 1:
        rows.append(("Workflows of this task", f"{tries} (showing the newest)"))
    parts = ['<table class="summary">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
             + "</table>"]
    parts.append(f'<p class="back"><a target="_top" href="../{_e(key.ui_path())}">Task instance in Airflow</a></p>')
    if can_edit:
        parts.append(
            '<div class="actions">'
            f'<button class="action" data-action="ti/stop?{_e(key.query())}" '
            f'data-confirm="Stop workflow {_e(info["name"])}? Running pods are stopped; exit handlers run.">'
            'Stop</button> '
            f'<button class="action" data-action="ti/retry?{_e(key.query())}" '
            f'data-confirm="Retry workflow {_e(info["name"])}? Its failed nodes run again.">Retry</button>'
            '<span class="action-result" role="status"></span></div>')
    parts.append('<h2>Graph</h2><div class="graph">' + render_svg(workflow) + "</div>")

    tree = ['<h2>Nodes</h2><table class="tree"><thead><tr><th>Step</th><th>Type</th><th>Phase</th>'
            "<th>Duration</th><th>Message</th><th>Pod</th></tr></thead><tbody>"]
    for row in node_tree(workflow):
        pod = ""
        if row.pod:
            pod = (f'<a class="log-link" href="ti/log?{_e(key.query(pod=row.pod))}" '
                   f'data-target="log-{_e(row.pod)}">{_e(row.pod)}</a>')
        tree.append(f'<tr data-node="{_e(row.node_id)}"><td class="step"><span class="prefix">'
                    f"{_e(row.prefix)}</span>{_e(row.display_name)}</td><td>{_e(row.type)}</td>"
                    f"<td>{_badge(row.phase)}</td><td>{_e(row.duration)}</td><td>{_e(row.message)}</td>"
                    f"<td>{pod}</td></tr>")
        if row.pod:
            tree.append(f'<tr class="log-row" hidden><td colspan="6"><pre class="log" id="log-{_e(row.pod)}">'
                        "</pre></td></tr>")
    tree.append("</tbody></table>")
    parts.append("".join(tree))

    params = dict(result["parameters"])
    for node, values in result["node_outputs"].items():
        for name, value in values.items():
            params[f"{node}.{name}"] = value
    if params:
        parts.append('<h2>Output parameters</h2><table class="outputs">'
                     + "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>"
                               for k, v in params.items()) + "</table>")
    artifacts = workflow_artifacts(workflow)
    if artifacts:
        items = []
        for ref in artifacts:
            query = key.query(node_id=ref.node_id, name=ref.name)
            items.append(f'<tr><td>{_e(ref.node)}</td><td>{_e(ref.name)}</td><td><code>{_e(ref.url)}</code></td>'
                         f'<td><a href="ti/artifact?{_e(query)}" download>download</a></td></tr>')
        parts.append('<h2>Output artifacts</h2><table class="artifacts"><tr><th>Node</th><th>Name</th>'
                     "<th>Location</th><th></th></tr>" + "".join(items) + "</table>")
    return page(f"Argo Workflow {info['name']}", "\n".join(parts))


@dataclass(frozen=True)
class ListedWorkflow:
    """One row of the workflow list: the workflow and the Airflow ids its labels resolve to."""

    workflow: Mapping[str, Any]
    dag_id: str
    run_id: str | None
    task_id: str | None
    map_index: int
    try_number: str


def list_page(items: Sequence[ListedWorkflow], dag_ids: Sequence[str], selected: str | None) -> str:
    """The workflows Airflow created, newest first, with a DAG filter and links back to Airflow."""
    options = ['<option value="">all DAGs</option>'] + [
        f'<option value="{_e(d)}"{" selected" if d == selected else ""}>{_e(d)}</option>' for d in dag_ids]
    parts = ['<form class="filter" method="get" action="workflows"><label>DAG <select name="dag_id">'
             + "".join(options) + '</select></label> <button type="submit">Filter</button></form>']
    if not items:
        parts.append('<p class="empty">No workflows created by Airflow that you may see.</p>')
        return page("Argo Workflows", "\n".join(parts))
    rows = ['<table class="workflows"><thead><tr><th>Workflow</th><th>Phase</th><th>Created</th><th>Duration</th>'
            "<th>DAG</th><th>Run</th><th>Task</th><th>Try</th></tr></thead><tbody>"]
    for item in items:
        info = summary(item.workflow)
        created = (item.workflow.get("metadata") or {}).get("creationTimestamp", "")
        dag_link = f'<a target="_top" href="../dags/{quote(item.dag_id, safe="")}">{_e(item.dag_id)}</a>'
        name, run, task = _e(info["name"]), _e(item.run_id or "?"), _e(item.task_id or "?")
        if item.run_id:
            run = (f'<a target="_top" href="../dags/{quote(item.dag_id, safe="")}/runs/'
                   f'{quote(item.run_id, safe="")}">{_e(item.run_id)}</a>')
        if item.run_id and item.task_id:
            key = TIKey(item.dag_id, item.run_id, item.task_id, item.map_index)
            task = f'<a target="_top" href="../{_e(key.ui_path())}">{_e(item.task_id)}</a>'
            name = f'<a href="ti?{_e(key.query())}">{_e(info["name"])}</a>'
        rows.append(f"<tr><td>{name}</td><td>{_badge(info['phase'])}</td><td>{_e(created)}</td>"
                    f"<td>{_e(info['duration'])}</td><td>{dag_link}</td><td>{run}</td><td>{task}</td>"
                    f"<td>{_e(item.try_number)}</td></tr>")
    rows.append("</tbody></table>")
    parts.append("".join(rows))
    return page("Argo Workflows", "\n".join(parts))

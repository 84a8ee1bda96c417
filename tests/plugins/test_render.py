"""Golden tests of the Argo view's renderers: the node tree as ``argo get`` prints it and the SVG
graph, for a steps workflow with a retried step, a parallel group, a failure and an exit handler.
Set ``UPDATE_GOLDEN=1`` to rewrite the files after an intended change (then review the diff)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from airflow_argo_eci.plugins.render import (
    PHASE_COLOURS,
    format_duration,
    node_tree,
    render_svg,
    render_tree_text,
    summary,
)

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)


def _node(name: str, display: str, kind: str, phase: str, start: str, end: str | None = None,
          children: list[str] | None = None, template: str = "", message: str = "") -> dict[str, Any]:
    node: dict[str, Any] = {"id": name, "name": name, "displayName": display, "type": kind, "phase": phase,
                            "startedAt": f"2026-01-01T00:{start}Z", "templateName": template}
    if end:
        node["finishedAt"] = f"2026-01-01T00:{end}Z"
    if children:
        node["children"] = children
    if message:
        node["message"] = message
    return node


def workflow() -> dict[str, Any]:
    nodes = [
        _node("wf", "wf", "Steps", "Failed", "00:00", "01:30", ["wf-g1"], "main", "child 'wf-3' failed"),
        _node("wf-g1", "[0]", "StepGroup", "Succeeded", "00:00", "00:40", ["wf-1"]),
        _node("wf-1", "prepare", "Retry", "Succeeded", "00:00", "00:40", ["wf-11", "wf-12"], "prepare"),
        _node("wf-11", "prepare(0)", "Pod", "Failed", "00:00", "00:10", None, "prepare", "exit code 1"),
        _node("wf-12", "prepare(1)", "Pod", "Succeeded", "00:11", "00:40", ["wf-g2"], "prepare"),
        _node("wf-g2", "[1]", "StepGroup", "Failed", "00:41", "01:30", ["wf-2", "wf-3"]),
        _node("wf-2", "train-a", "Pod", "Succeeded", "00:41", "01:20", None, "train"),
        _node("wf-3", "train-b", "Pod", "Failed", "00:42", "01:30", None, "train", "OOMKilled"),
        _node("wf-x", "wf.onExit", "Pod", "Running", "01:31", None, None, "notify"),
    ]
    return {"metadata": {"name": "wf", "namespace": "argo"},
            "status": {"phase": "Failed", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:35Z",
                       "message": "child 'wf-3' failed", "progress": "2/4",
                       "resourcesDuration": {"cpu": 41, "memory": 20},
                       "nodes": {n["id"]: n for n in nodes}}}


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; UPDATE_GOLDEN=1 rewrites it"


def test_tree_matches_golden() -> None:
    _golden("tree.txt", render_tree_text(workflow(), now=NOW))


def test_tree_visits_each_node_once_root_first_exit_handler_last() -> None:
    rows = node_tree(workflow(), now=NOW)
    assert rows[0].display_name == "wf"
    assert rows[-1].display_name == "wf.onExit"
    assert sorted(r.node_id for r in rows) == sorted(workflow()["status"]["nodes"])
    running = rows[-1]
    assert running.duration == "3m29s"  # counts up to now while running
    assert all(r.pod.startswith("wf-") for r in rows if r.type == "Pod")
    assert not any(r.pod for r in rows if r.type != "Pod")


def test_svg_matches_golden_and_colours_by_phase() -> None:
    svg = render_svg(workflow())
    _golden("graph.svg", svg)
    root = ElementTree.fromstring(svg)
    groups = root.findall("{http://www.w3.org/2000/svg}g")
    assert len(groups) == len(workflow()["status"]["nodes"])
    for group in groups:
        shape = group.find("{http://www.w3.org/2000/svg}rect")
        if shape is None:
            shape = group.find("{http://www.w3.org/2000/svg}circle")
        assert shape is not None
        assert shape.get("fill") == PHASE_COLOURS[group.get("data-phase", "")]


def test_svg_escapes_names() -> None:
    wf = workflow()
    wf["status"]["nodes"]["wf-2"]["displayName"] = "<script>alert(1)</script>"
    svg = render_svg(wf)
    assert "<script>" not in svg
    ElementTree.fromstring(svg)  # still well-formed


def test_summary_and_empty_workflow() -> None:
    info = summary(workflow(), now=NOW)
    assert info["duration"] == "1m35s" and info["progress"] == "2/4"
    assert info["resources_duration"] == "41s*(cpu), 20s*(memory)"
    empty = {"metadata": {"name": "new"}}
    assert node_tree(empty) == [] and summary(empty)["phase"] == "Pending"
    ElementTree.fromstring(render_svg(empty))


@pytest.mark.parametrize(("seconds", "text"), [(None, ""), (0, "0s"), (59, "59s"), (61, "1m1s"), (7260, "2h1m")])
def test_durations(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_offloaded_nodes_get_a_page_saying_where_to_read_them() -> None:
    """Argo offloaded the nodes (``status.offloadNodeStatusVersion``, no nodes in the object): the view
    cannot draw the graph and says so, instead of failing the page."""
    from airflow_argo_eci.plugins.pages import TIKey, offloaded_page, ti_page
    from airflow_argo_eci.workflows import OffloadedNodesError

    key = TIKey("big_dag", "manual__1", "fanout", -1)
    workflow = {"metadata": {"name": "big-abc12", "namespace": "argo"},
                "status": {"phase": "Succeeded", "offloadNodeStatusVersion": "fnv:123"}}
    with pytest.raises(OffloadedNodesError) as raised:
        ti_page(key, workflow, can_edit=False)
    text = offloaded_page(key, workflow, str(raised.value))
    assert "Workflow big-abc12 of task fanout" in text
    assert "offloadNodeStatusVersion=fnv:123" in text and "argo_server" in text

"""The Argo view in a real browser: headless Chromium (Debian's package) driven by Playwright.

Runs on the session stack of ``conftest.py`` before ``test_stack.py`` (whose last test stops the
stack): the module name sorts first. The browser logs in through Airflow's own login page, opens the
task-instance tab "Argo Workflow" of the flagship run's deferred task, reads the node tree and the
SVG graph, opens a pod's log, stops a running workflow through the Stop button (accepting its
``confirm()``) and checks ``spec.shutdown`` through the cluster's API; a viewer (read-only role of
the simple auth manager) gets no Stop button and a 403 when it posts Stop anyway.

Playwright launches ``/usr/bin/chromium`` (``executable_path``): no browser is ever downloaded.
Screenshots go to a directory under pytest's temporary output directory; their paths are printed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from airflow_argo_eci.stack.config import ADMIN_USER, VIEWER_USER
from tests.e2e.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    # checked before the session stack starts: without the browser nothing of this module can run
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason=f"{CHROMIUM} is missing: the browser test drives Debian's chromium package "
                              "(`./dev setup` installs it as root; `apt-get install chromium` otherwise)"),
]
FLAGSHIP = "argo_eci_fanout"
FLAGSHIP_TASK = "fanout_deferred"
SLOW = "e2e_slow_deferred"
#: Playwright's timeout for one element/page wait (ms): generous for a loaded 2-core machine
WAIT_MS = 30_000

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: `./dev setup` "
                                      "installs the dev extra")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through Playwright (``executable_path``: no browser download)."""
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The screenshot directory (under pytest's temporary output directory)."""
    return tmp_path_factory.mktemp("argo-view-screenshots")


def _screenshot(page: Any, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _password(stack: Stack, user: str) -> str:
    passwords: dict[str, str] = json.loads(stack.paths.passwords_json.read_text())
    return passwords[user]


def _login(browser: Any, stack: Stack, user: str) -> Any:
    """A new browser context logged in as ``user`` through Airflow's login page; returns its page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(f"{stack.client.base}/auth/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", _password(stack, user))
    page.click("button[type=submit]")
    # the login page hands the JWT to the UI (cookie) and redirects away from /auth/
    page.wait_for_url(lambda url: "/auth/" not in url)
    return page


def _view_url(stack: Stack, dag_id: str, run_id: str, task_id: str) -> str:
    """The plugin's own page of a task instance (what the UI's tab shows in its iframe)."""
    query = urlencode({"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": "-1"})
    return f"{stack.client.base}/argo-eci/ti?{query}"


def _ui_tab_url(stack: Stack, dag_id: str, run_id: str, task_id: str) -> str:
    return (f"{stack.client.base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
            f"/tasks/{quote(task_id, safe='')}/plugin/argo-workflow")


def _finished_flagship_run(stack: Stack) -> str:
    """A flagship run whose deferred task has finished: an existing one, else one triggered now."""
    response = stack.client.http.get(f"/dags/{FLAGSHIP}/dagRuns", params={"order_by": "-start_date", "limit": 20})
    response.raise_for_status()
    for run in response.json()["dag_runs"]:
        if stack.ti(FLAGSHIP, run["dag_run_id"], FLAGSHIP_TASK).get("state") == "success":
            return str(run["dag_run_id"])
    run_id = stack.client.trigger(FLAGSHIP)

    def done() -> str | None:
        state = stack.ti(FLAGSHIP, run_id, FLAGSHIP_TASK).get("state")
        return state if state in ("success", "failed", "upstream_failed") else None

    state = stack.wait_for(f"{FLAGSHIP}.{FLAGSHIP_TASK} finishes", done, timeout=300, interval=1)
    assert state == "success", {t["task_id"]: t["state"] for t in stack.client.task_instances(FLAGSHIP, run_id)}
    return run_id


def _running_workflow(stack: Stack, dag_id: str, run_id: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        found = stack.client.workflows(dag_id, run_id)
        if found and (found[0].get("status") or {}).get("phase") == "Running":
            return found[0]
        return None

    workflow: dict[str, Any] = stack.wait_for(f"the workflow of {dag_id} {run_id} runs", running, timeout=150)
    return workflow


def test_admin_sees_the_flagship_workflow(browser: Any, shots: Path, stack: Stack) -> None:
    run_id = _finished_flagship_run(stack)
    workflows = stack.client.workflows(FLAGSHIP, run_id)
    deferred = [w for w in workflows
                if (w["metadata"].get("labels") or {}).get("airflow.apache.org/task-id") == FLAGSHIP_TASK]
    assert deferred, [w["metadata"]["name"] for w in workflows]
    workflow = deferred[-1]
    nodes: dict[str, Any] = workflow["status"]["nodes"]

    page = _login(browser, stack, ADMIN_USER)
    try:
        # the tab inside the Airflow UI: the plugin's page in an iframe
        page.goto(_ui_tab_url(stack, FLAGSHIP, run_id, FLAGSHIP_TASK))
        frame = page.frame_locator("iframe").first
        frame.locator("table.tree").wait_for()
        _screenshot(page, shots, "01-airflow-ui-tab")

        # the plugin's page itself: every node with its phase, the SVG graph, a pod's log
        page.goto(_view_url(stack, FLAGSHIP, run_id, FLAGSHIP_TASK))
        assert workflow["metadata"]["name"] in page.locator("h1").inner_text()
        rows = page.locator("table.tree tr[data-node]")
        shown = {rows.nth(i).get_attribute("data-node"): rows.nth(i).locator(".phase").inner_text()
                 for i in range(rows.count())}
        assert shown == {node_id: node.get("phase") for node_id, node in nodes.items()}
        svg = page.locator(".graph svg")
        svg.wait_for()
        assert svg.locator("rect, circle, ellipse, polygon").count() >= len(nodes) - 1
        for node in nodes.values():
            if node.get("type") == "Pod":
                assert svg.get_by_text(node.get("displayName") or node["name"], exact=True).count() >= 1

        link = page.locator("a.log-link").first
        log = page.locator(f"pre#{link.get_attribute('data-target')}")
        link.click()
        log.wait_for()
        page.wait_for_function("el => el.textContent && el.textContent !== 'loading…'", arg=log.element_handle())
        text = log.inner_text()
        assert text.strip() and not text.startswith("error"), text[:500]
        _screenshot(page, shots, "02-argo-view-flagship")

        # the top-level list, filtered by DAG: the workflow links back to its task-instance view
        page.goto(f"{stack.client.base}/argo-eci/workflows?dag_id={FLAGSHIP}")
        listed = page.locator("table.workflows a", has_text=workflow["metadata"]["name"])
        listed.wait_for()
        assert f"task_id={FLAGSHIP_TASK}" in (listed.get_attribute("href") or "")
        assert f"run_id={quote(run_id, safe='')}" in (listed.get_attribute("href") or "")
        _screenshot(page, shots, "03-workflow-list")
    finally:
        page.context.close()


def test_stop_with_confirmation_and_a_viewer_gets_403(browser: Any, shots: Path, stack: Stack) -> None:
    run_id = stack.client.trigger(SLOW, conf={"seconds": 120})
    workflow = _running_workflow(stack, SLOW, run_id)
    assert not (workflow.get("spec") or {}).get("shutdown")
    url = _view_url(stack, SLOW, run_id, "slow")

    viewer = _login(browser, stack, VIEWER_USER)
    try:
        viewer.goto(url)
        viewer.locator("table.tree").wait_for()
        assert viewer.locator("button.action").count() == 0  # read-only: no Stop / Retry buttons
        status = viewer.evaluate("""url => fetch(url, {method: "POST", credentials: "same-origin",
                                                      headers: {"X-Argo-Eci-Confirm": "yes"}})
                                          .then(r => r.status)""",
                                 url.replace("/argo-eci/ti?", "/argo-eci/ti/stop?"))
        assert status == 403
        _screenshot(viewer, shots, "04-viewer-no-actions")
    finally:
        viewer.context.close()
    assert not (stack.client.workflows(SLOW, run_id)[0].get("spec") or {}).get("shutdown")

    admin = _login(browser, stack, ADMIN_USER)
    try:
        admin.goto(url)
        dialogs: list[str] = []

        def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        admin.once("dialog", accept)
        admin.get_by_role("button", name="Stop").click()
        admin.locator(".action-result").filter(has_text="stopping workflow").wait_for()
        assert dialogs and dialogs[0].startswith(f"Stop workflow {workflow['metadata']['name']}?"), dialogs
        shutdown = stack.wait_for("spec.shutdown after Stop in the browser",
                                  lambda: (stack.client.workflows(SLOW, run_id)[0].get("spec") or {}).get("shutdown"),
                                  timeout=15, interval=0.25)
        assert shutdown == "Stop"
        phase = stack.wait_for("the stopped workflow ends",
                               lambda: (p := (stack.client.workflows(SLOW, run_id)[0].get("status") or {})
                                        .get("phase")) in ("Failed", "Error") and p, timeout=60)
        assert phase in ("Failed", "Error")
        admin.goto(url)
        admin.locator(".summary .phase").filter(has_text=phase).wait_for()
        _screenshot(admin, shots, "05-stopped")
    finally:
        admin.context.close()

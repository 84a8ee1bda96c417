"""The API server's request log: what it records, its bounds, and its ASGI middleware."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from airflow_argo_eci.local.api.request_log import RecordedRequest, RequestLog, RequestLogMiddleware


async def _echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that reads the whole body and answers 200 with its length."""
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _client(log: RequestLog, max_body: int = 64) -> httpx.AsyncClient:
    app = RequestLogMiddleware(_echo_app, log, max_body=max_body)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


async def test_records_method_path_query_content_type_and_small_bodies() -> None:
    log = RequestLog()
    async with _client(log) as http:
        await http.get("/apis/x/workflows", params=[("labelSelector", "a=1"), ("watch", "true"), ("watch", "1")])
        await http.patch("/apis/x/workflows/wf-1", content=b'{"spec": {"suspend": true}}',
                         headers={"Content-Type": "application/merge-patch+json"})
        response = await http.post("/apis/x/workflows", content=b"x" * 65, headers={"Content-Type": "text/plain"})
        assert response.text == "65"  # the application still got the whole body
    get, patch, big = log.entries()
    assert (get.method, get.path, get.query, get.body) == (
        "GET", "/apis/x/workflows", [("labelSelector", "a=1"), ("watch", "true"), ("watch", "1")], None)
    assert get.params() == {"labelSelector": "a=1", "watch": "1"} and get.json() is None
    assert (patch.method, patch.content_type, patch.json()) == (
        "PATCH", "application/merge-patch+json", {"spec": {"suspend": True}})
    assert (big.method, big.content_type, big.body) == ("POST", "text/plain", None)  # over max_body: not kept
    assert [e.seq for e in log.entries()] == [1, 2, 3] and log.last_seq == 3


async def test_chunked_body_is_joined() -> None:
    log = RequestLog()

    async def chunks() -> Any:
        yield b'{"a": '
        yield b"1}"

    async with _client(log) as http:
        await http.post("/p", content=chunks(), headers={"Content-Type": "application/json"})
    (entry,) = log.entries()
    assert entry.json() == {"a": 1}


def test_ring_is_bounded_and_readable_after_a_position() -> None:
    log = RequestLog(capacity=3)
    for i in range(5):
        log.add(RecordedRequest("GET", f"/wf-{i}", [("q", f"v{i}")], ""))
    assert [e.path for e in log.entries()] == ["/wf-2", "/wf-3", "/wf-4"]
    assert [e.path for e in log.entries(after=3)] == ["/wf-3", "/wf-4"]
    assert [e.path for e in log.matching("wf-3")] == ["/wf-3"]
    assert [e.path for e in log.matching("v4")] == ["/wf-4"]  # a query value
    log.clear()
    assert log.entries() == [] and log.last_seq == 5


def test_kept_bodies_stay_within_the_budget() -> None:
    log = RequestLog(capacity=100, max_body_bytes=25)
    entries = [RecordedRequest("POST", f"/wf-{i}", [], "application/json") for i in range(4)]
    for entry in entries:
        log.add(entry)
        log.set_body(entry, b"x" * 10)
    # 4 x 10 bytes against a budget of 25: the two oldest entries went
    assert [e.path for e in log.entries()] == ["/wf-2", "/wf-3"]
    late = RecordedRequest("PUT", "/late", [], "")
    log.add(late)
    log.add(RecordedRequest("GET", "/other", [], ""))
    log.set_body(entries[0], b"y" * 10)  # an entry that already left: not counted, not kept
    assert entries[0] not in log.entries() and len(log.entries()) == 4
    log.set_body(late, b"z" * 10)  # 30 bytes: /wf-2 goes
    assert [e.path for e in log.entries()] == ["/wf-3", "/late", "/other"]


def test_body_text_matches() -> None:
    log = RequestLog()
    log.add(RecordedRequest("POST", "/apis/x/workflows", [], "application/json", b'{"metadata": {"name": "wf-9"}}'))
    assert len(log.matching("wf-9")) == 1 and log.matching("wf-8") == []


def test_concurrent_adds_are_all_numbered_once() -> None:
    log = RequestLog(capacity=10_000)

    def add_many() -> None:
        for _ in range(500):
            log.add(RecordedRequest("GET", "/", [], ""))

    threads = [threading.Thread(target=add_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.last_seq == 4000
    assert sorted(e.seq for e in log.entries()) == list(range(1, 4001))

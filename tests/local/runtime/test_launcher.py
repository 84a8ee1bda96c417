"""ThreadLauncher: threads started off the caller's thread, in order, none lost at close."""

from __future__ import annotations

import threading

from airflow_argo_eci.local.runtime.launcher import ThreadLauncher


class Recorded(threading.Thread):
    """A thread that notes which thread started it, and when."""

    started_by: list[tuple[int, str]] = []

    def __init__(self, index: int) -> None:
        super().__init__(target=lambda: None, daemon=True)
        self.index = index

    def start(self) -> None:
        Recorded.started_by.append((self.index, threading.current_thread().name))
        super().start()


def test_threads_start_in_the_order_queued_on_the_launchers_thread() -> None:
    Recorded.started_by = []
    launcher = ThreadLauncher("test-launcher")
    threads = [Recorded(i) for i in range(50)]
    for thread in threads:
        launcher.start(thread)
    launcher.close(10)
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert Recorded.started_by == [(i, "test-launcher") for i in range(50)]


def test_close_starts_what_was_queued_and_later_threads_start_at_once() -> None:
    launcher = ThreadLauncher()
    ran: list[str] = []
    queued = threading.Thread(target=lambda: ran.append("queued"))
    launcher.start(queued)
    launcher.close(10)
    queued.join(10)  # joinable: close() started it
    later = threading.Thread(target=lambda: ran.append("later"))
    launcher.start(later)
    assert later.ident is not None  # started synchronously by start() after close
    later.join(10)
    assert ran == ["queued", "later"]

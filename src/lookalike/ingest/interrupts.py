"""Stopping long jobs cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading


class StopOnInterrupt:
    """The first Ctrl-C (or SIGTERM) asks the run to stop at the next safe point: work under
    way is finished and recorded, the index saved. A second Ctrl-C raises KeyboardInterrupt.
    Only the main thread can take signals; elsewhere (a server thread) this does nothing."""

    requested = False

    def __enter__(self) -> StopOnInterrupt:
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

"""A one-line notice on stderr while numba compiles tsode's kernels for the first time.

The first call of a compiled kernel (ReLU integrals, simulators) on a machine compiles it, which
takes seconds (about 13 s for the first simulation); later runs load the compiled code from
numba's on-disk cache and print nothing, because numba fires its ``numba:compile`` event only for
a real compilation, never for a cache hit. The line is written once per process, and only when
stderr is a terminal (a notebook's stderr output would count as a failed chapter run).
"""

from __future__ import annotations

import sys

from numba.core import event

__all__ = ["MESSAGE", "CompileNotice", "install"]

MESSAGE = ("tsode: compiling numba kernels on first use (once per machine, a few seconds; "
           "cached afterwards) ...")


class CompileNotice(event.Listener):
    """Write :data:`MESSAGE` to ``stream`` (default stderr) at the first compilation of a
    function of the ``tsode`` package, if ``stream`` is a terminal (``always``: in any case)."""

    def __init__(self, stream=None, always: bool = False):
        self.stream, self.always, self.done = stream, always, False

    def on_start(self, ev):
        if self.done:
            return
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        if not getattr(func, "__module__", "").startswith("tsode"):
            return
        stream = self.stream or sys.stderr
        self.done = True
        if self.always or getattr(stream, "isatty", lambda: False)():
            print(MESSAGE, file=stream, flush=True)

    def on_end(self, ev):
        pass


_INSTALLED: list = []


def install() -> CompileNotice:
    """Register the notice (once per process); returns the listener."""
    if not _INSTALLED:
        listener = CompileNotice()
        event.register("numba:compile", listener)
        _INSTALLED.append(listener)
    return _INSTALLED[0]

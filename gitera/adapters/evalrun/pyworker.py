"""The python-mode worker, run as `python -I -B -c <this source> <config>` with cwd = the checkout.

It is started once per run in its own process (so two arms' checkouts with the same module
names never share sys.modules), imports module:function with the checkout on sys.path right
after the standard library (so a module of the checkout can shadow an installed package but
never `json` or `os`), and answers one JSON request per stdin line on a private copy of
stdout; the harness's own prints go to stderr. It imports nothing from gitera (it must not
shadow the user's modules).
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import sys
import threading
import time
import traceback
from typing import Any, TextIO

TRANSIENT_MARKERS = ("Transient", "RateLimit", "Timeout")
MAX_DEPTH = 100  # gitera.adapters.evalrun.parse.MAX_DEPTH: a return value nested deeper is a crash row


def too_deep(line: str) -> bool:
    """Whether an encoded reply nests beyond MAX_DEPTH (a bracket scan only when it could)."""
    if line.count("[") + line.count("{") <= MAX_DEPTH:
        return False
    depth = top = 0
    in_string = escaped = False
    for ch in line:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}":
            depth -= 1
    return top > MAX_DEPTH + 1  # the reply's own object is one level


def is_transient(exc: BaseException) -> bool:
    names = [cls.__name__ for cls in type(exc).__mro__]
    return any(marker in name for name in names for marker in TRANSIENT_MARKERS)


def after_stdlib(path: list[str]) -> int:
    """The index in sys.path just after the standard library's entries: in isolated mode (-I) the
    path is the stdlib (zip, lib, lib-dynload), then the site-packages folders."""
    return next((i for i, p in enumerate(path) if "site-packages" in p or "dist-packages" in p or not os.path.isabs(p)), len(path))


def main() -> int:
    config = json.loads(sys.argv[1])
    sys.path.insert(after_stdlib(sys.path), os.getcwd())
    proto: TextIO = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        deep = f"the result is nested more than {MAX_DEPTH} levels deep, which no result needs; return flat values (an output as text)"
        try:
            line = json.dumps(message, default=repr)
            problem = deep if too_deep(line) else None
        except RecursionError:
            problem = deep
        except (TypeError, ValueError) as exc:
            problem = f"result is not JSON-serializable: {exc}"
        if problem is not None:
            line = json.dumps({"k": message.get("k"), "exc": "ValueError", "msg": problem, "transient": False})
        with lock:
            proto.write(line + "\n")
            proto.flush()

    try:
        module_name, func_name = config["target"].split(":")
        function = getattr(importlib.import_module(module_name), func_name)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which records every row
        send({"fatal": f"{type(exc).__name__}: {exc}", "tb": traceback.format_exc()[-2000:]})
        return 3
    send({"ready": True})

    def call(request: dict[str, Any]) -> None:
        start = time.perf_counter()
        try:
            value = function(request["row"], config["arm"], request["trial"], config["params"])
        except BaseException as exc:  # noqa: BLE001
            send({
                "k": request["k"], "exc": type(exc).__name__, "msg": str(exc)[:1000],
                "transient": is_transient(exc), "tb": traceback.format_exc()[-1500:],
            })
            return
        send({"k": request["k"], "ok": value, "ms": (time.perf_counter() - start) * 1000})

    # A growing pool: a thread is started only when none is idle, so a call that hangs
    # (abandoned by the parent at its timeout) never blocks the calls after it.
    requests: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    idle = [0]
    idle_lock = threading.Lock()

    def serve() -> None:
        while True:
            call(requests.get())
            with idle_lock:
                idle[0] += 1

    for line in sys.stdin:
        if not line.strip():
            continue
        with idle_lock:
            spawn = idle[0] == 0
            if not spawn:
                idle[0] -= 1
        if spawn:
            threading.Thread(target=serve, daemon=True).start()
        requests.put(json.loads(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())

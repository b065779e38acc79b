"""Where a tree's symbolic links lead, decided on the tree alone (no file system).

A link that leads out of the scored tree (an absolute target, or ``..`` above its top) lets the
harness read a file git does not hold, which can change after the lock (issue 12). The
checkouts refuse such a tree when it is written (``adapters/checkout.py``); ``gitera lock`` asks
this module first, so such an experiment is never locked.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_HOPS = 40  # as the kernel's limit on links followed in one lookup


def leads_out(path: str, links: Mapping[str, str]) -> bool:
    """Whether the link at ``path`` (a key of ``links``: link path -> its target text, paths
    relative to the tree's top) leads outside the tree, following links inside it as the file
    system would. A loop (a chain longer than MAX_HOPS) leads nowhere: it cannot be read."""
    if links[path].startswith("/"):
        return True
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    pending = [*folder.split("/"), *links[path].split("/")]  # the link's own folders are real ones: git holds no file under a link
    done: list[str] = []
    hops = 1
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                return True
            done.pop()
            continue
        done.append(part)
        here = "/".join(done)
        if here in links:
            hops += 1
            if hops > MAX_HOPS:
                return False
            target = links[here]
            if target.startswith("/"):
                return True
            done.pop()
            pending = [*target.split("/"), *pending]
    return False


def links_out(links: Mapping[str, str]) -> list[str]:
    """The links of a tree that lead outside it, in path order."""
    return sorted(p for p in links if leads_out(p, links))

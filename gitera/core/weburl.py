"""The web address of a git remote, for commit links in `gitera log --format md` and the report (pure).

GitHub and GitLab (gitlab.com or self-hosted, nested groups) in every form git accepts: https
(with or without `.git`, with credentials, which are dropped), scp-like ssh (`git@host:owner/repo`),
`ssh://` (with or without a port) and `git://`. A host that names neither gives None: a wrong link
is worse than none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_URL = re.compile(r"^(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)(?:[^/]*@)?(?P<host>\[[^\]]+\]|[^/:@]+)(?::\d*)?/(?P<path>.+)$", re.I)
_SCP = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:@]+):(?!//)(?P<path>.+)$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.~-]+$")


@dataclass(frozen=True)
class WebRepo:
    """Where a remote's commits can be linked on the web: the host kind and the base URL."""
    kind: str  # "github" | "gitlab"
    base: str  # https://host/owner/repo

    def commit(self, sha: str) -> str:
        return f"{self.base}/-/commit/{sha}" if self.kind == "gitlab" else f"{self.base}/commit/{sha}"

    def blob(self, sha: str, path: str) -> str:
        return f"{self.base}/-/blob/{sha}/{path}" if self.kind == "gitlab" else f"{self.base}/blob/{sha}/{path}"


def web_repo(remote: str) -> WebRepo | None:
    """The web repository a remote URL points at, or None when it is not a GitHub or GitLab one."""
    text = remote.strip()
    m = _URL.match(text)
    if m is not None:
        if m.group("scheme").lower() not in ("https", "http", "ssh", "git", "git+ssh", "ssh+git"):
            return None
    else:
        m = _SCP.match(text)
        if m is None:
            return None
    host = m.group("host").lower()
    path = m.group("path").strip("/")
    path = path[:-4] if path.endswith(".git") else path
    parts = path.split("/")
    kind = "github" if "github" in host else "gitlab" if "gitlab" in host else None
    if kind is None or not all(_SEGMENT.match(p) and p not in (".", "..") for p in parts):
        return None
    if (kind == "github" and len(parts) != 2) or (kind == "gitlab" and len(parts) < 2):
        return None
    return WebRepo(kind, f"https://{host}/{path}")

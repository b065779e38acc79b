"""gitera view: the experiment's output browser, one self-contained HTML page (gitera.domain.viewpage),
served on 127.0.0.1 with the standard library's HTTP server or only written (--no-serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.core.errors import UsageError
from gitera.domain.experiment import resolve


def _summary(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    splits = data["splits"]
    return {"tag": data["meta"]["tag"], "path": str(path), "bytes": path.stat().st_size, "tip": data["meta"]["tip"],
            "dev_rows": len(splits["dev"]["ids"]) if "dev" in splits else 0, "test_rows": len(splits["test"]["ids"]) if "test" in splits else None,
            "attempts": len(data["attempts"]), "charts": [c["name"] for c in data["charts"]]}


def view(tag: str | None, dest: Path | None, serve: bool, port: int, out: Output) -> int:
    from gitera.domain.viewpage import write_page

    repo = Repo.find()
    exp = resolve(repo, tag)
    path, data = write_page(exp, dest)
    info = _summary(path, data)
    what = f"{info['dev_rows']} dev rows" + (f", {info['test_rows']} test rows" if info["test_rows"] is not None else "") + f", {info['attempts']} attempts"
    if not serve:
        out.result(info, f"Wrote {path} ({what}); open it in a browser — it needs no server and no network.")
        return 0
    from gitera.adapters.httpserve import PageServer

    built = {"tip": data["meta"]["tip"], "body": path.read_bytes()}

    def page() -> bytes:
        tip = repo.rev(f"refs/heads/{exp.branch}")
        if tip != built["tip"]:  # the branch moved (an iterate, a gate): build the page again
            new_path, new_data = write_page(exp, dest)
            built.update(tip=new_data["meta"]["tip"], body=new_path.read_bytes())
        return bytes(built["body"])

    try:
        server = PageServer(page, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); choose another port with --port, or 0 for any free one.") from None
    out.result({**info, "url": server.url},
               f"Serving {exp.tag} ({what}) at {server.url} — press Ctrl-C to stop.\nThe page is also written to {path}; "
               "reload it after an iterate to see the new attempt.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.info("stopped serving.")
    return 0

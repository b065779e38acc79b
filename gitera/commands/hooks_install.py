"""gitera hooks install: plain git hooks for repos that do not use pre-commit."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.core.errors import RefusedError

HOOKS = ("pre-commit", "pre-merge-commit", "commit-msg", "pre-push")
MARK = "gitera hook"


def install(force: bool, out: Output) -> int:
    repo = Repo.find()
    hooks_dir = Path(repo.git("rev-parse", "--git-path", "hooks").strip())
    if not hooks_dir.is_absolute():
        hooks_dir = repo.root / hooks_dir
    hooks_dir.mkdir(parents=True, exist_ok=True)
    source = resources.files("gitera") / "hook_scripts"
    foreign = [h for h in HOOKS if (hooks_dir / h).exists() and MARK not in (hooks_dir / h).read_text(errors="replace")]
    if foreign and not force:
        raise RefusedError(
            f"{hooks_dir / foreign[0]} already exists and is not gitera's; add `gitera hook …` to it by hand, "
            "or rerun with --force (the old hook is kept as <name>.orig)."
        )
    installed = []
    for name in HOOKS:
        target = hooks_dir / name
        if name in foreign:
            shutil.copy2(target, target.with_name(name + ".orig"))
        target.write_bytes((source / name).read_bytes())
        os.chmod(target, 0o755)
        installed.append(str(target))
    out.result({"installed": installed}, "Installed git hooks:\n" + "".join(f"  {p}\n" for p in installed).rstrip())
    return 0

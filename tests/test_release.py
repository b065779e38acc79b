"""The release procedure (docs/release.md) and the pre-commit config the docs show (issue 14): the
version is written consistently, the documented `rev` is the release tag, and the documented flow —
config committed on main before the experiment branch — works with the real pre-commit framework
against a release made the documented way."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from gitera.core.version import __version__
from tests.conftest import git, run_gitera
from tests.helpers import FRAME, write_project

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def documented_config(page: Path) -> str:
    blocks = re.findall(r"```yaml\n(# \.pre-commit-config\.yaml\n.*?)```", page.read_text(), re.S)
    assert len(blocks) == 1, page
    return str(blocks[0])


def test_the_version_is_written_the_same_everywhere_it_is_named() -> None:
    assert __version__ == VERSION
    spec = yaml.safe_load((ROOT / "examples/github/gitera.yml").read_text())["env"]["GITERA_PIP_SPEC"]
    assert spec.endswith(f"@v{VERSION}")


def test_the_docs_and_the_quick_start_show_one_complete_config_pinned_to_the_release_tag() -> None:
    hooks, readme = documented_config(ROOT / "docs/hooks.md"), documented_config(ROOT / "README.md")
    assert hooks == readme
    config = yaml.safe_load(hooks)
    [entry] = config["repos"]
    assert entry["rev"] == f"v{VERSION}"
    manifest = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in entry["hooks"]] == [h["id"] for h in manifest if not h["id"].endswith("-system")]
    for page in (ROOT / "docs/hooks.md", ROOT / "README.md"):  # and both say to commit it on main first
        text = page.read_text()
        assert "git switch main" in text and 'git add .pre-commit-config.yaml && git commit -m "gitera\'s hooks"' in text
        assert text.index("git add .pre-commit-config.yaml") < text.index("gitera init prompt-v2")


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """gitera released the documented way: a clone of this source with the annotated tag vX.Y.Z."""
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip("the source tree is not a git checkout")
    rel = tmp_path / "gitera-release"
    git(tmp_path, "clone", "-q", str(ROOT), str(rel))
    # step 3 of docs/release.md, on this source's HEAD; -f because the source may hold the real tag
    # already (on an earlier commit): this throwaway clone is never pushed
    git(rel, "tag", "-f", "-a", f"v{VERSION}", "-m", f"gitera {VERSION}")
    return rel


def user_config(release: Path) -> str:
    """The documented config, pointed at the release; with the `-system` ids the docs offer, so the
    test does not install gitera again (tests/test_hooks.py covers the plain ids' install)."""
    text = documented_config(ROOT / "docs/hooks.md").replace("https://github.com/YOUR-ORG/gitera", str(release))
    return re.sub(r"- id: (gitera-[a-z-]+)", r"- id: \1-system", text)


def commit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "commit", *args], cwd=root, capture_output=True, text=True)


def test_the_documented_flow_guards_the_experiment_and_keeps_main_committing(repo: Path, release: Path) -> None:
    write_project(repo)
    (repo / ".pre-commit-config.yaml").write_text(user_config(release))
    git(repo, "switch", "-q", "main")
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-q", "-m", "gitera's hooks")
    proc = subprocess.run(["pre-commit", "install", "-t", "pre-commit", "-t", "pre-merge-commit", "-t", "commit-msg", "-t", "pre-push"],
                          cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert run_gitera(repo, "init", "exp1").code == 0
    (repo / ".gitera/exp1/frame.yaml").write_text(FRAME)
    assert run_gitera(repo, "lock").code == 0
    # on the experiment branch the hooks run from the config it carries: the locked file is guarded
    (repo / "eval/run.py").write_text("print('a better score')\n")
    git(repo, "add", "eval/run.py")
    proc = commit(repo, "-m", "tweak the harness")
    assert proc.returncode != 0 and "eval/run.py is locked by experiment exp1" in proc.stdout + proc.stderr
    git(repo, "restore", "--staged", "--worktree", "eval/run.py")
    # and main, which has the config too, commits as usual
    git(repo, "switch", "-q", "main")
    (repo / "notes.txt").write_text("unrelated work\n")
    git(repo, "add", "notes.txt")
    proc = commit(repo, "-m", "notes")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_why_the_config_goes_on_main_first(repo: Path, release: Path) -> None:
    # committed only on the experiment branch, main has none: pre-commit stops every commit there
    write_project(repo)
    assert run_gitera(repo, "init", "exp1").code == 0
    (repo / ".pre-commit-config.yaml").write_text(user_config(release))
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-q", "-m", "hooks, on the experiment branch only")
    assert subprocess.run(["pre-commit", "install"], cwd=repo, capture_output=True).returncode == 0
    git(repo, "switch", "-q", "main")
    (repo / "notes.txt").write_text("unrelated work\n")
    git(repo, "add", "notes.txt")
    proc = commit(repo, "-m", "notes")
    assert proc.returncode != 0 and "No .pre-commit-config.yaml file was found" in proc.stdout + proc.stderr
    # and a config edited but not committed makes pre-commit refuse to run
    git(repo, "switch", "-q", "autoexp/exp1")
    with (repo / ".pre-commit-config.yaml").open("a") as fh:
        fh.write("# edited\n")
    git(repo, "add", "notes.txt")
    proc = commit(repo, "-m", "notes")
    assert proc.returncode != 0 and "Your pre-commit configuration is unstaged" in proc.stdout + proc.stderr


def test_the_pinned_rev_names_this_release_once_it_is_tagged() -> None:
    """Once the release tag exists in this source repository, the `rev` the docs pin resolves to a
    release of this version carrying the hooks the config names (run after tagging, step 4)."""
    rev = yaml.safe_load(documented_config(ROOT / "docs/hooks.md"))["repos"][0]["rev"]
    probe = subprocess.run(["git", "cat-file", "-t", rev], cwd=ROOT, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{rev} is not tagged yet: the release procedure (docs/release.md) creates it")
    assert probe.stdout.strip() == "tag", f"{rev} must be an annotated tag (docs/release.md, step 3)"
    at_tag = subprocess.run(["git", "show", f"{rev}:pyproject.toml"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert f"v{tomllib.loads(at_tag)['project']['version']}" == rev
    hooks = subprocess.run(["git", "show", f"{rev}:.pre-commit-hooks.yaml"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    shipped = {h["id"] for h in yaml.safe_load(hooks)}
    assert {h["id"] for h in yaml.safe_load(documented_config(ROOT / "docs/hooks.md"))["repos"][0]["hooks"]} <= shipped

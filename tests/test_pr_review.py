"""A reviewable pull request (issue 14), through the real CLI in real repositories: the verdict
tag's journey to other clones, `verify` on the checked-out branch, `status --all`, the log views
with commit links, the generated .gitattributes and the report after the verdict."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitera.core.weburl import web_repo
from gitera.domain.logview import BARS, sparkline
from tests.conftest import git, run_gitera
from tests.helpers import read_test_rows, synthetic_project


def sh(cwd: Path, command: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True)
    assert (proc.returncode == 0) == ok, (command, proc.stdout, proc.stderr)
    return proc


def backticked(text: str, starting: str) -> str:
    """The first `command` in ``text`` that starts with ``starting``, as a user would copy it."""
    found = [c for c in re.findall(r"`([^`]+)`", text) if c.startswith(starting)]
    assert found, (starting, text)
    return found[0]


def concluded_and_pushed_without_tags(repo: Path, tmp_path: Path) -> tuple[Path, str]:
    """An experiment concluded and merged into main, pushed with a plain `git push` (the tag left
    behind); returns the bare remote and the verdict's printed output."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    r = run_gitera(repo, "verdict")
    assert r.code == 0, r.out + r.err
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge the concluded experiment", "autoexp/syn")
    git(repo, "push", "-q", "origin", "main", "autoexp/syn")
    return remote, r.out


def test_a_clone_without_the_verdict_tag_is_told_why_the_hooks_refuse_and_how_to_get_the_tag(repo: Path, tmp_path: Path) -> None:
    remote, verdict_out = concluded_and_pushed_without_tags(repo, tmp_path)
    push = backticked(verdict_out, "git push")
    assert push == "git push --follow-tags origin autoexp/syn" and "a plain `git push` leaves the tag behind" in verdict_out
    assert git(remote, "tag", "--list") == ""  # the user's plain push left it behind
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    assert run_gitera(clone, "hooks", "install").code == 0
    ran = git(repo, "rev-parse", "--short=10", "gitera/syn/verdict^{commit}").strip()

    # the locked-file hook on main: it still refuses (a verdict.json alone proves nothing), and now says why
    (clone / "harness.py").write_text("print('the next question')\n")
    git(clone, "add", "harness.py")
    proc = subprocess.run(["git", "commit", "-m", "a new harness"], cwd=clone, capture_output=True, text=True)
    assert proc.returncode != 0
    assert (f"harness.py is locked by experiment syn and this commit has it modified; experiment syn's verdict ran in {ran} "
            "but its tag gitera/syn/verdict is not in this clone") in proc.stderr, proc.stderr
    assert "restore it with" not in proc.stderr  # the file is no longer the experiment's: restoring is not the cure
    fetch = backticked(proc.stderr, "git fetch origin tag")
    assert fetch == "git fetch origin tag gitera/syn/verdict"
    git(clone, "reset", "-q", "harness.py")

    # the leak hook too: the test rows are public after the verdict, but only the tag proves it ran
    row = str(read_test_rows(repo, "syn")[0]["text"])
    (clone / "notes.md").write_text(f"a test row, now public: {row}\n")
    git(clone, "add", "notes.md")
    proc = subprocess.run(["git", "commit", "-m", "notes"], cwd=clone, capture_output=True, text=True)
    assert proc.returncode != 0 and "notes.md:1 contains a row of experiment syn's sealed test set" in proc.stderr
    assert f"experiment syn's verdict ran in {ran} but its tag gitera/syn/verdict is not in this clone" in proc.stderr
    git(clone, "reset", "-q", "notes.md")

    # following the advice: the remote lacks the tag, so the fetch fails, as the message foresaw
    sh(clone, fetch, ok=False)
    sh(repo, push)  # the command the verdict printed
    assert git(remote, "tag", "--list").split() == ["gitera/syn/verdict"]
    sh(clone, fetch)
    git(clone, "add", "harness.py")
    proc = subprocess.run(["git", "commit", "-m", "a new harness"], cwd=clone, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    git(clone, "add", "notes.md")
    assert subprocess.run(["git", "commit", "-m", "notes"], cwd=clone, capture_output=True, text=True).returncode == 0


def test_pre_push_names_the_missing_tag_too(repo: Path, tmp_path: Path) -> None:
    remote, _ = concluded_and_pushed_without_tags(repo, tmp_path)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    (clone / "harness.py").write_text("print('v2')\n")
    git(clone, "commit", "-q", "--no-verify", "-am", "changed without the hook")
    r = run_gitera(clone, "hook", "locked", "--stage", "pre-push", stdin=f"refs/heads/main {git(clone, 'rev-parse', 'HEAD').strip()} "
                   f"refs/heads/main {git(clone, 'rev-parse', 'origin/main').strip()}\n")
    assert r.code == 3 and "but its tag gitera/syn/verdict is not in this clone" in r.err, r.err


# --- verify checks what is checked out ---------------------------------------------------------


def ran(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0


def test_verify_on_a_detached_head_in_a_fresh_clone_checks_that_commit(repo: Path, tmp_path: Path) -> None:
    # CI checks out the pull request's head commit, detached, in a clone with no local autoexp/ branch
    ran(repo)
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    head = git(repo, "rev-parse", "autoexp/syn").strip()
    git(clone, "checkout", "-q", "--detach", head)
    git(clone, "branch", "-q", "-D", "autoexp/syn")  # the clone followed the remote's HEAD; a CI clone has no such branch
    assert git(clone, "branch", "--list", "autoexp/*") == ""
    for args in ((), ("--tag", "syn")):
        r = run_gitera(clone, "verify", *args)
        assert r.code == 0, r.out + r.err
        assert r.out.splitlines()[0] == f"verify: experiment syn at a detached HEAD ({head[:10]})"
        doc = json.loads(run_gitera(clone, "verify", "--json", *args).out)
        assert doc["ok"] and doc["commit"] == head and doc["where"] == "a detached HEAD" and doc["note"] is None


def test_verify_checks_the_checked_out_branch_not_the_experiment_branch_of_the_same_name(repo: Path) -> None:
    ran(repo)
    # a pull request branch holding a locked-file change made with --no-verify; autoexp/syn itself is clean
    git(repo, "switch", "-q", "-c", "pr-head")
    (repo / "harness.py").write_text((repo / "harness.py").read_text() + "# tuned\n")
    git(repo, "commit", "-q", "--no-verify", "-am", "tune the harness")
    bad = git(repo, "rev-parse", "HEAD").strip()
    for args in ((), ("--tag", "syn")):
        r = run_gitera(repo, "verify", *args)
        assert r.code == 1, r.out + r.err
        assert r.out.splitlines()[0] == f"verify: experiment syn at branch pr-head ({bad[:10]})"
        assert f"note: branch autoexp/syn points at {git(repo, 'rev-parse', 'autoexp/syn').strip()[:10]}, not at the checked-out commit" in r.out
        assert f"FAIL locked files unchanged in every commit since the lock: harness.py in {bad[:10]}" in r.out, r.out
    # on a branch without the experiment's history, --tag refuses rather than check autoexp/syn
    git(repo, "switch", "-q", "main")
    r = run_gitera(repo, "verify", "--tag", "syn")
    assert r.code == 2 and r.out == ""
    assert ("the checked-out commit (branch main, " in r.err and "holds no commit of experiment syn; `git switch autoexp/syn` first — "
            "this command checks what is checked out, never another branch." in r.err), r.err
    r = run_gitera(repo, "report", "--tag", "syn")
    assert r.code == 2 and "never another branch" in r.err


# --- status --all ------------------------------------------------------------------------------


def test_status_all_shows_every_experiment_from_its_branch_or_verdict_tag_in_one_table(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    assert run_gitera(repo, "iterate", "-m", "a better policy").code == 0
    assert run_gitera(repo, "gate").code == 0
    assert run_gitera(repo, "verdict").code == 0
    decision = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Verdict,valueonly)", "gitera/syn/verdict").strip())
    frame = (repo / ".gitera/syn/frame.yaml").read_text()
    # merged, and its branch deleted: the verdict tag alone still names it
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge syn", "autoexp/syn")
    git(repo, "branch", "-q", "-D", "autoexp/syn")
    # a second experiment, climbing
    assert run_gitera(repo, "init", "climb").code == 0
    (repo / ".gitera/climb/frame.yaml").write_text(frame.replace("Does policy B beat policy A?", "Does a climbed B beat A?"))
    shutil.copy(repo / ".git/gitera/keys/source/syn/rows.csv", repo / "data/rows.csv")  # syn's split moved the data file away
    for args in (("lock",), ("split", "--accept-underpowered"), ("pilot",), ("run",)):
        assert run_gitera(repo, *args).code == 0, args
    (repo / "policy_b.txt").write_text("accuracy: 0.9\n")
    assert run_gitera(repo, "iterate", "-m", "climb higher").code == 0
    kept = json.loads(run_gitera(repo, "log", "--format", "jsonl").out.splitlines()[-1])
    # a third, locked; a fourth, only framed (each started from main, with a warning, since we are on an autoexp/ branch)
    assert run_gitera(repo, "init", "plain").code == 0
    (repo / ".gitera/plain/frame.yaml").write_text(frame.replace("Does policy B beat policy A?", "Is A enough?"))
    assert run_gitera(repo, "lock").code == 0
    assert run_gitera(repo, "init", "draft", "-q", "Should we even try C?").code == 0

    r = run_gitera(repo, "status", "--all")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["experiment", "state", "best", "dev", "verdict", "question"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == ["climb", "draft", "plain", "syn"]
    assert "syn (tag only)" in rows["syn"] and "concluded" in rows["syn"] and decision["decision"].replace("_", " ") in rows["syn"]
    assert rows["syn"].endswith("Does policy B beat policy A?")
    assert f"{kept['score']:.4f} (b #1)" in rows["climb"] and "iterating" in rows["climb"] and rows["climb"].endswith("Does a climbed B beat A?")
    assert " locked " in rows["plain"] and rows["plain"].endswith("Is A enough?")
    assert " framed " in rows["draft"] and rows["draft"].endswith("Should we even try C?")

    doc = {e["tag"]: e for e in json.loads(run_gitera(repo, "status", "--all", "--json").out)["experiments"]}
    assert doc["syn"]["branch"] is None and doc["syn"]["verdict"] == decision["decision"] and doc["syn"]["verdict_arm"] == decision["arm"]
    assert doc["climb"]["best_dev"] == kept["score"] and doc["climb"]["best_of"] == "b #1" and doc["climb"]["verdict"] is None
    # the same table from any branch: it reads refs, not the working tree
    git(repo, "switch", "-q", "main")
    assert run_gitera(repo, "status", "--all").out == r.out


def test_status_all_names_a_verdict_whose_tag_is_missing_and_an_empty_repo(repo: Path) -> None:
    r = run_gitera(repo, "status", "--all")
    assert r.code == 0 and "no experiments in this repository" in r.out
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    assert run_gitera(repo, "verdict").code == 0
    git(repo, "tag", "-d", "gitera/syn/verdict")
    rows = json.loads(run_gitera(repo, "status", "--all", "--json").out)["experiments"]
    assert [(e["tag"], e["state"], e["verdict"]) for e in rows] == [("syn", "concluded (tag missing)", None)]


# --- log: the `dvc exp show` view and md with commit links -------------------------------------

SEGMENT = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(lambda s: not s.endswith(".git"))


@given(owner=SEGMENT, name=SEGMENT, user=st.sampled_from(["", "git@", "x-access-token:ghp_SECRET@", "me:p%40ss@"]),
       suffix=st.sampled_from(["", ".git", "/"]), port=st.sampled_from(["", ":22", ":2222"]))
def test_every_github_remote_form_gives_one_web_address_and_never_credentials(owner: str, name: str, user: str, suffix: str,
                                                                                port: str) -> None:
    forms = [f"https://{user}github.com/{owner}/{name}{suffix}", f"http://{user}github.com{port}/{owner}/{name}{suffix}",
             f"ssh://{user or 'git@'}github.com{port}/{owner}/{name}{suffix}", f"git://github.com/{owner}/{name}{suffix}"]
    if not suffix.endswith("/"):
        forms.append(f"git@github.com:{owner}/{name}{suffix}")
    for form in forms:
        web = web_repo(form)
        assert web is not None and web.kind == "github", form
        assert web.base == f"https://github.com/{owner}/{name}" and "@" not in web.base and "SECRET" not in web.base, form
        assert web.commit("ab" * 20) == f"https://github.com/{owner}/{name}/commit/{'ab' * 20}"


@given(groups=st.lists(SEGMENT, min_size=1, max_size=3), name=SEGMENT, host=st.sampled_from(["gitlab.com", "gitlab.example.org"]))
def test_every_gitlab_remote_form_keeps_nested_groups(groups: list[str], name: str, host: str) -> None:
    path = "/".join([*groups, name])
    for form in (f"https://oauth2:glpat-SECRET@{host}/{path}.git", f"git@{host}:{path}.git", f"ssh://git@{host}:2222/{path}"):
        web = web_repo(form)
        assert web is not None and web.kind == "gitlab" and web.base == f"https://{host}/{path}", form
        assert web.commit("c" * 40) == f"https://{host}/{path}/-/commit/{'c' * 40}" and "SECRET" not in web.commit("c" * 40)


@given(st.text(max_size=80))
def test_any_remote_text_gives_a_clean_address_or_none(text: str) -> None:
    web = web_repo(text)
    if web is not None:
        assert web.base.startswith("https://") and "@" not in web.base and not any(c.isspace() for c in web.base)


def test_remotes_that_are_not_github_or_gitlab_give_no_link() -> None:
    for remote in ("/srv/git/repo.git", "file:///srv/git/repo.git", "https://example.com/o/r.git", "https://github.com/o/r/tree/main",
                   "ftp://github.com/o/r.git", "git@bitbucket.org:o/r.git", "https://github.com/o/../r"):
        assert web_repo(remote) is None, remote


@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), max_size=30))
def test_the_sparkline_has_one_mark_per_value_lowest_lowest_and_highest_highest(values: list[float | None]) -> None:
    line = sparkline(values)
    scored = [v for v in values if v is not None]
    if not scored:
        assert line == ""
        return
    assert len(line) == len(values)
    for v, mark in zip(values, line):
        assert (mark == "·") == (v is None)
    marks = {v: line[i] for i, v in enumerate(values) if v is not None}
    assert marks[min(scored)] == "▁"
    assert marks[max(scored)] == ("▁" if max(scored) == min(scored) else "█")
    order = sorted(marks)  # monotone: a higher value never gets a lower bar
    assert all(BARS.index(marks[a]) <= BARS.index(marks[b]) for a, b in zip(order, order[1:]))


def climbed(repo: Path) -> list[dict[str, object]]:
    synthetic_project(repo, rows=120, policies={"policy_a.txt": "accuracy: 0.5\nlatency: 20\ncost: 0.001\n",
                                                "policy_b.txt": "accuracy: 0.5\nlatency: 20\ncost: 0.001\n"})
    assert run_gitera(repo, "run").code == 0
    for text in ("accuracy: 0.6\nlatency: 25\ncost: 0.002\n", "accuracy: 0.61\nlatency: 25\ncost: 0.002\n", "crash\n"):
        (repo / "policy_b.txt").write_text(text)
        run_gitera(repo, "iterate", "-m", f"try {text.splitlines()[0]}")
    return [json.loads(x) for x in run_gitera(repo, "log", "--format", "jsonl").out.splitlines()[1:]]


def numstat(repo: Path, commit: str) -> str:
    added, deleted, path = git(repo, "diff", "--numstat", f"{commit}^", commit, "--", "policy_b.txt").split()
    return f"{path} +{added} −{deleted}"


def test_log_table_shows_attempts_by_metric_secondaries_and_params_or_the_change(repo: Path) -> None:
    atts = climbed(repo)
    out = run_gitera(repo, "log").out.splitlines()
    assert out[0].split()[:4] == ["exp", "commit", "status", "accuracy"]  # the frame's metric by name
    assert "$/1k rows" in out[0] and "latency ms" in out[0] and "params / change" in out[0]
    runs = {line.split()[0]: line for line in out[1:3]}
    assert "policy=policy_a.txt" in runs["a"] and "baseline" in runs["a"] and "policy=policy_b.txt" in runs["b"]
    for a, line in zip(atts, [x for x in out if x.startswith("#")]):
        commit = str(a["commit"])
        assert line.split()[:3] == [f"#{a['iteration']}", "s1", commit[:10]]
        assert numstat(repo, commit) in line  # the target diff summary, as git counts it
        if a["status"] != "crash":
            assert f"{a['score']:.4f}" in line and f"{a['cost_per_1k']:.4f}" in line and f"{a['latency_ms']:.1f}" in line


def test_log_md_links_every_commit_to_the_remote_s_web_page_and_draws_the_progression(repo: Path) -> None:
    atts = climbed(repo)
    git(repo, "remote", "add", "origin", "https://x-access-token:ghp_SECRET@github.com/acme/router.git")
    md = run_gitera(repo, "log", "--format", "md", "--chart", "progression.png").out
    assert "SECRET" not in md and "x-access-token" not in md
    for a in atts:
        commit = str(a["commit"])
        assert f"[`{commit[:10]}`](https://github.com/acme/router/commit/{commit})" in md
        assert f"| {numstat(repo, commit)} | {a['status']} |" in md
    start = float(atts[0]["best_score"])  # type: ignore[arg-type]
    line = re.search(r"Progression of accuracy: `([^`]+)` \(before attempt 1, then each of 3 attempts; ([0-9.]+) → best kept ([0-9.]+)", md)
    assert line is not None, md
    assert line.group(1) == sparkline([start, *(a["score"] for a in atts)])  # type: ignore[misc]
    assert float(line.group(2)) == round(start, 4) and "[progression chart](progression.png)" in md
    # a GitLab remote over ssh: the same links in GitLab's form
    git(repo, "remote", "set-url", "origin", "git@gitlab.com:acme/ml/router.git")
    md = run_gitera(repo, "log", "--format", "md").out
    assert f"(https://gitlab.com/acme/ml/router/-/commit/{atts[0]['commit']})" in md
    # a remote on neither: plain commit ids, no guessed link
    git(repo, "remote", "set-url", "origin", "/srv/git/router.git")
    md = run_gitera(repo, "log", "--format", "md").out
    assert f"| `{str(atts[0]['commit'])[:10]}` |" in md and "](http" not in md


def test_the_report_after_the_verdict_keeps_iterations_gates_and_charts(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    git(repo, "remote", "add", "origin", "git@github.com:acme/router.git")
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    assert run_gitera(repo, "iterate", "-m", "a better policy").code == 0
    assert run_gitera(repo, "gate").code == 0
    assert run_gitera(repo, "verdict").code == 0
    attempt = json.loads(run_gitera(repo, "log", "--format", "jsonl").out.splitlines()[1])
    verdict = git(repo, "rev-parse", "gitera/syn/verdict^{commit}").strip()
    gate = git(repo, "log", "-1", "--format=%H", "--grep=^Gitera-Gate: ", "autoexp/syn").strip()
    md = json.loads(run_gitera(repo, "report", "--json").out)["markdown"]
    assert "**Verdict:" in md and "Iterations and gates on dev" in md
    assert f"[`{attempt['commit'][:10]}`](https://github.com/acme/router/commit/{attempt['commit']})" in md
    assert f"Gate after sprint 1 ([`{gate[:10]}`](https://github.com/acme/router/commit/{gate}))" in md
    charts = re.findall(rf"\[([\w-]+\.png)\]\(https://github\.com/acme/router/blob/{verdict}/([^)]+)\)", md)
    assert {name for name, _ in charts} >= {"arm-bar.png", "forest-plot.png", "cost-vs-accuracy.png", "progression.png"}, md
    for _, path in charts:
        assert git(repo, "cat-file", "-t", f"{verdict}:{path}").strip() == "blob"  # each link names a committed chart


# --- the generated .gitattributes ------------------------------------------------------------------


def test_split_marks_per_row_files_generated_so_a_pull_request_shows_what_matters(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    (repo / "policy_b.txt").write_text("accuracy: 0.7\n")
    assert run_gitera(repo, "iterate", "-m", "a better policy").code == 0
    changed = git(repo, "diff", "--name-only", "main", "autoexp/syn").split()
    generated = {p for p in changed if p.endswith(".jsonl") or p.endswith(("leak.json", "iterate.json"))}
    assert {".gitera/syn/split/dev.jsonl", ".gitera/syn/split/leak.json", ".gitera/syn/runs/attempt-001.jsonl",
            ".gitera/syn/runs/iterate.json"} <= generated and any(p.startswith(".gitera/syn/runs/run-001/") for p in generated)
    attrs = git(repo, "check-attr", "linguist-generated", "diff", "--", *changed)
    for path in changed:
        mine = {line.split(": ")[1]: line.split(": ")[2] for line in attrs.splitlines() if line.startswith(f"{path}: ")}
        if path in generated:
            assert mine == {"linguist-generated": "set", "diff": "unset"}, (path, mine)
        elif path.endswith(".seal"):  # binary since the split (split/.gitattributes)
            assert mine == {"linguist-generated": "unspecified", "diff": "unset"}, (path, mine)
        else:  # the frame, the lock, manifests, gate records, the target file, the harness: reviewable
            assert mine == {"linguist-generated": "unspecified", "diff": "unspecified"}, (path, mine)
    # what a reviewer's `git diff` shows: the generated files as changed, not row by row
    numstat = {line.split("\t")[2]: line.split("\t")[:2] for line in git(repo, "diff", "--numstat", "main", "autoexp/syn").splitlines()}
    assert numstat[".gitera/syn/split/dev.jsonl"] == ["-", "-"] and numstat["policy_b.txt"] != ["-", "-"]
    assert numstat[".gitera/syn/frame.yaml"] != ["-", "-"]


@pytest.mark.parametrize("blind", ["-diff", "textconv"])
def test_attributes_cannot_blind_the_gate_s_hardcode_scan(repo: Path, blind: str) -> None:
    # an agent with shell access marks the target file so `git diff` hides its lines from the scan
    synthetic_project(repo)
    assert run_gitera(repo, "run").code == 0
    info = repo / ".git/info/attributes"
    info.parent.mkdir(exist_ok=True)
    if blind == "-diff":
        info.write_text("policy_b.txt -diff\n")
    else:
        info.write_text("policy_b.txt diff=hide\n")
        git(repo, "config", "diff.hide.textconv", "true")  # converts every version to nothing
    dev = [json.loads(x) for x in (repo / ".gitera/syn/split/dev.jsonl").read_text().splitlines()]
    planted = dev[3]["text"]
    out = ""
    for acc in ("0.6", "0.7", "0.8"):
        (repo / "policy_b.txt").write_text(f"accuracy: {acc}\n{planted}\n")
        r = run_gitera(repo, "iterate", "-m", f"accuracy {acc}")
        out = r.out
    gate = json.loads(git(repo, "log", "-1", "--format=%(trailers:key=Gitera-Gate,valueonly)", "autoexp/syn").strip())
    assert gate["hardcode_hits"] >= 1 and dev[3]["id"] in gate["hardcode"][0]["rows"], gate
    assert gate["outcome"] == "fail" and "gate after sprint 1: FAIL" in out


def test_status_all_lists_an_abandoned_experiment_beside_its_restart(repo: Path) -> None:
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "abandon", "-m", "the harness scored the wrong field").code == 0
    git(repo, "switch", "-q", "main")
    assert run_gitera(repo, "init", "syn", "-q", "Does policy B beat policy A, scored right?").code == 0  # the tag is free again
    rows = json.loads(run_gitera(repo, "status", "--all", "--json").out)["experiments"]
    assert [(e["tag"], e["state"]) for e in rows] == [("syn", "framed"), ("syn", "abandoned")], rows
    kept = rows[1]["branch"]
    assert kept.startswith("autoexp-abandoned/syn-") and rows[1]["question"] == "Does policy B beat policy A?"
    text = run_gitera(repo, "status", "--all").out
    assert f"syn ({kept})" in text and "abandoned" in text

"""examples/github/gitera.yml (issue 14): validated against GitHub's workflow schema, and its steps run
as a runner would — in a CI checkout of a pull request's head commit, from a fork with a read-only
token, and its comment step against a local stand-in for GitHub's REST API on 127.0.0.1.

The schema is the one check-jsonschema vendors (`--builtin-schema vendor.github-workflows`): the
check runs offline, with every proxy pointed at a closed port so a download attempt would fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from tests.conftest import git, run_gitera
from tests.helpers import synthetic_project

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples/github/gitera.yml"
CHECK = Path(sys.executable).parent / "check-jsonschema"
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}


def load() -> dict[Any, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(doc, dict)
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as true; GitHub reads it as "on"
    return doc


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK), "--builtin-schema", "vendor.github-workflows", "--no-cache", str(path)],
                          capture_output=True, text=True, env={**os.environ, **OFFLINE})


# --- the schema ----------------------------------------------------------------------------------


def test_the_example_workflow_validates_against_github_s_workflow_schema() -> None:
    proc = schema_check(WORKFLOW)
    assert proc.returncode == 0 and "ok -- validation done" in proc.stdout, proc.stdout + proc.stderr


def rewrite(doc: dict[Any, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_file_as_the_next_test_rewrites_it_still_validates(tmp_path: Path) -> None:
    proc = schema_check(rewrite(load(), tmp_path / "same.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("break_it", [
    lambda d: d["jobs"]["verify"].pop("runs-on"),
    lambda d: d["jobs"]["verify"]["permissions"].update({"contents": "everything"}),
    lambda d: d["jobs"]["verify"]["steps"][1].update({"uses": "actions/checkout@v4"}),  # a step with both run and uses
    lambda d: d.update({"on": {"pull_requests": None}}),  # a misspelt event
])
def test_the_schema_check_refuses_a_broken_workflow(tmp_path: Path, break_it: Any) -> None:
    doc = load()
    break_it(doc)
    proc = schema_check(rewrite(doc, tmp_path / "broken.yml"))
    assert proc.returncode == 1 and "Schema validation errors" in proc.stdout, proc.stdout + proc.stderr


def test_the_docs_show_the_example_file_itself() -> None:
    docs = (ROOT / "docs/pull-requests.md").read_text()
    assert "examples/github/gitera.yml" in docs and WORKFLOW.read_text() in docs


# --- the read-only path --------------------------------------------------------------------------


def test_verify_needs_no_write_token_and_no_secret_so_a_fork_s_pull_request_runs_it() -> None:
    doc = load()
    assert doc["permissions"] == {}
    verify = doc["jobs"]["verify"]
    assert verify["permissions"] == {"contents": "read"}
    text = yaml.safe_dump(verify)
    assert "secrets." not in text and "github.token" not in text and "GITHUB_TOKEN" not in text
    for step in verify["steps"]:  # untrusted text (a fork names its branch) only through env variables
        assert "${{" not in step.get("run", ""), step
    assert doc["jobs"]["comment"]["permissions"] == {"pull-requests": "write"}  # the only write, in its own job


# --- a minimal runner for this workflow's steps ---------------------------------------------------


def lookup(ctx: Mapping[str, Any], path: str) -> Any:
    value: Any = ctx
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def expression(ctx: Mapping[str, Any], expr: str) -> Any:
    """The few expression forms the workflow uses: always(), startsWith(a, 'b'), a == b, a != b, &&."""
    expr = expr.strip()
    if expr.startswith("${{") and expr.endswith("}}"):
        expr = expr[3:-2].strip()
    if "&&" in expr:
        return all(expression(ctx, part) for part in expr.split("&&"))
    if expr == "always()":
        return True
    m = re.fullmatch(r"startsWith\(([\w.]+), '([^']*)'\)", expr)
    if m:
        return str(lookup(ctx, m.group(1)) or "").startswith(m.group(2))
    m = re.fullmatch(r"(\S+) (==|!=) (\S+)", expr)
    if m:
        left, right = (v[1:-1] if v.startswith("'") else lookup(ctx, v) for v in (m.group(1), m.group(3)))
        return (left == right) == (m.group(2) == "==")
    assert re.fullmatch(r"[\w.]+", expr), f"the test runner does not know {expr!r}"
    return lookup(ctx, expr)


def substitute(ctx: Mapping[str, Any], text: str) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(expression(ctx, m.group(1)) or ""), text)


def run_job(job: str, ctx: dict[str, Any], cwd: Path, artifacts: Path, base_env: Mapping[str, str]) -> dict[str, Any]:
    """Run a job's steps like a runner: `uses:` steps emulated (checkout done by the caller), `run:`
    steps through bash -e or python, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY as files."""
    spec = load()["jobs"][job]
    if not expression(ctx, spec.get("if", "always()")):
        return {"ran": False}
    summary = cwd / "summary.md"
    ctx = {**ctx, "steps": {}}
    env = {**base_env, **{k: substitute(ctx, str(v)) for k, v in {**load().get("env", {}), **spec.get("env", {})}.items()},
           "GITHUB_STEP_SUMMARY": str(summary)}
    ran, failed = [], None
    for step in spec["steps"]:
        cond = step.get("if")  # GitHub's rule: without a status function, a step runs only while nothing failed
        if not (expression(ctx, cond) if cond and "always()" in cond else failed is None and (cond is None or expression(ctx, cond))):
            continue
        uses = step.get("uses", "")
        if uses.startswith(("actions/checkout", "actions/setup-python")) or step.get("id") == "install":
            continue  # the caller checked out; gitera is already installed here
        if uses.startswith("actions/upload-artifact"):
            shutil.copy(cwd / step["with"]["path"], artifacts / step["with"]["path"])
            continue
        if uses.startswith("actions/download-artifact"):
            for f in artifacts.iterdir():
                shutil.copy(f, cwd / f.name)
            continue
        output = cwd / f"output-{step.get('id')}"
        output.write_text("")
        script = cwd / f"step-{step.get('id')}"
        script.write_text(step["run"])
        command = [sys.executable, str(script)] if step.get("shell") == "python" else ["bash", "-e", str(script)]
        step_env = {**env, **{k: substitute(ctx, str(v)) for k, v in step.get("env", {}).items()}, "GITHUB_OUTPUT": str(output)}
        proc = subprocess.run(command, cwd=cwd, env=step_env, capture_output=True, text=True)
        outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
        ctx["steps"][step.get("id")] = {"outputs": outputs, "stdout": proc.stdout, "stderr": proc.stderr, "code": proc.returncode}
        ran.append(step.get("id"))
        if proc.returncode != 0:
            failed = step.get("id")
    return {"ran": True, "steps": ctx["steps"], "order": ran, "failed": failed,
            "summary": summary.read_text() if summary.exists() else "", "outputs": {
                k: substitute(ctx, str(v)) for k, v in spec.get("outputs", {}).items()}}


def context(head: str, number: int, head_repo: str, head_url: str, repository: str = "acme/router") -> dict[str, Any]:
    return {"github": {"head_ref": "autoexp/syn", "repository": repository, "event": {"pull_request": {
        "number": number, "head": {"sha": head, "repo": {"full_name": head_repo, "clone_url": head_url}}}}}}


@pytest.fixture
def fork_pr(repo: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A concluded experiment pushed to a FORK (branch and verdict tag), the base repository holding
    main and the pull request's head as refs/pull/7/head — as GitHub lays them out; no tag in the base."""
    synthetic_project(repo, rows=120)
    assert run_gitera(repo, "run").code == 0
    assert run_gitera(repo, "verdict").code == 0
    base, fork = tmp_path / "base.git", tmp_path / "fork.git"
    for bare in (base, fork):
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "push", "-q", str(base), "main")
    git(repo, "push", "-q", "--follow-tags", str(fork), "main", "autoexp/syn")
    git(repo, "push", "-q", str(base), "autoexp/syn:refs/pull/7/head")
    return repo, base, fork


def ci_checkout(base: Path, head: str, where: Path) -> Path:
    """actions/checkout with ref: the head sha and fetch-depth: 0 — a clone, detached at the head."""
    git(where.parent, "clone", "-q", str(base), str(where))
    git(where, "fetch", "-q", "origin", "+refs/pull/*/head:refs/remotes/origin/pr/*")
    git(where, "checkout", "-q", "--detach", head)
    return where


def runner_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_"))}
    return env  # no token at all: the read-only path


def test_the_verify_job_checks_a_fork_s_pull_request_head_with_no_token(fork_pr: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, base, fork = fork_pr
    head = git(repo, "rev-parse", "autoexp/syn").strip()
    work = ci_checkout(base, head, tmp_path / "runner")
    assert git(work, "tag", "--list") == ""  # the base repository never had the fork's verdict tag
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    job = run_job("verify", context(head, 7, "someone/router", str(fork)), work, artifacts, runner_env())
    assert job["ran"] and job["failed"] is None, job
    assert job["order"] == ["tags", "verify", "report"]  # 'fail on a violation' did not run
    assert "gitera/syn/verdict" in job["steps"]["tags"]["stdout"]  # fetched from the fork
    assert job["outputs"]["ok"] == "true" and job["steps"]["verify"]["stdout"].startswith(f"verify: experiment syn at a detached HEAD ({head[:10]})")
    assert "All checks pass." in job["steps"]["verify"]["stdout"]
    summary = job["summary"]
    assert summary.startswith("<!-- gitera-report -->\n## gitera: `syn`") and "**Verdict:" in summary
    assert "**verify:** all checks pass" in summary and "<summary>gitera verify</summary>" in summary
    assert (artifacts / "report.md").read_text().startswith("<!-- gitera-report -->")
    # the comment job does not run for a fork's pull request: its token could not write
    assert run_job("comment", {**context(head, 7, "someone/router", str(fork)), "needs": {"verify": {"result": "success"}}},
                   work, artifacts, runner_env()) == {"ran": False}


def test_the_verify_job_fails_the_check_on_a_violation_and_still_reports(fork_pr: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, base, fork = fork_pr
    # the fork pushes a commit that changes a locked file, made with --no-verify
    (repo / "harness.py").write_text((repo / "harness.py").read_text() + "# tuned\n")
    git(repo, "commit", "-q", "--no-verify", "-am", "tune the harness")
    git(repo, "push", "-q", str(fork), "autoexp/syn")
    git(repo, "push", "-q", "-f", str(base), "autoexp/syn:refs/pull/7/head")
    head = git(repo, "rev-parse", "HEAD").strip()
    work = ci_checkout(base, head, tmp_path / "runner")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    job = run_job("verify", context(head, 7, "someone/router", str(fork)), work, artifacts, runner_env())
    assert job["outputs"]["ok"] == "false" and job["failed"] == "verdict", job["order"]
    assert job["order"] == ["tags", "verify", "report", "verdict"]
    assert "gitera verify found a violation" in job["steps"]["verdict"]["stdout"]
    assert f"harness.py in {head[:10]}" in job["summary"] and "violation(s)" in job["summary"]


def test_a_branch_that_is_not_an_experiment_skips_the_workflow(tmp_path: Path) -> None:
    ctx = context("0" * 40, 8, "acme/router", "")
    ctx["github"]["head_ref"] = "feature/login"
    assert run_job("verify", ctx, tmp_path, tmp_path, runner_env()) == {"ran": False}


# --- the sticky comment, against a stand-in for GitHub's REST API ------------------------------------


class FakeGitHub:
    """Issue comments of one pull request as GitHub's REST API serves them (paged, 100 at most)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.comments: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.bad_auth = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    api.bad_auth += 1
                    self.reply(401, {"message": "Bad credentials"})
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                api.calls.append(("GET", self.path))
                if not self.authorised():
                    return
                url = urlparse(self.path)
                query = parse_qs(url.query)
                per, page = min(int(query.get("per_page", ["30"])[0]), 100), int(query.get("page", ["1"])[0])
                items = api.comments[(page - 1) * per: page * per]
                more = page * per < len(api.comments)
                link = {"Link": f'<http://{self.headers["Host"]}{url.path}?per_page={per}&page={page + 1}>; rel="next"'} if more else {}
                self.reply(200, items, link)

            def body(self) -> dict[str, Any]:
                return dict(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

            def do_POST(self) -> None:  # noqa: N802
                api.calls.append(("POST", self.path))
                if self.authorised():
                    comment = {"id": 1000 + len(api.comments), "user": {"login": "github-actions[bot]"}, "body": self.body()["body"]}
                    api.comments.append(comment)
                    self.reply(201, comment)

            def do_PATCH(self) -> None:  # noqa: N802
                api.calls.append(("PATCH", self.path))
                if self.authorised():
                    cid = int(self.path.rsplit("/", 1)[1])
                    comment = next(c for c in api.comments if c["id"] == cid)
                    comment["body"] = self.body()["body"]
                    self.reply(200, comment)

        return Handler


@pytest.fixture
def github_api() -> Iterator[tuple[FakeGitHub, str]]:
    api = FakeGitHub("ghs_readwrite_token")
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_push_edits_the_one_sticky_comment(github_api: tuple[FakeGitHub, str], tmp_path: Path) -> None:
    api, url = github_api
    # a busy pull request: 150 human comments, so ours lands on the second page
    api.comments = [{"id": i, "user": {"login": f"reviewer{i % 3}"}, "body": f"comment {i} <!-- gitera-report --> quoted"} for i in range(150)]
    humans = json.loads(json.dumps(api.comments))
    ctx = {**context("a" * 40, 7, "acme/router", ""), "needs": {"verify": {"result": "success"}}}
    ctx["github"]["token"] = api.token
    env = {**runner_env(), "GITHUB_API_URL": url, "GITHUB_REPOSITORY": "acme/router"}
    for push in range(3):
        work = tmp_path / f"push{push}"
        artifacts = tmp_path / f"artifacts{push}"
        work.mkdir()
        artifacts.mkdir()
        (artifacts / "report.md").write_text(f"<!-- gitera-report -->\n## gitera: `syn`\npush {push}\n")
        job = run_job("comment", ctx, work, artifacts, env)
        assert job["ran"] and job["failed"] is None, job
        assert job["steps"]["sticky"]["stdout"].startswith("created comment" if push == 0 else "updated comment"), job["steps"]["sticky"]
    ours = [c for c in api.comments if c["user"]["login"] == "github-actions[bot]"]
    assert len(ours) == 1 and ours[0]["body"] == "<!-- gitera-report -->\n## gitera: `syn`\npush 2\n"
    assert api.comments[:150] == humans  # nobody else's comment touched, even one quoting the marker
    assert [m for m, _ in api.calls].count("POST") == 1 and [m for m, _ in api.calls].count("PATCH") == 2
    assert api.bad_auth == 0


def test_the_comment_job_is_the_only_one_holding_the_write_token() -> None:
    doc = load()
    users = [name for name, job in doc["jobs"].items() if "github.token" in yaml.safe_dump(job)]
    assert users == ["comment"]

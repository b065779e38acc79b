"""The command line: parsing and dispatch only (click). Each command lives in gitera.commands.

Command modules are imported inside each command, so `gitera --help` and the hooks
never load numpy, scipy or matplotlib.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from gitera import __version__
from gitera.adapters.output import Output
from gitera.core.errors import Exit, GiteraError

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def tag_option(f: F) -> F:
    return click.option("--tag", "-t", metavar="TAG", help="Experiment tag (default: from the checked-out autoexp/TAG branch).")(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON for scripts and agents.")(f)


def _out(as_json: bool = False) -> Output:
    return Output(json_mode=as_json)


class PipelineOrder(click.Group):
    """List commands in the order they are defined here: the pipeline's order, not the alphabet's."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=PipelineOrder, context_settings=CONTEXT)
@click.version_option(__version__, "--version", "-V", prog_name="gitera")
def cli() -> None:
    """gitera: turn an AI engineering question into a verdict a reviewer can check.

    The pipeline: init → lock → split → pilot → run → iterate (gate) → verdict → verify.
    Each step makes one commit on branch autoexp/TAG with Gitera-* trailers.

    \b
    Example:
      gitera init prompt-v2 --question "Does prompt-v2 beat v1 on ticket routing?"
      gitera lock && gitera split --data data/tickets.csv
      gitera demo            # the whole pipeline on a bundled real example
    """


@cli.command(context_settings=CONTEXT)
@click.argument("tag", required=False)
@click.option("--question", "-q", default="", help="The question, in one sentence.")
@click.option("--hypothesis", default="", help="What you expect and why.")
@click.option("--baseline", "baseline", default="baseline", show_default=True, help="Name of the baseline arm.")
@click.option("--baseline-ref", default="", metavar="FILE:LINE", help="Where the baseline lives in production code.")
@click.option("--arm", "arms", multiple=True, metavar="NAME=CHANGE", help="An arm and the one thing it changes (repeatable).")
@click.option("--metric", default="accuracy", show_default=True, help="Primary metric name.")
@click.option("--direction", type=click.Choice(["higher", "lower"]), default="higher", show_default=True)
@click.option("--threshold", "effect", type=float, help="Smallest effect worth shipping (e.g. 0.05).")
@click.option("--slice-loss-floor", type=float, help="Largest loss tolerated on any slice (e.g. 0.02).")
@click.option("--slice", "slices", multiple=True, metavar="COLUMN", help="A slice column (repeatable).")
@click.option("--data", default="", metavar="FILE", help="The data source (CSV or JSONL).")
@click.option("--id-column", default="", help="The data's id column.")
@click.option("--label", default="", metavar="COLUMN", help="The data's class column (for the audit).")
@click.option("--eval-command", default="", metavar="CMD", help="Shell command that scores rows.")
@click.option("--eval-python", default="", metavar="MODULE:FUNC", help="Python function that scores one row.")
@click.option("--iterate-arm", default="", metavar="ARM", help="The arm `gitera iterate` climbs.")
@click.option("--target", "target", multiple=True, metavar="FILE", help="A file iterate may change (repeatable).")
@click.option("--locked", "locked", multiple=True, metavar="FILE", help="A file frozen by the lock (repeatable).")
@click.option("--trials", type=click.IntRange(3, 100), default=3, show_default=True, help="Trials per row and arm.")
@click.option("--harness", type=click.Choice(["command", "python"]), help="Also write a starter eval harness.")
@click.option("--agent", is_flag=True, help="Also write program.md and an AGENTS.md section telling a coding agent the loop "
              "(without TAG: regenerate them from the current experiment's frame).")
@click.option("--from", "start", metavar="REF",
              help="Start the branch from REF (default: HEAD; on another autoexp/ branch, the default branch).")
@json_option
def init(tag: str | None, arms: tuple[str, ...], harness: str | None, agent: bool, start: str | None, as_json: bool, **opts: Any) -> None:
    """Start experiment TAG: branch autoexp/TAG with a frame template and program.md.

    Options fill the frame without an editor; whatever is left holds a TODO
    placeholder that `gitera lock` refuses until you fill it.

    \b
    Example:
      gitera init prompt-v2 -q "Does prompt-v2 beat v1 on routing?" \\
        --arm v1="current prompt" --arm v2="names the payment processor" \\
        --baseline v1 --baseline-ref src/route.py:42 --threshold 0.05 \\
        --slice-loss-floor 0.02 --eval-command "python eval/run.py" --locked eval/run.py
      gitera init --agent          # after `gitera lock`: program.md and AGENTS.md from the frame
      gitera init followup --from autoexp/prompt-v2   # build on another experiment's branch
    """
    from gitera.commands.init import init as run
    from gitera.core.scaffold import FrameDraft

    if tag is None:
        if not agent:
            raise click.UsageError("give the experiment's TAG (or --agent, to write the agent's files of the current experiment)")
        from gitera.commands.init import init_agent

        sys.exit(init_agent(None, _out(as_json)))

    parsed: dict[str, str] = {}
    for item in arms:
        name, sep, change = item.partition("=")
        if not sep or not name.strip() or not change.strip():
            raise click.BadParameter(f"{item!r} is not NAME=CHANGE", param_hint="--arm")
        parsed[name.strip()] = change.strip()
    if harness is not None:
        from gitera.domain.starter import COMMAND, HARNESS_PATH, PYTHON_TARGET

        if harness == "command" and not opts["eval_command"]:
            opts["eval_command"] = COMMAND
        if harness == "python" and not opts["eval_python"]:
            opts["eval_python"] = PYTHON_TARGET
        opts["locked"] = tuple(opts["locked"]) or (HARNESS_PATH,)
    draft = FrameDraft(tag=tag, arms=parsed, **opts)
    sys.exit(run(draft, _out(as_json), harness=harness, agent=agent, start=start))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--check", is_flag=True, help="First run the harness once per arm (on the first row the split will put in train) "
              "and refuse to lock when an arm gives no score.")
@click.option("--dry-run", is_flag=True, help="Run that check and lock nothing.")
@click.option("--data", type=click.Path(path_type=Path, dir_okay=False), help="With --check: the data file (default: data.source).")
@json_option
def lock(tag: str | None, check: bool, dry_run: bool, data: Path | None, as_json: bool) -> None:
    """Validate the frame and freeze it with every locked file (one commit).

    From then on the hooks, every gitera command and `gitera verify` refuse any
    change to the frame or a locked file. With --check the harness runs once per arm
    first, so a harness that produces no score is fixed before it is frozen (exit 5).

    \b
    Example:
      gitera lock --check                  # check the harness, then lock
      gitera lock --dry-run --data data/tickets.csv
      gitera lock
    """
    from gitera.commands.lock import lock as run

    if data is not None and not (check or dry_run):
        raise click.UsageError("--data goes with --check or --dry-run")
    sys.exit(run(tag, _out(as_json), check=check, dry_run=dry_run, data=data))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--all", "all_experiments", is_flag=True,
              help="One table of every experiment in the repo (each autoexp/ branch and verdict tag): question, state, best dev score, verdict.")
@json_option
def status(tag: str | None, all_experiments: bool, as_json: bool) -> None:
    """Show where an experiment stands and whether its lock is intact.

    \b
    Example:
      gitera status --json
      gitera status --all          # every experiment, from any branch
    """
    from gitera.commands.status import status as run

    sys.exit(run(tag, all_experiments, _out(as_json)))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--data", type=click.Path(path_type=Path, dir_okay=False), help="The rows to split (default: data.source in the frame).")
@click.option("--accept-underpowered", is_flag=True, help="Seal a test set too small for the threshold, and record that choice.")
@click.option("--recipient", metavar="PUBKEY", help="Wrap the seal key to this public key (gitera seal keygen); nobody here can decrypt.")
@click.option("--remove-source", is_flag=True,
              help="Delete the data file after the split instead of moving it into .git/gitera/keys/source/ (required with --recipient for a file in the work tree).")
@json_option
def split(tag: str | None, data: Path | None, accept_underpowered: bool, recipient: str | None, remove_source: bool, as_json: bool) -> None:
    """Split the rows into train / dev / sealed gate / sealed test, audit and size them (one commit).

    Stratified by the frame's `stratify` columns, seeded from the frame's hash; the gate
    and test rows are encrypted in-repo (separate keys, kept outside git) and every split
    file is pinned in the Gitera-Split trailer. A data file tracked by git is refused; an
    untracked one leaves the work tree afterwards: moved into .git/gitera/keys/source/, or
    deleted with --remove-source.

    \b
    Example:
      gitera split --data data/tickets.csv
      gitera split --recipient "$(cat custodian.pub)" --remove-source   # only the custodian can open the test set
    """
    from gitera.commands.split import split as run

    sys.exit(run(tag, data, accept_underpowered, recipient, _out(as_json), remove_source))


@cli.command(context_settings=CONTEXT)
@tag_option
@json_option
def pilot(tag: str | None, as_json: bool) -> None:
    """Score every arm on ONE train row and check every field is real (one commit).

    Refuses to pass when a result is missing, null or a placeholder, or when cost and
    latency are reported for some arms but not others. `gitera run` needs a passed pilot.

    \b
    Example:
      gitera pilot
    """
    from gitera.commands.pilot import pilot as run

    sys.exit(run(tag, _out(as_json)))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--no-cache", is_flag=True, help="Score every row again even if a cached result exists.")
@json_option
def run(tag: str | None, no_cache: bool, as_json: bool) -> None:
    """Score the baseline, then every arm, on all dev rows with the frame's trials (one commit).

    Records per-row results under .gitera/TAG/runs/, one Gitera-Result trailer per arm,
    and the baseline's trial-to-trial spread as the noise floor.

    \b
    Example:
      gitera run
      gitera run --no-cache --json
    """
    from gitera.commands.run import run as run_cmd

    sys.exit(run_cmd(tag, not no_cache, _out(as_json)))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("-m", "--message", "hypothesis", default="", metavar="HYPOTHESIS", help="The one change this attempt tests, as a hypothesis.")
@click.option("--loop", is_flag=True, help="Keep iterating until a stop condition, with --propose making each change "
              "(without --propose: resume the last session).")
@click.option("--propose", metavar="CMD", help="With --loop: a command (an agent or script) that edits the target files.")
@click.option("--resume", is_flag=True, help="Go on after a plateau or crash stop (a budget stop stays final).")
@click.option("--max-hours", type=float, metavar="H", help="With --loop: this session's wall-clock limit, in hours.")
@click.option("--never-stop", is_flag=True, help="With --loop: failing proposals never end the session; only a budget "
              "(or --max-hours) does.")
@click.option("--no-cache", is_flag=True, help="Score every row again even if a cached result exists.")
@json_option
def iterate(tag: str | None, hypothesis: str, loop: bool, propose: str | None, resume: bool, max_hours: float | None,
            never_stop: bool, no_cache: bool, as_json: bool) -> None:
    """One attempt on the iterated arm: score the target files' change on dev, keep or restore.

    Only the frame's target files may differ from the current best. The attempt is kept
    only if its paired gain over the best beats max(min_delta, 2 × noise floor, paired SE)
    and every guard holds; otherwise a second commit restores the best state. After each
    sprint (default 3 attempts) the generalization gate runs.

    \b
    Example:
      $EDITOR rules/v2.txt
      gitera iterate -m "a rule for 'card+arrive' moves delivery questions out of the fallback"
      gitera iterate --loop --propose "python agent.py"   # autonomous, until a stop condition
      gitera iterate --loop --propose "python agent.py" --max-hours 8 --never-stop   # overnight
      gitera iterate --loop                 # resume the last session (after a kill, the next night)
      gitera iterate --loop --resume        # go on after a plateau stop
    """
    out = _out(as_json)
    if not loop and (propose or max_hours is not None or never_stop):
        raise click.UsageError("--propose, --max-hours and --never-stop go with --loop")
    if loop:
        from gitera.commands.autoloop import autoloop

        sys.exit(autoloop(tag, propose, out, use_cache=not no_cache, resume=resume, max_hours=max_hours, never_stop=never_stop))
    from gitera.commands.iterate import iterate as run_cmd

    sys.exit(run_cmd(tag, hypothesis, out, use_cache=not no_cache, resume=resume))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--no-cache", is_flag=True, help="Score every row again even if a cached result exists.")
@json_option
def gate(tag: str | None, no_cache: bool, as_json: bool) -> None:
    """Run the generalization gate on the current sprint now (it also runs after each sprint).

    Hardcode scan of the sprint's diff, replication on the reserved gate rows through a
    reusable holdout, and saturation: pass, saturated (locked for the verdict) or fail (killed).

    \b
    Example:
      gitera gate --json
    """
    from gitera.commands.gate import gate_command

    sys.exit(gate_command(tag, _out(as_json), use_cache=not no_cache))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--attempt", default="best", show_default=True, help="What to diagnose: best, baseline, an arm name or an attempt number.")
@click.option("--against", default="baseline", show_default=True, help="What to compare with: baseline, best, an arm or an attempt number.")
@click.option("--train", type=click.IntRange(min=0), default=0, metavar="N",
              help="Also score both on up to N train rows (cached) and show the losing train rows with their text.")
@json_option
def diagnose(tag: str | None, attempt: str, against: str, train: int, as_json: bool) -> None:
    """Per-row wins, losses and ties by slice and failure category (dev rows as ids only).

    \b
    Example:
      gitera diagnose                       # the current best vs the baseline
      gitera diagnose --attempt 4 --against best --json
      gitera diagnose --train 50            # and the losing train rows, with their text
    """
    from gitera.commands.diagnose import diagnose as run_cmd

    sys.exit(run_cmd(tag, attempt, against, _out(as_json), train=train))


@cli.command("diff", context_settings=CONTEXT)
@tag_option
@click.argument("a")
@click.argument("b")
@click.option("--split", type=click.Choice(["dev", "test"]), default="dev", show_default=True,
              help="Which rows: dev, or the opened test rows after the verdict (arms only).")
@click.option("--show-text", is_flag=True, help="Also show each row's input, reference and both outputs (for people: dev text must not reach an iterating agent).")
@click.option("--train", type=click.IntRange(min=0), default=0, metavar="N", help="Compare on up to N train rows instead, scored now (cached), text included.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Rows listed per section (0: all); --json lists all.")
@json_option
def diff_cmd(tag: str | None, a: str, b: str, split: str, show_text: bool, train: int, limit: int, as_json: bool) -> None:
    """Which rows B fixed and broke against A: two arms, attempts, or the best.

    A and B are baseline, best, an arm name or an attempt number (3 or #3). Rows are listed
    as fixed, broken, better, worse and crashed (a row a side could not score is never
    counted as the same). Dev rows appear as ids and scores unless --show-text.

    \b
    Example:
      gitera diff baseline best
      gitera diff 3 4 --show-text           # what attempt 4 changed, with outputs
      gitera diff v1 v2 --train 50 --json   # on train rows, text included
      gitera diff v1 v2 --split test        # after the verdict
    """
    from gitera.commands.diff import diff as run_cmd

    sys.exit(run_cmd(tag, a, b, _out(as_json), split=split, show_text=show_text, train=train, limit=limit))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--out", "dest", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the page here (default: .git/gitera/view/TAG.html; never inside the work tree unless git-ignored).")
@click.option("--no-serve", is_flag=True, help="Only write the page and print its path; it needs no server.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port on 127.0.0.1 (0: any free port).")
@json_option
def view(tag: str | None, dest: Path | None, no_serve: bool, port: int, as_json: bool) -> None:
    """The output browser: one self-contained HTML page of the experiment, served on localhost.

    The frame, every attempt (hypothesis, decision, gain and CI, diff, commit), the gates, the
    four charts, and the per-row table of dev rows (test rows after the verdict): input,
    reference, each arm's and attempt's output and score, filters and a side-by-side of two.
    The page shows dev rows' text: it is for people, kept out of git and out of an agent's way.

    \b
    Example:
      gitera view                       # serve it; open the printed http://127.0.0.1:PORT/
      gitera view --no-serve --out /tmp/review.html
    """
    from gitera.commands.view import view as run_cmd

    sys.exit(run_cmd(tag, dest, not no_serve, port, _out(as_json)))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "tsv", "jsonl", "md", "json", "results-tsv"]), default="table",
              show_default=True)
@click.option("--chart", type=click.Path(path_type=Path, dir_okay=False), help="Also draw the progression chart (PNG; an SVG is written beside it).")
@json_option
def log(tag: str | None, fmt: str, chart: Path | None, as_json: bool) -> None:
    """The experiment's runs, attempts, gates and stops, read from git trailers alone.

    \b
    Formats: table (default); tsv (commit, metric, guard, status, description);
    jsonl (a config header line, then one result line per attempt); md (a dashboard
    for a pull request); json (everything); results-tsv (autoresearch's results.tsv:
    commit, <metric>, memory_gb, status keep/discard/crash, description).

    \b
    Example:
      gitera log
      gitera log --format tsv > results.tsv
      gitera log --format results-tsv > results.tsv     # for autoresearch's tools
      gitera log --format md --chart progression.png
    """
    from gitera.commands.log import log as run_cmd

    sys.exit(run_cmd(tag, fmt, as_json, chart, _out(as_json)))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("-m", "--message", "reason", required=True, metavar="REASON", help="Why the experiment is abandoned (recorded).")
@json_option
def abandon(tag: str | None, reason: str, as_json: bool) -> None:
    """Abandon an experiment: record why, release nothing, and free its tag (one commit).

    The branch is renamed autoexp-abandoned/TAG-DATE and kept for review; the sealed test
    set stays sealed and its key stays out of git (renamed aside). Every command refuses
    the abandoned experiment; `gitera init TAG` starts a new one.

    \b
    Example:
      gitera abandon -m "the harness scored the wrong field; starting over"
      git switch main && gitera init prompt-v2
    """
    from gitera.commands.abandon import abandon as run_cmd

    sys.exit(run_cmd(tag, reason, _out(as_json)))


@cli.command("import", context_settings=CONTEXT)
@tag_option
@click.argument("results", type=click.Path(path_type=Path, dir_okay=False))
@json_option
def import_(tag: str | None, results: Path, as_json: bool) -> None:
    """Bring an autoresearch results.tsv onto the experiment branch as unscored history (one commit).

    The file (commit, <metric>, memory_gb, status, description) is committed as given and
    marked unscored: `gitera log` shows it, and no decision (best, budget, gate, verdict)
    ever reads it. A malformed file is refused with its line and what would be valid.

    \b
    Example:
      gitera import ../autoresearch/results.tsv
    """
    from gitera.commands.import_history import import_results

    sys.exit(import_results(tag, results, _out(as_json)))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--keep-key", is_flag=True, help="Do not commit the released key (data that must not spread); only its holder can re-check.")
@click.option("--private-key", envvar="GITERA_SEAL_PRIVATE_KEY", help="The custodian's private key when the seal key is wrapped to a recipient.")
@json_option
def verdict(tag: str | None, keep_key: bool, private_key: str | None, as_json: bool) -> None:
    """Open the sealed test set ONCE, score the locked arms, decide, write the conclusion.

    Refuses unless the lock is intact, the tree is clean, the seal is the split's and every
    sprint ended with its gate. Afterwards iterate, run and verdict refuse on this experiment.

    \b
    Example:
      gitera verdict
      GITERA_SEAL_PRIVATE_KEY=... gitera verdict --json     # custodian mode, in CI
    """
    from gitera.commands.verdict import verdict as run_cmd

    sys.exit(run_cmd(tag, keep_key, private_key, _out(as_json)))


@cli.command(context_settings=CONTEXT)
@tag_option
@json_option
def verify(tag: str | None, as_json: bool) -> None:
    """Recompute the discipline self-audit from git alone; exit 1 with one line per violation.

    Locked files in every commit since the lock, results vs their per-row files, keep/discard
    decisions, sprints and gates, no test row in any blob, the seal, one opening, and the
    verdict recomputed from the released key. An overfitting alarm (rule 21) is printed as an
    ALARM line but is no violation.

    \b
    Example:
      gitera verify --tag prompt-v2      # in CI on a pull request
    """
    from gitera.commands.verify import verify as run_cmd

    sys.exit(run_cmd(tag, _out(as_json)))


@cli.command(context_settings=CONTEXT)
@tag_option
@click.option("--format", "fmt", type=click.Choice(["md"]), default="md", show_default=True)
@json_option
def report(tag: str | None, fmt: str, as_json: bool) -> None:
    """A compact markdown summary for a pull-request comment or a CI step summary.

    Before the verdict: the dev dashboard. After it: per arm the test delta with its CI, the
    aggregate state, failing slices, cost and latency. Always the verify status. Read from git.

    \b
    Example:
      gitera report --format md >> "$GITHUB_STEP_SUMMARY"
    """
    from gitera.commands.report import report as run_cmd

    sys.exit(run_cmd(tag, fmt, _out(as_json)))


@cli.command(context_settings=CONTEXT)
@click.option("--dir", "keep", type=click.Path(path_type=Path, file_okay=False), help="Build the demo repository here (default: a new temporary directory).")
@click.option("--kind", type=click.Choice(["row", "run"]), default="row", show_default=True,
              help="row: per-row evals (intent routing); run: one score per run of a training script (autoresearch-style).")
@json_option
def demo(keep: Path | None, kind: str, as_json: bool) -> None:
    """Run the whole pipeline on a bundled real example (BANKING77) in a new repo.

    --kind row (default): init, lock, split, pilot, run, iterations in two sprints with
    the gate (the second sprint plants a hardcoded dev row, which the gate catches),
    verdict and verify. --kind run: the autoresearch-style loop on a tiny numpy
    character model, whose train.py a proposer edits one hyperparameter at a time (one
    score per run, the sequential keep rule, sealed test and gate shards). Prints the
    decision and the paths of the conclusion and charts.

    \b
    Example:
      gitera demo
      gitera demo --kind run --dir /tmp/autoresearch-demo
      gitera demo --dir /tmp/banking-demo --json
    """
    from gitera.commands.demo import demo as run_cmd

    sys.exit(run_cmd(keep, _out(as_json), kind))


@cli.group(context_settings=CONTEXT)
def seal() -> None:
    """Inspect the sealed test set, or make a custodian key pair (never decrypts).

    \b
    Example:
      gitera seal status
    """


@seal.command("status", context_settings=CONTEXT)
@tag_option
@json_option
def seal_status(tag: str | None, as_json: bool) -> None:
    """Show the seal's commitment, binding, key custody and whether it was opened.

    Reads the header only: no key is touched and nothing is decrypted.

    \b
    Example:
      gitera seal status --json
    """
    from gitera.commands.seal import seal_status as run

    sys.exit(run(tag, _out(as_json)))


@seal.command("keygen", context_settings=CONTEXT)
@click.option("--private-out", type=click.Path(path_type=Path, dir_okay=False), help="Write the private key to this new file (0600).")
@json_option
def seal_keygen(private_out: Path | None, as_json: bool) -> None:
    """Make an X25519 key pair for a custodian: the agent gets the public key only.

    \b
    Example:
      gitera seal keygen --private-out ~/custodian.key
      gitera split --recipient gitera-seal-pk1:...
    """
    from gitera.commands.seal import keygen

    sys.exit(keygen(private_out, _out(as_json)))


@cli.group(context_settings=CONTEXT)
def hook() -> None:
    """The checks behind the pre-commit hooks (see .pre-commit-hooks.yaml).

    \b
    Example:
      gitera hook locked --stage pre-commit
    """


@hook.command("locked", context_settings=CONTEXT)
@click.option(
    "--stage",
    type=click.Choice(["pre-commit", "pre-merge-commit", "pre-push"]),
    help="Which check to run (default: pre-push when pre-commit passes PRE_COMMIT_TO_REF, else pre-commit; "
    "pre-merge-commit is the same check as pre-commit).",
)
@click.option("--from-ref", envvar="PRE_COMMIT_FROM_REF", help="Pre-push: remote commit (set by pre-commit).")
@click.option("--to-ref", envvar="PRE_COMMIT_TO_REF", help="Pre-push: local commit (set by pre-commit).")
@click.argument("files", nargs=-1, type=click.Path())
def hook_locked(stage: str | None, from_ref: str | None, to_ref: str | None, files: tuple[str, ...]) -> None:
    """Refuse a commit, merge or push that modifies, deletes or renames a locked file.

    Plain git pre-push hooks pass the pushed refs on standard input.

    \b
    Example:
      gitera hook locked --stage pre-push < refs.txt
    """
    from gitera.commands.hook import locked

    if stage is None:
        stage = "pre-push" if to_ref else "pre-commit"
    stdin = None if stage != "pre-push" or from_ref or to_ref or sys.stdin.isatty() else sys.stdin
    sys.exit(locked(stage, _out(), stdin=stdin, from_ref=from_ref, to_ref=to_ref))


@hook.command("trailers", context_settings=CONTEXT)
@click.argument("message_file", type=click.Path(path_type=Path))
def hook_trailers(message_file: Path) -> None:
    """Refuse a commit message whose Gitera-* trailers are malformed (commit-msg stage).

    \b
    Example:
      gitera hook trailers .git/COMMIT_EDITMSG
    """
    from gitera.commands.hook import trailers

    sys.exit(trailers(message_file, _out()))


@hook.command("test-leak", context_settings=CONTEXT)
@click.argument("files", nargs=-1, type=click.Path())
def hook_test_leak(files: tuple[str, ...]) -> None:
    """Refuse a commit whose staged content contains a sealed test row.

    Names the file and line, never the row.

    \b
    Example:
      gitera hook test-leak notes.md
    """
    from gitera.commands.hook import test_leak

    sys.exit(test_leak(list(files), _out()))


@cli.group(context_settings=CONTEXT)
def hooks() -> None:
    """Install gitera's plain git hooks (for repos without the pre-commit framework).

    \b
    Example:
      gitera hooks install
    """


@hooks.command("install", context_settings=CONTEXT)
@click.option("--force", is_flag=True, help="Replace existing hooks (kept as <name>.orig).")
@json_option
def hooks_install(force: bool, as_json: bool) -> None:
    """Write pre-commit, pre-merge-commit, commit-msg and pre-push hooks into this repository.

    \b
    Example:
      gitera hooks install
    """
    from gitera.commands.hooks_install import install

    sys.exit(install(force, _out(as_json)))


def _terminate_like_ctrl_c() -> None:
    """SIGTERM and SIGHUP (a CI job cancelled, a closed terminal) take the Ctrl-C path: eval children killed, work dirs removed."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, interrupt)
        except (ValueError, OSError):  # not the main thread (an embedding caller): leave its handlers alone
            pass


def main(argv: list[str] | None = None) -> None:
    """Entry point: the one boundary that turns GiteraError into a message and an exit code."""
    out = Output()
    _terminate_like_ctrl_c()
    try:
        cli.main(args=argv, prog_name="gitera", standalone_mode=False)
    except GiteraError as exc:
        out.error(f"error: {exc.message}")
        sys.exit(int(exc.exit_code))
    except click.exceptions.Abort:
        out.error("interrupted.")
        sys.exit(Exit.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        out.error("interrupted; the branch still points at its last complete commit.")
        sys.exit(Exit.INTERRUPTED)
    except BrokenPipeError:
        sys.exit(Exit.OK)
    sys.exit(Exit.OK)


if __name__ == "__main__":
    main()

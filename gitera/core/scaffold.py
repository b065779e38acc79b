"""The files `gitera init` writes: a commented frame template and program.md."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TODO = "TODO"


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


@dataclass(frozen=True)
class FrameDraft:
    """What `gitera init` options filled in; the rest stays a TODO placeholder."""

    tag: str
    question: str = ""
    hypothesis: str = ""
    baseline: str = "baseline"
    baseline_ref: str = ""
    arms: Mapping[str, str] = field(default_factory=dict)  # name -> change
    metric: str = "accuracy"
    direction: str = "higher"
    effect: float | None = None
    slice_loss_floor: float | None = None
    slices: Sequence[str] = ()
    data: str = ""
    id_column: str = ""
    label: str = ""
    eval_command: str = ""
    eval_python: str = ""
    iterate_arm: str = ""
    target: Sequence[str] = ()
    locked: Sequence[str] = ()
    trials: int = 3


def frame_yaml(d: FrameDraft) -> str:
    arms = dict(d.arms) or {}
    if d.baseline not in arms:
        arms = {d.baseline: f"{TODO}: the current production behaviour, unchanged", **arms}
    if len(arms) < 2:
        arms["candidate"] = f"{TODO}: the ONE thing this arm changes"
    arm_lines = "\n".join(
        f"  {name}: {{change: {_q(change)}, params: {{}}}}" for name, change in arms.items()
    )
    candidates = [a for a in arms if a != d.baseline]
    iterate_arm = d.iterate_arm or candidates[0]
    if d.eval_python:
        eval_line = f"eval: {{python: {_q(d.eval_python)}, concurrency: 8, timeout_s: 600}}"
    else:
        eval_line = f"eval: {{command: {_q(d.eval_command or TODO + ': python eval/run.py')}, concurrency: 8, timeout_s: 600}}"
    iterate_block = (
        f"iterate:\n"
        f"  arm: {_q(iterate_arm)}\n"
        f"  target: {_list(d.target) if d.target else '[' + _q(TODO + ': prompts/v2.txt') + ']'}\n"
        f"  sprint: 3               # attempts per sprint before the generalization gate (1-3)\n"
        f"  min_delta: 0.0          # smallest paired gain worth keeping (the noise floor applies too)\n"
        f"  mode: primary           # primary | pareto (+ directions) | weighted (+ weights): docs/iterate.md\n"
        f"  confirm: true           # re-score a marginal keep with fresh trials before keeping it\n"
        f"  budget: {{max_iterations: 30, max_cost_usd: 10, max_wall_clock_hours: 8, max_consecutive_crashes: 3}}\n"
    )
    if not d.target and not d.iterate_arm:
        iterate_block = "# " + iterate_block.replace("\n", "\n# ").rstrip("# ") + "\n"
        iterate_block = (
            "# Optional: climb one arm on dev with `gitera iterate`. Uncomment and fill to use it.\n" + iterate_block
        )
    # the two numbers the verdict turns on are the user's choice, never a default the lock accepts
    effect = d.effect if d.effect is not None else _q(TODO + ": the smallest gain worth shipping, e.g. 0.05")
    floor = d.slice_loss_floor if d.slice_loss_floor is not None else _q(TODO + ": the largest loss tolerated on any slice, e.g. 0.02")
    return f"""\
# gitera frame for experiment {d.tag!r} — pre-register everything here, then `gitera lock`.
# After the lock, this file and every `locked` file can no longer change: a new
# question needs a new experiment. Field reference: docs/frame.md

# The question this experiment answers, in one sentence.
question: {_q(d.question or TODO + ': Does <candidate> beat <baseline> on <task>?')}
# What you expect to happen and why (one change, one mechanism).
hypothesis: {_q(d.hypothesis or TODO + ': <change> fixes <failure> because <reason>.')}

# The baseline exactly as deployed: which arm, and file:line of the code in production.
baseline: {{arm: {_q(d.baseline)}, ref: {_q(d.baseline_ref or TODO + '/path/to/code.py:1')}}}

# The baseline plus 1-3 candidate arms; each candidate changes ONE thing.
# `params` are handed to the eval as GITERA_ARM_PARAMS; `ref` (optional) is a git
# ref/commit holding the arm's code (default: the experiment branch).
arms:
{arm_lines}

{iterate_block}
data:
  source: {_q(d.data) if d.data else 'null'}    # the production rows to split: CSV, TSV or JSONL (required by `gitera lock`); keep them out of git
  id: {_q(d.id_column) if d.id_column else 'null'}                # id column (null: ids derived from row content)
  label: {_q(d.label) if d.label else 'null'}             # class column, for the audit (optional)
  slices: {_list(d.slices)}        # columns whose values must each hold up (loss floor)
  stratify: {_list(list(d.slices) + ([d.label] if d.label else []))}      # columns the split keeps balanced
  split: {{train: 0.3, dev: 0.5, test: 0.2}}   # or `split_column: <column>` for an existing split
  gate_fraction: 0.2       # part of dev reserved for the generalization gate
  seed: 7

metric:
  primary: {{name: {_q(d.metric)}, direction: {d.direction}}}   # exactly one primary
  secondary: [cost_usd, latency_ms]              # at most two
  guards: []               # e.g. [{{name: latency_ms, max_increase: 0.5}}]
  trials: {d.trials}                # repeated trials per row and arm (at least 3)
  # finding: [wrong_label, refusal, format_error]   # optional: 3-5 failure categories
  # severity: severity     # optional: per-row severity weight field

# Pre-registered decision threshold: the smallest effect worth shipping, judged on
# the point estimate or on the CI's lower bound, and the largest loss tolerated on any slice.
# Both numbers are yours to choose before any score exists (`gitera lock` refuses a TODO).
threshold:
  effect: {effect}
  basis: point
  slice_loss_floor: {floor}
  alpha: 0.05

# How to score a row: a shell command (see docs/eval-contract.md) or python: module:function.
{eval_line}

# Files that must not change once locked: the metric, the eval harness, any judge rubric.
locked: {_list(d.locked) if d.locked else '[' + _q(TODO + ': eval/run.py') + ']'}
"""


def program_md(tag: str) -> str:
    branch = f"autoexp/{tag}"
    return f"""\
# Driving experiment `{tag}` with gitera

You are working on branch `{branch}`. The experiment's pre-registered frame is
`.gitera/{tag}/frame.yaml`. gitera enforces the method; these are the rules you work by.

## What you may edit
- Only the files listed under `iterate.target` in the frame, and only between
  `gitera iterate` calls.
- Make ONE change per attempt, and state it as a hypothesis:
  `gitera iterate -m "naming the payment processor moves fee rows out of 'transfer'"`.

## The loop
1. `gitera status` — where the experiment stands, the current best, the budget left.
2. `gitera diagnose` — which dev rows the best attempt wins and loses, by slice and
   failure category (dev rows are shown as ids; only train rows show text).
3. Edit the target files to test one idea.
4. `gitera iterate -m "HYPOTHESIS"` — scores your change on dev; keeps it only if the paired
   gain beats the noise floor and every guard holds, otherwise restores the best state.
5. After each sprint (3 attempts) the generalization gate runs. If it fails, the arm returns
   to its last gate-passed state.
6. Stop when gitera says the budget is spent or the arm is saturated. A human runs
   `gitera verdict`.

## What you must never do
- Never edit `.gitera/{tag}/frame.yaml`, `.gitera/{tag}/lock.json` or any file under `locked`;
  the hooks refuse it and `gitera verify` reports it even when hooks are skipped.
- Never commit with `--no-verify`, rewrite history, or force-push `{branch}`.
- Never try to read, decrypt or reconstruct the sealed test set, and never copy dev or test
  rows (texts, ids or row→label pairs) into the target files: the gate's hardcode scan and
  the leak hook catch it and kill the arm.
- Never pick the best-scoring attempt by hand; the verdict uses the latest gate-passed one.
- Never run `gitera verdict`: the test set is opened once, by a human, at the end.
"""


# --- `gitera init --agent` — program.md and an AGENTS.md section, generated from the frame ---
AGENTS_BEGIN = "<!-- gitera:{tag} begin (written by `gitera init --agent` from the frame: regenerate it, do not edit) -->"
AGENTS_END = "<!-- gitera:{tag} end -->"


@dataclass(frozen=True)
class AgentBrief:
    """What an agent driving the loop must know, taken from the frame (or from a draft of it)."""

    tag: str
    question: str
    targets: Sequence[str]
    locked: Sequence[str]
    eval_how: str  # the command, or `python: module:function`
    metric: str
    direction: str
    trials: int
    sprint: int = 3
    max_iterations: int | None = None
    max_runs: int | None = None  # runlevel: one score per run of the script, 1 to max_runs runs per attempt (docs/run-level.md)


def _code_list(paths: Sequence[str], missing: str) -> str:
    return ", ".join(f"`{p}`" for p in paths) if paths else missing


def _how_scored(b: AgentBrief) -> str:
    if b.max_runs:  # runlevel
        return f"one run at a time (a clearly worse change costs one run, a close one up to {b.max_runs})"
    return f"on the dev rows ({b.trials} trials)"


def agent_program(b: AgentBrief) -> str:
    """program.md: the loop in a few lines, for a coding agent (docs/iterate.md, "Agent set-up")."""
    targets = _code_list(b.targets, "(none yet: fill `iterate.target` in the frame, then `gitera init --agent` again)")
    locked = _code_list([f".gitera/{b.tag}/frame.yaml", f".gitera/{b.tag}/lock.json", *b.locked], "")
    budget = f" of {b.max_iterations}" if b.max_iterations else ""
    return f"""\
# Agent program for gitera experiment `{b.tag}`

Question: {b.question}

Work on branch `autoexp/{b.tag}`. You propose one change at a time; gitera scores it and decides.

## You may edit
Only {targets}. One change per attempt.

## The loop
1. `gitera status --json`: go on while `loop.status` is `"active"` (before the first attempt
   there is no `loop` yet: `stage` is `"piloted"` or `"run"`). `loop.iteration` counts the
   attempts{budget}; `loop.best.score` is the best {b.metric} so far ({b.direction} is better);
   `loop.stop_reason` says why the loop stopped.
2. Edit the target file{'s' if len(b.targets) != 1 else ''} to test ONE idea.
3. `gitera iterate -m "HYPOTHESIS"` runs `{b.eval_how}` {_how_scored(b)} and
   keeps the change only if it beats the best beyond the noise; otherwise it puts the file back.
   Exit 0: recorded. Exit 3: refused (the message says why: the loop stopped, or another file
   changed). Exit 5: the harness failed on your change.
4. Every {b.sprint} attempts the generalization gate runs by itself. Then go back to 1.

## Never
- Never edit {locked}: they are locked.
- Never commit with `--no-verify`, rewrite history or force-push.
- Never read the sealed test set or copy dev rows into the target files.
- Never run `gitera verdict`: a human opens the test set once, at the end.
"""


def agents_section(b: AgentBrief) -> str:
    """The AGENTS.md section of one experiment, between its markers."""
    return "\n".join([
        AGENTS_BEGIN.format(tag=b.tag),
        f"## gitera experiment `{b.tag}`",
        "",
        f"On branch `autoexp/{b.tag}`, follow `.gitera/{b.tag}/program.md`. In short: edit only "
        f"{_code_list(b.targets, 'the frame’s `iterate.target` files')}; run `gitera iterate -m \"HYPOTHESIS\"`; "
        f"read `gitera status --json`; never edit the frame, `lock.json` or the locked files"
        f"{' (' + _code_list(b.locked, '') + ')' if b.locked else ''}; never run `gitera verdict`.",
        AGENTS_END.format(tag=b.tag),
    ]) + "\n"


def merge_agents_md(existing: str | None, tag: str, section: str) -> str:
    """AGENTS.md with this experiment's section replaced (or appended); everything else kept as it is."""
    text = existing or ""
    begin, end = AGENTS_BEGIN.format(tag=tag), AGENTS_END.format(tag=tag)
    start = text.find(begin)
    stop = text.find(end, start) if start >= 0 else -1
    if start >= 0 and stop >= 0:
        tail = text[stop + len(end):]
        return text[:start] + section.rstrip("\n") + (tail if tail.startswith("\n") else "\n" + tail)
    sep = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
    return text + sep + section

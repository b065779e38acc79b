"""The pre-registered frame: schema, validation and frozen values (pure).

``parse_frame(data, lines, filename)`` turns the mapping read from ``frame.yaml``
into a ``Frame`` or raises ``ConfigError`` naming ``file:line: field`` and what
would be valid. The schema is documented field by field in docs/frame.md; keep
the two in step.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from gitera.core.errors import ConfigError

FieldPath = tuple[str | int, ...]

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ARM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
PYTHON_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
FILE_LINE_RE = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>[1-9][0-9]*)$")
PLACEHOLDER = "TODO"
MAX_CANDIDATES = 3
GUARD_KINDS = ("max_increase", "max_decrease", "max", "min")


def valid_tag(tag: str) -> bool:
    return bool(TAG_RE.match(tag)) and ".." not in tag and not tag.endswith((".", ".lock"))


@dataclass(frozen=True)
class Arm:
    """One arm of the frame: its name, the change it makes, its pinned ref and its parameters."""
    name: str
    change: str
    ref: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Baseline:
    """The frame's baseline: the arm it names and the ref it is pinned to."""
    arm: str
    ref: str  # "file:line" of the code as deployed

    @property
    def file(self) -> str:
        return self.ref.rsplit(":", 1)[0]

    @property
    def line(self) -> int:
        return int(self.ref.rsplit(":", 1)[1])


@dataclass(frozen=True)
class Budget:
    """The iterate loop's budget: iterations, dollars, wall-clock hours and consecutive crashes."""
    max_iterations: int = 30
    max_cost_usd: float | None = None
    max_wall_clock_hours: float | None = None
    max_consecutive_crashes: int = 3


DECISION_MODES = ("primary", "pareto", "weighted")
LEVELS = ("row", "run")
# The per-row numbers gitera records besides the score (gitera.adapters.evalrun.RowResult): all that a
# pareto or weighted decision can compare; another secondary metric is not in the per-row files.
PER_ROW_NUMBERS = ("cost_usd", "latency_ms", "tokens")


@dataclass(frozen=True)
class Iterate:
    """The frame's iterate section: the iterated arm, its target files, sprint size, budget, min_delta and loop control."""
    arm: str
    target: tuple[str, ...]
    sprint: int = 3
    budget: Budget = Budget()
    min_delta: float = 0.0
    mode: str = "primary"  # one of DECISION_MODES (docs/iterate.md, "The decision rule")
    directions: Mapping[str, str] = field(default_factory=dict)  # pareto: secondary metric -> higher | lower
    weights: Mapping[str, float] = field(default_factory=dict)  # weighted: metric -> weight (+ rewards a higher value)
    confirm: bool = True  # re-score a marginal gain with fresh trials before keeping it
    plateau: int | None = 6  # attempts without a keep before the loop stops; None = off (docs/iterate.md)
    max_runs: int = 5  # metric.level run: the sequential keep rule's cap of runs per attempt


@dataclass(frozen=True)
class Caps:
    """Per-value caps on the split: by which column, how many rows per value, and the dominant fraction allowed."""
    by: str
    per_value: int | None = None
    dominant_fraction: float | None = None


@dataclass(frozen=True)
class Data:
    """The frame's data section: the source, its id, label, slice and stratify columns, and how it is split."""
    source: str | None = None
    id: str | None = None
    label: str | None = None
    slices: tuple[str, ...] = ()
    stratify: tuple[str, ...] = ()
    split: tuple[float, float, float] = (0.3, 0.5, 0.2)
    split_column: str | None = None
    gate_fraction: float = 0.2
    seed: int = 0
    cluster: str | None = None
    caps: Caps | None = None
    out_of_scope: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    production: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # metric.level run (docs/run-level.md): files instead of rows
    dev: tuple[str, ...] = ()  # the dev eval's data files (locked; the gate scans the diff for them)
    seal: tuple[str, ...] = ()  # sealed by `gitera split`; the verdict decrypts them into its checkouts
    gate_seal: tuple[str, ...] = ()  # sealed separately; the gate's replication shard


@dataclass(frozen=True)
class Guard:
    """A secondary metric that must not get worse: its name, kind and limit."""
    name: str
    kind: str  # one of GUARD_KINDS
    limit: float


@dataclass(frozen=True)
class Metric:
    """The frame's metric: primary and secondary names, direction, guards, trials and level (row or run)."""
    primary: str
    direction: str  # "higher" or "lower"
    secondary: tuple[str, ...] = ()
    guards: tuple[Guard, ...] = ()
    trials: int = 3
    finding: tuple[str, ...] = ()
    severity: str | None = None
    level: str = "row"  # one of LEVELS: a score per row, or one score per run of a script
    patterns: Mapping[str, str] = field(default_factory=dict)  # level run: metric name -> regex over stdout


@dataclass(frozen=True)
class Threshold:
    """What counts as a win: the effect size, the slice loss floor, its basis and alpha."""
    effect: float
    slice_loss_floor: float
    basis: str = "point"  # "point" or "ci_low"
    alpha: float = 0.05


@dataclass(frozen=True)
class Judge:
    """A judge harness (command or python) and its model family."""
    command: str | None
    python: str | None
    family: str | None


# --- where the harness runs ---------------------------------------------
EXECUTOR_KINDS = ("local", "dask")
DASK_ADDRESS_RE = re.compile(r"^(tcp|tls|ucx|ws|wss)://[^\s/]+:\d{1,5}$")


@dataclass(frozen=True)
class Executor:
    """Where the harness runs: `local` (this machine, the default) or a `dask` scheduler's address
    (GITERA_DASK_ADDRESS overrides it at run time: where the cluster lives is not pre-registered)."""

    kind: str = "local"
    address: str | None = None

# --- the harness's environment (docs/eval-contract.md, "Environment") --------------------------
# The harness gets ENV_ALWAYS, the names (or NAME_PREFIX* patterns) listed in `eval.env`, and
# gitera's own GITERA_* contract variables; nothing else of gitera's environment. ENV_NEVER
# can never be passed: it would change the interpreter or hand the harness the test set's key.
ENV_ALWAYS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR")
ENV_NEVER = ("GITERA_*", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONINSPECT", "PYTHONSAFEPATH",
             "PYTHONNOUSERSITE", "PYTHONEXECUTABLE", "LD_PRELOAD", "LD_AUDIT", "BASH_ENV", "ENV")
ENV_ENTRY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\*?$")


def env_matches(name: str, entry: str) -> bool:
    """Whether the variable ``name`` is named by ``entry`` (a name, or a prefix ending in ``*``)."""
    return name.startswith(entry[:-1]) if entry.endswith("*") else name == entry


def _overlap(entry: str, never: str) -> bool:
    """Whether some variable name is matched by both entries."""
    if entry.endswith("*") and never.endswith("*"):
        return entry[:-1].startswith(never[:-1]) or never[:-1].startswith(entry[:-1])
    if entry.endswith("*"):
        return never.startswith(entry[:-1])
    return env_matches(entry, never)


def env_refusal(entry: str) -> str | None:
    """Why `eval.env` may not list ``entry``, or None when it may."""
    if not ENV_ENTRY_RE.match(entry):
        return "must be a variable name or a NAME_PREFIX* pattern (letters, digits, '_', one trailing '*')"
    for never in ENV_NEVER:
        if _overlap(entry, never):
            return (f"would pass {never}, which never reaches the harness (it changes the interpreter or carries "
                    "the test set's key); name the variables the harness needs instead")
    return None


@dataclass(frozen=True)
class Eval:
    """How the harness is run: command or python, concurrency, timeouts, judges and the executor."""
    command: str | None = None
    python: str | None = None
    concurrency: int = 8
    timeout_s: float = 600.0  # per row (per call), see docs/eval-contract.md
    judge: Judge | None = None
    cross_judge: Judge | None = None
    run_timeout_s: float | None = None  # wall-clock limit of one arm's run
    executor: Executor = field(default_factory=Executor)
    env: tuple[str, ...] = ()  # variables passed through to the harness besides ENV_ALWAYS


@dataclass(frozen=True)
class Frame:
    """The locked experiment frame (.gitera/<tag>/frame.yaml), validated."""
    question: str
    hypothesis: str
    baseline: Baseline
    arms: Mapping[str, Arm]
    data: Data
    metric: Metric
    threshold: Threshold
    eval: Eval
    locked: tuple[str, ...]
    iterate: Iterate | None = None

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(a for a in self.arms if a != self.baseline.arm)


# --- validation --------------------------------------------------------------


class _Checker:
    """Walks the raw mapping; every error names file:line: field and what is valid."""

    def __init__(self, lines: Mapping[FieldPath, int], filename: str) -> None:
        self.lines = lines
        self.filename = filename

    def line_of(self, path: FieldPath) -> int:
        p = path
        while p and p not in self.lines:
            p = p[:-1]
        return self.lines.get(p, 1)

    def fail(self, path: FieldPath, message: str) -> NoReturn:
        name = ""
        for p in path:
            if isinstance(p, int):
                name += f"[{p}]"
            elif re.fullmatch(r"[\w-]+", p):
                name += ("." if name else "") + p
            else:
                name += f"[{p!r}]"
        where = f"{self.filename}:{self.line_of(path)}"
        raise ConfigError(f"{where}: {name or 'frame'}: {message}")

    def mapping(self, value: Any, path: FieldPath, allowed: Sequence[str], required: Sequence[str] = ()) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, f"must be a mapping with fields {', '.join(allowed)}; got {_kind(value)}")
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                self.fail(path + (str(key),), f"unknown field; valid fields here: {', '.join(allowed)}")
        for key in required:
            if key not in value or value[key] is None:
                self.fail(path + (key,), "is required" + _hint(key))
        return value

    def text(self, value: Any, path: FieldPath, *, placeholder_ok: bool = False) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, f"must be non-empty text; got {_kind(value)}")
        if not placeholder_ok and PLACEHOLDER in value:
            self.fail(path, f"still holds the template's {PLACEHOLDER} placeholder; write the real value")
        return value.strip()

    def opt_text(self, value: Any, path: FieldPath) -> str | None:
        return None if value is None else self.text(value, path)

    def integer(self, value: Any, path: FieldPath, minimum: int, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be a whole number ≥ {minimum}; got {_kind(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"≥ {minimum}"
            self.fail(path, f"must be {bound}; got {value}")
        return value

    def number(self, value: Any, path: FieldPath, *, positive: bool = True, below: float | None = None) -> float:
        if isinstance(value, str) and PLACEHOLDER in value:
            self.fail(path, f"still holds the template's {PLACEHOLDER} placeholder; choose the number yourself{_hint(str(path[-1]))}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"must be a number; got {_kind(value)}")
        if not _finite(value):  # YAML .inf / .nan: no threshold, limit or timeout is infinite or undefined
            self.fail(path, f"must be a finite number; got {value if isinstance(value, float) else 'a number too large'} "
                            "(.inf and .nan are refused; leave an optional limit out for none)")
        if positive and value <= 0:
            self.fail(path, f"must be positive; got {value}")
        if not positive and value < 0:
            self.fail(path, f"must be zero or positive; got {value}")
        if below is not None and value >= below:
            self.fail(path, f"must be below {below}; got {value}")
        return float(value)

    def choice(self, value: Any, path: FieldPath, options: Sequence[str]) -> str:
        if value not in options:
            self.fail(path, f"must be one of {', '.join(options)}; got {value!r}")
        return str(value)

    def text_list(self, value: Any, path: FieldPath, *, max_len: int | None = None, min_len: int = 0) -> tuple[str, ...]:
        if value is None:
            value = []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.fail(path, f"must be a list of names; got {_kind(value)}")
        items = tuple(self.text(v, path + (i,)) for i, v in enumerate(value))
        if max_len is not None and len(items) > max_len:
            self.fail(path, f"at most {max_len} allowed; got {len(items)}")
        if len(items) < min_len:
            self.fail(path, f"at least {min_len} required; got {len(items)}")
        if len(set(items)) != len(items):
            self.fail(path, "lists a name twice; each must appear once")
        return items

    def repo_path(self, value: Any, path: FieldPath) -> str:
        text = self.text(value, path)
        parts = text.split("/")
        if text.startswith("/") or ".." in parts or "\\" in text or text.endswith("/"):
            self.fail(path, f"must be a file path relative to the repository root without '..'; got {text!r}")
        return text.removeprefix("./")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a true/false value ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text {value!r}" if len(value) < 40 else "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


_HINTS = {
    "question": " (the question this experiment answers, in one sentence)",
    "hypothesis": " (what you expect and why)",
    "baseline": " (e.g. {arm: v1, ref: 'src/app.py:42'})",
    "arms": " (the baseline and 1-3 candidate arms, each with a `change`)",
    "metric": " (e.g. {primary: {name: accuracy, direction: higher}, trials: 3})",
    "threshold": " (e.g. {effect: 0.05, slice_loss_floor: 0.02})",
    "eval": " (e.g. {command: python eval/run.py})",
    "primary": " (e.g. {name: accuracy, direction: higher})",
    "effect": " (the smallest gain worth shipping, e.g. 0.05)",
    "slice_loss_floor": " (the largest loss tolerated on any slice, e.g. 0.02)",
    "change": " (the one thing this arm changes)",
}


def _hint(key: str) -> str:
    return _HINTS.get(key, "")


TOP_FIELDS = ("question", "hypothesis", "baseline", "arms", "iterate", "data", "metric", "threshold", "eval", "locked")


def parse_frame(data: Any, lines: Mapping[FieldPath, int], filename: str) -> Frame:
    c = _Checker(lines, filename)
    if data is None:
        c.fail((), "the file is empty; run `gitera init TAG` for a template")
    top = c.mapping(data, (), TOP_FIELDS, ("question", "hypothesis", "baseline", "arms", "metric", "threshold", "eval"))
    question = c.text(top["question"], ("question",))
    hypothesis = c.text(top["hypothesis"], ("hypothesis",))

    arms = _arms(c, top["arms"])
    baseline = _baseline(c, top["baseline"], arms)
    candidates = [a for a in arms if a != baseline.arm]
    if not 1 <= len(candidates) <= MAX_CANDIDATES:
        c.fail(("arms",), f"needs the baseline plus 1-{MAX_CANDIDATES} candidate arms; got {len(candidates)} candidates")

    metric = _metric(c, top["metric"])
    threshold = _threshold(c, top["threshold"], metric.level)
    data_ = _data(c, top.get("data") or {})
    eval_ = _eval(c, top["eval"])
    locked = tuple(c.repo_path(p, ("locked", i)) for i, p in enumerate(c.text_list(top.get("locked"), ("locked",))))
    judge = eval_.judge
    if judge is not None and judge.family and eval_.cross_judge is None:
        same = [a.name for a in arms.values() if str(a.params.get("family", "")) == judge.family]
        if same:
            c.fail(("eval", "judge"), f"the judge shares family {judge.family!r} with arm {same[0]}: declare a `cross_judge` of another family (rule 15)")
    iterate = None
    if top.get("iterate") is not None:
        iterate = _iterate(c, top["iterate"], candidates, metric)
        overlap = sorted(set(iterate.target) & set(locked))
        if overlap:
            c.fail(("iterate", "target"), f"{overlap[0]} is also locked; target files and locked files must be disjoint")
        if baseline.file in iterate.target and metric.level == "row":  # run level: the baseline is the target at the lock
            c.fail(("iterate", "target"), f"{baseline.file} holds the baseline as deployed and cannot be a target")
    frame = Frame(question, hypothesis, baseline, arms, data_, metric, threshold, eval_, locked, iterate)
    return _run_level(c, top, frame)


def _arms(c: _Checker, raw: Any) -> dict[str, Arm]:
    if not isinstance(raw, Mapping) or not raw:
        c.fail(("arms",), f"must map each arm name to {{change: ...}}; got {_kind(raw)}")
    arms: dict[str, Arm] = {}
    for name, spec in raw.items():
        path: FieldPath = ("arms", str(name))
        if not isinstance(name, str) or not ARM_RE.match(name):
            c.fail(path, "arm names use letters, digits, '.', '_' or '-' (at most 63 characters)")
        if isinstance(spec, str):
            spec = {"change": spec}
        m = c.mapping(spec, path, ("change", "ref", "params"), ("change",))
        params = m.get("params") or {}
        if not isinstance(params, Mapping):
            c.fail(path + ("params",), f"must be a mapping of parameter names to values; got {_kind(params)}")
        ref = c.opt_text(m.get("ref"), path + ("ref",))
        arms[name] = Arm(name, c.text(m["change"], path + ("change",)), ref, dict(params))
    return arms


def _baseline(c: _Checker, raw: Any, arms: Mapping[str, Arm]) -> Baseline:
    m = c.mapping(raw, ("baseline",), ("arm", "ref"), ("arm", "ref"))
    arm = c.text(m["arm"], ("baseline", "arm"))
    if arm not in arms:
        c.fail(("baseline", "arm"), f"{arm!r} is not one of the arms ({', '.join(arms)})")
    ref = c.text(m["ref"], ("baseline", "ref"))
    if not FILE_LINE_RE.match(ref):
        c.fail(("baseline", "ref"), f"must be file:line of the code as deployed, e.g. src/app.py:42; got {ref!r}")
    return Baseline(arm, ref)


def _metric(c: _Checker, raw: Any) -> Metric:
    p: FieldPath = ("metric",)
    m = c.mapping(raw, p, ("primary", "secondary", "guards", "trials", "finding", "severity", "level"), ("primary",))
    level = c.choice(m.get("level", "row"), p + ("level",), LEVELS)
    prim = m["primary"]
    if isinstance(prim, list):
        c.fail(p + ("primary",), "exactly one primary metric is allowed; move the others to `secondary`")
    pm = c.mapping(prim, p + ("primary",), ("name", "direction", "pattern"), ("name",))
    name = c.text(pm["name"], p + ("primary", "name"))
    direction = c.choice(pm.get("direction", "higher"), p + ("primary", "direction"), ("higher", "lower"))
    patterns: dict[str, str] = {}
    if pm.get("pattern") is not None:
        patterns[name] = _pattern(c, pm["pattern"], p + ("primary", "pattern"))
    raw_secondary = m.get("secondary")
    if isinstance(raw_secondary, list):  # an item may be {name, pattern} (level run)
        for i, item in enumerate(raw_secondary):
            if isinstance(item, Mapping):
                sm = c.mapping(item, p + ("secondary", i), ("name", "pattern"), ("name",))
                if sm.get("pattern") is not None:
                    patterns[c.text(sm["name"], p + ("secondary", i, "name"))] = _pattern(c, sm["pattern"], p + ("secondary", i, "pattern"))
        raw_secondary = [item.get("name") if isinstance(item, Mapping) else item for item in raw_secondary]
    secondary = c.text_list(raw_secondary, p + ("secondary",), max_len=2)
    if name in secondary:
        c.fail(p + ("secondary",), f"{name} is already the primary metric")
    guards = []
    raw_guards = m.get("guards") or []
    if not isinstance(raw_guards, list):
        c.fail(p + ("guards",), f"must be a list like [{{name: latency_ms, max_increase: 0.5}}]; got {_kind(raw_guards)}")
    for i, g in enumerate(raw_guards):
        gp = p + ("guards", i)
        gm = c.mapping(g, gp, ("name",) + GUARD_KINDS, ("name",))
        kinds = [k for k in GUARD_KINDS if k in gm]
        if len(kinds) != 1:
            c.fail(gp, f"give exactly one limit of {', '.join(GUARD_KINDS)}")
        limit = c.number(gm[kinds[0]], gp + (kinds[0],), positive=kinds[0] in ("max_increase", "max_decrease"))
        guards.append(Guard(c.text(gm["name"], gp + ("name",)), kinds[0], limit))
    trials = c.integer(m.get("trials", 3), p + ("trials",), 3, 100)
    finding = c.text_list(m.get("finding"), p + ("finding",), max_len=5)
    if finding and len(finding) < 3:
        c.fail(p + ("finding",), f"register 3-5 failure categories; got {len(finding)}")
    severity = c.opt_text(m.get("severity"), p + ("severity",))
    if patterns and level != "run":
        c.fail(p + ("primary", "pattern") if name in patterns else p + ("secondary",),
               "a pattern reads one number per run from stdout: it needs metric.level: run (docs/run-level.md)")
    return Metric(name, direction, secondary, tuple(guards), trials, finding, severity, level, patterns)


def _pattern(c: _Checker, raw: Any, path: FieldPath) -> str:
    text = c.text(raw, path)
    try:
        groups = re.compile(text, re.MULTILINE).groups
    except re.error as exc:
        c.fail(path, f"is not a valid regular expression ({exc}); e.g. '^val_bpb:\\s*(\\S+)'")
    if groups != 1:
        c.fail(path, f"must have exactly one capturing group, the number (e.g. '^val_bpb:\\s*(\\S+)'); got {groups}")
    return text


def _threshold(c: _Checker, raw: Any, level: str = "row") -> Threshold:
    p: FieldPath = ("threshold",)
    # a run-level experiment has no slices, so no slice loss floor to register
    m = c.mapping(raw, p, ("effect", "basis", "slice_loss_floor", "alpha"), ("effect",) + (("slice_loss_floor",) if level == "row" else ()))
    return Threshold(
        effect=c.number(m["effect"], p + ("effect",)),
        slice_loss_floor=c.number(m["slice_loss_floor"], p + ("slice_loss_floor",)) if m.get("slice_loss_floor") is not None else 0.0,
        basis=c.choice(m.get("basis", "point"), p + ("basis",), ("point", "ci_low")),
        alpha=c.number(m.get("alpha", 0.05), p + ("alpha",), below=0.5),
    )


def _data(c: _Checker, raw: Any) -> Data:
    p: FieldPath = ("data",)
    allowed = ("source", "id", "label", "slices", "stratify", "split", "split_column", "gate_fraction",
               "seed", "cluster", "caps", "out_of_scope", "production", *RUN_DATA)
    m = c.mapping(raw, p, allowed)
    split = (0.3, 0.5, 0.2)
    if m.get("split") is not None and m.get("split_column") is not None:
        c.fail(p + ("split_column",), "give either `split` ratios or `split_column`, not both")
    if m.get("split") is not None:
        sm = c.mapping(m["split"], p + ("split",), ("train", "dev", "test"), ("train", "dev", "test"))
        split = tuple(c.number(sm[k], p + ("split", k)) for k in ("train", "dev", "test"))  # type: ignore[assignment]
        if abs(sum(split) - 1.0) > 1e-6:
            c.fail(p + ("split",), f"train + dev + test must sum to 1; got {sum(split):g}")
    caps = None
    if m.get("caps") is not None:
        cm = c.mapping(m["caps"], p + ("caps",), ("by", "per_value", "dominant_fraction"), ("by",))
        per_value = None if cm.get("per_value") is None else c.integer(cm["per_value"], p + ("caps", "per_value"), 1)
        dom = cm.get("dominant_fraction")
        dominant = None if dom is None else c.number(dom, p + ("caps", "dominant_fraction"), below=1.0 + 1e-12)
        caps = Caps(c.text(cm["by"], p + ("caps", "by")), per_value, dominant)
    oos: dict[str, tuple[str, ...]] = {}
    raw_oos = m.get("out_of_scope") or {}
    if not isinstance(raw_oos, Mapping):
        c.fail(p + ("out_of_scope",), "must map a slice column to the values accepted as out of scope")
    for col, values in raw_oos.items():
        oos[str(col)] = tuple(str(v) for v in (values if isinstance(values, list) else [values]))
    prod: dict[str, dict[str, int]] = {}
    raw_prod = m.get("production") or {}
    if not isinstance(raw_prod, Mapping):
        c.fail(p + ("production",), "must map a column to {value: production count}")
    for col, counts in raw_prod.items():
        if not isinstance(counts, Mapping):
            c.fail(p + ("production", str(col)), "must map each value to its production count")
        prod[str(col)] = {str(k): c.integer(v, p + ("production", str(col), str(k)), 0) for k, v in counts.items()}
    seed = m.get("seed", 0)
    return Data(
        source=c.opt_text(m.get("source"), p + ("source",)),
        id=c.opt_text(m.get("id"), p + ("id",)),
        label=c.opt_text(m.get("label"), p + ("label",)),
        slices=c.text_list(m.get("slices"), p + ("slices",)),
        stratify=c.text_list(m.get("stratify"), p + ("stratify",)),
        split=split,
        split_column=c.opt_text(m.get("split_column"), p + ("split_column",)),
        gate_fraction=c.number(m.get("gate_fraction", 0.2), p + ("gate_fraction",), positive=False, below=1.0),
        seed=c.integer(seed, p + ("seed",), 0),
        cluster=c.opt_text(m.get("cluster"), p + ("cluster",)),
        caps=caps,
        out_of_scope=oos,
        production=prod,
        **{k: tuple(c.repo_path(f, p + (k, i)) for i, f in enumerate(c.text_list(m.get(k), p + (k,)))) for k in RUN_DATA},
    )


def _judge(c: _Checker, raw: Any, path: FieldPath) -> Judge | None:
    if raw is None:
        return None
    m = c.mapping(raw, path, ("command", "python", "family"))
    command = c.opt_text(m.get("command"), path + ("command",))
    python = c.opt_text(m.get("python"), path + ("python",))
    if (command is None) == (python is None):
        c.fail(path, "give exactly one of `command` or `python: module:function`")
    if python is not None and not PYTHON_TARGET_RE.match(python):
        c.fail(path + ("python",), f"must be module:function; got {python!r}")
    return Judge(command, python, c.opt_text(m.get("family"), path + ("family",)))


def _eval(c: _Checker, raw: Any) -> Eval:
    p: FieldPath = ("eval",)
    m = c.mapping(raw, p, ("command", "python", "concurrency", "timeout_s", "run_timeout_s", "judge", "cross_judge", "executor", "env"))
    command = c.opt_text(m.get("command"), p + ("command",))
    python = c.opt_text(m.get("python"), p + ("python",))
    if (command is None) == (python is None):
        c.fail(p, "give exactly one of `command: <shell command>` or `python: module:function`")
    if python is not None and not PYTHON_TARGET_RE.match(python):
        c.fail(p + ("python",), f"must be module:function, e.g. eval.run:score; got {python!r}")
    judge = _judge(c, m.get("judge"), p + ("judge",))
    cross = _judge(c, m.get("cross_judge"), p + ("cross_judge",))
    if cross is not None and judge is None:
        c.fail(p + ("cross_judge",), "needs a `judge` to cross-check")
    if cross is not None and judge is not None and cross.family and cross.family == judge.family:
        c.fail(p + ("cross_judge", "family"), "must be a different model family from the judge's")
    return Eval(
        command=command,
        python=python,
        concurrency=c.integer(m.get("concurrency", 8), p + ("concurrency",), 1, 1024),
        timeout_s=c.number(m.get("timeout_s", 600), p + ("timeout_s",)),
        judge=judge,
        cross_judge=cross,
        run_timeout_s=None if m.get("run_timeout_s") is None else c.number(m["run_timeout_s"], p + ("run_timeout_s",)),
        executor=_executor(c, m.get("executor"), p + ("executor",)),
        env=_env(c, m.get("env")),
    )


def _executor(c: _Checker, raw: Any, path: FieldPath) -> Executor:
    if raw is None:
        return Executor()
    m = c.mapping(raw, path, ("kind", "address"), ("kind",))
    kind = c.choice(m["kind"], path + ("kind",), EXECUTOR_KINDS)
    address = c.opt_text(m.get("address"), path + ("address",))
    if kind == "local" and address is not None:
        c.fail(path + ("address",), "is used only with kind: dask; remove it or set kind: dask")
    if address is not None and not DASK_ADDRESS_RE.match(address):
        c.fail(path + ("address",), f"must be a Dask scheduler address such as tcp://scheduler.example:8786; got {address!r}")
    return Executor(kind, address)


def _env(c: _Checker, raw: Any) -> tuple[str, ...]:
    names = c.text_list(raw, ("eval", "env"))
    for i, name in enumerate(names):
        why = env_refusal(name)
        if why:
            c.fail(("eval", "env", i), f"{name!r} {why}")
    return names


def _iterate(c: _Checker, raw: Any, candidates: Sequence[str], metric: Metric) -> Iterate:
    p: FieldPath = ("iterate",)
    m = c.mapping(raw, p, ("arm", "target", "sprint", "budget", "min_delta", "mode", "directions", "weights", "confirm", "plateau",
                           "max_runs"), ("arm", "target"))
    arm = c.text(m["arm"], p + ("arm",))
    if arm not in candidates:
        c.fail(p + ("arm",), f"must be one of the candidate arms ({', '.join(candidates)}); got {arm!r}")
    target = tuple(c.repo_path(t, p + ("target", i)) for i, t in enumerate(c.text_list(m["target"], p + ("target",), min_len=1)))
    sprint = c.integer(m.get("sprint", 3), p + ("sprint",), 1, 3)
    bp = p + ("budget",)
    bm = c.mapping(m.get("budget") or {}, bp, ("max_iterations", "max_cost_usd", "max_wall_clock_hours", "max_consecutive_crashes"))
    budget = Budget(
        max_iterations=c.integer(bm.get("max_iterations", 30), bp + ("max_iterations",), 1),
        max_cost_usd=None if bm.get("max_cost_usd") is None else c.number(bm["max_cost_usd"], bp + ("max_cost_usd",)),
        max_wall_clock_hours=None
        if bm.get("max_wall_clock_hours") is None
        else c.number(bm["max_wall_clock_hours"], bp + ("max_wall_clock_hours",)),
        max_consecutive_crashes=c.integer(bm.get("max_consecutive_crashes", 3), bp + ("max_consecutive_crashes",), 1),
    )
    min_delta = c.number(m.get("min_delta", 0.0), p + ("min_delta",), positive=False)
    mode = c.choice(m.get("mode", "primary"), p + ("mode",), DECISION_MODES)
    if metric.level == "run" and mode != "primary":
        c.fail(p + ("mode",), f"metric.level is run: the sequential keep rule decides on the primary metric; remove mode: {mode}")
    confirm = m.get("confirm", True)
    if not isinstance(confirm, bool):
        c.fail(p + ("confirm",), f"must be true or false; got {_kind(confirm)}")
    directions = _directions(c, m.get("directions"), mode, metric)
    weights = _weights(c, m.get("weights"), mode, metric)
    max_runs = c.integer(m.get("max_runs", 5), p + ("max_runs",), 1, 50)
    return Iterate(arm, target, sprint, budget, min_delta, mode, directions, weights, confirm, _plateau(c, m), max_runs=max_runs)


# --- iterate.plateau (docs/iterate.md, "Loop control") ---------------------
PLATEAU_DEFAULT = 6
PLATEAU_MAX = 10_000


def _plateau(c: _Checker, m: Mapping[str, Any]) -> int | None:
    """`plateau: N` (attempts without a keep before the loop stops) or `off` (YAML reads it as false)."""
    if "plateau" not in m:
        return PLATEAU_DEFAULT
    value = m["plateau"]
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= PLATEAU_MAX:
        c.fail(("iterate", "plateau"), f"must be a whole number of attempts between 1 and {PLATEAU_MAX}, or off; got {_kind(value)}")
    return value


def _only_in_mode(c: _Checker, raw: Any, key: str, mode: str, wanted: str, example: str) -> Mapping[str, Any] | None:
    path: FieldPath = ("iterate", key)
    if raw is None:
        if mode == wanted:
            c.fail(path, f"is required with mode: {wanted} (e.g. {example})")
        return None
    if mode != wanted:
        c.fail(path, f"is used only with mode: {wanted}; remove it or set iterate.mode: {wanted}")
    if not isinstance(raw, Mapping) or not raw:
        c.fail(path, f"must map metric names to values, e.g. {example}; got {_kind(raw)}")
    return raw


def _directions(c: _Checker, raw: Any, mode: str, metric: Metric) -> dict[str, str]:
    m = _only_in_mode(c, raw, "directions", mode, "pareto", "{cost_usd: lower}")
    out: dict[str, str] = {}
    for name, direction in (m or {}).items():
        path: FieldPath = ("iterate", "directions", str(name))
        if name not in metric.secondary:
            c.fail(path, f"must be a secondary metric ({', '.join(metric.secondary) or 'metric.secondary is empty'}); "
                         f"the primary {metric.primary} is always compared")
        _recorded(c, path, str(name))
        out[str(name)] = c.choice(direction, path, ("higher", "lower"))
    return out


def _recorded(c: _Checker, path: FieldPath, name: str) -> None:
    if name not in PER_ROW_NUMBERS:
        c.fail(path, f"{name} is not recorded per row: beside the score, gitera keeps only {', '.join(PER_ROW_NUMBERS)} "
                     "of a result line, so only those can be compared")


def _weights(c: _Checker, raw: Any, mode: str, metric: Metric) -> dict[str, float]:
    m = _only_in_mode(c, raw, "weights", mode, "weighted", f"{{{metric.primary}: 1.0, cost_usd: -20}}")
    if m is None:
        return {}
    out: dict[str, float] = {}
    for name, w in m.items():
        path: FieldPath = ("iterate", "weights", str(name))
        if name != metric.primary and name not in metric.secondary:
            c.fail(path, f"must be the primary metric {metric.primary} or a secondary metric ({', '.join(metric.secondary) or 'none declared'})")
        if name != metric.primary:
            _recorded(c, path, str(name))
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w == w or w in (0, float("inf"), float("-inf")):
            c.fail(path, f"must be a non-zero number (positive rewards a higher value, negative a lower one); got {_kind(w)}")
        out[str(name)] = float(w)
    if metric.primary not in out:
        c.fail(("iterate", "weights"), f"must weigh the primary metric {metric.primary}")
    if (out[metric.primary] > 0) != (metric.direction == "higher"):
        c.fail(("iterate", "weights", metric.primary), f"must be {'positive' if metric.direction == 'higher' else 'negative'}: "
                                                       f"{metric.primary} is better when {metric.direction}")
    if len(out) < 2:
        c.fail(("iterate", "weights"), "must weigh at least one secondary metric beside the primary (else use mode: primary)")
    return out


# --- metric.level: run (docs/run-level.md) -------------------------------------------------------

RUN_DATA = ("dev", "seal", "gate_seal")
ROW_DATA = ("source", "id", "label", "slices", "stratify", "split", "split_column", "gate_fraction", "seed", "cluster",
            "caps", "out_of_scope", "production")
RUN_RECORD_FIELDS = ("id", "trial", "score", "status", "seconds", "source", "error", "problems")  # gitera.adapters.runscript.RunResult
RUN_CONCURRENCY = 1  # a training script usually takes the machine: one run at a time unless the frame says more


def _run_level(c: _Checker, top: Mapping[str, Any], frame: Frame) -> Frame:
    """The rules of the run-level kind, and its fields refused at row level (a silent no-op otherwise)."""
    from dataclasses import replace

    def section(key: str) -> Mapping[str, Any]:
        value = top.get(key)
        return value if isinstance(value, Mapping) else {}

    raw_data, raw_eval, raw_iterate = section("data"), section("eval"), section("iterate")
    d, it, m = frame.data, frame.iterate, frame.metric
    if m.level == "row":
        for key in RUN_DATA:
            if raw_data.get(key) is not None:
                c.fail(("data", key), "declares files of a run-level experiment: it needs metric.level: run (docs/run-level.md)")
        if raw_iterate.get("max_runs") is not None:
            c.fail(("iterate", "max_runs"), "caps the runs of a run-level attempt: it needs metric.level: run")
        return frame
    why = "metric.level is run: each run of the script prints one score, there are no rows"
    for key in ROW_DATA:
        if raw_data.get(key) is not None:
            c.fail(("data", key), f"{why}; remove it (declare the eval's files with data.dev, data.seal, data.gate_seal)")
    for key in ("finding", "severity"):
        if getattr(m, key):
            c.fail(("metric", key), f"{why}, so no per-row {key}; remove it")
    for i, name in enumerate(m.secondary):
        if name in RUN_RECORD_FIELDS or name == m.primary:
            c.fail(("metric", "secondary", i), f"{name!r} names a field of gitera's own per-run record ({', '.join(RUN_RECORD_FIELDS)}); "
                                                "call the secondary metric something else")
    if frame.eval.command is None:
        c.fail(("eval", "python"), f"{why}: give `eval.command`, the script that prints the score (e.g. python train.py)")
    for key in ("judge", "cross_judge", "run_timeout_s"):
        if raw_eval.get(key) is not None:
            c.fail(("eval", key), f"{why}; remove it (timeout_s bounds each run)" if key == "run_timeout_s" else f"{why}, so no judge; remove it")
    if not d.seal:
        c.fail(("data", "seal"), "is required with metric.level: run: the held-out files the verdict decrypts (e.g. [data/test_shard.bin])")
    seen: dict[str, str] = {}
    for key, paths in (("seal", d.seal), ("gate_seal", d.gate_seal), ("dev", d.dev)):
        for i, path in enumerate(paths):
            if path in seen:
                c.fail(("data", key, i), f"{path} is also in data.{seen[path]}; each file belongs to one part")
            seen[path] = key
            if key != "dev" and (path in frame.locked or (it is not None and path in it.target)):
                c.fail(("data", key, i), f"{path} is sealed: it cannot also be locked or a target (the split removes it from the work tree)")
    for i, path in enumerate(d.dev):
        if path not in frame.locked:
            c.fail(("data", "dev", i), f"{path} is the dev eval's data: list it in `locked` too, so it cannot change")
    if it is not None:
        if raw_iterate.get("confirm") is not None:
            c.fail(("iterate", "confirm"), f"{why}: the sequential keep rule adds runs itself (iterate.max_runs); remove confirm")
    if raw_eval.get("concurrency") is None:
        frame = replace(frame, eval=replace(frame.eval, concurrency=RUN_CONCURRENCY))
    return frame

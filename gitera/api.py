"""Read access to experiments for notebooks and scripts: `import gitera; exp = gitera.open_experiment()`.

Everything here reads the repository (git trailers and committed files); nothing changes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo
from gitera.core.frame import Frame
from gitera.core.results import jsonl_lines
from gitera.domain.experiment import Experiment, resolve


@dataclass(frozen=True)
class ExperimentView:
    """A read-only view of one experiment for scripts (gitera.api)."""
    experiment: Experiment

    @property
    def tag(self) -> str:
        return self.experiment.tag

    @property
    def frame(self) -> Frame:
        """The pre-registered frame, parsed and validated."""
        return self.experiment.load_frame()

    def records(self) -> list[dict[str, Any]]:
        """Every Gitera-* trailer record on the branch, oldest first: {commit, time, kind, data}."""
        from gitera.adapters.history import read

        return [{"commit": r.commit, "time": r.time, "kind": r.kind, "data": r.data}
                for r in read(self.experiment.repo, self.experiment.branch, self.experiment.tag)]

    def attempts(self) -> list[dict[str, Any]]:
        """The iterate attempts (Gitera-Result records of kind "attempt"), each with its commit."""
        return [{"commit": r["commit"], **r["data"]} for r in self.records()
                if r["kind"] == "Result" and r["data"].get("kind") == "attempt"]

    def runs(self) -> list[dict[str, Any]]:
        """The dev runs' per-arm records (Gitera-Result of kind "run")."""
        return [{"commit": r["commit"], **r["data"]} for r in self.records()
                if r["kind"] == "Result" and r["data"].get("kind") == "run"]

    def rows(self, split: str = "dev") -> list[dict[str, Any]]:
        """The input rows of an open split (train or dev); the gate and test rows stay sealed."""
        if split not in ("train", "dev"):
            raise ValueError("only train and dev rows are readable; the gate and test rows are sealed "
                             "(the gate opens its rows itself, the verdict the test rows)")
        path = self.experiment.path(f"split/{split}.jsonl")
        return [json.loads(line) for line in jsonl_lines(path.read_text(encoding="utf-8"))]

    def results(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The per-row × trial results behind one run or attempt record (its `rows` file at its commit)."""
        raw = self.experiment.repo.show(record["commit"], record["rows"])
        if raw is None:
            raise FileNotFoundError(f"{record['rows']} is not in commit {record['commit'][:10]}")
        return [json.loads(line) for line in jsonl_lines(raw.decode())]

    def verdict(self) -> dict[str, Any] | None:
        """verdict.json as the verdict committed it, once the experiment is concluded, else None."""
        return self.experiment.verdict_doc()


def open_experiment(path: str | Path = ".", tag: str | None = None) -> ExperimentView:
    """The experiment at ``path`` (a directory in the repo): ``tag``, or the checked-out autoexp/ branch's."""
    return ExperimentView(resolve(Repo.find(Path(path)), tag))

"""Which row goes to which split, computed as `gitera split` computes it (shared with `gitera lock --check`).

The split is seeded from the frame's hash, so it is known as soon as the frame is final: `lock
--check` uses it to run the harness on a row that will be a *train* row, never a future test row.

The data is streamed. Planning reads the source once and keeps, per row, only
its id, its line and the columns the split and its audit read; `SplitPlan.rows` and
`SplitPlan.parts` read the source again, one row at a time, so no row's text is held.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.core.errors import ConfigError, RefusedError
from gitera.core.frame import Frame
from gitera.domain.experiment import Experiment

if TYPE_CHECKING:
    from gitera.adapters.datasource import Columns, RowScan
    from gitera.core.split import SplitResult


def split_seed(frame_sha256: str, data_seed: int) -> int:
    """Seeded from the frame's hash: re-splitting differently needs a visible frame change."""
    return (int(frame_sha256[:15], 16) + data_seed) % (2**63)


def split_record(row: Mapping[str, Any], rid: str, id_column: str | None) -> dict[str, Any]:
    """A row as the split files hold it: `id` first (the row's id), then its columns."""
    record = {"id": rid, **{k: v for k, v in row.items() if k != "id" or id_column == "id"}}
    record["id"] = rid
    return record


@dataclass(frozen=True)
class SplitPlan:
    """What a split will do: the source, its scan, the columns, the row ids and the resulting parts."""
    source: Path
    scan: RowScan
    columns: Columns  # per row: the columns the split and the audit read
    ids: list[str]
    result: SplitResult

    @property
    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row as the split files hold it, in file order, read again from the source."""
        n = 0
        for i, (_line, rid, row) in enumerate(self.scan):
            if i >= len(self.ids) or self.ids[i] != rid:
                break
            n = i + 1
            yield split_record(row, rid, self.scan.id_column)
        if n != len(self.ids):
            raise RefusedError(f"{self.scan.path} changed while gitera was reading it; nothing was committed — run the command again.")

    def parts(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(split, row) for every row the split keeps, in file order (a k-fold row with its fold)."""
        folds = self.result.fold_of()
        for row, label in zip(self.rows, self.result.labels):
            if label is not None:
                if row["id"] in folds:
                    row["fold"] = folds[row["id"]]
                yield label, row


def plan_split(exp: Experiment, frame: Frame, fhash: str, data: Path | None, command: str = "split") -> SplitPlan:
    """Read the data (``data``, else the frame's ``data.source``) and assign every row, as `gitera split` will."""
    from gitera.adapters import datasource
    from gitera.core import split as splitting

    fd = frame.data
    source = data if data is not None else (exp.repo.root / fd.source if fd.source else None)
    if source is None:
        raise ConfigError(f"no data source: give `gitera {command} --data FILE` or set data.source in {exp.frame_rel}.")
    required = [*fd.slices, *fd.stratify, *([fd.label] if fd.label else []), *([fd.split_column] if fd.split_column else [])]
    if fd.caps:
        required.append(fd.caps.by)
    scan = datasource.RowScan(source, fd.id, list(dict.fromkeys(required)))
    columns = datasource.Columns(list(dict.fromkeys([*required, *fd.production])))
    ids: list[str] = []
    lines = array("q")
    for line, rid, row in scan:
        columns.append(row)
        ids.append(rid)
        lines.append(line)
    result = splitting.split_rows(
        columns,
        ids=ids,
        stratify=list(fd.stratify),
        ratios=fd.split,
        gate_fraction=fd.gate_fraction,
        seed=split_seed(fhash, fd.seed),
        split_column=fd.split_column,
        cap_by=fd.caps.by if fd.caps else None,
        cap_per_value=fd.caps.per_value if fd.caps else None,
        cap_dominant_fraction=fd.caps.dominant_fraction if fd.caps else None,
        slice_columns=list(fd.slices),
        label_column=fd.label,
        out_of_scope={k: list(v) for k, v in fd.out_of_scope.items()},
        lines=lines if scan.unit == "line" else None,
        source=str(source),
    )
    return SplitPlan(source, scan, columns, ids, result)

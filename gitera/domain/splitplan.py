"""Which row goes to which split, computed as `gitera split` computes it (shared with `gitera lock --check`).

The split is seeded from the frame's hash, so it is known as soon as the frame is final: `lock
--check` uses it to run the harness on a row that will be a *train* row, never a future test row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitera.core.errors import ConfigError
from gitera.core.frame import Frame
from gitera.domain.experiment import Experiment

if TYPE_CHECKING:
    from gitera.adapters.datasource import Table
    from gitera.core.split import SplitResult


def split_seed(frame_sha256: str, data_seed: int) -> int:
    """Seeded from the frame's hash: re-splitting differently needs a visible frame change."""
    return (int(frame_sha256[:15], 16) + data_seed) % (2**63)


def rows_for_split(table_rows: list[dict[str, Any]], ids: list[str], id_column: str | None) -> list[dict[str, Any]]:
    out = []
    for row, rid in zip(table_rows, ids):
        record = {"id": rid, **{k: v for k, v in row.items() if k != "id" or id_column == "id"}}
        record["id"] = rid
        out.append(record)
    return out


@dataclass(frozen=True)
class SplitPlan:
    source: Path
    table: Table
    rows: list[dict[str, Any]]
    result: SplitResult


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
    table = datasource.load_rows(source, fd.id, list(dict.fromkeys(required)))
    rows = rows_for_split([dict(r) for r in table.rows], list(table.ids), fd.id)
    result = splitting.split_rows(
        rows,
        ids=list(table.ids),
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
        lines=list(table.lines),
        source=str(source),
    )
    return SplitPlan(source, table, rows, result)

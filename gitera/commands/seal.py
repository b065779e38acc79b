"""gitera seal status / gitera seal keygen: look at the seal without opening it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gitera.adapters.git import Repo
from gitera.adapters.output import Output
from gitera.core.errors import ConfigError, RefusedError
from gitera.domain.experiment import resolve


def seal_status(tag: str | None, out: Output) -> int:
    from gitera.adapters import keys, seal

    repo = Repo.find()
    exp = resolve(repo, tag)
    manifest_path = exp.path("split/manifest.json")
    if not manifest_path.exists():
        raise RefusedError(f"experiment {exp.tag} has no seal yet; run `gitera split` first.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        raise ConfigError(f"{exp.rel('split/manifest.json')} is not valid JSON; restore it with `git checkout`.") from None
    seal_path = repo.root / manifest["seal"]["path"]
    header = seal.read_header(seal_path)
    wrapped = exp.path("split/key.wrapped")
    mode = keys.custody_mode(repo.common_dir, exp.tag, wrapped if wrapped.exists() else None, os.environ)
    info: dict[str, Any] = {
        "tag": exp.tag,
        "seal": manifest["seal"]["path"],
        "seal_id": header.seal_id,
        "key_id": header.key_id,
        "algorithm": header.algorithm_name,
        "plaintext_size": header.plaintext_size,
        "bound_to": {"tag": header.binding.tag, "frame_hash": header.binding.frame_hash, "path": header.binding.path},
        "commitment": manifest["commitment"]["value"],
        "custody": mode,
        "key_available": mode in ("file", "env") or (mode == "recipient" and bool(os.environ.get(keys.ENV_PRIVATE_KEY))),
        "matches_manifest": header.seal_id == manifest["seal"]["seal_id"] and header.key_id == manifest["seal"]["key_id"],
        "opened": exp.is_concluded,
    }
    where = {
        "file": f"local key file {keys.key_path(repo.common_dir, exp.tag)}",
        "env": f"${keys.ENV_DATA_KEY}",
        "recipient": f"wrapped to a custodian's public key ({exp.rel('split/key.wrapped')})",
        "none": "no key here (the verdict will need it)",
    }[mode]
    out.result(
        info,
        "\n".join(
            [
                f"seal {info['seal']}  ({header.algorithm_name}, {header.plaintext_size:,} bytes of test rows)",
                f"  seal id {header.seal_id}  key id {header.key_id}",
                f"  bound to experiment {header.binding.tag}, frame {header.binding.frame_hash[:16]}…",
                f"  commitment {info['commitment']}",
                f"  key custody: {where}",
                f"  header matches manifest: {'yes' if info['matches_manifest'] else 'NO — the seal was replaced'}",
                f"  opened: {'yes (by the verdict)' if info['opened'] else 'no'}",
            ]
        ),
    )
    return 0


def keygen(private_out: Path | None, out: Output) -> int:
    from gitera.adapters import keys

    pair = keys.generate_recipient_keypair()
    if private_out is not None:
        if private_out.exists():
            raise RefusedError(f"{private_out} already exists; choose another path so no key is overwritten.")
        fd = os.open(private_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pair.private + "\n")
    out.result(
        {"public": pair.public, **({"private_file": str(private_out)} if private_out else {"private": pair.private})},
        f"public key (give to `gitera split --recipient`):\n  {pair.public}\n"
        + (
            f"private key written to {private_out} (0600): give it to the custodian, e.g. as the CI secret "
            f"{keys.ENV_PRIVATE_KEY}, and keep it out of this repository."
            if private_out
            else f"private key (store it as the CI secret {keys.ENV_PRIVATE_KEY}; never commit it):\n  {pair.private}"
        ),
    )
    return 0

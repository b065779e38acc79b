"""core.links decides on the tree alone where a link leads: it must agree with the file system."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitera.core.links import leads_out, links_out

NAMES = ["a", "b", "c/d", "c/e", "f/g/h"]
TARGETS = [".", "..", "../..", "a", "c", "c/d", "../a", "../../x", "/etc/hostname", "f/g", "g/../..", "./c/../..", "h", "zz",
           "c/zz/../..", "d", "../c/e", "c/../c/d"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(NAMES), st.sampled_from(TARGETS), min_size=1, max_size=5))
def test_where_a_link_leads_agrees_with_realpath_on_a_written_tree(tmp_path_factory: object, links: dict[str, str]) -> None:
    top = Path(tmp_path_factory.mktemp("links")) / "t"  # type: ignore[attr-defined]
    for folder in ("c", "f/g"):
        (top / folder).mkdir(parents=True)
    for name, target in links.items():
        os.symlink(target, top / name)
    real = os.path.realpath(top)
    for name in links:
        resolved = os.path.realpath(top / name)
        assert leads_out(name, links) == (resolved != real and not resolved.startswith(real + os.sep)), (name, links)


def test_links_out_lists_the_escaping_links_in_order() -> None:
    links = {"z": "../up", "a": "inside", "m/n": "../../up", "loop": "loop", "abs": "/etc/hostname"}
    assert links_out(links) == ["abs", "m/n", "z"]  # a loop cannot be read: it leads nowhere

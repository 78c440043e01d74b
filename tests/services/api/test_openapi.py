"""The OpenAPI document itself, without a server."""

from __future__ import annotations

import re

from pairstream_api.main import create_app


def test_no_path_is_also_a_value_of_another_paths_template() -> None:
    # `/alerts/rules/test` beside `/alerts/rules/{rule_id}` would be one URL with two
    # meanings: a rule named "test", and the route; its 405 could list no true methods.
    paths = list(create_app().openapi()["paths"])
    shadowed = [
        (path, template)
        for template in paths
        if "{" in template
        for path in paths
        if path != template
        and re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path)
    ]
    assert len(paths) >= 25
    assert shadowed == []

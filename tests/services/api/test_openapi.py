"""The OpenAPI document itself, without a server."""

from __future__ import annotations

import re

import msgspec

from pairstream_api.main import create_app
from pairstream_api.models import BarPublic, BarRow


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


def test_a_bar_page_encodes_rows_of_the_fields_its_schema_documents() -> None:
    # bar pages are encoded from msgspec rows, not from the documented pydantic model
    assert BarRow.__struct_fields__ == tuple(BarPublic.model_fields)
    row = BarRow("usdm:BTCUSDT", "1s", 1, 2.5, 3.0, 2.0, 2.5, 1.0, 2.5, 4, 2.5, 0.5, 0, True)
    assert BarPublic.model_validate_json(msgspec.json.encode(row)) == BarPublic(
        **msgspec.structs.asdict(row)
    )

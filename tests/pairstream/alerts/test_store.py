"""The rule store on the real database: versions under concurrent writers."""

from __future__ import annotations

import asyncio

from pairstream.alerts.rules import RuleSpec
from pairstream.alerts.store import delete_rule, put_rule, rule_versions
from pairstream.db import connection
from pairstream.db.migrate import migrate
from pairstream.settings import DatabaseSettings


def _spec(threshold: float) -> RuleSpec:
    return RuleSpec.model_validate({
        "id": "z-race", "name": "|z| above", "subject": "BTCUSDT-ETHUSDT",
        "condition": {"kind": "threshold", "field": "zscore", "op": ">", "value": threshold},
    })  # fmt: skip


async def test_a_delete_racing_new_versions_marks_the_newest_one_deleted(
    db_settings: DatabaseSettings,
) -> None:
    async with connection(db_settings) as a, connection(db_settings) as b:
        await migrate(a, db_settings)
        for round_ in range(20):
            await put_rule(a, _spec(round_))
            # the delete reads the newest version while the put stores the next one: both
            # must land as consecutive versions, not collide on one
            await asyncio.gather(put_rule(a, _spec(round_ + 0.5)), delete_rule(b, "z-race"))
        versions = await rule_versions(a, "z-race")
    numbers = [v for v, _, _ in versions]
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    assert len(numbers) == 60

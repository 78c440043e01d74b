"""The storm cap: at most ALERTS_STORM_CAP notifications of a rule per ALERTS_STORM_BARS bars."""

from __future__ import annotations

from pairstream.alerts.engine import AlertEngine, Transition
from pairstream.alerts.rules import Rule
from pairstream.clock import SystemClock
from pairstream.settings import KafkaSettings
from pairstream_alerts.config import AlertsSettings
from pairstream_alerts.worker import AlertsWorker

T0 = 1_720_000_000_000


def flapping(bars: int) -> list[Transition]:
    rule = Rule.model_validate(
        {"id": "flap", "name": "flap", "subject": "*-*", "tf": "1s",
         "condition": {"kind": "threshold", "field": "zscore", "op": ">", "value": 2}}
    )  # fmt: skip
    engine = AlertEngine([rule])
    out: list[Transition] = []
    for i in range(bars):  # fires on every even bar, resolves on every odd one
        z = 3.0 if i % 2 == 0 else 0.0
        out += engine.on_values(
            "zscore", "pair", "usdm:AUSDT-usdm:BUSDT", "1s", "ols", T0 + i * 1000, {"zscore": z}
        )
    return out


def test_fires_beyond_the_cap_within_the_window_are_held_and_the_window_slides() -> None:
    settings = AlertsSettings(storm_cap=3, storm_bars=10, metrics_port=0)
    worker = AlertsWorker(settings, SystemClock(), kafka=KafkaSettings(bootstrap="127.0.0.1:1"))
    changes = flapping(30)  # fires at bars 0, 2, 4, …, 28
    held = worker._over_storm_cap(changes)
    fired = {(t.ts - T0) // 1000: t.event_id for t in changes if t.state == "firing"}
    # sent: 0, 2, 4 (3 in the window), then 10 (0 has left (0, 10]), 12, 14, 20, 22, 24
    sent = sorted(bar for bar, event in fired.items() if event not in held)
    assert sent == [0, 2, 4, 10, 12, 14, 20, 22, 24]
    assert not {t.event_id for t in changes if t.state == "resolved"} & held

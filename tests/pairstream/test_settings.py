"""Settings come from the environment, are frozen, and are documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

from pairstream.cli import all_settings_groups
from pairstream.settings import (
    DatabaseSettings,
    KafkaSettings,
    TopicSettings,
    settings_table,
)

README = Path(__file__).parents[2] / "README.md"


def test_connection_urls_use_their_conventional_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "k1:9093,k2:9093")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5433/x")
    monkeypatch.setenv("DB_SCHEMA", "desk_a")
    assert KafkaSettings().bootstrap == "k1:9093,k2:9093"
    assert DatabaseSettings().url == "postgresql://u@db:5433/x"
    assert DatabaseSettings().schema_name == "desk_a"


def test_topic_names_partitions_and_timeframes_are_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOPIC_TICKS", "prod.ticks")
    monkeypatch.setenv("TOPIC_TICKS_PARTITIONS", "12")
    monkeypatch.setenv("TOPIC_TIMEFRAMES", "1s, 15m,1h")
    settings = TopicSettings()
    assert settings.ticks == "prod.ticks"
    assert settings.ticks_partitions == 12
    assert settings.timeframes == ("1s", "15m", "1h")
    assert settings.bars("15m") == "bars.15m"


def test_bad_values_fail_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPIC_TIMEFRAMES", "1s,1d")
    with pytest.raises(pydantic.ValidationError, match="1d"):
        TopicSettings()
    monkeypatch.delenv("TOPIC_TIMEFRAMES")
    monkeypatch.setenv("KAFKA_IDEMPOTENCE", "maybe")
    with pytest.raises(pydantic.ValidationError):
        KafkaSettings()
    monkeypatch.setenv("DB_SCHEMA", "Robert'); DROP TABLE bars;--")
    with pytest.raises(pydantic.ValidationError):
        DatabaseSettings()


def test_settings_are_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        KafkaSettings().client_id = "x"


def test_readme_configuration_table_is_the_generated_one() -> None:
    text = README.read_text()
    block = re.search(r"<!-- settings:start -->\n(.*?)<!-- settings:end -->", text, re.DOTALL)
    assert block, "README lacks the generated settings block"
    expected = settings_table(all_settings_groups())
    assert block.group(1) == expected, "run `pairstream settings` and paste its output"

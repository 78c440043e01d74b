"""``pairstream analyze`` as a user runs it: every window and threshold is a flag."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pytest
import typer.main
from typer.testing import CliRunner

from pairstream.analytics.batch import analyze
from pairstream.analytics.pair import PairConfig
from pairstream.cli import app
from pairstream_analytics.config import AnalyticsSettings

pytestmark = pytest.mark.unit

SMALL = {"hedge_window": 40, "stats_window": 40, "zscore_window": 20, "flow_window": 20}


@pytest.fixture
def bar_files(tmp_path: Path, make_synthetic_pair) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    pair = make_synthetic_pair(160, seed=3)
    paths = []
    for name, frame in (("y", pair.y), ("x", pair.x)):
        path = tmp_path / f"{name}.csv"
        frame.assign(tf="1m").to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1]


def run(bar_files: tuple[Path, Path], tmp_path: Path, *flags: str) -> str:
    out = tmp_path / "out.csv"
    args = ["analyze", "--bars", str(bar_files[0]), "--bars", str(bar_files[1]), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, *flags])
    assert result.exit_code == 0, result.output
    return out.read_text()


def expected(bar_files: tuple[Path, Path], config: PairConfig) -> str:
    y, x = (pd.read_csv(p) for p in bar_files)
    return str(analyze(y, x, 60_000, config).to_csv(index=False, float_format="%.17g"))


def test_window_sets_the_hedge_stats_zscore_and_flow_windows(
    bar_files: tuple[Path, Path], tmp_path: Path
) -> None:
    got = run(bar_files, tmp_path, "--window", "30")
    config = PairConfig(hedge_window=30, stats_window=30, zscore_window=30, flow_window=30)
    assert got == expected(bar_files, config)
    assert got != expected(bar_files, dataclasses.replace(config, zscore_window=60))


def test_an_explicit_window_flag_beats_the_shorthand(
    bar_files: tuple[Path, Path], tmp_path: Path
) -> None:
    got = run(bar_files, tmp_path, "--window", "30", "--zscore-window", "12")
    config = PairConfig(hedge_window=30, stats_window=30, zscore_window=12, flow_window=30)
    assert got == expected(bar_files, config)


def test_every_core_parameter_is_a_flag(bar_files: tuple[Path, Path], tmp_path: Path) -> None:
    config = PairConfig(
        hedge_window=35,
        zscore_window=15,
        flow_window=25,
        stats_window=45,
        tests_every=5,
        adf_lag=2,
        entry_z=1.5,
        exit_z=0.25,
        price_transform="log",
        intercept=False,
        kalman_delta=1e-5,
        kalman_obs_var=0.5,
        kalman_initial_var=1e4,
    )
    got = run(
        bar_files, tmp_path,
        "--hedge-window", "35", "--zscore-window", "15", "--flow-window", "25",
        "--stats-window", "45", "--tests-every", "5", "--adf-lag", "2",
        "--entry-z", "1.5", "--exit-z", "0.25", "--price-transform", "log", "--no-intercept",
        "--kalman-delta", "1e-5", "--kalman-obs-var", "0.5", "--kalman-initial-var", "1e4",
    )  # fmt: skip
    assert got == expected(bar_files, config)


def test_flags_default_to_the_analytics_variables(
    bar_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SMALL.items():
        monkeypatch.setenv(f"ANALYTICS_{name.upper()}", str(value))
    monkeypatch.setenv("ANALYTICS_ENTRY_Z", "1.25")
    assert run(bar_files, tmp_path) == expected(bar_files, PairConfig(**SMALL, entry_z=1.25))
    got = run(bar_files, tmp_path, "--entry-z", "3")
    assert got == expected(bar_files, PairConfig(**SMALL, entry_z=3.0))


def test_bad_flag_values_are_refused(bar_files: tuple[Path, Path], tmp_path: Path) -> None:
    base = ["analyze", "--bars", str(bar_files[0]), "--bars", str(bar_files[1])]
    for flags in (["--price-transform", "sqrt"], ["--zscore-window", "2"], ["--exit-z", "-1"]):
        result = CliRunner().invoke(app, [*base, *flags])
        assert result.exit_code != 0, flags


def test_the_help_quotes_the_settings_defaults() -> None:
    command = typer.main.get_command(app).commands["analyze"]  # type: ignore[attr-defined]
    fields = AnalyticsSettings.model_fields
    core = {f.name for f in dataclasses.fields(PairConfig)} & set(fields)  # huber_t is fixed
    documented = set()
    for param in command.params:
        if param.name not in fields:
            continue
        documented.add(param.name)
        default = fields[param.name].default
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        var = f"ANALYTICS_{param.name.upper()}"
        assert re.search(rf"default: {var}, else {re.escape(shown)}\)", param.help), param.name
    assert documented == core

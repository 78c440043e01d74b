"""Backtests of the z-score strategy on stored bars, by the shared analytics core and
the backtest engine (:mod:`pairstream.analytics.backtest`)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import cast

import asyncpg
import pandas as pd
from fastapi import APIRouter

from pairstream.analytics.backtest import (
    BacktestParamError,
    BacktestParams,
    BacktestResult,
    analytics_bars,
    backtest,
)
from pairstream.analytics.batch import BAR_COLUMNS
from pairstream.analytics.pair import PairConfig
from pairstream.instruments import pair_legs, parse_pair, split_instrument
from pairstream.messages import HedgeMethod, timeframe_ms

from ..backtest_models import (
    BacktestMetricsPublic,
    BacktestParamsPublic,
    BacktestPublic,
    BacktestRequest,
    EquityCurvePublic,
    TradePublic,
)
from ..dataset_models import DatasetLeg
from ..deps import ReadKey, State
from ..errors import ApiError, problems
from ..query import invalid, maybe_datetime, parse_range, to_ms
from . import PREFIX
from .datasets import read_leg

router = APIRouter(
    prefix=PREFIX,
    tags=["analytics"],
    responses=problems(400, 401, 413, 422, 429, 503, 404),
)

#: final bars per leg one backtest may read (beyond: 422, narrow the range)
MAX_BARS = 200_000


async def _leg_bars(
    conn: asyncpg.Connection, leg: str, tf: str, start: int | None, end: int | None
) -> pd.DataFrame:
    """The leg's final bars in ``[start, end)`` (the analytics service reads final bars)."""
    market, symbol = split_instrument(leg)
    rows = await conn.fetch(
        """
        SELECT start, close, volume, quote_volume, buy_volume FROM bars
        WHERE market = $1 AND symbol = $2 AND tf = $3 AND final
          AND ($4::timestamptz IS NULL OR start >= $4)
          AND ($5::timestamptz IS NULL OR start < $5)
        ORDER BY start LIMIT $6
        """,
        market, symbol, tf, maybe_datetime(start), maybe_datetime(end), MAX_BARS + 1,
    )  # fmt: skip
    if len(rows) > MAX_BARS:
        raise ApiError(
            422, "Invalid request",
            f"start, end: the range holds more than {MAX_BARS:,} final {tf} bars of {leg}; "
            "narrow it",
            errors=[{"field": f, "in": "body", "message": f"over {MAX_BARS:,} bars of {leg}"}
                    for f in ("start", "end")],
        )  # fmt: skip
    if not rows:
        where = "" if start is None and end is None else " in the range"
        raise ApiError(404, "No bars", f"no stored final {tf} bars of {leg}{where}")
    return pd.DataFrame.from_records(
        [(to_ms(r["start"]), r["close"], r["volume"], r["quote_volume"], r["buy_volume"])
         for r in rows],
        columns=list(BAR_COLUMNS),
    )  # fmt: skip


async def _dataset_bars(
    conn: asyncpg.Connection, label: str, dataset: str, body: BacktestRequest, state: State
) -> pd.DataFrame:
    """An uploaded dataset's bars in the range (it must be of the request's timeframe)."""
    read = await read_leg(conn, DatasetLeg(dataset=dataset, start=body.start, end=body.end),
                          f"datasets.{label}", state)  # fmt: skip
    if read.public.tf != body.tf:
        held = f"dataset {dataset!r} holds {read.public.tf} bars, not {body.tf}"
        raise invalid(f"datasets.{label}", held, "body")
    return read.frame


def _compute(
    frame_y: pd.DataFrame, frame_x: pd.DataFrame, tf_ms: int, config: PairConfig,
    method: HedgeMethod, params: BacktestParams,
) -> BacktestResult | None:  # fmt: skip
    """Analytics and backtest (CPU only, run in a thread); None when no bar has a z-score."""
    bars = analytics_bars(frame_y, frame_x, tf_ms, config, method)
    if not bars["zscore"].notna().any():
        return None
    return backtest(bars, params, tf_ms)


@router.post(
    "/backtest", summary="Backtest the z-score strategy on stored bars",
    responses={404: {"description": "No stored final bars of a leg (in the range)."}},
)  # fmt: skip
async def run_backtest(body: BacktestRequest, state: State, _: ReadKey) -> BacktestPublic:
    """Hedge ratio and z-score from the pair's stored final bars (the analytics service's
    core and `ANALYTICS_*` windows), then the strategy: a decision on bar t fills at bar
    t+1's close, β frozen at the decision bar, Y leg of `notional`, X leg β times its
    units, fees and slippage per leg and fill; an open position at the end is marked to
    market. Definitions: `pairstream.analytics.backtest`. At most 200,000 bars per leg."""
    try:
        name = parse_pair(body.pair, state.market)
    except ValueError as error:
        raise invalid("pair", str(error), "body") from None
    try:
        start, end = parse_range(body.start, body.end)
    except ApiError as error:  # the range is in the body here, not the query
        error.extra["errors"] = [{**e, "in": "body"} for e in error.extra.get("errors", [])]
        raise
    a = state.analytics
    try:
        params = BacktestParams(
            entry_z=a.entry_z if body.entry_z is None else body.entry_z,
            exit_z=a.exit_z if body.exit_z is None else body.exit_z,
            stop_z=body.stop_z, fee_bps=body.fee_bps, slippage_bps=body.slippage_bps,
            capital=body.capital, notional=body.notional,
        )  # fmt: skip
    except BacktestParamError as error:
        raise invalid(error.field, error.message, "body") from None
    y, x = pair_legs(name)
    # a connection only while reading: the computation may take seconds
    async with state.db_pool().acquire(timeout=state.settings.db_timeout_s) as conn:
        connection = cast(asyncpg.Connection, conn)  # a pool's proxy of one
        if body.datasets is None:
            frame_y = await _leg_bars(connection, y, body.tf, start, end)
            frame_x = await _leg_bars(connection, x, body.tf, start, end)
        else:
            frame_y, frame_x = [
                await _dataset_bars(connection, label, dataset, body, state)
                for label, dataset in (("y", body.datasets.y), ("x", body.datasets.x))
            ]
    config = a.pair_config()
    async with state.backtests:
        public = await asyncio.to_thread(
            _run, frame_y, frame_x, timeframe_ms(body.tf), config, params, name, body
        )
    if public is None:
        need = config.zscore_window + (0 if body.method == "kalman" else config.hedge_window - 1)
        raise ApiError(
            422, "Invalid request",
            f"start, end: {len(frame_y)} bars of {y} and {len(frame_x)} of {x} give no z-score; "
            f"{body.method} needs about {need} joined bars (ANALYTICS_HEDGE_WINDOW "
            f"{config.hedge_window}, ANALYTICS_ZSCORE_WINDOW {config.zscore_window})",
            errors=[{"field": f, "in": "body", "message": "too few bars"}
                    for f in ("start", "end")],
        )  # fmt: skip
    return public


def _run(
    frame_y: pd.DataFrame, frame_x: pd.DataFrame, tf_ms: int, config: PairConfig,
    params: BacktestParams, pair: str, body: BacktestRequest,
) -> BacktestPublic | None:  # fmt: skip
    """The computation and its response model (a 200,000-point curve takes a while too)."""
    result = _compute(frame_y, frame_x, tf_ms, config, body.method, params)
    return None if result is None else _public(pair, body, params, config, result)


def _public(
    pair: str, body: BacktestRequest, params: BacktestParams, config: PairConfig,
    result: BacktestResult,
) -> BacktestPublic:  # fmt: skip
    curve = result.equity
    ts = curve.ts.tolist()
    return BacktestPublic(
        pair=pair, tf=body.tf, method=body.method,
        first_ts=ts[0] if ts else None, last_ts=ts[-1] if ts else None, bars=len(ts),
        params=BacktestParamsPublic(
            entry_z=params.entry_z, exit_z=params.exit_z, stop_z=params.stop_z,
            fee_bps=params.fee_bps, slippage_bps=params.slippage_bps, capital=params.capital,
            notional=params.leg_notional, hedge_window=config.hedge_window,
            zscore_window=config.zscore_window, price_transform=config.price_transform,
        ),
        metrics=BacktestMetricsPublic(**dataclasses.asdict(result.metrics)),
        trades=[TradePublic(**dataclasses.asdict(t)) for t in result.trades],
        equity=EquityCurvePublic(
            ts=ts, equity=curve.equity.tolist(), position=curve.position.tolist(),
            drawdown=curve.drawdown.tolist(),
        ) if body.include_equity else None,
    )  # fmt: skip

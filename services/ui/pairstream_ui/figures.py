"""Plotly figures from the API's JSON: pure functions, no I/O.

Times stay epoch milliseconds on date axes (Plotly reads numbers on a date axis as ms),
so a live point appended by ``assets/live.js`` is the API's own number. Trace order is
part of the contract with the ``data-live`` specs of :mod:`.pages`: they name traces by
index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

Json = dict[str, Any]

DARK, LIGHT = "plotly_dark", "plotly_white"
UP, DOWN = "#26a69a", "#ef5350"
METHOD_COLOURS = {"ols": "#42a5f5", "huber": "#ffa726", "kalman": "#ab47bc"}
SIGNALS = {"long": ("triangle-up", UP), "short": ("triangle-down", DOWN),
           "exit": ("x", "#bdbdbd")}  # fmt: skip


def template(theme: str) -> str:
    return LIGHT if theme == "light" else DARK


def _layout(fig: go.Figure, theme: str, height: int, **extra: Any) -> go.Figure:
    fig.update_layout(
        template=template(theme), height=height, margin={"l": 50, "r": 20, "t": 30, "b": 30},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        uirevision="keep",  # zoom and toggled traces survive redraws
        paper_bgcolor="rgba(0,0,0,0)", **extra,
    )  # fmt: skip
    fig.update_xaxes(type="date")
    return fig


def empty(message: str, theme: str, height: int = 300) -> go.Figure:
    """A chart with nothing to draw yet, saying why."""
    fig = waiting(_layout(go.Figure(), theme, height), message)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def waiting(fig: go.Figure, message: str) -> go.Figure:
    """A figure with its traces but no points yet, saying what it waits for (live points
    are appended to its traces)."""
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font={"size": 15}, name="waiting")  # fmt: skip
    return fig


def candles(bars: Sequence[Json], label: str, theme: str) -> go.Figure:
    """Candlesticks with VWAP (row 1), volume (row 2) and trades per bar (row 3).

    Traces: 0 candles, 1 VWAP, 2 volume, 3 trades.
    """
    x = [b["start"] for b in bars]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[0.62, 0.2, 0.18])  # fmt: skip
    fig.add_trace(go.Candlestick(
        x=x, open=[b["open"] for b in bars], high=[b["high"] for b in bars],
        low=[b["low"] for b in bars], close=[b["close"] for b in bars], name=label,
        increasing_line_color=UP, decreasing_line_color=DOWN,
    ), row=1, col=1)  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=[b["vwap"] for b in bars], name="VWAP", mode="lines",
                             line={"width": 1, "color": "#ffca28"}), row=1, col=1)  # fmt: skip
    fig.add_trace(go.Bar(x=x, y=[b["volume"] for b in bars], name="volume",
                         marker_color="#78909c"), row=2, col=1)  # fmt: skip
    fig.add_trace(go.Bar(x=x, y=[b["trades"] for b in bars], name="trades",
                         marker_color="#5c6bc0"), row=3, col=1)  # fmt: skip
    fig.update_xaxes(rangeslider_visible=False)
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="volume", row=2, col=1)
    fig.update_yaxes(title_text="trades", row=3, col=1)
    return _layout(fig, theme, 560, bargap=0.1)


def normalised_legs(y: Sequence[Json], x: Sequence[Json], names: tuple[str, str],
                    theme: str) -> go.Figure:  # fmt: skip
    """Both legs' closes divided by their first close in view (traces 0 = y, 1 = x)."""
    fig = go.Figure()
    for bars, name in ((y, names[0]), (x, names[1])):
        base = bars[0]["close"] if bars else 1.0
        fig.add_trace(go.Scatter(
            x=[b["start"] for b in bars], y=[b["close"] / base for b in bars], name=name,
            mode="lines", meta={"base": base},
        ))  # fmt: skip
    return _layout(fig, theme, 260, yaxis_title="close / first close")


def hedge_ratios(points: Mapping[str, Sequence[Json]], theme: str) -> go.Figure:
    """The hedge ratio per method, one trace each in the order of ``points``."""
    fig = go.Figure()
    for method, rows in points.items():
        fig.add_trace(go.Scatter(
            x=[p["ts"] for p in rows if p.get("hedge_ratio") is not None],
            y=[p["hedge_ratio"] for p in rows if p.get("hedge_ratio") is not None],
            name=method, mode="lines", line={"color": METHOD_COLOURS.get(method)},
        ))  # fmt: skip
    return _layout(fig, theme, 240, yaxis_title="hedge ratio β")


def spread(points: Sequence[Json], k: float, theme: str) -> go.Figure:
    """Spread (trace 0) with its rolling mean (1) and mean ± k·σ (2, 3)."""
    rows = [p for p in points if p.get("spread") is not None]
    banded = [p for p in points if p.get("mean") is not None and p.get("std") is not None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[p["ts"] for p in rows], y=[p["spread"] for p in rows],
                             name="spread", mode="lines"))  # fmt: skip
    fig.add_trace(go.Scatter(x=[p["ts"] for p in banded], y=[p["mean"] for p in banded],
                             name="mean", mode="lines",
                             line={"dash": "dot", "width": 1}))  # fmt: skip
    for sign, name in ((1, f"mean + {k:g}σ"), (-1, f"mean − {k:g}σ")):
        fig.add_trace(go.Scatter(
            x=[p["ts"] for p in banded], y=[p["mean"] + sign * k * p["std"] for p in banded],
            name=name, mode="lines", line={"width": 1, "color": "#9e9e9e"},
        ))  # fmt: skip
    return _layout(fig, theme, 260, yaxis_title="spread")


def zscore(points: Sequence[Json], entry: float, exit_z: float, theme: str) -> go.Figure:
    """Z-score (trace 0) and its signals: long (1), short (2), exit (3) markers; the
    entry and exit levels as lines."""
    rows = [p for p in points if p.get("zscore") is not None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[p["ts"] for p in rows], y=[p["zscore"] for p in rows],
                             name="z-score", mode="lines", line={"color": "#29b6f6"}))  # fmt: skip
    for signal, (symbol, colour) in SIGNALS.items():
        hits = [p for p in rows if p.get("signal") == signal]
        fig.add_trace(go.Scatter(
            x=[p["ts"] for p in hits], y=[p["zscore"] for p in hits], name=signal,
            mode="markers", marker={"symbol": symbol, "size": 11, "color": colour},
        ))  # fmt: skip
    for level, dash in ((entry, "dash"), (-entry, "dash"), (exit_z, "dot"), (-exit_z, "dot")):
        fig.add_hline(y=level, line={"dash": dash, "width": 1, "color": "#9e9e9e"})
    return _layout(fig, theme, 260, yaxis_title="z")


def correlation(points: Sequence[Json], theme: str) -> go.Figure:
    """Rolling correlation of the legs' returns (trace 0)."""
    rows = [p for p in points if p.get("correlation") is not None]
    fig = go.Figure(go.Scatter(x=[p["ts"] for p in rows], y=[p["correlation"] for p in rows],
                               name="correlation", mode="lines"))  # fmt: skip
    return _layout(fig, theme, 220, yaxis_title="ρ", yaxis_range=[-1, 1])


HOVER = "%{y} / %{x}<br>ρ %{z:.3f}<br>%{text}<extra></extra>"


def heatmap(scan: Json, theme: str) -> go.Figure:
    """The scan's correlation matrix (symmetric, 1 on the diagonal)."""
    names = scan["instruments"]
    index = {n: i for i, n in enumerate(names)}
    z: list[list[float | None]] = [[1.0 if i == j else None for j in names] for i in names]
    text: list[list[str]] = [["" for _ in names] for _ in names]
    for cell in scan["cells"]:
        i, j = index[cell["y"]], index[cell["x"]]
        z[i][j] = z[j][i] = cell["correlation"]
        p = cell.get("coint_pvalue")
        text[i][j] = text[j][i] = "" if p is None else f"EG p {p:.3f}"
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, text=text, zmin=-1, zmax=1,
                               colorscale="RdBu", reversescale=True,
                               hovertemplate=HOVER))  # fmt: skip
    fig.update_layout(template=template(theme), height=max(320, 60 * len(names)),
                      margin={"l": 110, "r": 20, "t": 30, "b": 90},
                      paper_bgcolor="rgba(0,0,0,0)")  # fmt: skip
    return fig


def equity(curve: Json, theme: str) -> go.Figure:
    """A backtest's equity (row 1) and drawdown below its running peak (row 2), from the
    API's columns (``ts``, ``equity``, ``drawdown``)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.04)  # fmt: skip
    fig.add_trace(go.Scatter(x=curve["ts"], y=curve["equity"], name="equity", mode="lines",
                             line={"color": "#42a5f5"}), row=1, col=1)  # fmt: skip
    fig.add_trace(go.Scatter(x=curve["ts"], y=[-d for d in curve["drawdown"]], name="drawdown",
                             mode="lines", fill="tozeroy", line={"color": DOWN}),
                  row=2, col=1)  # fmt: skip
    fig.update_yaxes(title_text="equity", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".1%", row=2, col=1)
    return _layout(fig, theme, 420)


def prime() -> None:
    """Build one small figure of every kind: plotly imports its validators on first use
    (~0.2 s), which would otherwise delay the first page a server draws."""
    bar = {"start": 0, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "vwap": 1.0,
           "volume": 1.0, "trades": 1}  # fmt: skip
    point = {"ts": 0, "hedge_ratio": 1.0, "spread": 0.0, "mean": 0.0, "std": 1.0,
             "zscore": 0.0, "correlation": 0.0}  # fmt: skip
    candles([bar], "", DARK)
    normalised_legs([bar], [bar], ("", ""), DARK)
    hedge_ratios({"ols": [point]}, DARK)
    spread([point], 2.0, DARK)
    zscore([point], 2.0, 0.5, DARK)
    correlation([point], DARK)
    heatmap({"instruments": ["a", "b"], "cells": []}, DARK)
    equity({"ts": [0], "equity": [1.0], "drawdown": [0.0]}, DARK)
    empty("", DARK)

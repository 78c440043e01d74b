"""Rolling sums over a fixed window that stay accurate on prices near 60,000.

Textbook running sums (``Σx``, ``Σx²``) lose most of their digits to cancellation
when the variance is tiny next to the squared mean: ``Σx² − (Σx)²/n`` on BTC
prices subtracts two numbers near 1.8e12 to get a few thousand. Here every
value is stored as its deviation from an anchor ``k`` (the window mean at the
last re-summation), so the sums hold numbers of the size of the spread of the
data, not of its level. Adding and removing values one at a time accumulates
rounding error; every ``window`` updates the sums are recomputed exactly from
the buffer and the anchor moves to the current mean, which bounds that error
at O(1) amortised cost per update.

Each class is deterministic: the same sequence of updates gives the same bits.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Iterable

#: Σ(x−k)² − (Σ(x−k))²/n below this fraction of Σ(x−k)² is cancellation noise, not variance:
#: x is one price over the window (a leg carried while its market is quiet)
CONSTANT_X = 64 * sys.float_info.epsilon

__all__ = ["CONSTANT_X", "RollingCov", "RollingStats", "RollingSum", "anchored_sums"]


def anchored_sums(
    xs: Iterable[float], ys: Iterable[float]
) -> tuple[float, float, float, float, float, float, float]:
    """Exact sums of a window about its means: ``kx, ky, Σdx, Σdy, Σdx², Σdy², Σdx·dy``."""
    x = list(xs)
    y = list(ys)
    n = len(x)
    fsum = math.fsum
    kx = fsum(x) / n
    ky = fsum(y) / n
    dx = [v - kx for v in x]
    dy = [v - ky for v in y]
    return (
        kx,
        ky,
        fsum(dx),
        fsum(dy),
        fsum([d * d for d in dx]),
        fsum([d * d for d in dy]),
        fsum([a * b for a, b in zip(dx, dy, strict=True)]),
    )


class RollingSum:
    """Sum of the last ``window`` values (positive volumes: no anchor needed)."""

    __slots__ = ("_since", "_sum", "_values", "window")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._values: deque[float] = deque()
        self._sum = 0.0
        self._since = 0

    def update(self, value: float) -> None:
        """Add ``value``, dropping the oldest one once the window is full."""
        values = self._values
        if len(values) == self.window:
            self._sum -= values.popleft()
        values.append(value)
        self._sum += value
        self._since += 1
        if self._since >= self.window:
            self._since = 0
            self._sum = math.fsum(values)

    @property
    def full(self) -> bool:
        """Whether the window holds ``window`` values."""
        return len(self._values) == self.window

    @property
    def sum(self) -> float:
        """Sum of the values in the window."""
        return self._sum


class RollingStats:
    """Mean and sample variance (ddof=1) of the last ``window`` values."""

    __slots__ = ("_k", "_s", "_since", "_ss", "_values", "window")

    def __init__(self, window: int) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self.window = window
        self._values: deque[float] = deque()
        self._k = 0.0
        self._s = 0.0
        self._ss = 0.0
        self._since = 0

    def update(self, value: float) -> None:
        """Add ``value``, dropping the oldest one once the window is full."""
        values = self._values
        k = self._k
        if not values:
            self._k = k = value
        elif len(values) == self.window:
            d = values.popleft() - k
            self._s -= d
            self._ss -= d * d
        values.append(value)
        d = value - k
        self._s += d
        self._ss += d * d
        self._since += 1
        if self._since >= self.window:
            self._resum()

    def _resum(self) -> None:
        values = self._values
        self._since = 0
        self._k = k = math.fsum(values) / len(values)
        self._s = math.fsum(v - k for v in values)
        self._ss = math.fsum((v - k) * (v - k) for v in values)

    @property
    def full(self) -> bool:
        """Whether the window holds ``window`` values."""
        return len(self._values) == self.window

    @property
    def mean(self) -> float:
        """Mean of the values in the window."""
        return self._k + self._s / len(self._values)

    @property
    def var(self) -> float:
        """Sample variance (ddof=1) of the values in the window; never negative."""
        n = len(self._values)
        return max(self._ss - self._s * self._s / n, 0.0) / (n - 1)


class RollingCov:
    """Means, sample (co)variances and least-squares fits of the last ``window`` pairs (x, y).

    ``ols()`` regresses y on x: with an intercept ``y = α + βx`` by centred sums,
    without one ``y = βx`` through the origin.
    """

    __slots__ = (
        "_kx",
        "_ky",
        "_since",
        "_sx",
        "_sxx",
        "_sxy",
        "_sy",
        "_syy",
        "_xs",
        "_ys",
        "window",
    )

    def __init__(self, window: int) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self.window = window
        self._xs: deque[float] = deque()
        self._ys: deque[float] = deque()
        self._kx = self._ky = 0.0
        self._sx = self._sy = self._sxx = self._syy = self._sxy = 0.0
        self._since = 0

    def update(self, x: float, y: float) -> None:
        """Add the pair ``(x, y)``, dropping the oldest once the window is full."""
        xs = self._xs
        n = len(xs)
        if n == 0:
            self._kx = x
            self._ky = y
        kx = self._kx
        ky = self._ky
        dx = x - kx
        dy = y - ky
        if n == self.window:
            ox = xs.popleft() - kx
            oy = self._ys.popleft() - ky
            self._sx += dx - ox
            self._sy += dy - oy
            self._sxx += dx * dx - ox * ox
            self._syy += dy * dy - oy * oy
            self._sxy += dx * dy - ox * oy
        else:
            self._sx += dx
            self._sy += dy
            self._sxx += dx * dx
            self._syy += dy * dy
            self._sxy += dx * dy
        xs.append(x)
        self._ys.append(y)
        self._since += 1
        if self._since >= self.window:
            self._resum()

    def _resum(self) -> None:
        self._since = 0
        self._kx, self._ky, self._sx, self._sy, self._sxx, self._syy, self._sxy = anchored_sums(
            self._xs, self._ys
        )

    @property
    def full(self) -> bool:
        """Whether the window holds ``window`` pairs."""
        return len(self._xs) == self.window

    def _centred(self) -> tuple[float, float, float, int]:
        n = len(self._xs)
        sx, sy = self._sx, self._sy
        cxx = max(self._sxx - sx * sx / n, 0.0)
        cyy = max(self._syy - sy * sy / n, 0.0)
        cxy = self._sxy - sx * sy / n
        return cxx, cyy, cxy, n

    def ols(self, intercept: bool = True) -> tuple[float, float] | None:
        """``(β, α)`` of the least-squares fit of y on x (α = 0 without intercept).

        ``None`` when x has no spread in the window (the fit is undefined).
        """
        n = len(self._xs)
        if n < 2:
            return None
        sx = self._sx
        kx = self._kx
        if intercept:
            cxx = self._sxx - sx * sx / n
            if cxx <= CONSTANT_X * self._sxx or cxx <= 1e-24 * (self._sxx + n * kx * kx):
                return None
            sy = self._sy
            beta = (self._sxy - sx * sy / n) / cxx
            return beta, (self._ky + sy / n) - beta * (kx + sx / n)
        ky = self._ky
        sxx = self._sxx + 2.0 * kx * sx + n * kx * kx
        if sxx <= 0.0:
            return None
        sxy = self._sxy + kx * self._sy + ky * sx + n * kx * ky
        return sxy / sxx, 0.0

    def corr(self) -> float | None:
        """Pearson correlation of x and y in the window; ``None`` if either is constant."""
        if len(self._xs) < 2:
            return None
        cxx, cyy, cxy, _ = self._centred()
        if cxx <= 0.0 or cyy <= 0.0:
            return None
        return max(-1.0, min(1.0, cxy / math.sqrt(cxx * cyy)))

    def sum_squares_y(self) -> float:
        """``Σy²`` over the window (raw, not centred)."""
        n = len(self._ys)
        ky = self._ky
        return max(self._syy + 2.0 * ky * self._sy + n * ky * ky, 0.0)

    def sum_squares_x(self) -> float:
        """``Σx²`` over the window (raw, not centred)."""
        n = len(self._xs)
        kx = self._kx
        return max(self._sxx + 2.0 * kx * self._sx + n * kx * kx, 0.0)

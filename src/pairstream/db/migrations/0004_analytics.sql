-- Pair analytics (pairstream_analytics): one row per (pair, tf, ts, method), ts = bar
-- start; rows are upserted, so re-emitting after a restart or a revision is harmless.
CREATE TABLE IF NOT EXISTS analytics_spread (
    pair               text             NOT NULL,
    tf                 text             NOT NULL,
    ts                 timestamptz      NOT NULL,
    method             text             NOT NULL CHECK (method IN ('ols', 'huber', 'kalman')),
    price_transform    text             NOT NULL CHECK (price_transform IN ('price', 'log')),
    hedge_ratio        double precision NOT NULL,
    intercept          double precision NOT NULL,
    spread             double precision NOT NULL,
    forecast_error     double precision,
    forecast_variance  double precision,
    ts_init            timestamptz      NOT NULL,
    PRIMARY KEY (pair, tf, ts, method)
);

CREATE TABLE IF NOT EXISTS analytics_zscore (
    pair       text             NOT NULL,
    tf         text             NOT NULL,
    ts         timestamptz      NOT NULL,
    method     text             NOT NULL CHECK (method IN ('ols', 'huber', 'kalman')),
    "window"   integer          NOT NULL CHECK ("window" >= 2),
    spread     double precision NOT NULL,
    mean       double precision NOT NULL,
    std        double precision NOT NULL CHECK (std >= 0),
    zscore     double precision,
    position   text             NOT NULL CHECK (position IN ('long', 'short', 'flat')),
    signal     text             CHECK (signal IN ('long', 'short', 'exit')),
    ts_init    timestamptz      NOT NULL,
    PRIMARY KEY (pair, tf, ts, method)
);

CREATE TABLE IF NOT EXISTS analytics_stats (
    pair                 text             NOT NULL,
    tf                   text             NOT NULL,
    ts                   timestamptz      NOT NULL,
    method               text             NOT NULL CHECK (method IN ('ols', 'huber', 'kalman')),
    correlation          double precision CHECK (correlation BETWEEN -1 AND 1),
    adf_stat             double precision,
    adf_pvalue           double precision CHECK (adf_pvalue BETWEEN 0 AND 1),
    half_life            double precision CHECK (half_life > 0),
    vol_y                double precision,
    vol_x                double precision,
    vwap_y               double precision,
    vwap_x               double precision,
    buy_share_y          double precision,
    buy_share_x          double precision,
    coint_stat           double precision,
    coint_pvalue         double precision CHECK (coint_pvalue BETWEEN 0 AND 1),
    hedge_ratio_ci_low   double precision,
    hedge_ratio_ci_high  double precision,
    tests_ts             timestamptz,
    ts_init              timestamptz      NOT NULL,
    PRIMARY KEY (pair, tf, ts, method)
);

-- Where each pair's analytics stand: the last bar start decided (`frontier`), the
-- first joined bar and how many were joined, written in the same transaction as
-- the outputs. A restarted worker replays the stored bars from `first_ts` through
-- `frontier` to rebuild the same state.
CREATE TABLE IF NOT EXISTS analytics_checkpoints (
    group_id    text        NOT NULL,
    pair        text        NOT NULL,
    tf          text        NOT NULL,
    first_ts    timestamptz,
    frontier    timestamptz NOT NULL,
    joined      bigint      NOT NULL CHECK (joined >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, pair, tf)
);

-- The pair scan: correlation and cointegration of every pair of symbols at `ts`.
CREATE TABLE IF NOT EXISTS pair_scan (
    tf            text             NOT NULL,
    ts            timestamptz      NOT NULL,
    y             text             NOT NULL,
    x             text             NOT NULL,
    "window"      integer          NOT NULL,
    nobs          integer          NOT NULL CHECK (nobs >= 0),
    correlation   double precision CHECK (correlation BETWEEN -1 AND 1),
    hedge_ratio   double precision,
    coint_stat    double precision,
    coint_pvalue  double precision CHECK (coint_pvalue BETWEEN 0 AND 1),
    ts_init       timestamptz      NOT NULL,
    PRIMARY KEY (tf, ts, y, x)
);

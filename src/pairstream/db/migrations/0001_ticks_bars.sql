-- Raw trades (optional storage, DB_STORE_TICKS) and OHLCV bars.
-- Times are timestamptz with millisecond precision; prices are finite and > 0
-- (in PostgreSQL NaN sorts above Infinity, so `< 'Infinity'` also rejects NaN).

CREATE TABLE IF NOT EXISTS ticks (
    exchange        text             NOT NULL,
    market          text             NOT NULL CHECK (market IN ('usdm', 'spot')),
    symbol          text             NOT NULL,
    trade_id        bigint           NOT NULL CHECK (trade_id >= 0),
    ts_event        timestamptz      NOT NULL,
    price           double precision NOT NULL CHECK (price > 0 AND price < 'Infinity'),
    qty             double precision NOT NULL CHECK (qty > 0 AND qty < 'Infinity'),
    is_buyer_maker  boolean          NOT NULL,
    first_trade_id  bigint,
    last_trade_id   bigint,
    source          text             NOT NULL
        CHECK (source IN ('live', 'backfill', 'replay', 'synthetic')),
    ts_ingest       timestamptz      NOT NULL,
    -- the time column belongs to every unique key of a hypertable
    PRIMARY KEY (exchange, market, symbol, trade_id, ts_event)
);

CREATE TABLE IF NOT EXISTS bars (
    exchange        text             NOT NULL DEFAULT 'binance',
    market          text             NOT NULL CHECK (market IN ('usdm', 'spot')),
    symbol          text             NOT NULL,
    tf              text             NOT NULL,
    start           timestamptz      NOT NULL,
    open            double precision NOT NULL CHECK (open > 0 AND open < 'Infinity'),
    high            double precision NOT NULL CHECK (high > 0 AND high < 'Infinity'),
    low             double precision NOT NULL CHECK (low > 0 AND low < 'Infinity'),
    close           double precision NOT NULL CHECK (close > 0 AND close < 'Infinity'),
    volume          double precision NOT NULL CHECK (volume >= 0 AND volume < 'Infinity'),
    quote_volume    double precision NOT NULL
        CHECK (quote_volume >= 0 AND quote_volume < 'Infinity'),
    trades          integer          NOT NULL CHECK (trades >= 0),
    vwap            double precision NOT NULL CHECK (vwap > 0 AND vwap < 'Infinity'),
    buy_volume      double precision NOT NULL
        CHECK (buy_volume >= 0 AND buy_volume < 'Infinity'),
    first_trade_id  bigint,
    last_trade_id   bigint,
    revision        integer          NOT NULL CHECK (revision >= 0),
    final           boolean          NOT NULL,
    ts_event        timestamptz      NOT NULL,
    ts_init         timestamptz      NOT NULL,
    stored_at       timestamptz      NOT NULL DEFAULT now(),
    CHECK (low <= LEAST(open, close) AND GREATEST(open, close) <= high),
    PRIMARY KEY (symbol, tf, start)
);

-- Uploaded bar datasets of the API (`POST /api/v1/uploads`): one instrument's bars from
-- a CSV, validated in full before anything is stored, written in one transaction.
-- `market`/`symbol` are labels only (an upload never mixes with the streamed `bars`);
-- `rows`, `first_start` and `last_start` describe `dataset_bars` as written.
CREATE TABLE IF NOT EXISTS datasets (
    name           text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    market         text        CHECK (market IN ('usdm', 'spot')),
    symbol         text        CHECK (symbol ~ '^[A-Z0-9]{2,30}$'),
    tf             text        NOT NULL CHECK (tf ~ '^[1-9][0-9]{0,5}[smh]$'),
    rows           integer     NOT NULL CHECK (rows >= 1),
    first_start    timestamptz NOT NULL,
    last_start     timestamptz NOT NULL,
    source_format  text        NOT NULL CHECK (source_format IN ('bars', 'klines')),
    filename       text,
    sha256         text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text,
    CHECK (first_start <= last_start)
);

-- The bars of a dataset (columns as in `bars`; `trades` and `vwap` are null when the
-- file did not give them). Prices finite and > 0, volumes finite and >= 0.
CREATE TABLE IF NOT EXISTS dataset_bars (
    dataset       text             NOT NULL REFERENCES datasets (name) ON DELETE CASCADE,
    start         timestamptz      NOT NULL,
    open          double precision NOT NULL CHECK (open > 0 AND open < 'Infinity'),
    high          double precision NOT NULL CHECK (high > 0 AND high < 'Infinity'),
    low           double precision NOT NULL CHECK (low > 0 AND low < 'Infinity'),
    close         double precision NOT NULL CHECK (close > 0 AND close < 'Infinity'),
    volume        double precision NOT NULL CHECK (volume >= 0 AND volume < 'Infinity'),
    quote_volume  double precision NOT NULL
        CHECK (quote_volume >= 0 AND quote_volume < 'Infinity'),
    trades        integer          CHECK (trades >= 0),
    vwap          double precision CHECK (vwap > 0 AND vwap < 'Infinity'),
    buy_volume    double precision NOT NULL
        CHECK (buy_volume >= 0 AND buy_volume < 'Infinity'),
    CHECK (low <= LEAST(open, close) AND GREATEST(open, close) <= high),
    PRIMARY KEY (dataset, start)
);

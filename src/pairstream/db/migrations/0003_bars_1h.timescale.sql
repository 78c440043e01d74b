-- pairstream: no-transaction
-- A continuous aggregate cannot be created inside a transaction block.
-- Real-time (materialized_only = false): the hour still being materialized is
-- computed from the 1m bars on read, so queries see the latest bars.
CREATE MATERIALIZED VIEW IF NOT EXISTS bars_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(INTERVAL '1 hour', start) AS start,
       first(open, start) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, start) AS close,
       sum(volume) AS volume,
       sum(quote_volume) AS quote_volume,
       sum(trades) AS trades,
       sum(quote_volume) / sum(volume) AS vwap,
       sum(buy_volume) AS buy_volume,
       min(first_trade_id) AS first_trade_id,
       max(last_trade_id) AS last_trade_id
FROM bars
WHERE tf = '1m' AND final
GROUP BY symbol, time_bucket(INTERVAL '1 hour', start)
WITH NO DATA;
SELECT add_continuous_aggregate_policy('bars_1h',
    start_offset => INTERVAL '2 days',
    end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '5 minutes',
    if_not_exists => TRUE);

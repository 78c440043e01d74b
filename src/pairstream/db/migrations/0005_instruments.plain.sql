-- bars are keyed by instrument; bars_1h groups by it (columns as on TimescaleDB).
DROP VIEW IF EXISTS bars_1h;
ALTER TABLE bars DROP CONSTRAINT IF EXISTS bars_pkey;
ALTER TABLE bars ADD CONSTRAINT bars_pkey PRIMARY KEY (market, symbol, tf, start);
CREATE VIEW bars_1h AS
SELECT market,
       symbol,
       date_trunc('hour', start) AS start,
       (array_agg(open ORDER BY start))[1] AS open,
       max(high) AS high,
       min(low) AS low,
       (array_agg(close ORDER BY start DESC))[1] AS close,
       sum(volume) AS volume,
       sum(quote_volume) AS quote_volume,
       sum(trades) AS trades,
       sum(quote_volume) / sum(volume) AS vwap,
       sum(buy_volume) AS buy_volume,
       min(first_trade_id) AS first_trade_id,
       max(last_trade_id) AS last_trade_id
FROM bars
WHERE tf = '1m' AND final
GROUP BY market, symbol, date_trunc('hour', start);

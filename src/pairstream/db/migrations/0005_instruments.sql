-- Instruments (market + symbol, DESIGN §10): spot and USD-M bars of one symbol are
-- two series, and pair names carry each leg's market (`usdm:BTCUSDT-usdm:ETHUSDT`).
-- Names written before this migration had bare legs of the default market, usdm.
UPDATE analytics_spread
   SET pair = regexp_replace(pair, '^([A-Z0-9]+)-([A-Z0-9]+)$', 'usdm:\1-usdm:\2')
 WHERE pair !~ ':';
UPDATE analytics_zscore
   SET pair = regexp_replace(pair, '^([A-Z0-9]+)-([A-Z0-9]+)$', 'usdm:\1-usdm:\2')
 WHERE pair !~ ':';
UPDATE analytics_stats
   SET pair = regexp_replace(pair, '^([A-Z0-9]+)-([A-Z0-9]+)$', 'usdm:\1-usdm:\2')
 WHERE pair !~ ':';
UPDATE analytics_checkpoints
   SET pair = regexp_replace(pair, '^([A-Z0-9]+)-([A-Z0-9]+)$', 'usdm:\1-usdm:\2')
 WHERE pair !~ ':';
UPDATE pair_scan SET y = 'usdm:' || y WHERE y !~ ':';
UPDATE pair_scan SET x = 'usdm:' || x WHERE x !~ ':';
DROP INDEX IF EXISTS ticks_symbol_ts_event;
CREATE INDEX IF NOT EXISTS ticks_market_symbol_ts_event ON ticks (market, symbol, ts_event DESC);

-- Plain PostgreSQL: time indexes in place of hypertable chunks.
CREATE INDEX IF NOT EXISTS ticks_ts_event_brin ON ticks USING brin (ts_event);
CREATE INDEX IF NOT EXISTS ticks_symbol_ts_event ON ticks (symbol, ts_event DESC);
CREATE INDEX IF NOT EXISTS bars_tf_start ON bars (tf, start DESC);

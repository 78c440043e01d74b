-- TimescaleDB: hypertables partitioned by event time, compressed by symbol.
SELECT create_hypertable('ticks', 'ts_event', chunk_time_interval => INTERVAL '1 hour',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('bars', 'start', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE ticks SET (timescaledb.compress,
                       timescaledb.compress_segmentby = 'exchange, market, symbol',
                       timescaledb.compress_orderby = 'ts_event, trade_id');
ALTER TABLE bars SET (timescaledb.compress,
                      timescaledb.compress_segmentby = 'symbol, tf',
                      timescaledb.compress_orderby = 'start');
CREATE INDEX IF NOT EXISTS bars_tf_start ON bars (tf, start DESC);

-- The resampler's state per input partition, written in the same transaction as
-- the bars it has produced up to `next_offset` (see pairstream_resampler.store).
CREATE TABLE IF NOT EXISTS resampler_checkpoints (
    group_id     text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL CHECK (partition >= 0),
    next_offset  bigint      NOT NULL CHECK (next_offset >= 0),
    state        bytea       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Alerts (pairstream.alerts, pairstream_alerts).
--
-- alert_rules: every change of a rule is a new row (id, version); the newest version
-- is the rule, `deleted` marks a removal. Writers NOTIFY pairstream_alert_rules so
-- running services reload within a second.
CREATE TABLE IF NOT EXISTS alert_rules (
    id          text        NOT NULL,
    version     integer     NOT NULL CHECK (version >= 1),
    spec        jsonb       NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text        NOT NULL DEFAULT '',
    PRIMARY KEY (id, version)
);

CREATE TABLE IF NOT EXISTS alert_silences (
    id          text        PRIMARY KEY,
    spec        jsonb       NOT NULL,
    until       timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per episode, upserted by alert_id as it moves firing → resolved / nodata.
CREATE TABLE IF NOT EXISTS alert_history (
    alert_id      uuid             PRIMARY KEY,
    rule_id       text             NOT NULL,
    rule_version  integer          NOT NULL,
    subject       text             NOT NULL,
    tf            text             NOT NULL,
    method        text,
    severity      text             NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    kind          text             NOT NULL,
    state         text             NOT NULL CHECK (state IN ('firing', 'resolved', 'nodata')),
    started_ts    timestamptz      NOT NULL,
    ended_ts      timestamptz,
    value         double precision,
    threshold     double precision,
    message       text             NOT NULL,
    labels        jsonb            NOT NULL DEFAULT '{}',
    updated_at    timestamptz      NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_history_started ON alert_history (started_ts DESC);
CREATE INDEX IF NOT EXISTS alert_history_rule ON alert_history (rule_id, started_ts DESC);
CREATE INDEX IF NOT EXISTS alert_history_subject ON alert_history (subject, started_ts DESC);

-- Every transition (what the alerts topic carries), once per event_id.
CREATE TABLE IF NOT EXISTS alert_events (
    event_id   uuid        PRIMARY KEY,
    alert_id   uuid        NOT NULL,
    state      text        NOT NULL,
    ts         timestamptz NOT NULL,
    payload    jsonb       NOT NULL,
    ts_init    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id, ts);

-- Notifications to send, written in the same transaction as the events: one row per
-- (event, channel); the notifier delivers, retries and finally dead-letters them.
CREATE TABLE IF NOT EXISTS alert_outbox (
    seq            bigserial   NOT NULL,
    event_id       uuid        NOT NULL,
    channel        text        NOT NULL,
    payload        jsonb       NOT NULL,
    status         text        NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'sent', 'dead', 'silenced', 'held')),
    attempts       integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    next_attempt   timestamptz NOT NULL,
    sent_at        timestamptz,
    last_error     text,
    PRIMARY KEY (event_id, channel)
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox (next_attempt) WHERE status = 'pending';

-- The engine's state per feed (subject, tf, method) and the consumed offsets per
-- partition, written with the events: a restart resumes exactly where it stopped.
CREATE TABLE IF NOT EXISTS alert_engine_state (
    group_id   text    NOT NULL,
    feed       text    NOT NULL,
    topic      text    NOT NULL,
    partition  integer NOT NULL CHECK (partition >= 0),
    state      bytea   NOT NULL,
    PRIMARY KEY (group_id, feed)
);

CREATE TABLE IF NOT EXISTS alert_offsets (
    group_id            text    NOT NULL,
    topic               text    NOT NULL,
    partition           integer NOT NULL CHECK (partition >= 0),
    next_offset         bigint  NOT NULL CHECK (next_offset >= 0),
    anchor_offset       bigint  CHECK (anchor_offset >= 0),
    anchor_fingerprint  bytea,
    PRIMARY KEY (group_id, topic, partition)
);

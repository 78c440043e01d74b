-- API keys of the API service: only a SHA-256 of each key is kept (keys are 32 random
-- bytes, so a fast hash is enough); `scope` read or write; a revoked key stays, marked.
CREATE TABLE IF NOT EXISTS api_keys (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    scope       text        NOT NULL CHECK (scope IN ('read', 'write')),
    hash        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

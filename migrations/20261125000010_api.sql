-- State owned by the HTTP API itself (not derived from the log): refresh tokens and
-- idempotency keys. Neither is a read model; neither is rebuilt by replay.
CREATE SCHEMA IF NOT EXISTS api;

-- Rotating refresh tokens. Only a SHA-256 of each token is stored. A token is used once: using
-- it marks it and issues a successor in the same family; presenting a used token again means it
-- leaked, and the whole family is revoked.
CREATE TABLE api.refresh_tokens (
    token_hash  bytea       PRIMARY KEY,
    user_id     uuid        NOT NULL,
    family_id   uuid        NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_user ON api.refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family ON api.refresh_tokens (family_id);

-- Idempotency-Key: the first request with a key claims the row; repeats with the same body get
-- the stored response, a different body is refused. A row without a response is in progress.
CREATE TABLE api.idempotency_keys (
    user_id         uuid        NOT NULL,
    route           text        NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    bytea       NOT NULL,
    response_status smallint,
    response_headers jsonb,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    PRIMARY KEY (user_id, route, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON api.idempotency_keys (created_at);

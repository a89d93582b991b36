-- The operators' console: its sign-in sessions, and the index that finds the events a process
-- wrote in reaction to an event (the console's "caused" links, `GET /admin/events?causation_id=`).

CREATE INDEX events_causation_idx ON events ((metadata ->> 'causation_id'))
    WHERE metadata ? 'causation_id';

-- A console session: the cookie carries a random token, the table its SHA-256 only, so a copy of
-- the table signs nobody in. `csrf` is the token every state-changing form must carry.
CREATE TABLE api.console_sessions (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL,
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_user_idx ON api.console_sessions (user_id);
CREATE INDEX console_sessions_expires_idx ON api.console_sessions (expires_at);

-- The token signing key the platform made itself: `serve` (or any API in dev) started without
-- JWT_SECRET generates one on first start and every API process on this database signs with it,
-- so sessions survive restarts. One row at most; a secret, so never in the event log.
CREATE TABLE api.signing_key (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

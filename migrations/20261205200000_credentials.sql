-- Guarantee 9: no secret in the log. A user's password hash is a write-side credential, kept here
-- and changed in the same transaction as the `UserRegistered`/`PasswordChanged` event that records
-- the change; logins read it from here. Neither the events, the broker nor any read model holds it.
CREATE TABLE user_credentials (
    user_id       uuid        PRIMARY KEY,
    password_hash text        NOT NULL CHECK (password_hash <> ''),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Every rewrite of history on record. There is exactly one sanctioned kind (docs/audit.md): the
-- redaction below, done once, before the hash chain of the log starts.
CREATE TABLE audit_redactions (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    description      text        NOT NULL,
    events_rewritten bigint      NOT NULL
);

-- Deployments from before this rule: each user's current hash is the one of the last event of
-- their stream that carried one (a stream's sequence is its log order).
INSERT INTO user_credentials (user_id, password_hash, updated_at)
SELECT DISTINCT ON (aggregate_id)
       aggregate_id::uuid, payload -> event_type ->> 'password_hash', recorded_at
FROM events
WHERE aggregate_type = 'User'
  AND event_type IN ('UserRegistered', 'PasswordChanged')
  AND coalesce(payload -> event_type ->> 'password_hash', '') <> ''
ORDER BY aggregate_id, sequence DESC;

-- Then the one-time redaction: the hash leaves the old payloads. The immutability trigger is off
-- for this statement only, inside this migration's transaction (nobody sees it off).
ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete;

WITH rewritten AS (
    UPDATE events
    SET payload = jsonb_set(payload, ARRAY[event_type], (payload -> event_type) - 'password_hash')
    WHERE aggregate_type = 'User'
      AND event_type IN ('UserRegistered', 'PasswordChanged')
      AND payload -> event_type ? 'password_hash'
    RETURNING 1
)
INSERT INTO audit_redactions (description, events_rewritten)
SELECT 'password hashes removed from UserRegistered and PasswordChanged payloads; each user''s '
       'latest hash moved to user_credentials (guarantee 9, migration 20261205200000)',
       count(*)
FROM rewritten;

ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete;

-- Snapshots of users held the hash too; they are shortcuts, the next load replays the stream.
DELETE FROM aggregate_snapshots WHERE aggregate_type = 'User';

-- Notifications: the user's messages (welcome, order confirmed, payment failed, order shipped,
-- refund). Written by the `notifications` process in its consumer's transaction (guarantee 4);
-- emailed by the notification sender when SMTP is configured.
CREATE SCHEMA IF NOT EXISTS notifications;

-- Who to write to: kept from `UserRegistered` and `ProfileUpdated`, in log order.
CREATE TABLE notifications.recipients (
    user_id     uuid        PRIMARY KEY,
    email       text        NOT NULL,
    name        text        NOT NULL,
    -- The recorded_at of the last event applied, so a rebuild reproduces it.
    updated_at  timestamptz NOT NULL
);

CREATE TABLE notifications.notifications (
    -- UUID v5 of (triggering event id, type): a replayed event produces the same id.
    id                  uuid        PRIMARY KEY,
    user_id             uuid        NOT NULL,
    type                text        NOT NULL
                        CHECK (type IN ('WELCOME', 'ORDER_CONFIRMED', 'PAYMENT_FAILED',
                                        'ORDER_SHIPPED', 'REFUND')),
    channel             text        NOT NULL CHECK (channel IN ('email', 'in_app')),
    subject             text        NOT NULL,
    body                text        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
    triggering_event_id uuid        NOT NULL,
    -- The triggering event's recorded_at, so a rebuild reproduces it.
    created_at          timestamptz NOT NULL,
    sent_at             timestamptz,
    -- Email delivery: attempts so far, the last failure, and when the next attempt is due.
    attempts            int         NOT NULL DEFAULT 0,
    last_error          text,
    next_attempt_at     timestamptz NOT NULL DEFAULT '-infinity',
    -- Each is sent once per triggering event, across redeliveries, restarts and replays.
    CONSTRAINT notifications_once_per_trigger UNIQUE (triggering_event_id, type)
);

-- GET /notifications: a user's, newest first.
CREATE INDEX notifications_user_created_idx
    ON notifications.notifications (user_id, created_at DESC);
-- The sender's queue: only what is still to be emailed.
CREATE INDEX notifications_pending_idx
    ON notifications.notifications (next_attempt_at, created_at)
    WHERE status = 'PENDING';

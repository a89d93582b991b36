-- Guarantee 9, second half: personal data can be forgotten (crypto-shredding). Personal fields of
-- events (email, name, phone, shipping address, review text) are encrypted with a data key per
-- person; the keys live here, outside the log, each wrapped (AES-256-GCM) by the master key from
-- DATA_KEY. Erasing a person destroys their key: the ciphertext in the log stays (hashes and seals
-- still verify) and can no longer be read by anyone.
CREATE TABLE data_keys (
    subject    uuid        PRIMARY KEY,
    -- nonce (12 bytes) || the data key encrypted under the master key (32 + 16 bytes of tag);
    -- NULL once erased.
    wrapped    bytea       CHECK (wrapped IS NULL OR length(wrapped) = 60),
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at  timestamptz,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL))
);

-- The keyring itself, one row: the key of the email index (a user's id is a keyed hash of the
-- normalised email, so the id reveals nothing), wrapped like a data key. Unwrapping it is also how
-- a process tells a wrong DATA_KEY from the right one before it writes anything.
CREATE TABLE keyring (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    email_index bytea       NOT NULL CHECK (length(email_index) = 60),
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz
);

-- The master key `serve` generated in dev when DATA_KEY was not set (like api.signing_key): a
-- development convenience only; `prod` refuses to start without DATA_KEY and never reads this.
CREATE TABLE dev_data_key (
    id         boolean     PRIMARY KEY DEFAULT true CHECK (id),
    key        text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A snapshot is a plaintext copy of an aggregate's state: aggregates holding personal data are
-- no longer snapshotted (the store refuses), and the ones taken before this release go, so an
-- erasure leaves no copy behind. Snapshots are a cache: loads fold these streams from the log.
DELETE FROM aggregate_snapshots WHERE aggregate_type IN ('User', 'Order', 'Review');

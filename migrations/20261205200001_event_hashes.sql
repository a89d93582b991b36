-- Guarantee 10: tampering is evident. Every event stores the SHA-256 of its content as stored, and
-- a sealer chains those hashes in log order into `log_seals` (event-store/src/sealer.rs). Runs
-- after the credentials redaction (20261205200000): the chain covers the redacted payloads.

-- The content of an event, as one canonical byte string: the UTF-8 text of a JSON array of the
-- stored columns (jsonb's text form is canonical: one key order, one spacing). The only definition
-- of the hash: the append, the backfill, the fill-in trigger and `verify` all call it.
CREATE FUNCTION event_content_hash(
    aggregate_type text, aggregate_id text, sequence bigint, event_type text,
    event_version text, payload jsonb, metadata jsonb
) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(jsonb_build_array(
        aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
    )::text, 'UTF8'))
$$;

ALTER TABLE events ADD COLUMN content_hash bytea;

-- Events appended before this migration get their hash now. No content changes; the trigger is
-- off for this statement only, inside this migration's transaction, and the backfill is recorded.
ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete;

WITH hashed AS (
    UPDATE events
    SET content_hash = event_content_hash(aggregate_type, aggregate_id, sequence, event_type,
                                          event_version, payload, metadata)
    RETURNING 1
)
INSERT INTO audit_redactions (description, events_rewritten)
SELECT 'content hashes computed for the events appended before they existed; no payload or '
       'metadata changed (guarantee 10, migration 20261205200001)',
       count(*)
FROM hashed;

ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete;
ALTER TABLE events ALTER COLUMN content_hash SET NOT NULL;

-- Our append computes the hash in its INSERT; any other writer (postgres-es's `persist`, a row
-- typed by hand) gets it here. The condition keeps the trigger off our hot path.
CREATE FUNCTION events_fill_content_hash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.content_hash := event_content_hash(NEW.aggregate_type, NEW.aggregate_id, NEW.sequence,
        NEW.event_type, NEW.event_version, NEW.payload, NEW.metadata);
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_content_hash
    BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.content_hash IS NULL)
    EXECUTE FUNCTION events_fill_content_hash();

-- The chain. Seal n covers the events after seal n-1's last one up to its own, in log order:
-- `seal = SHA-256(previous seal ‖ for each event: transaction id, position (8 bytes big-endian
-- each) ‖ content hash)`, with 32 zero bytes before the first seal. The lists are kept so that
-- `verify` can name the first event that differs, not just the seal.
CREATE TABLE log_seals (
    seal_id          bigint      PRIMARY KEY CHECK (seal_id >= 1),
    -- The last event covered (the cursor the next seal starts after).
    transaction_id   bigint      NOT NULL,
    global_position  bigint      NOT NULL,
    transaction_ids  bigint[]    NOT NULL,
    positions        bigint[]    NOT NULL,
    hashes           bytea[]     NOT NULL,
    seal             bytea       NOT NULL,
    sealed_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(positions) >= 1
           AND cardinality(positions) = cardinality(transaction_ids)
           AND cardinality(positions) = cardinality(hashes))
);

-- Seals are history too; the immutability error now names the table it guards.
CREATE OR REPLACE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the % table is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER log_seals_no_update_or_delete
    BEFORE UPDATE OR DELETE ON log_seals
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();

CREATE TRIGGER log_seals_no_truncate
    BEFORE TRUNCATE ON log_seals
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

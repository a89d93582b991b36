-- Deliveries a consumer received for events it had already applied (at-least-once delivery:
-- a relay fail-over, a redelivery after a lost ack), acknowledged and ignored (guarantee 4).
-- Counted in the same transaction as the cursor, so operators see exactly how many arrived.
ALTER TABLE consumer_checkpoints ADD COLUMN duplicates_ignored bigint NOT NULL DEFAULT 0;

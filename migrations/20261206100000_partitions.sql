-- Partitioned consumers (`commerce project --only NAME --partitions N`): the projection's own row
-- records N and stops being a cursor; each partition has a row `<name>.p<k>` of its own, with its
-- own cursor, state, retry and skip.
ALTER TABLE consumer_checkpoints DROP CONSTRAINT IF EXISTS consumer_checkpoints_status_check;
ALTER TABLE consumer_checkpoints
    ADD CONSTRAINT consumer_checkpoints_status_check
        CHECK (status IN ('CATCHING_UP', 'LIVE', 'REBUILDING', 'FAILED', 'PARTITIONED')),
    ADD COLUMN partitions      integer CHECK (partitions BETWEEN 2 AND 64),
    ADD COLUMN partition_of    text REFERENCES consumer_checkpoints (name) ON DELETE CASCADE,
    ADD COLUMN partition_index integer,
    ADD CONSTRAINT consumer_checkpoints_partition_check
        CHECK ((partition_of IS NULL) = (partition_index IS NULL) AND partition_index >= 0);

CREATE INDEX consumer_checkpoints_partition_of_idx
    ON consumer_checkpoints (partition_of) WHERE partition_of IS NOT NULL;

-- Where each consumer stands for readers waiting on it (read-your-writes): its own cursor, or
-- for a partitioned projection the cursor of its furthest-behind partition (every partition
-- advances on the relay's position markers, so the least of them says what is applied).
CREATE VIEW consumer_cursors AS
SELECT DISTINCT ON (coalesce(partition_of, name))
       coalesce(partition_of, name) AS name, transaction_id, global_position
FROM consumer_checkpoints
WHERE partitions IS NULL
ORDER BY coalesce(partition_of, name), transaction_id, global_position;

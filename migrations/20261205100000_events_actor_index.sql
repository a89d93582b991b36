-- Read-your-writes by default (guarantee 7): a signed-in caller's read finds the position of that
-- caller's latest event (`metadata ->> 'actor'`) with one backward index scan, and waits until the
-- read model behind the query has applied it.
CREATE INDEX events_actor_idx ON events ((metadata ->> 'actor'), transaction_id, global_position);

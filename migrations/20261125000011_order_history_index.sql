-- `GET /orders/{id}/history` finds the payment and stock events of an order by the order id in
-- their payload. cqrs-es stores an event as {"<EventType>": {fields}}, so the id sits at
-- payload -> event_type ->> 'order_id'. Partial: only these two streams carry order ids that
-- the history reads, and the query repeats this predicate so the planner can use the index.
CREATE INDEX events_order_ref_idx ON events ((payload -> event_type ->> 'order_id'))
    WHERE aggregate_type IN ('Payment', 'Inventory');

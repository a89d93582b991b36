//! Process managers: durable consumers that react to events with new commands.
//!
//! Each is an [`EventHandler`](commerce_event_store::EventHandler) run by a
//! [`DurableConsumer`](commerce_event_store::DurableConsumer), so it catches up from the log after
//! a restart and its own state commits with its cursor. The commands it sends are separate
//! transactions; every step is idempotent, so a redelivered event changes nothing twice.

pub mod deadlines;
pub mod order_fulfilment;

//! Erasure in read models (guarantee 9): a `User.PersonalDataErased` event scrubs the person's
//! personal fields from every read model that copied them, to exactly what a replay of the log
//! (whose sealed fields now open as [`commerce_domain::ERASED`]) builds, so rebuilt and live read
//! models stay equal.

use commerce_domain::user::User;
use commerce_event_store::StoredEvent;
use cqrs_es::Aggregate;
use uuid::Uuid;

/// The event type that erases a person.
const ERASED_EVENT: &str = "PersonalDataErased";

/// The routing key of erasures, for projections whose read model holds personal fields of
/// events of other aggregates.
pub fn binding() -> String {
    format!("{}.{ERASED_EVENT}", User::TYPE)
}

/// The person `event` erases, if it is an erasure.
pub fn erased_person(event: &StoredEvent) -> Option<Uuid> {
    if event.aggregate_type == User::TYPE && event.event_type == ERASED_EVENT {
        event.aggregate_id.parse().ok()
    } else {
        None
    }
}

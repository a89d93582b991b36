use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use proptest::prelude::*;

use super::*;
use crate::error::{DomainError, ErrorKind};

type InventoryTest = TestFramework<Inventory>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn product() -> Uuid {
    Uuid::from_u128(100)
}

fn order(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn adjusted(available_after: i64) -> InventoryEvent {
    InventoryEvent::StockAdjusted {
        product_id: product(),
        delta: available_after,
        available_before: 0,
        available_after,
        reserved: 0,
        reason: None,
        at: at(),
    }
}

fn adjust(adjustment: StockAdjustment) -> InventoryCommand {
    InventoryCommand::AdjustStock {
        product_id: product(),
        adjustment,
        reason: Some("count".into()),
        at: at(),
    }
}

fn reserve(order_id: Uuid, quantity: u32) -> InventoryCommand {
    InventoryCommand::ReserveStock {
        product_id: product(),
        order_id,
        quantity,
        at: at(),
    }
}

fn reserved(
    order_id: Uuid,
    quantity: u32,
    available_after: i64,
    reserved_after: i64,
) -> InventoryEvent {
    InventoryEvent::StockReserved {
        product_id: product(),
        order_id,
        quantity,
        available_after,
        reserved_after,
        at: at(),
    }
}

fn release(order_id: Uuid) -> InventoryCommand {
    InventoryCommand::ReleaseStock {
        product_id: product(),
        order_id,
        at: at(),
    }
}

fn commit(order_id: Uuid) -> InventoryCommand {
    InventoryCommand::CommitStock {
        product_id: product(),
        order_id,
        at: at(),
    }
}

fn stocked_with_reservation() -> Vec<InventoryEvent> {
    vec![adjusted(10), reserved(order(1), 4, 6, 4)]
}

#[test]
fn the_first_adjustment_creates_the_inventory() {
    InventoryTest::with(())
        .given_no_previous_events()
        .when(adjust(StockAdjustment::Add(10)))
        .then_expect_events(vec![InventoryEvent::StockAdjusted {
            product_id: product(),
            delta: 10,
            available_before: 0,
            available_after: 10,
            reserved: 0,
            reason: Some("count".into()),
            at: at(),
        }]);
}

#[test]
fn setting_stock_sets_the_total_on_hand_around_the_reserved_units() {
    let result = InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(adjust(StockAdjustment::Set(5)))
        .inspect_result()
        .unwrap();
    assert!(matches!(
        result[..],
        [InventoryEvent::StockAdjusted {
            delta: -5,
            available_before: 6,
            available_after: 1,
            reserved: 4,
            ..
        }]
    ));
}

#[test]
fn setting_stock_below_what_is_reserved_is_rejected() {
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(adjust(StockAdjustment::Set(3)))
        .then_expect_error(InventoryError::BelowReserved {
            requested_total: 3,
            reserved: 4,
        });
    assert_eq!(
        InventoryError::BelowReserved {
            requested_total: 0,
            reserved: 1
        }
        .kind(),
        ErrorKind::Conflict
    );
}

#[test]
fn subtracting_more_than_available_is_rejected() {
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(adjust(StockAdjustment::Subtract(7)))
        .then_expect_error(InventoryError::InsufficientStock {
            requested: 7,
            available: 6,
        });
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(adjust(StockAdjustment::Delta(-7)))
        .then_expect_error(InventoryError::InsufficientStock {
            requested: 7,
            available: 6,
        });
}

#[test]
fn adjusting_with_an_overlong_reason_is_rejected() {
    InventoryTest::with(())
        .given_no_previous_events()
        .when(InventoryCommand::AdjustStock {
            product_id: product(),
            adjustment: StockAdjustment::Add(1),
            reason: Some("r".repeat(501)),
            at: at(),
        })
        .then_expect_error(InventoryError::ReasonTooLong { length: 501 });
}

#[test]
fn a_command_for_another_product_is_rejected() {
    InventoryTest::with(())
        .given(vec![adjusted(10)])
        .when(InventoryCommand::ReserveStock {
            product_id: order(9),
            order_id: order(1),
            quantity: 1,
            at: at(),
        })
        .then_expect_error(InventoryError::ProductMismatch {
            expected: product(),
            given: order(9),
        });
}

#[test]
fn reserving_available_stock_moves_it_to_reserved() {
    InventoryTest::with(())
        .given(vec![adjusted(10)])
        .when(reserve(order(1), 4))
        .then_expect_events(vec![reserved(order(1), 4, 6, 4)]);
}

#[test]
fn reserving_more_than_available_is_rejected_with_an_event() {
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(reserve(order(2), 7))
        .then_expect_events(vec![InventoryEvent::StockReservationRejected {
            product_id: product(),
            order_id: order(2),
            requested: 7,
            available: 6,
            at: at(),
        }]);
}

#[test]
fn reserving_on_a_never_stocked_inventory_is_rejected_with_an_event() {
    InventoryTest::with(())
        .given_no_previous_events()
        .when(reserve(order(2), 1))
        .then_expect_events(vec![InventoryEvent::StockReservationRejected {
            product_id: product(),
            order_id: order(2),
            requested: 1,
            available: 0,
            at: at(),
        }]);
}

#[test]
fn reserving_zero_units_is_rejected() {
    InventoryTest::with(())
        .given(vec![adjusted(10)])
        .when(reserve(order(1), 0))
        .then_expect_error(InventoryError::ZeroQuantity);
}

#[test]
fn reserving_twice_for_one_order_emits_nothing_the_second_time() {
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(reserve(order(1), 4))
        .then_expect_events(vec![]);
    let rejected = InventoryEvent::StockReservationRejected {
        product_id: product(),
        order_id: order(2),
        requested: 99,
        available: 6,
        at: at(),
    };
    let mut given = stocked_with_reservation();
    given.push(rejected);
    InventoryTest::with(())
        .given(given)
        .when(reserve(order(2), 1))
        .then_expect_events(vec![]);
}

#[test]
fn releasing_a_reservation_returns_it_to_available() {
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(release(order(1)))
        .then_expect_events(vec![InventoryEvent::StockReleased {
            product_id: product(),
            order_id: order(1),
            quantity: 4,
            available_after: 10,
            reserved_after: 0,
            at: at(),
        }]);
}

#[test]
fn releasing_without_a_reservation_emits_nothing() {
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(release(order(2)))
        .then_expect_events(vec![]);
    InventoryTest::with(())
        .given_no_previous_events()
        .when(release(order(2)))
        .then_expect_events(vec![]);
}

#[test]
fn committing_a_reservation_removes_it_from_reserved_only() {
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(commit(order(1)))
        .then_expect_events(vec![InventoryEvent::StockCommitted {
            product_id: product(),
            order_id: order(1),
            quantity: 4,
            reserved_after: 0,
            at: at(),
        }]);
}

#[test]
fn committing_twice_emits_nothing_the_second_time() {
    let mut given = stocked_with_reservation();
    given.push(InventoryEvent::StockCommitted {
        product_id: product(),
        order_id: order(1),
        quantity: 4,
        reserved_after: 0,
        at: at(),
    });
    InventoryTest::with(())
        .given(given.clone())
        .when(commit(order(1)))
        .then_expect_events(vec![]);
    InventoryTest::with(())
        .given(given.clone())
        .when(release(order(1)))
        .then_expect_events(vec![]);
    InventoryTest::with(())
        .given(given)
        .when(reserve(order(1), 4))
        .then_expect_events(vec![]);
}

fn give_back(order_id: Uuid, quantity: u32) -> InventoryCommand {
    InventoryCommand::ReturnStock {
        product_id: product(),
        order_id,
        quantity,
        at: at(),
    }
}

#[test]
fn returning_a_cancelled_orders_committed_stock_makes_it_available_once() {
    let mut given = stocked_with_reservation();
    let mut folded = Inventory::default();
    for event in &given {
        folded.apply(event.clone());
    }
    let available = folded.available();
    given.push(InventoryEvent::StockCommitted {
        product_id: product(),
        order_id: order(1),
        quantity: 4,
        reserved_after: 0,
        at: at(),
    });
    let returned = InventoryEvent::StockReturned {
        product_id: product(),
        order_id: order(1),
        quantity: 4,
        available_after: available + 4,
        reserved: 0,
        at: at(),
    };
    InventoryTest::with(())
        .given(given.clone())
        .when(give_back(order(1), 4))
        .then_expect_events(vec![returned.clone()]);
    given.push(returned);
    InventoryTest::with(())
        .given(given)
        .when(give_back(order(1), 4))
        .then_expect_events(vec![]);
}

#[test]
fn returning_stock_that_was_never_committed_emits_nothing() {
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(give_back(order(1), 4))
        .then_expect_events(vec![]);
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(give_back(order(1), 0))
        .then_expect_error(InventoryError::ZeroQuantity);
}

#[test]
fn committing_without_a_reservation_is_rejected() {
    InventoryTest::with(())
        .given(stocked_with_reservation())
        .when(commit(order(2)))
        .then_expect_error(InventoryError::NoReservation { order_id: order(2) });
    InventoryTest::with(())
        .given_no_previous_events()
        .when(commit(order(2)))
        .then_expect_error(InventoryError::NotFound);
}

fn any_command() -> impl Strategy<Value = InventoryCommand> {
    let order_id = (1_u128..6).prop_map(order);
    let adjustment = prop_oneof![
        (0_u32..50).prop_map(StockAdjustment::Add),
        (0_u32..50).prop_map(StockAdjustment::Subtract),
        (0_u32..80).prop_map(StockAdjustment::Set),
        (-60_i64..60).prop_map(StockAdjustment::Delta),
        Just(StockAdjustment::Delta(i64::MIN)),
        Just(StockAdjustment::Delta(i64::MAX)),
    ];
    prop_oneof![
        adjustment.prop_map(adjust),
        (order_id.clone(), 0_u32..30).prop_map(|(o, q)| reserve(o, q)),
        order_id.clone().prop_map(release),
        order_id.prop_map(commit),
    ]
}

proptest! {
    #[test]
    fn any_sequence_of_inventory_commands_keeps_the_stock_invariants(
        commands in proptest::collection::vec(any_command(), 1..60)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut inventory = Inventory::default();
        let mut history = Vec::new();
        for command in commands {
            let before = inventory.clone();
            let sink = EventSink::default();
            let result = runtime.block_on(inventory.handle(command, &(), &sink));
            let events = runtime.block_on(sink.collect());
            if result.is_err() {
                prop_assert!(events.is_empty());
                prop_assert_eq!(&inventory, &before);
            }
            history.extend(events);
            prop_assert!(inventory.available() >= 0);
            prop_assert!(inventory.reserved() >= 0);
            prop_assert_eq!(inventory.total(), inventory.available() + inventory.reserved());
            let held: i64 = inventory.reservations.values().map(|&q| i64::from(q)).sum();
            prop_assert_eq!(inventory.reserved(), held);
        }
        // Replaying the log rebuilds exactly the same state.
        let mut replayed = Inventory::default();
        for event in history {
            replayed.apply(event);
        }
        prop_assert_eq!(&replayed, &inventory);
        // A snapshot of the state reads back as the same state.
        let snapshot = serde_json::to_string(&inventory).unwrap();
        prop_assert_eq!(serde_json::from_str::<Inventory>(&snapshot).unwrap(), inventory);
    }
}

proptest! {
    /// Against a ledger the test keeps from the commands' outcomes alone (never from `apply`):
    /// units are conserved (only adjustments and commits change the stock on hand), a reservation
    /// takes no more than was available and a rejection only happens when too little was, each
    /// order holds at most one reservation at a time, and a release or commit gives back exactly
    /// what that order held.
    #[test]
    fn stock_is_conserved_and_reservations_are_all_or_nothing_against_an_independent_ledger(
        commands in proptest::collection::vec(any_command(), 1..80)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut inventory = Inventory::default();
        let mut on_hand: i64 = 0;
        let mut held: std::collections::HashMap<Uuid, u32> = std::collections::HashMap::new();
        for command in commands {
            let available_before = inventory.available();
            let sink = EventSink::default();
            let _ = runtime.block_on(inventory.handle(command, &(), &sink));
            for event in runtime.block_on(sink.collect()) {
                match event {
                    InventoryEvent::StockAdjusted { delta, .. } => on_hand += delta,
                    InventoryEvent::StockReserved { order_id, quantity, .. } => {
                        prop_assert!(i64::from(quantity) <= available_before);
                        prop_assert!(held.insert(order_id, quantity).is_none(), "reserved twice");
                    }
                    InventoryEvent::StockReservationRejected { requested, .. } => {
                        prop_assert!(i64::from(requested) > available_before);
                    }
                    InventoryEvent::StockReleased { order_id, quantity, .. } => {
                        prop_assert_eq!(held.remove(&order_id), Some(quantity));
                    }
                    InventoryEvent::StockCommitted { order_id, quantity, .. } => {
                        prop_assert_eq!(held.remove(&order_id), Some(quantity));
                        on_hand -= i64::from(quantity);
                    }
                    InventoryEvent::StockReturned { quantity, .. } => {
                        on_hand += i64::from(quantity);
                    }
                }
            }
            let reserved: i64 = held.values().map(|&q| i64::from(q)).sum();
            prop_assert_eq!(inventory.reserved(), reserved);
            prop_assert_eq!(inventory.available() + inventory.reserved(), on_hand);
            prop_assert!(inventory.available() >= 0);
        }
    }
}

fn settled_every_way() -> Vec<InventoryEvent> {
    let mut events = vec![
        adjusted(10),
        reserved(order(1), 2, 8, 2),
        reserved(order(2), 3, 5, 5),
    ];
    events.push(InventoryEvent::StockReservationRejected {
        product_id: product(),
        order_id: order(3),
        requested: 50,
        available: 5,
        at: at(),
    });
    events.push(InventoryEvent::StockReleased {
        product_id: product(),
        order_id: order(1),
        quantity: 2,
        available_after: 7,
        reserved_after: 3,
        at: at(),
    });
    events.push(InventoryEvent::StockCommitted {
        product_id: product(),
        order_id: order(2),
        quantity: 3,
        reserved_after: 0,
        at: at(),
    });
    events
}

#[test]
fn settled_orders_are_snapshotted_as_one_compact_string_per_outcome() {
    let mut inventory = Inventory::default();
    for event in settled_every_way() {
        inventory.apply(event);
    }
    let snapshot = serde_json::to_value(&inventory).unwrap();
    assert_eq!(
        snapshot["settled"],
        serde_json::json!({
            "orders": "AAAAAAAAAAAAAAAAAAAAAB\
                       AAAAAAAAAAAAAAAAAAAAAC\
                       AAAAAAAAAAAAAAAAAAAAAD",
            "outcomes": "rcx",
        })
    );
    let restored: Inventory = serde_json::from_value(snapshot).unwrap();
    assert_eq!(restored, inventory);

    // Redelivered saga commands stay no-ops on the restored state.
    for command in [reserve(order(1), 1), reserve(order(3), 1), commit(order(2))] {
        let decided = restored.decide(command).unwrap();
        assert!(decided.is_empty(), "{decided:?}");
    }
}

proptest! {
    #[test]
    fn any_settled_order_id_survives_a_snapshot(
        ids in proptest::collection::vec(any::<u128>(), 0..20)
    ) {
        let mut inventory = Inventory::default();
        for id in ids.iter().copied().chain([0, u128::MAX]) {
            inventory.apply(InventoryEvent::StockReservationRejected {
                product_id: product(),
                order_id: order(id),
                requested: 1,
                available: 0,
                at: at(),
            });
        }
        let snapshot = serde_json::to_string(&inventory).unwrap();
        prop_assert_eq!(serde_json::from_str::<Inventory>(&snapshot).unwrap(), inventory);
    }
}

#[test]
fn a_malformed_settled_list_does_not_deserialise() {
    let one = "AAAAAAAAAAAAAAAAAAAAAH";
    let two = "AAAAAAAAAAAAAAAAAAAAAI";
    for (orders, outcomes) in [
        ("AAAA", "c"),                   // not a whole id
        (one, "cc"),                     // not one outcome per id
        ("AAAAAAAAAAAAAAAAAAAA!A", "c"), // outside the alphabet
        ("EAAAAAAAAAAAAAAAAAAAAA", "c"), // more than 128 bits
        (one, "z"),                      // no such outcome
        (&format!("{two}{one}"), "cc"),  // not ascending
        (&format!("{one}{one}"), "cr"),  // settled twice
    ] {
        let mut snapshot = serde_json::to_value(Inventory::default()).unwrap();
        snapshot["settled"] = serde_json::json!({ "orders": orders, "outcomes": outcomes });
        assert!(
            serde_json::from_value::<Inventory>(snapshot).is_err(),
            "{orders} {outcomes}"
        );
    }
}

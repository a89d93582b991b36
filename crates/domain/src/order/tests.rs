use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;

use super::*;
use crate::error::{DomainError, ErrorKind};
use crate::money::Currency;

type OrderTest = TestFramework<Order>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn order_id() -> Uuid {
    Uuid::from_u128(500)
}

fn user() -> Uuid {
    Uuid::from_u128(1)
}

fn product(n: u128) -> Uuid {
    Uuid::from_u128(1000 + n)
}

fn payment(n: u128) -> Uuid {
    Uuid::from_u128(9000 + n)
}

fn usd(amount_minor: i64) -> Money {
    Money::new(amount_minor, Currency::USD)
}

fn line(n: u128, quantity: u32, unit_price: Money) -> OrderLine {
    OrderLine {
        product_id: product(n),
        product_name: format!("P{n}"),
        quantity,
        unit_price,
    }
}

fn postal() -> PostalAddress {
    PostalAddress {
        line1: "1 Main St".into(),
        line2: None,
        city: "Springfield".into(),
        postal_code: "12345".into(),
        country: "US".into(),
    }
}

fn address() -> ShippingAddress {
    postal().into()
}

fn place(lines: Vec<OrderLine>) -> OrderCommand {
    place_to(lines, address())
}

fn place_to(lines: Vec<OrderLine>, shipping_address: ShippingAddress) -> OrderCommand {
    OrderCommand::PlaceOrder {
        order_id: order_id(),
        user_id: user(),
        lines,
        shipping_address,
        payment_method: "card".into(),
        at: at(),
    }
}

fn items() -> Vec<OrderLineItem> {
    vec![
        OrderLineItem {
            product_id: product(1),
            product_name: "P1".into(),
            quantity: 3,
            unit_price: usd(500),
            subtotal: usd(1500),
        },
        OrderLineItem {
            product_id: product(2),
            product_name: "P2".into(),
            quantity: 1,
            unit_price: usd(250),
            subtotal: usd(250),
        },
    ]
}

fn placed() -> OrderEvent {
    OrderEvent::OrderPlaced {
        order_id: order_id(),
        user_id: user(),
        lines: items(),
        total: usd(1750),
        shipping_address: address(),
        payment_method: "card".into(),
        at: at(),
    }
}

fn stock_reserved() -> OrderEvent {
    OrderEvent::OrderStockReserved {
        order_id: order_id(),
        at: at(),
    }
}

fn requested(n: u128) -> OrderEvent {
    OrderEvent::OrderPaymentRequested {
        order_id: order_id(),
        payment_id: payment(n),
        amount: usd(1750),
        at: at(),
    }
}

fn paid(n: u128) -> OrderEvent {
    OrderEvent::OrderPaid {
        order_id: order_id(),
        user_id: user(),
        payment_id: payment(n),
        amount: usd(1750),
        at: at(),
    }
}

fn confirmed() -> OrderEvent {
    OrderEvent::OrderConfirmed {
        order_id: order_id(),
        user_id: user(),
        total: usd(1750),
        lines: items(),
        at: at(),
    }
}

fn stock_committed() -> OrderEvent {
    OrderEvent::OrderStockCommitted {
        order_id: order_id(),
        at: at(),
    }
}

fn cancelled(
    reason: CancellationReason,
    was_paid: Option<Uuid>,
    stock_reserved: bool,
) -> OrderEvent {
    OrderEvent::OrderCancelled {
        order_id: order_id(),
        user_id: user(),
        reason,
        was_paid,
        stock_reserved,
        total: usd(1750),
        lines: items(),
        at: at(),
    }
}

fn confirmed_order() -> Vec<OrderEvent> {
    vec![
        placed(),
        stock_reserved(),
        requested(1),
        paid(1),
        confirmed(),
    ]
}

fn shipped() -> OrderEvent {
    OrderEvent::OrderShipped {
        order_id: order_id(),
        user_id: user(),
        at: at(),
    }
}

fn mark_paid(n: u128) -> OrderCommand {
    OrderCommand::MarkPaid {
        payment_id: payment(n),
        amount: usd(1750),
        at: at(),
    }
}

fn request(n: u128, amount: Money) -> OrderCommand {
    OrderCommand::RequestPayment {
        payment_id: payment(n),
        amount,
        at: at(),
    }
}

fn cancel(reason: CancellationReason) -> OrderCommand {
    OrderCommand::CancelOrder { reason, at: at() }
}

#[test]
fn placing_an_order_merges_duplicate_products_and_totals_the_lines() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(place(vec![
            line(1, 2, usd(500)),
            line(2, 1, usd(250)),
            line(1, 1, usd(500)),
        ]))
        .then_expect_events(vec![placed()]);
}

#[test]
fn placing_an_order_with_no_lines_is_rejected() {
    let error = OrderTest::with(())
        .given_no_previous_events()
        .when(place(vec![]))
        .inspect_result()
        .unwrap_err();
    assert_eq!(error, OrderError::EmptyOrder);
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

#[test]
fn placing_an_order_with_mixed_currencies_is_rejected() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(place(vec![
            line(1, 1, usd(1)),
            line(2, 1, Money::new(1, Currency::EUR)),
        ]))
        .then_expect_error(OrderError::MixedCurrencies {
            expected: Currency::USD,
            found: Currency::EUR,
        });
}

#[test]
fn placing_an_order_with_a_zero_quantity_is_rejected() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(place(vec![line(1, 0, usd(1))]))
        .then_expect_error(OrderError::InvalidQuantity {
            product_id: product(1),
        });
}

#[test]
fn placing_an_order_with_a_negative_price_is_rejected() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(place(vec![line(1, 1, usd(-1))]))
        .then_expect_error(OrderError::NegativePrice {
            product_id: product(1),
            price: usd(-1),
        });
}

#[test]
fn placing_an_order_whose_duplicate_lines_disagree_on_price_is_rejected() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(place(vec![line(1, 1, usd(1)), line(1, 1, usd(2))]))
        .then_expect_error(OrderError::ConflictingLinePrices {
            product_id: product(1),
        });
}

/// A one-line order of product 1 shipping to `shipping_address`.
fn place_shipping_to(shipping_address: ShippingAddress) -> OrderCommand {
    place_to(vec![line(1, 1, usd(1))], shipping_address)
}

#[test]
fn placing_an_order_with_a_blank_city_is_rejected() {
    let blank_city = PostalAddress {
        city: "  ".into(),
        ..postal()
    };
    OrderTest::with(())
        .given_no_previous_events()
        .when(place_shipping_to(blank_city.into()))
        .then_expect_error(OrderError::InvalidAddress { field: "city" });
}

#[test]
fn an_order_shipping_to_one_line_of_text_keeps_that_line_trimmed() {
    let line = "123 Main Street, San Francisco, CA 94105";
    let events = OrderTest::with(())
        .given_no_previous_events()
        .when(place_shipping_to(ShippingAddress::OneLine(format!(
            "  {line} "
        ))))
        .inspect_result()
        .expect("placed");
    let [OrderEvent::OrderPlaced {
        shipping_address, ..
    }] = events.as_slice()
    else {
        panic!("expected OrderPlaced alone: {events:?}")
    };
    assert_eq!(*shipping_address, ShippingAddress::OneLine(line.to_owned()));
}

#[test]
fn a_blank_or_overlong_one_line_address_is_rejected() {
    for line in ["   ".to_owned(), "x".repeat(ONE_LINE_ADDRESS_MAX + 1)] {
        OrderTest::with(())
            .given_no_previous_events()
            .when(place_shipping_to(ShippingAddress::OneLine(line)))
            .then_expect_error(OrderError::InvalidAddress {
                field: "shipping_address",
            });
    }
}

#[test]
fn a_one_line_address_is_stored_as_a_string_and_a_postal_one_as_the_object_old_events_hold() {
    let one_line = ShippingAddress::OneLine("1 Main St, Springfield".into());
    assert_eq!(
        serde_json::to_value(&one_line).unwrap(),
        serde_json::json!("1 Main St, Springfield")
    );
    // An address as events written before the one-line form hold it.
    let stored = serde_json::json!({"line1": "1 Main St", "line2": null, "city": "Springfield",
        "postal_code": "12345", "country": "US"});
    let read: ShippingAddress = serde_json::from_value(stored.clone()).unwrap();
    assert_eq!(read, address());
    assert_eq!(serde_json::to_value(&read).unwrap(), stored);
}

#[test]
fn placing_an_existing_order_is_rejected_as_a_conflict() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(place(vec![line(1, 1, usd(1))]))
        .then_expect_error(OrderError::AlreadyPlaced);
}

#[test]
fn commands_on_an_unplaced_order_are_rejected_as_not_found() {
    let error = OrderTest::with(())
        .given_no_previous_events()
        .when(cancel(CancellationReason::CustomerRequest))
        .inspect_result();
    assert_eq!(error.unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn stock_reserved_on_an_unpaid_order_only_records_the_reservation() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(OrderCommand::MarkStockReserved { at: at() })
        .then_expect_events(vec![stock_reserved()]);
}

#[test]
fn stock_reserved_on_a_paid_order_confirms_it() {
    OrderTest::with(())
        .given(vec![placed(), requested(1), paid(1)])
        .when(OrderCommand::MarkStockReserved { at: at() })
        .then_expect_events(vec![stock_reserved(), confirmed(), stock_committed()]);
}

#[test]
fn confirming_records_the_stock_committed_so_the_saga_has_nothing_to_tell_the_order() {
    let mut given = vec![placed(), requested(1), paid(1)];
    given.extend([stock_reserved(), confirmed(), stock_committed()]);
    OrderTest::with(())
        .given(given)
        .when(OrderCommand::MarkStockCommitted { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn marking_stock_reserved_twice_emits_nothing_the_second_time() {
    OrderTest::with(())
        .given(vec![placed(), stock_reserved()])
        .when(OrderCommand::MarkStockReserved { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn stock_reserved_after_cancellation_asks_the_saga_to_release_it() {
    OrderTest::with(())
        .given(vec![
            placed(),
            cancelled(CancellationReason::CustomerRequest, None, false),
        ])
        .when(OrderCommand::MarkStockReserved { at: at() })
        .then_expect_events(vec![OrderEvent::OrderStockReservedAfterCancellation {
            order_id: order_id(),
            lines: items(),
            at: at(),
        }]);
}

#[test]
fn stock_rejection_is_recorded_once() {
    let rejected = OrderEvent::OrderStockRejected {
        order_id: order_id(),
        at: at(),
    };
    OrderTest::with(())
        .given(vec![placed()])
        .when(OrderCommand::MarkStockRejected { at: at() })
        .then_expect_events(vec![rejected.clone()]);
    OrderTest::with(())
        .given(vec![placed(), rejected])
        .when(OrderCommand::MarkStockRejected { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn rejecting_stock_that_was_reserved_is_rejected() {
    OrderTest::with(())
        .given(vec![placed(), stock_reserved()])
        .when(OrderCommand::MarkStockRejected { at: at() })
        .then_expect_error(OrderError::InvalidStockTransition {
            from: StockStatus::Reserved,
            to: StockStatus::Rejected,
        });
}

#[test]
fn stock_release_and_commit_are_recorded_once() {
    let released = OrderEvent::OrderStockReleased {
        order_id: order_id(),
        at: at(),
    };
    let committed = OrderEvent::OrderStockCommitted {
        order_id: order_id(),
        at: at(),
    };
    OrderTest::with(())
        .given(vec![placed(), stock_reserved()])
        .when(OrderCommand::MarkStockReleased { at: at() })
        .then_expect_events(vec![released.clone()]);
    OrderTest::with(())
        .given(vec![placed(), stock_reserved(), released])
        .when(OrderCommand::MarkStockReleased { at: at() })
        .then_expect_events(vec![]);
    OrderTest::with(())
        .given(confirmed_order())
        .when(OrderCommand::MarkStockCommitted { at: at() })
        .then_expect_events(vec![committed.clone()]);
    let mut given = confirmed_order();
    given.push(committed);
    OrderTest::with(())
        .given(given)
        .when(OrderCommand::MarkStockCommitted { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn a_cancelled_confirmed_order_records_its_committed_stock_as_released() {
    let mut given = confirmed_order();
    given.push(OrderEvent::OrderStockCommitted {
        order_id: order_id(),
        at: at(),
    });
    OrderTest::with(())
        .given(given.clone())
        .when(OrderCommand::MarkStockReleased { at: at() })
        .then_expect_error(OrderError::InvalidStockTransition {
            from: StockStatus::Committed,
            to: StockStatus::Released,
        });
    given.push(cancelled(
        CancellationReason::CustomerRequest,
        Some(payment(1)),
        false,
    ));
    OrderTest::with(())
        .given(given)
        .when(OrderCommand::MarkStockReleased { at: at() })
        .then_expect_events(vec![OrderEvent::OrderStockReleased {
            order_id: order_id(),
            at: at(),
        }]);
}

#[test]
fn committing_stock_that_was_never_reserved_is_rejected() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(OrderCommand::MarkStockCommitted { at: at() })
        .then_expect_error(OrderError::InvalidStockTransition {
            from: StockStatus::Pending,
            to: StockStatus::Committed,
        });
}

#[test]
fn requesting_payment_of_the_total_puts_it_in_flight() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(request(1, usd(1750)))
        .then_expect_events(vec![requested(1)]);
    OrderTest::with(())
        .given(vec![placed(), requested(1)])
        .when(request(1, usd(1750)))
        .then_expect_events(vec![]);
}

#[test]
fn requesting_payment_of_another_amount_is_rejected() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(request(1, usd(1749)))
        .then_expect_error(OrderError::AmountMismatch {
            expected: usd(1750),
            given: usd(1749),
        });
}

#[test]
fn a_second_payment_while_one_is_in_flight_is_rejected() {
    let error = OrderTest::with(())
        .given(vec![placed(), requested(1)])
        .when(request(2, usd(1750)))
        .inspect_result()
        .unwrap_err();
    assert_eq!(
        error,
        OrderError::PaymentInProgress {
            payment_id: payment(1)
        }
    );
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn requesting_payment_of_a_paid_or_cancelled_order_is_rejected() {
    OrderTest::with(())
        .given(vec![placed(), requested(1), paid(1)])
        .when(request(2, usd(1750)))
        .then_expect_error(OrderError::AlreadyPaid {
            payment_id: payment(1),
        });
    OrderTest::with(())
        .given(vec![
            placed(),
            cancelled(CancellationReason::CustomerRequest, None, false),
        ])
        .when(request(2, usd(1750)))
        .then_expect_error(OrderError::NotPayable {
            status: OrderStatus::Cancelled,
        });
}

#[test]
fn a_capture_marks_the_order_paid_and_confirms_it_when_stock_is_reserved() {
    OrderTest::with(())
        .given(vec![placed(), requested(1)])
        .when(mark_paid(1))
        .then_expect_events(vec![paid(1)]);
    OrderTest::with(())
        .given(vec![placed(), stock_reserved(), requested(1)])
        .when(mark_paid(1))
        .then_expect_events(vec![paid(1), confirmed(), stock_committed()]);
}

#[test]
fn marking_paid_twice_with_the_same_payment_emits_nothing() {
    OrderTest::with(())
        .given(confirmed_order())
        .when(mark_paid(1))
        .then_expect_events(vec![]);
}

#[test]
fn marking_paid_with_another_payment_is_rejected() {
    OrderTest::with(())
        .given(vec![placed(), requested(1), paid(1)])
        .when(mark_paid(2))
        .then_expect_error(OrderError::AlreadyPaid {
            payment_id: payment(1),
        });
}

#[test]
fn a_capture_landing_on_a_cancelled_order_is_flagged_for_refund_once() {
    let late = OrderEvent::OrderPaidAfterCancellation {
        order_id: order_id(),
        user_id: user(),
        payment_id: payment(1),
        amount: usd(1750),
        at: at(),
    };
    let given = vec![
        placed(),
        requested(1),
        cancelled(CancellationReason::PaymentTimeout, None, false),
    ];
    OrderTest::with(())
        .given(given.clone())
        .when(mark_paid(1))
        .then_expect_events(vec![late.clone()]);
    let mut again = given;
    again.push(late);
    OrderTest::with(())
        .given(again)
        .when(mark_paid(1))
        .then_expect_events(vec![]);
}

#[test]
fn a_failed_payment_clears_the_flight_and_keeps_the_order_payable() {
    let failed = OrderEvent::OrderPaymentFailed {
        order_id: order_id(),
        user_id: user(),
        payment_id: payment(1),
        reason: "declined".into(),
        at: at(),
    };
    let fail = || OrderCommand::MarkPaymentFailed {
        payment_id: payment(1),
        reason: "declined".into(),
        at: at(),
    };
    OrderTest::with(())
        .given(vec![placed(), requested(1)])
        .when(fail())
        .then_expect_events(vec![failed.clone()]);
    OrderTest::with(())
        .given(vec![placed(), requested(1), failed.clone()])
        .when(fail())
        .then_expect_events(vec![]);
    OrderTest::with(())
        .given(vec![placed(), requested(1), failed])
        .when(request(2, usd(1750)))
        .then_expect_events(vec![requested(2)]);
}

#[test]
fn cancelling_a_paid_order_with_reserved_stock_says_what_to_undo() {
    OrderTest::with(())
        .given(confirmed_order())
        .when(cancel(CancellationReason::CustomerRequest))
        .then_expect_events(vec![cancelled(
            CancellationReason::CustomerRequest,
            Some(payment(1)),
            true,
        )]);
}

#[test]
fn cancelling_an_already_cancelled_order_for_the_same_reason_emits_nothing() {
    let given = vec![
        placed(),
        cancelled(CancellationReason::OutOfStock, None, false),
    ];
    OrderTest::with(())
        .given(given.clone())
        .when(cancel(CancellationReason::OutOfStock))
        .then_expect_events(vec![]);
    OrderTest::with(())
        .given(given)
        .when(cancel(CancellationReason::CustomerRequest))
        .then_expect_error(OrderError::AlreadyCancelled {
            reason: CancellationReason::OutOfStock,
        });
}

#[test]
fn cancelling_a_shipped_order_is_rejected() {
    let mut given = confirmed_order();
    given.push(shipped());
    OrderTest::with(())
        .given(given)
        .when(cancel(CancellationReason::CustomerRequest))
        .then_expect_error(OrderError::CannotCancel {
            status: OrderStatus::Shipped,
        });
}

#[test]
fn an_expired_unpaid_order_is_cancelled_for_payment_timeout() {
    OrderTest::with(())
        .given(vec![placed(), stock_reserved()])
        .when(OrderCommand::ExpirePayment { at: at() })
        .then_expect_events(vec![cancelled(
            CancellationReason::PaymentTimeout,
            None,
            true,
        )]);
}

#[test]
fn a_late_payment_deadline_on_a_paid_order_emits_nothing() {
    OrderTest::with(())
        .given(confirmed_order())
        .when(OrderCommand::ExpirePayment { at: at() })
        .then_expect_events(vec![]);
    OrderTest::with(())
        .given(vec![
            placed(),
            cancelled(CancellationReason::CustomerRequest, None, false),
        ])
        .when(OrderCommand::ExpirePayment { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn a_confirmed_order_ships_and_then_is_delivered() {
    OrderTest::with(())
        .given(confirmed_order())
        .when(OrderCommand::ShipOrder { at: at() })
        .then_expect_events(vec![shipped()]);
    let mut given = confirmed_order();
    given.push(shipped());
    OrderTest::with(())
        .given(given)
        .when(OrderCommand::DeliverOrder { at: at() })
        .then_expect_events(vec![OrderEvent::OrderDelivered {
            order_id: order_id(),
            user_id: user(),
            at: at(),
        }]);
}

#[test]
fn shipping_a_pending_order_is_rejected() {
    OrderTest::with(())
        .given(vec![placed()])
        .when(OrderCommand::ShipOrder { at: at() })
        .then_expect_error(OrderError::InvalidTransition {
            from: OrderStatus::Pending,
            to: OrderStatus::Shipped,
        });
}

#[test]
fn delivering_an_unshipped_order_is_rejected() {
    OrderTest::with(())
        .given(confirmed_order())
        .when(OrderCommand::DeliverOrder { at: at() })
        .then_expect_error(OrderError::InvalidTransition {
            from: OrderStatus::Confirmed,
            to: OrderStatus::Delivered,
        });
}

fn record_refund(amount: i64, total: i64) -> OrderCommand {
    OrderCommand::RecordRefund {
        payment_id: payment(1),
        amount: usd(amount),
        total_refunded: usd(total),
        at: at(),
    }
}

fn refunded(amount: i64, total: i64, fully_refunded: bool) -> OrderEvent {
    OrderEvent::OrderRefunded {
        order_id: order_id(),
        user_id: user(),
        payment_id: payment(1),
        amount: usd(amount),
        total_refunded: usd(total),
        fully_refunded,
        at: at(),
    }
}

#[test]
fn refunds_are_recorded_once_each_and_flag_the_full_refund() {
    OrderTest::with(())
        .given(confirmed_order())
        .when(record_refund(750, 750))
        .then_expect_events(vec![refunded(750, 750, false)]);
    let mut given = confirmed_order();
    given.push(refunded(750, 750, false));
    OrderTest::with(())
        .given(given.clone())
        .when(record_refund(750, 750))
        .then_expect_events(vec![]);
    OrderTest::with(())
        .given(given)
        .when(record_refund(1000, 1750))
        .then_expect_events(vec![refunded(1000, 1750, true)]);
}

#[test]
fn recording_a_refund_beyond_the_capture_or_for_an_unknown_payment_is_rejected() {
    OrderTest::with(())
        .given(confirmed_order())
        .when(record_refund(1751, 1751))
        .then_expect_error(OrderError::InvalidRefund {
            amount: usd(1751),
            total_refunded: usd(1751),
            captured: usd(1750),
        });
    OrderTest::with(())
        .given(vec![placed()])
        .when(record_refund(1, 1))
        .then_expect_error(OrderError::UnknownPayment {
            payment_id: payment(1),
        });
}

#[test]
fn statuses_serialise_in_screaming_snake_case_and_event_types_are_variant_names() {
    assert_eq!(
        serde_json::to_string(&CancellationReason::CustomerRequest).unwrap(),
        "\"CUSTOMER_REQUEST\""
    );
    assert_eq!(
        serde_json::to_string(&OrderPaymentStatus::PartiallyRefunded).unwrap(),
        "\"PARTIALLY_REFUNDED\""
    );
    assert_eq!(placed().event_type(), "OrderPlaced");
    let mut order = Order::default();
    for event in confirmed_order() {
        order.apply(event);
    }
    assert_eq!(order.status(), Some(OrderStatus::Confirmed));
    assert_eq!(order.total(), Some(usd(1750)));
    assert_eq!(order.lines(), &items()[..]);
}

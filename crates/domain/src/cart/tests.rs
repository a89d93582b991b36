use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::error::{DomainError, ErrorKind};

type CartTest = TestFramework<Cart>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn user() -> Uuid {
    Uuid::from_u128(1)
}

fn product(n: u128) -> Uuid {
    Uuid::from_u128(1000 + n)
}

fn usd(amount_minor: i64) -> Money {
    Money::new(amount_minor, Currency::USD)
}

fn add(n: u128, unit_price: Money, quantity: u32) -> CartCommand {
    CartCommand::AddToCart {
        user_id: user(),
        product_id: product(n),
        product_name: format!("P{n}"),
        unit_price,
        quantity,
        at: at(),
    }
}

fn added(n: u128, unit_price: Money, quantity: u32, quantity_after: u32) -> CartEvent {
    CartEvent::CartItemAdded {
        user_id: user(),
        product_id: product(n),
        product_name: format!("P{n}"),
        unit_price,
        quantity,
        quantity_after,
        subtotal: unit_price.checked_mul(quantity_after).unwrap(),
        at: at(),
    }
}

#[test]
fn adding_a_product_creates_a_line() {
    CartTest::with(())
        .given_no_previous_events()
        .when(add(1, usd(500), 2))
        .then_expect_events(vec![added(1, usd(500), 2, 2)]);
}

#[test]
fn adding_a_product_again_adds_to_its_line_at_the_new_price() {
    CartTest::with(())
        .given(vec![added(1, usd(500), 2, 2)])
        .when(add(1, usd(450), 3))
        .then_expect_events(vec![added(1, usd(450), 3, 5)]);
}

#[test]
fn adding_zero_or_too_many_units_is_rejected() {
    CartTest::with(())
        .given_no_previous_events()
        .when(add(1, usd(1), 0))
        .then_expect_error(CartError::QuantityOutOfRange { quantity: 0 });
    CartTest::with(())
        .given(vec![added(1, usd(1), 999, 999)])
        .when(add(1, usd(1), 2))
        .then_expect_error(CartError::QuantityOutOfRange { quantity: 1001 });
    assert_eq!(
        CartError::QuantityOutOfRange { quantity: 1001 }.kind(),
        ErrorKind::Conflict
    );
}

#[test]
fn adding_a_price_in_another_currency_is_rejected() {
    CartTest::with(())
        .given(vec![added(1, usd(500), 1, 1)])
        .when(add(2, Money::new(500, Currency::EUR), 1))
        .then_expect_error(CartError::CurrencyMismatch {
            cart: Currency::USD,
            given: Currency::EUR,
        });
}

#[test]
fn adding_a_negative_price_is_rejected() {
    CartTest::with(())
        .given_no_previous_events()
        .when(add(1, usd(-1), 1))
        .then_expect_error(CartError::NegativePrice { price: usd(-1) });
}

#[test]
fn adding_a_hundred_and_first_line_is_rejected() {
    let full: Vec<_> = (0..100).map(|n| added(n, usd(1), 1, 1)).collect();
    CartTest::with(())
        .given(full)
        .when(add(100, usd(1), 1))
        .then_expect_error(CartError::TooManyLines);
}

#[test]
fn adding_to_another_users_cart_is_rejected() {
    CartTest::with(())
        .given(vec![added(1, usd(1), 1, 1)])
        .when(CartCommand::AddToCart {
            user_id: Uuid::from_u128(2),
            product_id: product(1),
            product_name: "P1".into(),
            unit_price: usd(1),
            quantity: 1,
            at: at(),
        })
        .then_expect_error(CartError::UserMismatch {
            expected: user(),
            given: Uuid::from_u128(2),
        });
}

#[test]
fn setting_a_quantity_changes_the_line() {
    CartTest::with(())
        .given(vec![added(1, usd(500), 2, 2)])
        .when(CartCommand::SetCartQuantity {
            product_id: product(1),
            quantity: 4,
            at: at(),
        })
        .then_expect_events(vec![CartEvent::CartItemQuantityChanged {
            user_id: user(),
            product_id: product(1),
            quantity_before: 2,
            quantity: 4,
            subtotal: usd(2000),
            at: at(),
        }]);
}

#[test]
fn setting_a_quantity_to_zero_is_rejected() {
    CartTest::with(())
        .given(vec![added(1, usd(500), 2, 2)])
        .when(CartCommand::SetCartQuantity {
            product_id: product(1),
            quantity: 0,
            at: at(),
        })
        .then_expect_error(CartError::QuantityOutOfRange { quantity: 0 });
}

#[test]
fn setting_the_quantity_of_an_absent_line_is_rejected_as_not_found() {
    CartTest::with(())
        .given_no_previous_events()
        .when(CartCommand::SetCartQuantity {
            product_id: product(1),
            quantity: 1,
            at: at(),
        })
        .then_expect_error(CartError::LineNotFound {
            product_id: product(1),
        });
}

#[test]
fn removing_a_line_emits_cart_item_removed() {
    CartTest::with(())
        .given(vec![added(1, usd(500), 2, 2)])
        .when(CartCommand::RemoveFromCart {
            product_id: product(1),
            at: at(),
        })
        .then_expect_events(vec![CartEvent::CartItemRemoved {
            user_id: user(),
            product_id: product(1),
            at: at(),
        }]);
}

#[test]
fn removing_an_absent_line_is_rejected_as_not_found() {
    let error = CartTest::with(())
        .given(vec![added(1, usd(500), 2, 2)])
        .when(CartCommand::RemoveFromCart {
            product_id: product(2),
            at: at(),
        })
        .inspect_result()
        .unwrap_err();
    assert_eq!(
        error,
        CartError::LineNotFound {
            product_id: product(2)
        }
    );
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

#[test]
fn clearing_a_cart_after_checkout_emits_cart_cleared_once() {
    let reason = CartClearReason::CheckedOut {
        order_id: Uuid::from_u128(9),
    };
    let cleared = CartEvent::CartCleared {
        user_id: user(),
        reason,
        at: at(),
    };
    CartTest::with(())
        .given(vec![added(1, usd(500), 2, 2)])
        .when(CartCommand::ClearCart { reason, at: at() })
        .then_expect_events(vec![cleared.clone()]);
    CartTest::with(())
        .given(vec![added(1, usd(500), 2, 2), cleared])
        .when(CartCommand::ClearCart { reason, at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn a_cleared_cart_accepts_another_currency() {
    let cleared = CartEvent::CartCleared {
        user_id: user(),
        reason: CartClearReason::UserRequest,
        at: at(),
    };
    let eur = Money::new(100, Currency::EUR);
    CartTest::with(())
        .given(vec![added(1, usd(500), 2, 2), cleared])
        .when(add(2, eur, 1))
        .then_expect_events(vec![added(2, eur, 1, 1)]);
}

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::error::{DomainError, ErrorKind};

type MethodTest = TestFramework<PaymentMethod>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn user() -> Uuid {
    Uuid::from_u128(1)
}

fn method(n: u128) -> Uuid {
    Uuid::from_u128(300 + n)
}

fn add(n: u128, is_default: bool) -> PaymentMethodCommand {
    PaymentMethodCommand::AddPaymentMethod {
        method_id: method(n),
        user_id: user(),
        method_type: "card".into(),
        gateway_method_id: format!("pm_{n}"),
        is_default,
        at: at(),
    }
}

fn added(n: u128, is_default: bool) -> PaymentMethodEvent {
    PaymentMethodEvent::PaymentMethodAdded {
        user_id: user(),
        method_id: method(n),
        method_type: "card".into(),
        gateway_method_id: format!("pm_{n}"),
        is_default,
        at: at(),
    }
}

fn default_changed(n: u128, previous: Option<u128>) -> PaymentMethodEvent {
    PaymentMethodEvent::DefaultPaymentMethodChanged {
        user_id: user(),
        method_id: method(n),
        previous_method_id: previous.map(method),
        at: at(),
    }
}

fn two_methods_first_default() -> Vec<PaymentMethodEvent> {
    vec![
        added(1, true),
        default_changed(1, None),
        added(2, false),
        added(3, false),
    ]
}

#[test]
fn the_first_method_is_always_the_default() {
    MethodTest::with(())
        .given_no_previous_events()
        .when(add(1, false))
        .then_expect_events(vec![added(1, true), default_changed(1, None)]);
}

#[test]
fn a_later_method_asked_as_default_replaces_the_default() {
    MethodTest::with(())
        .given(vec![added(1, true), default_changed(1, None)])
        .when(add(2, true))
        .then_expect_events(vec![added(2, true), default_changed(2, Some(1))]);
    MethodTest::with(())
        .given(vec![added(1, true), default_changed(1, None)])
        .when(add(2, false))
        .then_expect_events(vec![added(2, false)]);
}

#[test]
fn adding_a_twenty_first_method_is_rejected() {
    let mut given = vec![added(0, true), default_changed(0, None)];
    given.extend((1..20).map(|n| added(n, false)));
    let error = MethodTest::with(())
        .given(given)
        .when(add(20, false))
        .inspect_result()
        .unwrap_err();
    assert_eq!(error, PaymentMethodError::TooManyMethods { max: 20 });
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn adding_the_same_method_twice_is_rejected() {
    MethodTest::with(())
        .given(vec![added(1, true), default_changed(1, None)])
        .when(add(1, false))
        .then_expect_error(PaymentMethodError::AlreadyExists {
            method_id: method(1),
        });
}

#[test]
fn adding_a_method_without_a_gateway_id_is_rejected() {
    MethodTest::with(())
        .given_no_previous_events()
        .when(PaymentMethodCommand::AddPaymentMethod {
            method_id: method(1),
            user_id: user(),
            method_type: "card".into(),
            gateway_method_id: " ".into(),
            is_default: false,
            at: at(),
        })
        .then_expect_error(PaymentMethodError::InvalidGatewayMethodId);
}

#[test]
fn removing_the_default_makes_the_oldest_remaining_method_default() {
    MethodTest::with(())
        .given(two_methods_first_default())
        .when(PaymentMethodCommand::RemovePaymentMethod {
            method_id: method(1),
            at: at(),
        })
        .then_expect_events(vec![
            PaymentMethodEvent::PaymentMethodRemoved {
                user_id: user(),
                method_id: method(1),
                was_default: true,
                at: at(),
            },
            default_changed(2, None),
        ]);
}

#[test]
fn removing_another_method_keeps_the_default() {
    MethodTest::with(())
        .given(two_methods_first_default())
        .when(PaymentMethodCommand::RemovePaymentMethod {
            method_id: method(3),
            at: at(),
        })
        .then_expect_events(vec![PaymentMethodEvent::PaymentMethodRemoved {
            user_id: user(),
            method_id: method(3),
            was_default: false,
            at: at(),
        }]);
}

#[test]
fn removing_an_unknown_method_is_rejected_as_not_found() {
    let error = MethodTest::with(())
        .given(two_methods_first_default())
        .when(PaymentMethodCommand::RemovePaymentMethod {
            method_id: method(9),
            at: at(),
        })
        .inspect_result()
        .unwrap_err();
    assert_eq!(
        error,
        PaymentMethodError::MethodNotFound {
            method_id: method(9)
        }
    );
    assert_eq!(error.kind(), ErrorKind::NotFound);
    MethodTest::with(())
        .given_no_previous_events()
        .when(PaymentMethodCommand::RemovePaymentMethod {
            method_id: method(9),
            at: at(),
        })
        .then_expect_error(PaymentMethodError::MethodNotFound {
            method_id: method(9),
        });
}

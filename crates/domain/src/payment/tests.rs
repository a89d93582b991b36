use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::error::{DomainError, ErrorKind};
use crate::money::Currency;

type PaymentTest = TestFramework<Payment>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn ids() -> (Uuid, Uuid, Uuid) {
    (
        Uuid::from_u128(9001),
        Uuid::from_u128(500),
        Uuid::from_u128(1),
    )
}

fn usd(amount_minor: i64) -> Money {
    Money::new(amount_minor, Currency::USD)
}

fn capture(outcome: GatewayOutcome) -> PaymentCommand {
    let (payment_id, order_id, user_id) = ids();
    PaymentCommand::CapturePayment {
        payment_id,
        order_id,
        user_id,
        amount: usd(1750),
        method: "card".into(),
        payment_method_id: None,
        outcome,
        at: at(),
    }
}

fn approved() -> GatewayOutcome {
    GatewayOutcome::Approved {
        transaction_id: "txn_1".into(),
    }
}

fn captured() -> PaymentEvent {
    let (payment_id, order_id, user_id) = ids();
    PaymentEvent::PaymentCaptured {
        payment_id,
        order_id,
        user_id,
        amount: usd(1750),
        method: "card".into(),
        gateway_transaction_id: "txn_1".into(),
        at: at(),
    }
}

fn failed() -> PaymentEvent {
    let (payment_id, order_id, user_id) = ids();
    PaymentEvent::PaymentFailed {
        payment_id,
        order_id,
        user_id,
        amount: usd(1750),
        method: "card".into(),
        reason: "card declined".into(),
        at: at(),
    }
}

fn refund(n: u128, amount: i64) -> PaymentCommand {
    PaymentCommand::RefundPayment {
        refund_id: Uuid::from_u128(n),
        amount: usd(amount),
        reason: "damaged".into(),
        at: at(),
    }
}

fn refunded(n: u128, amount: i64, total: i64) -> PaymentEvent {
    let (payment_id, order_id, user_id) = ids();
    PaymentEvent::PaymentRefunded {
        payment_id,
        order_id,
        user_id,
        refund_id: Uuid::from_u128(n),
        amount: usd(amount),
        total_refunded: usd(total),
        fully_refunded: total == 1750,
        reason: "damaged".into(),
        at: at(),
    }
}

#[test]
fn an_approved_capture_emits_payment_captured() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(capture(approved()))
        .then_expect_events(vec![captured()]);
}

#[test]
fn a_declined_capture_emits_payment_failed() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(capture(GatewayOutcome::Declined {
            reason: "card declined".into(),
        }))
        .then_expect_events(vec![failed()]);
}

#[test]
fn capturing_a_payment_twice_is_rejected() {
    let error = PaymentTest::with(())
        .given(vec![captured()])
        .when(capture(approved()))
        .inspect_result()
        .unwrap_err();
    assert_eq!(
        error,
        PaymentError::AlreadyProcessed {
            payment_id: ids().0
        }
    );
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn capturing_a_negative_amount_is_rejected() {
    let (payment_id, order_id, user_id) = ids();
    PaymentTest::with(())
        .given_no_previous_events()
        .when(PaymentCommand::CapturePayment {
            payment_id,
            order_id,
            user_id,
            amount: usd(-1),
            method: "card".into(),
            payment_method_id: None,
            outcome: approved(),
            at: at(),
        })
        .then_expect_error(PaymentError::NegativeAmount { amount: usd(-1) });
}

#[test]
fn refunds_add_up_to_a_full_refund() {
    PaymentTest::with(())
        .given(vec![captured()])
        .when(refund(1, 750))
        .then_expect_events(vec![refunded(1, 750, 750)]);
    PaymentTest::with(())
        .given(vec![captured(), refunded(1, 750, 750)])
        .when(refund(2, 1000))
        .then_expect_events(vec![refunded(2, 1000, 1750)]);
}

#[test]
fn a_refund_id_seen_before_emits_nothing() {
    PaymentTest::with(())
        .given(vec![captured(), refunded(1, 750, 750)])
        .when(refund(1, 750))
        .then_expect_events(vec![]);
}

#[test]
fn refunding_more_than_remains_captured_is_rejected() {
    PaymentTest::with(())
        .given(vec![captured(), refunded(1, 750, 750)])
        .when(refund(2, 1001))
        .then_expect_error(PaymentError::RefundExceedsCaptured {
            requested: usd(1001),
            refundable: usd(1000),
        });
}

#[test]
fn refunding_a_failed_payment_is_rejected() {
    PaymentTest::with(())
        .given(vec![failed()])
        .when(refund(1, 1))
        .then_expect_error(PaymentError::NotCaptured {
            status: PaymentStatus::Failed,
        });
}

#[test]
fn refunding_zero_or_another_currency_is_rejected() {
    PaymentTest::with(())
        .given(vec![captured()])
        .when(refund(1, 0))
        .then_expect_error(PaymentError::InvalidRefundAmount { amount: usd(0) });
    let eur = Money::new(1, Currency::EUR);
    PaymentTest::with(())
        .given(vec![captured()])
        .when(PaymentCommand::RefundPayment {
            refund_id: Uuid::from_u128(1),
            amount: eur,
            reason: String::new(),
            at: at(),
        })
        .then_expect_error(PaymentError::InvalidRefundAmount { amount: eur });
}

#[test]
fn refunding_an_unknown_payment_is_rejected_as_not_found() {
    PaymentTest::with(())
        .given_no_previous_events()
        .when(refund(1, 1))
        .then_expect_error(PaymentError::NotFound);
}

#[test]
fn confirming_a_completed_payment_emits_nothing() {
    PaymentTest::with(())
        .given(vec![captured()])
        .when(PaymentCommand::ConfirmPayment { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn confirming_a_refunded_or_failed_payment_is_rejected() {
    PaymentTest::with(())
        .given(vec![captured(), refunded(1, 1750, 1750)])
        .when(PaymentCommand::ConfirmPayment { at: at() })
        .then_expect_error(PaymentError::Refunded);
    PaymentTest::with(())
        .given(vec![failed()])
        .when(PaymentCommand::ConfirmPayment { at: at() })
        .then_expect_error(PaymentError::Failed);
    PaymentTest::with(())
        .given_no_previous_events()
        .when(PaymentCommand::ConfirmPayment { at: at() })
        .then_expect_error(PaymentError::NotFound);
}

#[test]
fn a_payment_knows_what_its_answer_shows_and_a_refund_moves_only_its_update_time() {
    let mut payment = Payment::default();
    assert_eq!(payment.times(), None);
    payment.apply(captured());
    assert_eq!(payment.method(), Some("card"));
    assert_eq!(payment.gateway_transaction_id(), Some("txn_1"));
    assert_eq!(payment.failure_reason(), None);
    let later = at() + chrono::Duration::hours(1);
    let mut refund = refunded(1, 250, 250);
    if let PaymentEvent::PaymentRefunded { at, .. } = &mut refund {
        *at = later;
    }
    payment.apply(refund);
    assert_eq!(payment.times(), Some((at(), later)));

    let mut declined = Payment::default();
    declined.apply(failed());
    assert_eq!(declined.failure_reason(), Some("card declined"));
    assert_eq!(declined.gateway_transaction_id(), None);
    assert_eq!(declined.times(), Some((at(), at())));
}

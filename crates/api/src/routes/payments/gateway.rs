//! The built-in payment gateway: a simulator. The token `pm_card_declined` (as the saved
//! method's gateway token, the `payment_method_id` or the `method`) is declined; anything else is
//! approved with a fresh `sim_…` transaction id. Its answer goes into `CapturePayment`, which
//! keeps the `Payment` aggregate free of I/O.

use commerce_domain::payment::GatewayOutcome;
use uuid::Uuid;

/// The test token the simulator declines, as Stripe's test cards do.
pub(super) const DECLINED_TOKEN: &str = "pm_card_declined";

/// Charges `method` (and the gateway `token`, if one was given).
pub(super) fn charge(method: &str, token: Option<&str>) -> GatewayOutcome {
    if method == DECLINED_TOKEN || token == Some(DECLINED_TOKEN) {
        GatewayOutcome::Declined {
            reason: "card declined".to_owned(),
        }
    } else {
        GatewayOutcome::Approved {
            transaction_id: format!("sim_{}", Uuid::new_v4().simple()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declined_token_is_declined_as_method_or_token() {
        let declined = GatewayOutcome::Declined {
            reason: "card declined".to_owned(),
        };
        assert_eq!(charge(DECLINED_TOKEN, None), declined);
        assert_eq!(charge("card", Some(DECLINED_TOKEN)), declined);
    }

    #[test]
    fn anything_else_is_approved_with_a_fresh_transaction_id() {
        let (
            GatewayOutcome::Approved { transaction_id: a },
            GatewayOutcome::Approved { transaction_id: b },
        ) = (charge("card", None), charge("card", Some("pm_card_visa")))
        else {
            panic!("expected approvals");
        };
        assert!(a.starts_with("sim_"));
        assert_ne!(a, b);
    }
}

//! What each notification says: subjects and bodies rendered from the triggering event alone (and
//! the recipient's name as the log had it then), so a replay renders the same text.
//!
//! Plain ASCII text: it reads the same in an email client, a push message or a JSON response.

use commerce_domain::money::Money;
use commerce_domain::order::OrderLineItem;
use uuid::Uuid;

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Message {
    pub(super) subject: String,
    pub(super) body: String,
}

const SIGN_OFF: &str = "Thank you for shopping with us.";

pub(super) fn welcome(name: &str) -> Message {
    Message {
        subject: "Welcome to the shop".to_owned(),
        body: format!(
            "{}\n\nYour account is ready. Browse the catalog, fill your cart and check out \
             whenever you like.\n\n{SIGN_OFF}",
            greeting(Some(name))
        ),
    }
}

pub(super) fn order_confirmed(
    name: Option<&str>,
    order_id: Uuid,
    total: Money,
    lines: &[OrderLineItem],
) -> Message {
    let items: String = lines
        .iter()
        .map(|line| {
            format!(
                "\n  {} x {}: {}",
                line.quantity,
                line.product_name,
                format_money(line.subtotal)
            )
        })
        .collect();
    Message {
        subject: format!("Order {} confirmed", short(order_id)),
        body: format!(
            "{}\n\nYour order {order_id} is paid and confirmed.{items}\nTotal: {}\n\n\
             We will let you know when it ships.\n\n{SIGN_OFF}",
            greeting(name),
            format_money(total)
        ),
    }
}

pub(super) fn payment_failed(
    name: Option<&str>,
    order_id: Uuid,
    amount: Money,
    reason: &str,
) -> Message {
    Message {
        subject: format!("Payment for order {} failed", short(order_id)),
        body: format!(
            "{}\n\nYour payment of {} for order {order_id} did not go through: {reason}.\n\
             The order is still waiting for payment; you can pay again with another method.\n\n\
             {SIGN_OFF}",
            greeting(name),
            format_money(amount)
        ),
    }
}

pub(super) fn order_shipped(name: Option<&str>, order_id: Uuid) -> Message {
    Message {
        subject: format!("Order {} shipped", short(order_id)),
        body: format!(
            "{}\n\nYour order {order_id} is on its way.\n\n{SIGN_OFF}",
            greeting(name)
        ),
    }
}

pub(super) fn refund(
    name: Option<&str>,
    order_id: Uuid,
    amount: Money,
    total_refunded: Money,
    fully_refunded: bool,
    reason: &str,
) -> Message {
    let so_far = if fully_refunded {
        "Your payment is now refunded in full.".to_owned()
    } else {
        format!("Refunded so far: {}.", format_money(total_refunded))
    };
    Message {
        subject: format!(
            "Refund of {} for order {}",
            format_money(amount),
            short(order_id)
        ),
        body: format!(
            "{}\n\nWe refunded {} for order {order_id} ({reason}). {so_far}\n\n{SIGN_OFF}",
            greeting(name),
            format_money(amount)
        ),
    }
}

fn greeting(name: Option<&str>) -> String {
    match name.map(str::trim) {
        Some(name) if !name.is_empty() => format!("Hello {name},"),
        _ => "Hello,".to_owned(),
    }
}

/// The first block of an id: enough to tell orders apart in a subject line.
fn short(id: Uuid) -> String {
    let mut hex = id.simple().to_string();
    hex.truncate(8);
    hex
}

/// `19.99 USD`: integer arithmetic only. Two decimals for every currency, as the API writes
/// amounts (its money has at most 2 decimals, so minor units are hundredths).
pub(super) fn format_money(money: Money) -> String {
    let sign = if money.amount_minor < 0 { "-" } else { "" };
    let minor = money.amount_minor.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        minor / 100,
        minor % 100,
        money.currency
    )
}

#[cfg(test)]
mod tests {
    use commerce_domain::money::{Currency, Money};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn amounts_are_written_with_two_decimals_and_the_currency() {
        let usd = |minor| format_money(Money::new(minor, Currency::USD));
        assert_eq!(usd(1999), "19.99 USD");
        assert_eq!(usd(5), "0.05 USD");
        assert_eq!(usd(0), "0.00 USD");
        assert_eq!(usd(100_000), "1000.00 USD");
        assert_eq!(usd(-150), "-1.50 USD");
        assert_eq!(usd(i64::MIN), "-92233720368547758.08 USD");
        assert_eq!(format_money(Money::new(250, Currency::EUR)), "2.50 EUR");
    }

    #[test]
    fn an_order_confirmation_names_the_order_its_lines_and_its_total() {
        let order_id = Uuid::parse_str("0b6f3c1e-2222-4333-8444-555566667777").unwrap();
        let line = OrderLineItem {
            product_id: Uuid::nil(),
            product_name: "Mug".to_owned(),
            quantity: 2,
            unit_price: Money::new(1000, Currency::USD),
            subtotal: Money::new(2000, Currency::USD),
        };
        let message = order_confirmed(
            Some("Ada"),
            order_id,
            Money::new(2000, Currency::USD),
            &[line],
        );
        assert_eq!(message.subject, "Order 0b6f3c1e confirmed");
        assert!(message.body.starts_with("Hello Ada,"));
        assert!(message.body.contains(&order_id.to_string()));
        assert!(message.body.contains("2 x Mug: 20.00 USD"));
        assert!(message.body.contains("Total: 20.00 USD"));
    }

    #[test]
    fn an_unknown_or_blank_name_gets_a_plain_greeting() {
        assert!(order_shipped(None, Uuid::nil())
            .body
            .starts_with("Hello,\n"));
        assert!(welcome("  ").body.starts_with("Hello,\n"));
    }

    #[test]
    fn a_refund_says_how_much_and_whether_it_is_complete() {
        let usd = |minor| Money::new(minor, Currency::USD);
        let partial = refund(None, Uuid::nil(), usd(500), usd(700), false, "damaged");
        assert_eq!(partial.subject, "Refund of 5.00 USD for order 00000000");
        assert!(partial
            .body
            .contains("(damaged). Refunded so far: 7.00 USD."));
        let full = refund(None, Uuid::nil(), usd(300), usd(1000), true, "returned");
        assert!(full.body.contains("refunded in full"));
    }
}

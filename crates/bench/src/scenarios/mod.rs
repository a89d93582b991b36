//! One module per measured path; each returns its rows (figure beside its raw baseline).

mod append;
mod checkout;
mod checkout_shop;
mod hot;
mod lag;
mod lag_watch;
mod mix;
mod own_writes;
mod partitions;
mod platform;
mod reads;
mod rebuild;
mod relay;

use futures::future::BoxFuture;

use crate::ctx::Ctx;
use crate::report::Row;

/// A scenario: runs against the bench database, returns its rows.
pub(crate) type Scenario = for<'a> fn(&'a Ctx) -> BoxFuture<'a, anyhow::Result<Vec<Row>>>;

/// Every scenario, in run order.
pub(crate) const ALL: &[(&str, Scenario)] = &[
    ("append", |c| Box::pin(append::run(c))),
    ("hot", |c| Box::pin(hot::run(c))),
    ("relay", |c| Box::pin(relay::run(c))),
    ("lag", |c| Box::pin(lag::run(c))),
    ("rebuild", |c| Box::pin(rebuild::run(c))),
    ("checkout", |c| Box::pin(checkout::run(c))),
    ("reads", |c| Box::pin(reads::run(c))),
    ("own-writes", |c| Box::pin(own_writes::run(c))),
    ("partitions", |c| Box::pin(partitions::run(c))),
];

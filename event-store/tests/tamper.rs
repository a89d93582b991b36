//! Guarantee 10: tampering is evident. As the database superuser, with the immutability triggers
//! off, change a byte of a payload, delete a row, swap two transactions' events, rewrite a seal:
//! `verify` names each, at the right position. And the sealer itself: two of them, one active,
//! sealing a log written concurrently, with nothing left unsealed and everything verifying.

mod support;

use std::time::Duration;

use commerce_event_store::db::MIGRATOR;
use commerce_event_store::sealer::{self, seal_next, SealHead};
use commerce_event_store::verify::{verify, Mismatch, MismatchKind, Verification};
use commerce_event_store::{LogReader, Position, Sealer, SealerConfig};
use sqlx::PgPool;
use support::{append_many, append_raw, eventually};
use tokio_util::sync::CancellationToken;

/// Ten events (each its own transaction) sealed four at a time (seals 1, 2, 3 of 4, 4 and 2
/// events), then two unsealed ones. Returns every event's position, in log order.
async fn sealed_log(pool: &PgPool) -> Vec<Position> {
    append_many(pool, "Thing", 10).await;
    // Other tests' transactions on this server hold the horizon back for a moment.
    assert!(LogReader::new(pool.clone())
        .settle(Duration::from_secs(10))
        .await
        .unwrap());
    let mut conn = pool.acquire().await.unwrap();
    while seal_next(&mut conn, 4).await.unwrap().is_some() {}
    append_raw(pool, "Thing", "late", 1, "Happened").await;
    append_raw(pool, "Thing", "late", 2, "Happened").await;
    positions(pool).await
}

async fn positions(pool: &PgPool) -> Vec<Position> {
    sqlx::query_as::<_, (i64, i64)>(
        "SELECT transaction_id::text::bigint, global_position FROM events \
         ORDER BY transaction_id, global_position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(tx, pos)| Position::new(tx, pos))
    .collect()
}

/// Runs `sql` as the superuser would: with the immutability triggers off.
async fn tamper(pool: &PgPool, sql: &str) {
    let mut tx = pool.begin().await.unwrap();
    for statement in [
        "ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete",
        "ALTER TABLE log_seals DISABLE TRIGGER log_seals_no_update_or_delete",
        sql,
        "ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete",
        "ALTER TABLE log_seals ENABLE TRIGGER log_seals_no_update_or_delete",
    ] {
        sqlx::raw_sql(statement).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn first_mismatch(pool: &PgPool) -> Mismatch {
    let outcome = verify(pool, None).await.unwrap();
    assert!(!outcome.ok());
    outcome.first_mismatch.expect("a mismatch")
}

fn at(position: Position, seal_id: Option<i64>, kind: MismatchKind) -> Mismatch {
    Mismatch {
        position,
        seal_id,
        kind,
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_untouched_log_verifies_and_names_its_latest_seal(pool: PgPool) {
    let log = sealed_log(&pool).await;
    let outcome = verify(&pool, None).await.unwrap();
    let latest = outcome.latest_seal.clone().expect("sealed");
    assert_eq!(
        outcome,
        Verification {
            verified_through: Some(log[9]),
            seals_checked: 3,
            events_sealed: 10,
            events_unsealed: 2,
            latest_seal: Some(SealHead {
                seal_id: 3,
                through: log[9],
                seal: latest.seal.clone(),
            }),
            first_mismatch: None,
        }
    );
    // From a position inside the second seal: seals 2 and 3 are checked.
    let from = verify(&pool, Some(log[5])).await.unwrap();
    assert!(from.ok());
    assert_eq!((from.seals_checked, from.events_sealed), (2, 6));
    assert_eq!(sealer::latest_seal(&pool).await.unwrap(), Some(latest));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn one_changed_byte_of_a_payload_is_named(pool: PgPool) {
    let log = sealed_log(&pool).await;
    // `{"n": 2}` → `{"n": 3}` in the sixth event (seal 2).
    let sql = format!(
        "UPDATE events SET payload = jsonb_set(payload, '{{n}}', '3') WHERE global_position = {}",
        log[5].global_position
    );
    tamper(&pool, &sql).await;
    assert_eq!(
        first_mismatch(&pool).await,
        at(log[5], Some(2), MismatchKind::ContentChanged)
    );
    // Verifying from after it finds nothing: the damage is before.
    assert!(verify(&pool, Some(log[8])).await.unwrap().ok());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_changed_payload_with_a_recomputed_hash_is_named_too(pool: PgPool) {
    let log = sealed_log(&pool).await;
    let sql = format!(
        "UPDATE events SET payload = '{{\"n\": 99}}', \
         content_hash = event_content_hash(aggregate_type, aggregate_id, sequence, event_type, \
             event_version, '{{\"n\": 99}}', metadata) \
         WHERE global_position = {}",
        log[2].global_position
    );
    tamper(&pool, &sql).await;
    assert_eq!(
        first_mismatch(&pool).await,
        at(log[2], Some(1), MismatchKind::NotTheSealedEvent)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_changed_unsealed_event_is_named_without_a_seal(pool: PgPool) {
    let log = sealed_log(&pool).await;
    let sql = format!(
        "UPDATE events SET metadata = metadata || '{{\"actor\": \"mallory\"}}' \
         WHERE global_position = {}",
        log[11].global_position
    );
    tamper(&pool, &sql).await;
    assert_eq!(
        first_mismatch(&pool).await,
        at(log[11], None, MismatchKind::ContentChanged)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_deleted_row_is_named(pool: PgPool) {
    let log = sealed_log(&pool).await;
    let sql = format!(
        "DELETE FROM events WHERE global_position = {}",
        log[6].global_position
    );
    tamper(&pool, &sql).await;
    assert_eq!(
        first_mismatch(&pool).await,
        at(log[6], Some(2), MismatchKind::Missing)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_transactions_events_swapped_are_named_at_the_first(pool: PgPool) {
    let log = sealed_log(&pool).await;
    // The third and eighth events (seals 1 and 2) trade places in the log.
    let (a, b) = (log[2], log[7]);
    let sql = format!(
        "ALTER TABLE events ALTER COLUMN global_position SET GENERATED BY DEFAULT; \
         UPDATE events SET global_position = -1 WHERE global_position = {a_pos}; \
         UPDATE events SET global_position = {a_pos}, transaction_id = '{a_tx}' \
             WHERE global_position = {b_pos}; \
         UPDATE events SET global_position = {b_pos}, transaction_id = '{b_tx}' \
             WHERE global_position = -1",
        a_pos = a.global_position,
        a_tx = a.transaction_id,
        b_pos = b.global_position,
        b_tx = b.transaction_id,
    );
    tamper(&pool, &sql).await;
    assert_eq!(
        positions(&pool).await,
        log,
        "the same positions, other events"
    );
    assert_eq!(
        first_mismatch(&pool).await,
        at(a, Some(1), MismatchKind::NotTheSealedEvent)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rewritten_seal_is_named(pool: PgPool) {
    let log = sealed_log(&pool).await;
    tamper(
        &pool,
        "UPDATE log_seals SET seal = sha256('forged') WHERE seal_id = 2",
    )
    .await;
    assert_eq!(
        first_mismatch(&pool).await,
        at(log[7], Some(2), MismatchKind::SealRewritten)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_deleted_seal_is_named(pool: PgPool) {
    let log = sealed_log(&pool).await;
    tamper(&pool, "DELETE FROM log_seals WHERE seal_id = 2").await;
    assert_eq!(
        first_mismatch(&pool).await,
        at(log[3], Some(2), MismatchKind::SealMissing)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn seals_and_events_refuse_updates_and_deletes(pool: PgPool) {
    sealed_log(&pool).await;
    for sql in [
        "UPDATE log_seals SET seal = sha256('x')",
        "DELETE FROM log_seals",
        "UPDATE events SET content_hash = sha256('x')",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn one_of_two_sealers_seals_a_log_written_meanwhile_and_it_verifies(pool: PgPool) {
    let shutdown = CancellationToken::new();
    let config = SealerConfig {
        batch_size: 7,
        poll_interval: Duration::from_millis(5),
        standby_interval: Duration::from_millis(20),
    };
    let sealers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(Sealer::new(pool.clone(), config.clone()).run(shutdown.clone())))
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for v in 1..=25 {
                    append_raw(&pool, "Written", &format!("w{w}"), v, "Happened").await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let log = LogReader::new(pool.clone());
    assert!(log.settle(Duration::from_secs(10)).await.unwrap());
    let head = log.head().await.unwrap();
    eventually(
        Duration::from_secs(20),
        "the sealer reaches the head",
        || {
            let pool = pool.clone();
            async move {
                sealer::latest_seal(&pool)
                    .await
                    .unwrap()
                    .filter(|seal| seal.through >= head)
            }
        },
    )
    .await;
    shutdown.cancel();
    for sealer in sealers {
        sealer.await.unwrap();
    }
    let outcome = verify(&pool, None).await.unwrap();
    assert!(outcome.ok(), "{outcome:?}");
    assert_eq!((outcome.events_sealed, outcome.events_unsealed), (100, 0));
    assert_eq!(outcome.verified_through, Some(head));
}

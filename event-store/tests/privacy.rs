//! Sealing and opening personal fields against the real `data_keys` table (guarantee 9).

use commerce_event_store::db::MIGRATOR;
use commerce_event_store::privacy::{MasterKey, PersonalFields, Privacy, PrivacyError, ERASED};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

static FIELDS: &[PersonalFields] = &[PersonalFields {
    aggregate_type: "Person",
    event_type: "Named",
    fields: &["name", "address", "phone"],
}];

fn named(subject: Uuid) -> Value {
    json!({"Named": {"user_id": subject, "name": "enc:v1:looks-sealed",
                     "address": {"line1": "1 Main St", "city": "Springfield"},
                     "phone": null, "amount": 1250}})
}

async fn sealed(privacy: &Privacy, pool: &PgPool, subject: Uuid) -> Value {
    let mut payload = named(subject);
    privacy
        .seal(pool, "Person", "Named", &mut payload)
        .await
        .expect("sealed");
    payload
}

async fn opened(privacy: &Privacy, pool: &PgPool, mut payload: Value) -> Value {
    privacy
        .open(pool, [("Person", &mut payload)])
        .await
        .expect("opened");
    payload
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sealed_fields_open_as_written_and_as_erased_once_the_key_is_destroyed(pool: PgPool) {
    let (master, _) = MasterKey::generate();
    let privacy = Privacy::open_keyring(&pool, master.clone(), FIELDS)
        .await
        .expect("keyring");
    let subject = Uuid::new_v4();
    let payload = sealed(&privacy, &pool, subject).await;
    let text = payload.to_string();
    assert!(
        !text.contains("looks-sealed") && !text.contains("Main St"),
        "{text}"
    );
    assert_eq!(
        payload["Named"]["amount"],
        json!(1250),
        "not personal: as written"
    );
    assert_eq!(payload["Named"]["phone"], Value::Null, "nothing to seal");
    assert_eq!(
        opened(&privacy, &pool, payload.clone()).await,
        named(subject)
    );

    // Another process (no cache) opens it the same way; a wrong master key opens nothing.
    let other = Privacy::open_keyring(&pool, master, FIELDS)
        .await
        .expect("keyring");
    assert_eq!(opened(&other, &pool, payload.clone()).await, named(subject));
    let wrong = Privacy::open_keyring(&pool, MasterKey::generate().0, FIELDS).await;
    assert!(matches!(wrong, Err(PrivacyError::WrongMasterKey)));

    // Erased: every process reads it as erased at once; erasing again changes nothing; what is
    // sealed for the person afterwards is stored as erased.
    assert!(privacy.erase(&pool, subject).await.expect("erased"));
    assert!(!privacy.erase(&pool, subject).await.expect("erased again"));
    let after = opened(&other, &pool, payload).await;
    assert_eq!(after["Named"]["name"], json!(ERASED));
    assert_eq!(after["Named"]["address"], json!(ERASED));
    assert_eq!(after["Named"]["amount"], json!(1250));
    let later = sealed(&other, &pool, subject).await;
    assert_eq!(later["Named"]["name"], json!(ERASED));
    // A person erased before they ever had a key gets none afterwards either.
    let never = Uuid::new_v4();
    assert!(!privacy.erase(&pool, never).await.expect("erased"));
    assert_eq!(
        sealed(&privacy, &pool, never).await["Named"]["name"],
        json!(ERASED)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn concurrent_first_seals_of_one_person_agree_on_one_key(pool: PgPool) {
    let (master, _) = MasterKey::generate();
    let subject = Uuid::new_v4();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        // A keyring each: no shared cache, every one races to create the key.
        let keyring = Privacy::open_keyring(&pool, master.clone(), FIELDS)
            .await
            .expect("keyring");
        let pool = pool.clone();
        tasks.spawn(async move {
            let mut payload = named(subject);
            keyring
                .seal(&pool, "Person", "Named", &mut payload)
                .await
                .expect("every racer gets the one key");
            payload
        });
    }
    let keyring = Privacy::open_keyring(&pool, master, FIELDS)
        .await
        .expect("keyring");
    while let Some(payload) = tasks.join_next().await {
        let payload = payload.expect("task");
        assert_eq!(opened(&keyring, &pool, payload).await, named(subject));
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(keys, 1);
}

//! Personal data in the log, encrypted per person and erasable (guarantee 9, crypto-shredding).
//!
//! The domain names the personal fields of its events ([`PersonalFields`]); every such field
//! is stored in the log as `enc:v1:<base64url(nonce ‖ AES-256-GCM ciphertext)>` under a data key
//! of its own person (the payload's `user_id`), with that person's id as associated data. Data
//! keys live in `data_keys`, outside the log, each wrapped by the master key (`DATA_KEY`).
//!
//! - Appends seal (encrypt) the fields ([`Privacy::seal`]), creating the person's key on first use.
//! - Everything that reads events back (loads, the log reader, consumers) opens (decrypts) them
//!   ([`Privacy::open`]) with keys read from the table, never from a cache, so an erasure is
//!   seen by every process at once: a destroyed key opens as [`ERASED`].
//! - Erasure ([`Privacy::erase`]) destroys the key. The ciphertext stays in the log, so content
//!   hashes and seals still verify, and no process can read it again.
//!
//! A person's id is itself derived from a keyed hash of their email ([`Privacy::user_id_for_email`]),
//! so neither the id nor the log reveals the email once the key is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::Sha256;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// What an erased field reads as, everywhere.
pub const ERASED: &str = "[erased]";

/// The prefix of a sealed field's text.
const SEALED: &str = "enc:v1:";

/// Associated data of the email index key's wrapping.
const EMAIL_INDEX_TAG: &[u8] = b"commerce:email-index";

/// How many data keys one process keeps for sealing before it starts over.
const SEALING_KEYS: usize = 65_536;

/// The personal fields of one event type: each is sealed under the key of the person named by
/// the payload's `user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalFields {
    /// The aggregate's `TYPE`.
    pub aggregate_type: &'static str,
    /// The event variant's name.
    pub event_type: &'static str,
    /// Fields of the variant's body holding personal data.
    pub fields: &'static [&'static str],
}

/// What can go wrong with keys and sealed fields.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// `DATA_KEY` is not 32 bytes in base64.
    #[error("DATA_KEY must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)")]
    BadMasterKey,
    /// `DATA_KEY` does not open the keyring this database was set up with.
    #[error(
        "DATA_KEY does not open this database's keyring: it is not the key the data keys were \
         wrapped with (after a rotation, use the new key)"
    )]
    WrongMasterKey,
    /// A sealed field or a wrapped key failed authentication: altered in the database.
    #[error("the personal data of {0} does not decrypt: its ciphertext or its key was altered")]
    Corrupt(Uuid),
    /// A sealed field names no person (its event has no valid `user_id`).
    #[error("a personal field of {0} names no person (no valid user_id in its payload)")]
    NoSubject(String),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The master key: wraps every data key. From `DATA_KEY`; never logged (its `Debug` hides it).
#[derive(Clone)]
pub struct MasterKey(Key<Aes256Gcm>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A key from its base64 text (standard or URL-safe alphabet, padded or not): 32 bytes.
    pub fn parse(text: &str) -> Result<Self, PrivacyError> {
        let text = text.trim();
        let bytes = [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .or_else(|| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(text)
                    .ok()
            })
            .ok_or(PrivacyError::BadMasterKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| PrivacyError::BadMasterKey)?;
        Ok(Self(bytes.into()))
    }

    /// A fresh random key and its base64 text.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0_u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        (Self(bytes.into()), STANDARD.encode(bytes))
    }

    fn wrap(&self, key: &[u8; 32], aad: &[u8]) -> Vec<u8> {
        seal_bytes(&self.0, key, aad)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Option<Key<Aes256Gcm>> {
        let bytes = open_bytes(&self.0, wrapped, aad)?;
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        Some(bytes.into())
    }
}

fn seal_bytes(key: &Key<Aes256Gcm>, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0_u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(key);
    let mut out = nonce.to_vec();
    // Encryption with a 12-byte nonce only fails for inputs beyond GCM's 64 GiB limit.
    if let Ok(ciphertext) = cipher.encrypt(
        Nonce::from_slice(&nonce),
        Payload {
            msg: plaintext,
            aad,
        },
    ) {
        out.extend_from_slice(&ciphertext);
    }
    out
}

fn open_bytes(key: &Key<Aes256Gcm>, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(12);
    Aes256Gcm::new(key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

fn wrap_aad(subject: Uuid) -> Vec<u8> {
    let mut aad = b"commerce:data-key:".to_vec();
    aad.extend_from_slice(subject.as_bytes());
    aad
}

/// The keyring of one database: seals and opens personal fields, derives user ids, erases.
/// Cheap to clone.
#[derive(Clone)]
pub struct Privacy(Arc<Inner>);

struct Inner {
    master: MasterKey,
    email_index: [u8; 32],
    fields: &'static [PersonalFields],
    /// Data keys this process sealed with, by person; used for sealing only, never for opening
    /// (opening always reads the table, so an erasure elsewhere is seen at once).
    sealing: Mutex<HashMap<Uuid, Key<Aes256Gcm>>>,
}

impl std::fmt::Debug for Privacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Privacy")
            .field("personal_event_types", &self.0.fields.len())
            .finish_non_exhaustive()
    }
}

impl Privacy {
    /// Opens the keyring of `pool`'s database with `master`, setting it up on first use (any
    /// number of processes may race: one insert wins). Fails with
    /// [`PrivacyError::WrongMasterKey`] when `master` is not the key the keyring was made with.
    pub async fn open_keyring(
        pool: &PgPool,
        master: MasterKey,
        fields: &'static [PersonalFields],
    ) -> Result<Self, PrivacyError> {
        let mut index = [0_u8; 32];
        rand::rng().fill_bytes(&mut index);
        sqlx::query("INSERT INTO keyring (email_index) VALUES ($1) ON CONFLICT (id) DO NOTHING")
            .bind(master.wrap(&index, EMAIL_INDEX_TAG))
            .execute(pool)
            .await?;
        let wrapped: Vec<u8> = sqlx::query_scalar("SELECT email_index FROM keyring")
            .fetch_one(pool)
            .await?;
        let index = master
            .unwrap(&wrapped, EMAIL_INDEX_TAG)
            .ok_or(PrivacyError::WrongMasterKey)?;
        Ok(Self(Arc::new(Inner {
            master,
            email_index: index.into(),
            fields,
            sealing: Mutex::default(),
        })))
    }

    /// The user id of an email (already normalised): a keyed hash (HMAC-SHA-256 under the
    /// keyring's email index key), so equal emails collide on one aggregate id (uniqueness stays
    /// race-free) while the id reveals nothing about the email.
    pub fn user_id_for_email(&self, normalised_email: &str) -> Uuid {
        // HMAC pads a key shorter than the hash's block (64 bytes) with zeros: the same MAC.
        let mut block = [0_u8; 64];
        block[..32].copy_from_slice(&self.0.email_index);
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
        mac.update(normalised_email.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0_u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// Whether any event of `aggregate_type` has personal fields (its state may hold them).
    pub fn holds_personal_data(&self, aggregate_type: &str) -> bool {
        self.0
            .fields
            .iter()
            .any(|f| f.aggregate_type == aggregate_type)
    }

    /// The personal fields of `event_type` of `aggregate_type`, if it has any.
    pub fn fields_of(
        &self,
        aggregate_type: &str,
        event_type: &str,
    ) -> Option<&'static [&'static str]> {
        self.0
            .fields
            .iter()
            .find(|f| f.aggregate_type == aggregate_type && f.event_type == event_type)
            .map(|f| f.fields)
    }

    /// Seals the personal fields of `payload` (an event of `aggregate_type` about to be
    /// appended), creating the person's data key through `executor` when this process has none
    /// for them. A person already erased gets [`ERASED`] in place of the value: nothing personal
    /// of theirs enters the log again.
    pub async fn seal<'c, E: PgExecutor<'c>>(
        &self,
        executor: E,
        aggregate_type: &str,
        event_type: &str,
        payload: &mut Value,
    ) -> Result<(), PrivacyError> {
        let Some(fields) = self.fields_of(aggregate_type, event_type) else {
            return Ok(());
        };
        let Some(body) = body_mut(payload, event_type) else {
            return Ok(());
        };
        if !fields.iter().any(|f| body.get(*f).is_some_and(is_personal)) {
            return Ok(());
        }
        let subject = subject_of(body).ok_or_else(|| PrivacyError::NoSubject(event_type.into()))?;
        let key = match self.sealing_key(subject) {
            Some(key) => Some(key),
            None => self.fetch_or_create(executor, subject).await?,
        };
        for field in fields {
            if let Some(value) = body.get_mut(*field).filter(|v| is_personal(v)) {
                *value = match &key {
                    Some(key) => Value::String(seal_value(key, subject, value)),
                    None => Value::String(ERASED.to_owned()),
                };
            }
        }
        Ok(())
    }

    fn sealing_key(&self, subject: Uuid) -> Option<Key<Aes256Gcm>> {
        let keys = self
            .0
            .sealing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keys.get(&subject).copied()
    }

    fn keep_sealing_key(&self, subject: Uuid, key: Key<Aes256Gcm>) {
        let mut keys = self
            .0
            .sealing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= SEALING_KEYS {
            keys.clear();
        }
        keys.insert(subject, key);
    }

    /// The person's data key, created if they have none; `None` once erased.
    async fn fetch_or_create<'c, E: PgExecutor<'c>>(
        &self,
        executor: E,
        subject: Uuid,
    ) -> Result<Option<Key<Aes256Gcm>>, PrivacyError> {
        let mut fresh = [0_u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        let aad = wrap_aad(subject);
        // One statement, race-free: the inserted key, or the row a concurrent writer stored
        // first (the no-op update waits for that writer's commit and returns the row as
        // committed; a plain SELECT in the same statement could not see it).
        let wrapped: Option<Vec<u8>> = sqlx::query_scalar(
            "INSERT INTO data_keys (subject, wrapped) VALUES ($1, $2) \
             ON CONFLICT (subject) DO UPDATE SET subject = EXCLUDED.subject \
             RETURNING wrapped",
        )
        .bind(subject)
        .bind(self.0.master.wrap(&fresh, &aad))
        .fetch_one(executor)
        .await?;
        let Some(wrapped) = wrapped else {
            return Ok(None);
        };
        let key = self
            .0
            .master
            .unwrap(&wrapped, &aad)
            .ok_or(PrivacyError::Corrupt(subject))?;
        self.keep_sealing_key(subject, key);
        Ok(Some(key))
    }

    /// Opens (decrypts in place) the sealed fields of `payloads`, given as
    /// `(aggregate_type, payload)` (externally tagged: `{"<EventType>": {…}}`), with keys read
    /// from the table in one query (none when nothing is sealed). A field whose key was destroyed
    /// reads as [`ERASED`].
    pub async fn open<'a, 'c, I, E>(&self, executor: E, payloads: I) -> Result<(), PrivacyError>
    where
        I: IntoIterator<Item = (&'a str, &'a mut Value)>,
        E: PgExecutor<'c>,
    {
        let mut sealed: Vec<(Uuid, &mut Value)> = Vec::new();
        for (aggregate_type, payload) in payloads {
            let Some((event_type, body)) = payload
                .as_object_mut()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.iter_mut().next())
            else {
                continue;
            };
            let Some(fields) = self.fields_of(aggregate_type, event_type) else {
                continue;
            };
            let Some(body) = body.as_object_mut() else {
                continue;
            };
            let subject = subject_of(body);
            for (name, value) in body.iter_mut() {
                if fields.contains(&name.as_str())
                    && value.as_str().is_some_and(|s| s.starts_with(SEALED))
                {
                    let subject =
                        subject.ok_or_else(|| PrivacyError::NoSubject(event_type.into()))?;
                    sealed.push((subject, value));
                }
            }
        }
        if sealed.is_empty() {
            return Ok(());
        }
        let mut subjects: Vec<Uuid> = sealed.iter().map(|(s, _)| *s).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let rows: Vec<(Uuid, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT subject, wrapped FROM data_keys WHERE subject = ANY($1)")
                .bind(&subjects)
                .fetch_all(executor)
                .await?;
        let mut keys = HashMap::with_capacity(rows.len());
        for (subject, wrapped) in rows {
            if let Some(wrapped) = wrapped {
                let key = self
                    .0
                    .master
                    .unwrap(&wrapped, &wrap_aad(subject))
                    .ok_or(PrivacyError::Corrupt(subject))?;
                keys.insert(subject, key);
            }
        }
        for (subject, value) in sealed {
            *value = match keys.get(&subject) {
                Some(key) => {
                    open_value(key, subject, value).ok_or(PrivacyError::Corrupt(subject))?
                }
                None => Value::String(ERASED.to_owned()),
            };
        }
        Ok(())
    }

    /// [`Self::open`] for events read back from the log.
    pub async fn open_events<'c, E: PgExecutor<'c>>(
        &self,
        executor: E,
        events: &mut [crate::StoredEvent],
    ) -> Result<(), PrivacyError> {
        self.open(
            executor,
            events.iter_mut().map(|e| {
                let crate::StoredEvent {
                    aggregate_type,
                    payload,
                    ..
                } = e;
                (aggregate_type.as_str(), payload)
            }),
        )
        .await
    }

    /// Destroys `subject`'s data key through `executor` (inside the transaction that records the
    /// erasure), or records them as erased when they never had one. Returns whether a key was
    /// destroyed now (false when already erased: erasing twice changes nothing).
    pub async fn erase<'c, E: PgExecutor<'c>>(
        &self,
        executor: E,
        subject: Uuid,
    ) -> Result<bool, PrivacyError> {
        // `xmax` is 0 for the row an INSERT wrote, set for the one an UPDATE replaced: only
        // the latter destroyed a key.
        let destroyed: Option<bool> = sqlx::query_scalar(
            "INSERT INTO data_keys (subject, wrapped, erased_at) VALUES ($1, NULL, now()) \
             ON CONFLICT (subject) DO UPDATE SET wrapped = NULL, erased_at = now() \
             WHERE data_keys.wrapped IS NOT NULL \
             RETURNING xmax::text <> '0'",
        )
        .bind(subject)
        .fetch_optional(executor)
        .await?;
        self.0
            .sealing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&subject);
        Ok(destroyed.unwrap_or(false))
    }

    /// Re-wraps every data key and the email index key of `pool`'s database from `old` to `new`,
    /// in one transaction: a crash leaves the old wrapping whole. Returns how many data keys were
    /// re-wrapped. Fails with [`PrivacyError::WrongMasterKey`] (changing nothing) when `old` is
    /// not the key in use.
    pub async fn rotate(
        pool: &PgPool,
        old: &MasterKey,
        new: &MasterKey,
    ) -> Result<u64, PrivacyError> {
        let mut tx = pool.begin().await?;
        let wrapped: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT email_index FROM keyring FOR UPDATE")
                .fetch_optional(&mut *tx)
                .await?;
        let Some(wrapped) = wrapped else {
            return Ok(0);
        };
        let index = old
            .unwrap(&wrapped, EMAIL_INDEX_TAG)
            .ok_or(PrivacyError::WrongMasterKey)?;
        let index: [u8; 32] = index.into();
        sqlx::query("UPDATE keyring SET email_index = $1, rotated_at = now()")
            .bind(new.wrap(&index, EMAIL_INDEX_TAG))
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT subject, wrapped FROM data_keys WHERE wrapped IS NOT NULL FOR UPDATE",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut subjects = Vec::with_capacity(rows.len());
        let mut rewrapped = Vec::with_capacity(rows.len());
        for (subject, wrapped) in rows {
            let aad = wrap_aad(subject);
            let key = old
                .unwrap(&wrapped, &aad)
                .ok_or(PrivacyError::Corrupt(subject))?;
            let key: [u8; 32] = key.into();
            subjects.push(subject);
            rewrapped.push(new.wrap(&key, &aad));
        }
        sqlx::query(
            "UPDATE data_keys SET wrapped = r.wrapped \
             FROM unnest($1::uuid[], $2::bytea[]) AS r(subject, wrapped) \
             WHERE data_keys.subject = r.subject",
        )
        .bind(&subjects)
        .bind(&rewrapped)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(subjects.len() as u64)
    }
}

/// Whether a field's value holds personal data to seal: anything but null, even text that
/// looks sealed (a name typed as `enc:v1:…` is sealed like any other, so it opens as typed).
fn is_personal(value: &Value) -> bool {
    !value.is_null()
}

/// The body of an externally tagged event payload: `{"<EventType>": {…}}`.
fn body_mut<'a>(payload: &'a mut Value, event_type: &str) -> Option<&'a mut Map<String, Value>> {
    payload.get_mut(event_type)?.as_object_mut()
}

fn subject_of(body: &Map<String, Value>) -> Option<Uuid> {
    body.get("user_id")?.as_str()?.parse().ok()
}

fn seal_value(key: &Key<Aes256Gcm>, subject: Uuid, value: &Value) -> String {
    let plaintext = value.to_string();
    let sealed = seal_bytes(key, plaintext.as_bytes(), subject.as_bytes());
    format!("{SEALED}{}", URL_SAFE_NO_PAD.encode(sealed))
}

fn open_value(key: &Key<Aes256Gcm>, subject: Uuid, value: &Value) -> Option<Value> {
    let text = value.as_str()?.strip_prefix(SEALED)?;
    let sealed = URL_SAFE_NO_PAD.decode(text).ok()?;
    let plaintext = open_bytes(key, &sealed, subject.as_bytes())?;
    serde_json::from_slice(&plaintext).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_person() {
        let (master, _) = MasterKey::generate();
        let key: Key<Aes256Gcm> = [7_u8; 32].into();
        let subject = Uuid::new_v4();
        let value = serde_json::json!({"line1": "1 Main St", "city": "Springfield"});
        let sealed = Value::String(seal_value(&key, subject, &value));
        assert!(!sealed.to_string().contains("Main"));
        assert_eq!(open_value(&key, subject, &sealed), Some(value));
        assert_eq!(
            open_value(&key, Uuid::new_v4(), &sealed),
            None,
            "another person"
        );
        assert_eq!(
            open_value(&[8_u8; 32].into(), subject, &sealed),
            None,
            "another key"
        );
        let wrapped = master.wrap(&[7_u8; 32], &wrap_aad(subject));
        assert_eq!(master.unwrap(&wrapped, &wrap_aad(subject)), Some(key));
        assert_eq!(master.unwrap(&wrapped, &wrap_aad(Uuid::new_v4())), None);
    }

    #[test]
    fn a_master_key_is_32_bytes_of_base64_and_never_printed() {
        let (key, text) = MasterKey::generate();
        assert!(MasterKey::parse(&text).is_ok());
        assert!(MasterKey::parse(text.trim_end_matches('=')).is_ok());
        assert!(MasterKey::parse("c2hvcnQ=").is_err(), "too short");
        assert!(MasterKey::parse("not base64 at all!").is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }
}

#[cfg(test)]
mod email_index {
    use super::*;

    fn keyring(index: [u8; 32]) -> Privacy {
        Privacy(Arc::new(Inner {
            master: MasterKey::generate().0,
            email_index: index,
            fields: &[],
            sealing: Mutex::default(),
        }))
    }

    #[test]
    fn an_email_maps_to_one_id_per_keyring_and_the_id_reveals_nothing_without_the_key() {
        let (a, b) = (keyring([1; 32]), keyring([2; 32]));
        let id = a.user_id_for_email("ada@example.com");
        assert_eq!(id, a.user_id_for_email("ada@example.com"), "stable");
        assert_ne!(id, a.user_id_for_email("bob@example.com"));
        assert_ne!(id, b.user_id_for_email("ada@example.com"), "keyed");
        let plain = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"ada@example.com");
        assert_ne!(id, plain);
    }
}

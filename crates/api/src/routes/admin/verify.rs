//! `/admin/log/verify`: recompute the log's hash chain (guarantee 10), for admins and auditors.
//!
//! The answer is 200 whether or not the log verifies: `ok` says which, `first_mismatch` names the
//! first position that does not match, and `latest_seal` is the value to compare with a copy
//! published elsewhere.

use axum::extract::State;
use chrono::{DateTime, Utc};
use commerce_domain::user::Role;
use commerce_event_store::sealer::{hex, SealHead};
use commerce_event_store::verify::{self, Mismatch, Verification};
use commerce_event_store::Position;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;

/// Where to start.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VerifyQuery {
    /// Start at the seal covering this position token (default: the beginning of the log).
    #[param(pattern = r"^[0-9]{1,18}\.[0-9]{1,18}$", example = "812.40")]
    from: Option<String>,
}

/// A seal: publish `seal` elsewhere to be able to tell later that nothing before it changed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SealBody {
    /// 1 for the first seal.
    seal_id: i64,
    /// SHA-256, hex.
    seal: String,
    /// Position token of the last event it covers.
    through: String,
}

impl From<&SealHead> for SealBody {
    fn from(head: &SealHead) -> Self {
        Self {
            seal_id: head.seal_id,
            seal: hex(&head.seal),
            through: head.through.token(),
        }
    }
}

/// The first place where the log is not what was sealed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MismatchBody {
    /// Position token of the event (for a rewritten seal: the last event it covers).
    position: String,
    /// The seal whose range it is in.
    seal_id: Option<i64>,
    /// `content_changed`, `missing`, `not_the_sealed_event`, `not_sealed`, `moved`,
    /// `seal_rewritten` or `seal_missing`.
    code: String,
    /// What differs, in words.
    reason: String,
}

impl From<&Mismatch> for MismatchBody {
    fn from(m: &Mismatch) -> Self {
        Self {
            position: m.position.token(),
            seal_id: m.seal_id,
            code: m.kind.code().to_owned(),
            reason: m.kind.describe().to_owned(),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifyBody {
    /// True when every seal and every event matched.
    ok: bool,
    /// Position token of the last event whose seal verified; `null` when none did.
    verified_through: Option<String>,
    /// Seals checked.
    seals_checked: u64,
    /// Events checked against seals.
    events_sealed: u64,
    /// Events after the latest seal (their content hashes checked only).
    events_unsealed: u64,
    /// The latest seal; `null` before the first.
    latest_seal: Option<SealBody>,
    /// The first position that does not match; absent when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_mismatch: Option<MismatchBody>,
    /// When this verification ran.
    checked_at: DateTime<Utc>,
}

impl From<&Verification> for VerifyBody {
    fn from(v: &Verification) -> Self {
        Self {
            ok: v.ok(),
            verified_through: v.verified_through.map(|p| p.token()),
            seals_checked: v.seals_checked,
            events_sealed: v.events_sealed,
            events_unsealed: v.events_unsealed,
            latest_seal: v.latest_seal.as_ref().map(Into::into),
            first_mismatch: v.first_mismatch.as_ref().map(Into::into),
            checked_at: Utc::now(),
        }
    }
}

/// Recompute the log's hash chain and name the first position that does not match.
#[utoipa::path(get, path = "/admin/log/verify", tag = "admin", security(("bearer" = [])),
    params(VerifyQuery),
    responses((status = 200, body = Data<VerifyBody>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn verify_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<VerifyQuery>,
) -> ApiResult<axum::Json<Data<VerifyBody>>> {
    caller.require_any(&[Role::Admin, Role::Auditor])?;
    let from = match query.from {
        None => None,
        Some(token) => Some(token.parse::<Position>().map_err(|_| {
            ApiError::invalid_field("from", "must be a position token, e.g. `812.40`")
        })?),
    };
    let outcome = verify::verify(&state.pool, from).await?;
    Ok(axum::Json(Data::new(VerifyBody::from(&outcome))))
}

//! `/admin/projections`: the health of every durable consumer (projections and process
//! managers), rebuilding a projection from the log, and the operator's retry or skip for a
//! consumer halted on an event it cannot apply (guarantees 5 and 6).
//!
//! A rebuild runs in a task of this process and answers 202 at once. From that answer until the
//! task ends the projection is listed `REBUILDING`, and a second rebuild of it is refused with 409
//! (here through an in-process registry, across processes through the rebuild's heartbeat).

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use commerce_event_store::checkpoint::{self, RepairError};
use commerce_event_store::{ConsumerState, ConsumerStatus};
use commerce_projections::rebuild::Finish;
use commerce_projections::registry;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Path;
use crate::state::AppState;

/// One consumer's state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectionBody {
    /// The consumer's name (a projection or a process manager).
    pub(crate) name: String,
    /// `LIVE`, `CATCHING_UP`, `REBUILDING` or `FAILED`; `PARTITIONED` for a projection run as
    /// partitions, whose position is then its furthest-behind partition's.
    pub(crate) status: &'static str,
    /// Position token of the last event it applied.
    pub(crate) position: String,
    /// Position token of the last event of the log.
    pub(crate) head: String,
    /// Events of the log it has not applied yet.
    pub(crate) lag_events: i64,
    /// Age in seconds of the oldest event it has not applied yet (0 when caught up).
    pub(crate) lag_seconds: f64,
    /// Why it halted, when `FAILED`.
    pub(crate) last_error: Option<String>,
    /// Position token of the event it halted on, when `FAILED` (what a skip passes over).
    pub(crate) failed_position: Option<String>,
    /// Deliveries of events it had already applied, acknowledged and ignored (at-least-once
    /// delivery at work: a relay fail-over, a redelivery after a lost acknowledgement).
    pub(crate) duplicates_ignored: i64,
    /// How far a running rebuild got, when the rebuild has reported.
    pub(crate) rebuild: Option<RebuildBody>,
    /// Last change of its state.
    pub(crate) updated_at: DateTime<Utc>,
    /// For a projection run as partitions: how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) partitions: Option<u32>,
    /// For one partition (`orders.p2`): the projection it is a partition of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) partition_of: Option<String>,
}

/// Progress of a running rebuild.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RebuildBody {
    /// Events of the log replayed so far.
    pub(crate) done: i64,
    /// Events to replay.
    pub(crate) total: i64,
    /// When it started.
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// Events replayed per second so far.
    pub(crate) events_per_second: Option<f64>,
    /// Seconds until done at that rate.
    pub(crate) seconds_left: Option<f64>,
}

/// The answer to a rebuild request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RebuildStarted {
    /// The projection.
    name: String,
    /// Always `REBUILDING`.
    status: &'static str,
}

/// The answer to a retry or skip request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RepairRequested {
    /// The consumer.
    name: String,
    /// `RETRY` or `SKIP`; the halted consumer carries it out within a second.
    requested_action: &'static str,
}

impl ProjectionBody {
    fn new(s: ConsumerStatus, rebuilding_here: bool) -> Self {
        // A rebuild started here is REBUILDING before its first heartbeat reaches the row.
        let status = if rebuilding_here && s.status != ConsumerState::Failed {
            ConsumerState::Rebuilding
        } else {
            s.status
        };
        Self {
            name: s.name,
            status: status.as_str(),
            position: s.position.token(),
            head: s.head.token(),
            lag_events: s.lag_events,
            lag_seconds: s.lag_seconds,
            last_error: s.last_error,
            failed_position: s.failed_position.map(|p| p.token()),
            duplicates_ignored: s.duplicates_ignored,
            rebuild: s.rebuild.map(|r| {
                let now = Utc::now();
                RebuildBody {
                    done: r.done,
                    total: r.total,
                    started_at: r.started_at,
                    events_per_second: r.rate(now).map(|x| x.round()),
                    seconds_left: r.seconds_left(now).map(|x| x.ceil()),
                }
            }),
            updated_at: s.updated_at,
            partitions: s.partitions,
            partition_of: s.partition_of,
        }
    }
}

/// Every consumer with its position, lag and state.
#[utoipa::path(get, path = "/admin/projections", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Data<Vec<ProjectionBody>>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Data<Vec<ProjectionBody>>>> {
    caller.require_admin()?;
    Ok(axum::Json(Data::new(statuses(&state).await?)))
}

/// Every consumer's state, a rebuild started in this process counted from its start.
pub(crate) async fn statuses(state: &AppState) -> ApiResult<Vec<ProjectionBody>> {
    let statuses = checkpoint::consumer_statuses(&state.pool).await?;
    Ok(statuses
        .into_iter()
        .map(|s| {
            let here = Rebuilds::running(&state.pool, &s.name);
            ProjectionBody::new(s, here)
        })
        .collect())
}

/// Rebuild a projection from the log; the live read model keeps serving until the rebuilt one is
/// swapped in.
#[utoipa::path(post, path = "/admin/projections/{name}/rebuild", tag = "admin",
    security(("bearer" = [])), params(("name" = String, Path, description = "A projection's name")),
    responses((status = 202, body = Data<RebuildStarted>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(super) async fn rebuild(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Data<RebuildStarted>>)> {
    caller.require_admin()?;
    let name = start_rebuild(&state, &name).await?;
    let body = RebuildStarted {
        name: name.to_owned(),
        status: ConsumerState::Rebuilding.as_str(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(Data::new(body))))
}

/// Starts rebuilding projection `name` in a task of this process; 404 for an unknown name, 409
/// while it is being rebuilt (here or elsewhere).
pub(crate) async fn start_rebuild(state: &AppState, name: &str) -> ApiResult<&'static str> {
    let Some(&name) = registry::NAMES.iter().find(|n| **n == name) else {
        return Err(ApiError::not_found("projection"));
    };
    let elsewhere = checkpoint::consumer_statuses(&state.pool)
        .await?
        .iter()
        .any(|s| s.name == name && s.rebuild.is_some());
    let guard = if elsewhere {
        None
    } else {
        Rebuilds::start(&state.pool, name)
    };
    let Some(guard) = guard else {
        return Err(ApiError::Conflict {
            code: "rebuild_running",
            message: format!("projection {name:?} is already being rebuilt"),
        });
    };
    let pool = state.pool.clone();
    let privacy = state.privacy.clone();
    tokio::spawn(async move {
        // Held until the rebuild ends, however it ends.
        let _running = guard;
        let outcome = match registry::rebuild(name, &pool, privacy.as_ref(), Finish::Swap, |_| {})
            .await
        {
            Ok(report) => {
                tracing::info!(projection = name, events = report.events, position = %report.position,
                    elapsed_ms = report.elapsed.as_millis() as u64, "projection rebuilt");
                "ok"
            }
            Err(error) => {
                tracing::error!(projection = name, error = %crate::error::error_chain(&error),
                    "projection rebuild failed; the live read model is untouched");
                "error"
            }
        };
        metrics::counter!("projection_rebuilds_total", "projection" => name, "outcome" => outcome)
            .increment(1);
    });
    Ok(name)
}

/// Asks FAILED consumer `name` to retry (`RETRY`) or skip (`SKIP`) its failed event.
pub(crate) async fn repair(state: &AppState, name: &str, action: &'static str) -> ApiResult<()> {
    let result = if action == "SKIP" {
        checkpoint::request_skip(&state.pool, name).await
    } else {
        checkpoint::request_retry(&state.pool, name).await
    };
    match result {
        Ok(()) => {
            tracing::warn!(consumer = %name, action, "operator repair requested");
            Ok(())
        }
        Err(RepairError::Unknown(_)) => Err(ApiError::not_found("projection")),
        Err(RepairError::NotFailed(name)) => Err(ApiError::Conflict {
            code: "not_failed",
            message: format!("{name:?} is not FAILED; retry and skip apply to a halted consumer"),
        }),
        Err(RepairError::Store(error)) => Err(error.into()),
    }
}

/// Ask a FAILED consumer to apply its failed event again.
#[utoipa::path(post, path = "/admin/projections/{name}/retry", tag = "admin",
    security(("bearer" = [])), params(("name" = String, Path, description = "A consumer's name")),
    responses((status = 202, body = Data<RepairRequested>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Data<RepairRequested>>)> {
    caller.require_admin()?;
    repair(&state, &name, "RETRY").await?;
    Ok(repaired(name, "RETRY"))
}

/// Ask a FAILED consumer to pass over its failed event (recorded as skipped).
#[utoipa::path(post, path = "/admin/projections/{name}/skip", tag = "admin",
    security(("bearer" = [])), params(("name" = String, Path, description = "A consumer's name")),
    responses((status = 202, body = Data<RepairRequested>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(super) async fn skip(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Data<RepairRequested>>)> {
    caller.require_admin()?;
    repair(&state, &name, "SKIP").await?;
    Ok(repaired(name, "SKIP"))
}

fn repaired(name: String, action: &'static str) -> (StatusCode, axum::Json<Data<RepairRequested>>) {
    let body = RepairRequested {
        name,
        requested_action: action,
    };
    (StatusCode::ACCEPTED, axum::Json(Data::new(body)))
}

/// Rebuilds running in this process, by database and projection: a process may serve several
/// databases (the end-to-end tests do), and a rebuild is exclusive only within one.
#[derive(Debug)]
struct Rebuilds;

/// Marks a rebuild as running until dropped.
#[derive(Debug)]
struct RebuildGuard(String);

static RUNNING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

impl Rebuilds {
    fn key(pool: &PgPool, name: &str) -> String {
        let options = pool.connect_options();
        format!(
            "{}:{}/{}#{name}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        )
    }

    fn running(pool: &PgPool, name: &str) -> bool {
        let key = Self::key(pool, name);
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
    }

    /// Registers a rebuild, or `None` when one of the same projection is already running here.
    fn start(pool: &PgPool, name: &str) -> Option<RebuildGuard> {
        let key = Self::key(pool, name);
        let inserted = RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone());
        // Built only once the lock is released: a guard dropped under it would deadlock.
        inserted.then(|| RebuildGuard(key))
    }
}

impl Drop for RebuildGuard {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

//! `/categories`: public reads, admin writes. Names are unique case-insensitively among live
//! categories; a category used by an active product cannot be deleted.
//!
//! Writes answer from the `Category` aggregate they ran; the product count is the products' to
//! know, read from the read model (0 for a new category). Name uniqueness is checked against the
//! read model under one lock for every name write, after the read model has applied every
//! category event written before: so a write waits for its predecessors, never for itself.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use commerce_commands::Executed;
use commerce_domain::category::{Category, CategoryCommand};
use commerce_projections::categories::{self, CategoryView};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::consistency::{MinPosition, Written};
use crate::context::RequestId;
use crate::envelope::{Data, PageQuery, Paginated};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::{as_stored, left_no, slug_for};
use crate::state::AppState;

const READ_MODEL: &[&str] = &["categories"];

/// A category.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryBody {
    id: Uuid,
    name: String,
    slug: String,
    product_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl CategoryBody {
    /// The answer for category `id` as a command left it, used by `product_count` products.
    fn of(id: Uuid, category: &Category, product_count: i64) -> ApiResult<Self> {
        let Some((created_at, updated_at)) = category.times() else {
            return Err(left_no("category"));
        };
        Ok(Self {
            id,
            name: category.name().to_owned(),
            slug: category.slug().to_owned(),
            product_count,
            created_at: as_stored(created_at),
            updated_at: as_stored(updated_at),
        })
    }
}

impl From<CategoryView> for CategoryBody {
    fn from(v: CategoryView) -> Self {
        Self {
            id: v.id,
            name: v.name,
            slug: v.slug,
            product_count: v.product_count,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

/// A new category, or a rename.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    /// 1 to 100 characters (trimmed), unique.
    // 1 to 100 characters once trimmed (the length is checked after trimming, so it is
    // in the pattern, not a `maxLength` of the untrimmed text); no NUL.
    #[schema(pattern = r"^\s*[^\s\u0000]([^\u0000]{0,98}[^\s\u0000])?\s*$")]
    name: String,
    /// URL slug: lowercase ASCII letters and digits joined by single hyphens; derived from the
    /// name when absent or blank.
    #[serde(default)]
    #[schema(
        max_length = 120,
        pattern = r"^[ \t\n\r]*([a-z0-9]+(-[a-z0-9]+)*)?[ \t\n\r]*$"
    )]
    slug: Option<String>,
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, rename, delete))
}

/// List categories.
#[utoipa::path(get, path = "/categories", tag = "categories",
    params(PageQuery),
    responses((status = 200, body = Paginated<CategoryBody>), (status = 400, body = crate::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    min: MinPosition,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Paginated<CategoryBody>>> {
    let page = q.page()?;
    min.wait(&state, READ_MODEL).await?;
    let (rows, total) = categories::list(&state.pool, page).await?;
    Ok(axum::Json(Paginated::new(
        rows.into_iter().map(Into::into).collect(),
        page,
        total,
    )))
}

/// One category.
#[utoipa::path(get, path = "/categories/{id}", tag = "categories",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Data<CategoryBody>), (status = 404, body = crate::error::ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    min: MinPosition,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Data<CategoryBody>>> {
    min.wait(&state, READ_MODEL).await?;
    let view = categories::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("category"))?;
    Ok(axum::Json(Data::new(view.into())))
}

/// Create a category (admin).
#[utoipa::path(post, path = "/categories", tag = "categories", security(("bearer" = [])),
    request_body = CategoryInput,
    responses((status = 201, body = Data<CategoryBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Json(input): Json<CategoryInput>,
) -> ApiResult<Written<CategoryBody>> {
    caller.require_admin()?;
    let id = Uuid::new_v4();
    let command = CategoryCommand::CreateCategory {
        category_id: id,
        name: input.name.clone(),
        slug: slug_for(input.slug, &input.name, "category", id).unwrap_or_default(),
        at: Utc::now(),
    };
    let executed =
        write_unique_name(&state, id, &input.name, command, &request_id, &caller).await?;
    // No product can be in a category that did not exist a moment ago.
    let body = CategoryBody::of(id, &executed.aggregate, 0)?;
    Ok(Written::new(StatusCode::CREATED, executed.position, body))
}

/// Rename a category (admin).
#[utoipa::path(put, path = "/categories/{id}", tag = "categories", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CategoryInput,
    responses((status = 200, body = Data<CategoryBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
    Json(input): Json<CategoryInput>,
) -> ApiResult<Written<CategoryBody>> {
    caller.require_admin()?;
    let command = CategoryCommand::RenameCategory {
        name: input.name.clone(),
        slug: slug_for(input.slug, &input.name, "category", id).unwrap_or_default(),
        at: Utc::now(),
    };
    let executed =
        write_unique_name(&state, id, &input.name, command, &request_id, &caller).await?;
    let used = categories::product_count(&state.pool, id).await?;
    let body = CategoryBody::of(id, &executed.aggregate, used)?;
    Ok(Written::new(StatusCode::OK, executed.position, body))
}

/// Delete a category no active product uses (admin).
#[utoipa::path(delete, path = "/categories/{id}", tag = "categories", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    min: MinPosition,
    Path(id): Path<Uuid>,
) -> ApiResult<Written<()>> {
    caller.require_admin()?;
    let (category, version) = state.aggregates.load::<Category>(&id.to_string()).await?;
    if !category.is_live() {
        return Err(ApiError::not_found("category"));
    }
    // The count is the products': it reflects the caller's own product writes (read-your-writes).
    min.wait(&state, READ_MODEL).await?;
    let used = categories::product_count(&state.pool, id).await?;
    if used > 0 {
        return Err(ApiError::Conflict {
            code: "category_in_use",
            message: format!("{used} active product(s) use this category"),
        });
    }
    let executed = state
        .dispatcher
        .execute_from::<Category>(
            &id.to_string(),
            CategoryCommand::DeleteCategory { at: Utc::now() },
            &request_id.metadata(&caller),
            (category, version),
        )
        .await?;
    Ok(Written::no_content(executed.position))
}

/// Runs a create or rename under a lock on category names. Holding the lock, it first waits
/// until the read model has applied the last category event in the log (every earlier name write
/// committed before its writer let go of the lock), so the name check sees every name written so
/// far, by any API instance; its own event is for the next writer to wait for. The lock is a
/// transaction advisory lock in a transaction that writes nothing, so it does not hold back the
/// log horizon.
async fn write_unique_name(
    state: &AppState,
    id: Uuid,
    name: &str,
    command: CategoryCommand,
    request_id: &RequestId,
    caller: &Caller,
) -> ApiResult<Executed<Category>> {
    let mut lock = state.pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('api.category-names'))")
        .execute(&mut *lock)
        .await?;
    if let Some(last) = state.log.last_of_type(Category::TYPE).await? {
        MinPosition::at(last).wait(state, READ_MODEL).await?;
    }
    if let Some(existing) = categories::find_by_name(&state.pool, name).await? {
        if existing.id != id {
            return Err(ApiError::Conflict {
                code: "duplicate_name",
                message: format!("a category named {:?} exists", existing.name),
            });
        }
    }
    let executed = state
        .dispatcher
        .execute::<Category>(&id.to_string(), command, &request_id.metadata(caller))
        .await?;
    lock.commit().await?;
    Ok(executed)
}

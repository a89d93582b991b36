//! `/products/{id}/reviews`: a product's reviews (public) and submitting one (signed in).
//!
//! One review per user and product: its id is derived from both, so a second submission, even a
//! concurrent one from another API instance, lands on the same stream and is refused (409).
//! Only an active product can be reviewed (404 otherwise, as for an unknown id). Whether the
//! purchase is verified is decided here, from the orders read model, and placed in the command.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use commerce_commands::DispatchError;
use commerce_domain::ids::review_id;
use commerce_domain::review::{Review, ReviewCommand, ReviewError};
use commerce_projections::reviews::{self, ReviewView};
use commerce_projections::{catalog, orders};
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
use crate::routes::products::{checked_text, load_product};
use crate::routes::{as_stored, left_no};
use crate::state::AppState;

const READ_MODEL: &[&str] = &["reviews", "catalog"];

/// A review.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewBody {
    id: Uuid,
    product_id: Uuid,
    /// The author.
    user_id: Uuid,
    /// Stars, 1 to 5.
    rating: i16,
    comment: String,
    /// The author had a confirmed order with the product when submitting.
    verified_purchase: bool,
    created_at: DateTime<Utc>,
}

impl From<ReviewView> for ReviewBody {
    fn from(v: ReviewView) -> Self {
        Self {
            id: v.id,
            product_id: v.product_id,
            user_id: v.user_id,
            rating: v.rating,
            comment: v.comment,
            verified_purchase: v.verified_purchase,
            created_at: v.created_at,
        }
    }
}

/// A new review.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// Whole stars, 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    rating: u8,
    /// At most 2000 characters; empty when absent.
    #[serde(default)]
    #[schema(max_length = 2000)]
    comment: String,
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, submit))
}

/// A product's reviews, newest first.
#[utoipa::path(get, path = "/products/{id}/reviews", tag = "reviews",
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = Paginated<ReviewBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    min: MinPosition,
    Path(id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Paginated<ReviewBody>>> {
    let page = q.page()?;
    min.wait(&state, READ_MODEL).await?;
    if catalog::get_product(&state.pool, id).await?.is_none() {
        return Err(ApiError::not_found("product"));
    }
    let (rows, total) = reviews::list_for_product(&state.pool, id, page).await?;
    Ok(axum::Json(Paginated::new(
        rows.into_iter().map(Into::into).collect(),
        page,
        total,
    )))
}

/// Review a product, once.
#[utoipa::path(post, path = "/products/{id}/reviews", tag = "reviews", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReviewInput,
    responses((status = 201, body = Data<ReviewBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(product_id): Path<Uuid>,
    Json(input): Json<ReviewInput>,
) -> ApiResult<Written<ReviewBody>> {
    if !(1..=5).contains(&input.rating) {
        return Err(ApiError::invalid_field(
            "rating",
            "must be a whole number from 1 to 5",
        ));
    }
    checked_text("comment", &input.comment)?;
    let active = load_product(&state, product_id)
        .await?
        .is_some_and(|p| p.is_active());
    if !active {
        return Err(ApiError::not_found("product"));
    }
    let verified_purchase =
        orders::has_confirmed_order_with(&state.pool, caller.user_id, product_id).await?;
    let id = review_id(caller.user_id, product_id);
    let executed = state
        .dispatcher
        .execute::<Review>(
            &id.to_string(),
            ReviewCommand::SubmitReview {
                review_id: id,
                product_id,
                user_id: caller.user_id,
                rating: input.rating,
                comment: input.comment,
                verified_purchase,
                at: Utc::now(),
            },
            &request_id.metadata(&caller),
        )
        .await
        .map_err(|e| match e {
            DispatchError::Rejected(ReviewError::AlreadyReviewed) => ApiError::Conflict {
                code: "already_reviewed",
                message: "you already reviewed this product".to_owned(),
            },
            other => other.into(),
        })?;
    let review = &executed.aggregate;
    let (Some(submitted), Some(rating)) = (review.submitted(), review.rating()) else {
        return Err(left_no("review"));
    };
    let body = ReviewBody {
        id,
        product_id: submitted.product_id,
        user_id: submitted.user_id,
        rating: i16::from(rating),
        comment: submitted.comment.to_owned(),
        verified_purchase: submitted.verified_purchase,
        created_at: as_stored(submitted.at),
    };
    Ok(Written::new(StatusCode::CREATED, executed.position, body))
}

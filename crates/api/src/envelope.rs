//! Response envelopes (`{"data": …}`, `{"data": [...], "pagination": {…}}`) and the validated
//! `page`/`page_size` query.

use commerce_projections::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// `{"data": …}`, plus an optional message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    /// The resource.
    pub data: T,
    /// A note for humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl<T> Data<T> {
    /// Wraps `data`.
    pub fn new(data: T) -> Self {
        Self {
            data,
            message: None,
        }
    }
}

/// Where a list page sits in the whole.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Pagination {
    /// 1-based page number.
    pub page: i64,
    /// Items per page.
    pub page_size: i64,
    /// Items in all pages.
    pub total: i64,
    /// Number of pages.
    pub total_pages: i64,
}

/// `{"data": [...], "pagination": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    /// This page's items.
    pub data: Vec<T>,
    /// Where the page sits.
    pub pagination: Pagination,
}

impl<T> Paginated<T> {
    /// A page of `items` out of `total`.
    pub fn new(items: Vec<T>, page: Page, total: i64) -> Self {
        let total_pages = if total == 0 {
            0
        } else {
            (total + page.page_size - 1) / page.page_size
        };
        Self {
            data: items,
            pagination: Pagination {
                page: page.page,
                page_size: page.page_size,
                total,
                total_pages,
            },
        }
    }
}

/// `page` (≥ 1, default 1) and `page_size` (1..=100, default 10).
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
}

impl PageQuery {
    /// The page asked for; out-of-range values are a 400.
    pub fn page(&self) -> Result<Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let page_size = self.page_size.unwrap_or(10);
        if page < 1 {
            return Err(ApiError::invalid_field("page", "must be at least 1"));
        }
        if !(1..=100).contains(&page_size) {
            return Err(ApiError::invalid_field(
                "page_size",
                "must be between 1 and 100",
            ));
        }
        Ok(Page { page, page_size })
    }
}

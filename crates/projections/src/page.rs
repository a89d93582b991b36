//! Pagination of list queries.

/// A page request: `page` from 1, `page_size` 1..=100 (the API validates; this clamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: i64,
    /// Rows per page.
    pub page_size: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            page: 1,
            page_size: 10,
        }
    }
}

impl Page {
    /// A page, clamped to the allowed ranges.
    pub fn new(page: i64, page_size: i64) -> Self {
        Self {
            page: page.max(1),
            page_size: page_size.clamp(1, 100),
        }
    }

    /// SQL `LIMIT`.
    pub fn limit(&self) -> i64 {
        self.page_size
    }

    /// SQL `OFFSET`.
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }

    /// Pages needed for `total` rows.
    pub fn total_pages(&self, total: i64) -> i64 {
        (total + self.page_size - 1) / self.page_size
    }
}

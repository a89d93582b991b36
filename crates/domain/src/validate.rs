//! Small input checks shared by the aggregates (lengths are counted in characters, not bytes).

/// Number of Unicode scalar values in `value`.
pub(crate) fn char_len(value: &str) -> usize {
    value.chars().count()
}

/// Whether `value` has between `min` and `max` characters, inclusive.
pub(crate) fn len_within(value: &str, min: usize, max: usize) -> bool {
    let len = char_len(value);
    (min..=max).contains(&len)
}

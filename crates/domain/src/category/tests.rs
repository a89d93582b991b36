use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::error::{DomainError, ErrorKind};

type CategoryTest = TestFramework<Category>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn id() -> Uuid {
    Uuid::from_u128(7)
}

fn created() -> CategoryEvent {
    CategoryEvent::CategoryCreated {
        category_id: id(),
        name: "Home & Garden".into(),
        slug: "home-garden".into(),
        at: at(),
    }
}

#[test]
fn slugify_keeps_ascii_letters_and_digits_joined_by_single_hyphens() {
    assert_eq!(slugify("Home & Garden"), "home-garden");
    assert_eq!(slugify("  --Rust 2024!! "), "rust-2024");
    assert_eq!(slugify("Café"), "caf");
    assert_eq!(slugify("!!!"), "");
}

#[test]
fn creating_a_category_derives_an_empty_slug_from_the_name() {
    CategoryTest::with(())
        .given_no_previous_events()
        .when(CategoryCommand::CreateCategory {
            category_id: id(),
            name: " Home & Garden ".into(),
            slug: String::new(),
            at: at(),
        })
        .then_expect_events(vec![created()]);
}

#[test]
fn creating_an_existing_category_is_rejected_as_a_conflict() {
    CategoryTest::with(())
        .given(vec![created()])
        .when(CategoryCommand::CreateCategory {
            category_id: id(),
            name: "Other".into(),
            slug: String::new(),
            at: at(),
        })
        .then_expect_error(CategoryError::AlreadyExists);
    assert_eq!(CategoryError::AlreadyExists.kind(), ErrorKind::Conflict);
}

#[test]
fn creating_a_category_with_an_empty_name_is_rejected() {
    CategoryTest::with(())
        .given_no_previous_events()
        .when(CategoryCommand::CreateCategory {
            category_id: id(),
            name: " ".into(),
            slug: "x".into(),
            at: at(),
        })
        .then_expect_error(CategoryError::InvalidName { length: 0 });
}

#[test]
fn creating_a_category_with_a_malformed_slug_is_rejected() {
    CategoryTest::with(())
        .given_no_previous_events()
        .when(CategoryCommand::CreateCategory {
            category_id: id(),
            name: "Books".into(),
            slug: "Bad Slug".into(),
            at: at(),
        })
        .then_expect_error(CategoryError::InvalidSlug {
            slug: "Bad Slug".into(),
        });
}

#[test]
fn renaming_a_category_emits_the_new_and_previous_name() {
    CategoryTest::with(())
        .given(vec![created()])
        .when(CategoryCommand::RenameCategory {
            name: "Garden".into(),
            slug: String::new(),
            at: at(),
        })
        .then_expect_events(vec![CategoryEvent::CategoryRenamed {
            category_id: id(),
            name: "Garden".into(),
            slug: "garden".into(),
            previous_name: "Home & Garden".into(),
            at: at(),
        }]);
}

#[test]
fn renaming_an_unknown_category_is_rejected_as_not_found() {
    CategoryTest::with(())
        .given_no_previous_events()
        .when(CategoryCommand::RenameCategory {
            name: "Garden".into(),
            slug: String::new(),
            at: at(),
        })
        .then_expect_error(CategoryError::NotFound);
}

#[test]
fn renaming_a_deleted_category_is_rejected() {
    CategoryTest::with(())
        .given(vec![
            created(),
            CategoryEvent::CategoryDeleted {
                category_id: id(),
                name: "Home & Garden".into(),
                at: at(),
            },
        ])
        .when(CategoryCommand::RenameCategory {
            name: "Garden".into(),
            slug: String::new(),
            at: at(),
        })
        .then_expect_error(CategoryError::Deleted);
}

#[test]
fn deleting_a_category_emits_category_deleted_once() {
    let deleted = CategoryEvent::CategoryDeleted {
        category_id: id(),
        name: "Home & Garden".into(),
        at: at(),
    };
    CategoryTest::with(())
        .given(vec![created()])
        .when(CategoryCommand::DeleteCategory { at: at() })
        .then_expect_events(vec![deleted.clone()]);
    CategoryTest::with(())
        .given(vec![created(), deleted])
        .when(CategoryCommand::DeleteCategory { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn deleting_an_unknown_category_is_rejected_as_not_found() {
    CategoryTest::with(())
        .given_no_previous_events()
        .when(CategoryCommand::DeleteCategory { at: at() })
        .then_expect_error(CategoryError::NotFound);
}

#[test]
fn a_category_knows_when_it_was_created_and_last_renamed() {
    let mut category = Category::default();
    assert_eq!(category.times(), None);
    category.apply(created());
    assert_eq!(category.times(), Some((at(), at())));
    let later = at() + chrono::Duration::hours(2);
    category.apply(CategoryEvent::CategoryRenamed {
        category_id: id(),
        name: "Home".into(),
        slug: "home".into(),
        previous_name: category.name().to_owned(),
        at: later,
    });
    assert_eq!((category.name(), category.slug()), ("Home", "home"));
    assert_eq!(category.times(), Some((at(), later)));
}

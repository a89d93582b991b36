use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::error::{DomainError, ErrorKind};
use crate::money::Currency;

type ProductTest = TestFramework<Product>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn id() -> Uuid {
    Uuid::from_u128(10)
}

fn usd(amount_minor: i64) -> Money {
    Money::new(amount_minor, Currency::USD)
}

fn create() -> ProductCommand {
    ProductCommand::CreateProduct {
        product_id: id(),
        name: "Blue Mug".into(),
        slug: String::new(),
        description: "A mug.".into(),
        price: usd(1299),
        category_id: Uuid::from_u128(1),
        image_url: None,
        at: at(),
    }
}

fn created() -> ProductEvent {
    ProductEvent::ProductCreated {
        product_id: id(),
        name: "Blue Mug".into(),
        slug: "blue-mug".into(),
        description: "A mug.".into(),
        price: usd(1299),
        category_id: Uuid::from_u128(1),
        image_url: None,
        at: at(),
    }
}

fn deactivated() -> ProductEvent {
    ProductEvent::ProductDeactivated {
        product_id: id(),
        category_id: Uuid::from_u128(1),
        at: at(),
    }
}

fn update() -> ProductCommand {
    ProductCommand::UpdateProduct {
        name: None,
        slug: None,
        description: None,
        price: None,
        category_id: None,
        image_url: None,
        at: at(),
    }
}

fn with_create(edit: impl FnOnce(&mut String, &mut String, &mut Money)) -> ProductCommand {
    let ProductCommand::CreateProduct {
        product_id,
        mut name,
        slug,
        mut description,
        mut price,
        category_id,
        image_url,
        at,
    } = create()
    else {
        unreachable!()
    };
    edit(&mut name, &mut description, &mut price);
    ProductCommand::CreateProduct {
        product_id,
        name,
        slug,
        description,
        price,
        category_id,
        image_url,
        at,
    }
}

#[test]
fn creating_a_product_emits_product_created_with_a_derived_slug() {
    ProductTest::with(())
        .given_no_previous_events()
        .when(create())
        .then_expect_events(vec![created()]);
}

#[test]
fn creating_an_existing_product_is_rejected_as_a_conflict() {
    ProductTest::with(())
        .given(vec![created()])
        .when(create())
        .then_expect_error(ProductError::AlreadyExists);
    assert_eq!(ProductError::AlreadyExists.kind(), ErrorKind::Conflict);
}

#[test]
fn creating_a_product_with_a_negative_price_is_rejected() {
    ProductTest::with(())
        .given_no_previous_events()
        .when(with_create(|_, _, price| *price = usd(-1)))
        .then_expect_error(ProductError::NegativePrice { price: usd(-1) });
}

#[test]
fn creating_a_product_with_an_empty_or_overlong_name_is_rejected() {
    ProductTest::with(())
        .given_no_previous_events()
        .when(with_create(|name, _, _| *name = "n".repeat(201)))
        .then_expect_error(ProductError::InvalidName { length: 201 });
    ProductTest::with(())
        .given_no_previous_events()
        .when(with_create(|name, _, _| name.clear()))
        .then_expect_error(ProductError::InvalidName { length: 0 });
}

#[test]
fn creating_a_product_with_an_overlong_description_is_rejected() {
    ProductTest::with(())
        .given_no_previous_events()
        .when(with_create(|_, description, _| {
            *description = "d".repeat(5001)
        }))
        .then_expect_error(ProductError::DescriptionTooLong { length: 5001 });
}

#[test]
fn updating_a_product_emits_full_values_and_the_previous_category() {
    let command = ProductCommand::UpdateProduct {
        name: Some("Red Mug".into()),
        slug: None,
        description: None,
        price: Some(usd(999)),
        category_id: Some(Uuid::from_u128(2)),
        image_url: None,
        at: at(),
    };
    ProductTest::with(())
        .given(vec![created()])
        .when(command)
        .then_expect_events(vec![ProductEvent::ProductUpdated {
            product_id: id(),
            name: "Red Mug".into(),
            slug: "red-mug".into(),
            description: "A mug.".into(),
            price: usd(999),
            category_id: Uuid::from_u128(2),
            previous_category_id: Uuid::from_u128(1),
            image_url: None,
            at: at(),
        }]);
}

#[test]
fn an_update_that_changes_nothing_emits_nothing() {
    ProductTest::with(())
        .given(vec![created()])
        .when(update())
        .then_expect_events(vec![]);
}

#[test]
fn updating_an_unknown_product_is_rejected_as_not_found() {
    ProductTest::with(())
        .given_no_previous_events()
        .when(update())
        .then_expect_error(ProductError::NotFound);
}

#[test]
fn updating_an_inactive_product_is_rejected() {
    ProductTest::with(())
        .given(vec![created(), deactivated()])
        .when(update())
        .then_expect_error(ProductError::Inactive);
}

#[test]
fn updating_a_product_to_a_negative_price_is_rejected() {
    let ProductCommand::UpdateProduct {
        name,
        slug,
        description,
        category_id,
        image_url,
        at,
        ..
    } = update()
    else {
        unreachable!()
    };
    let command = ProductCommand::UpdateProduct {
        name,
        slug,
        description,
        price: Some(usd(-5)),
        category_id,
        image_url,
        at,
    };
    ProductTest::with(())
        .given(vec![created()])
        .when(command)
        .then_expect_error(ProductError::NegativePrice { price: usd(-5) });
}

#[test]
fn deactivating_a_product_emits_product_deactivated_once() {
    ProductTest::with(())
        .given(vec![created()])
        .when(ProductCommand::DeactivateProduct { at: at() })
        .then_expect_events(vec![deactivated()]);
    ProductTest::with(())
        .given(vec![created(), deactivated()])
        .when(ProductCommand::DeactivateProduct { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn deactivating_an_unknown_product_is_rejected_as_not_found() {
    ProductTest::with(())
        .given_no_previous_events()
        .when(ProductCommand::DeactivateProduct { at: at() })
        .then_expect_error(ProductError::NotFound);
}

#[test]
fn a_product_knows_its_details_and_when_it_was_created_and_last_changed() {
    let mut product = Product::default();
    assert_eq!(product.times(), None);
    product.apply(created());
    assert_eq!(product.slug(), Some("blue-mug"));
    assert_eq!(product.description(), Some("A mug."));
    assert_eq!(product.image_url(), None);
    assert_eq!(product.times(), Some((at(), at())));
    let later = at() + chrono::Duration::days(1);
    product.apply(ProductEvent::ProductDeactivated {
        product_id: id(),
        category_id: Uuid::from_u128(1),
        at: later,
    });
    assert!(!product.is_active());
    assert_eq!(product.times(), Some((at(), later)));
}

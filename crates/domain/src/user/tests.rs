use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::error::{DomainError, ErrorKind};
use crate::ids::user_id_for_email;

type UserTest = TestFramework<User>;

const EMAIL: &str = "Alice@Example.com";

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn id() -> Uuid {
    user_id_for_email(EMAIL)
}

fn register() -> UserCommand {
    UserCommand::RegisterUser {
        user_id: id(),
        email: format!(" {EMAIL} "),
        name: " Alice ".into(),
        phone: Some("+1 555 0100".into()),
        roles: vec![],
        at: at(),
    }
}

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        user_id: id(),
        email: EMAIL.into(),
        name: "Alice".into(),
        phone: Some("+1 555 0100".into()),
        roles: vec![Role::Customer],
        at: at(),
    }
}

fn deactivated() -> UserEvent {
    UserEvent::UserDeactivated {
        user_id: id(),
        at: at(),
    }
}

#[test]
fn registering_a_user_defaults_to_the_customer_role() {
    UserTest::with(())
        .given_no_previous_events()
        .when(register())
        .then_expect_events(vec![registered()]);
}

#[test]
fn registering_an_email_twice_in_another_case_is_rejected_as_taken() {
    let again = UserCommand::RegisterUser {
        user_id: user_id_for_email("alice@EXAMPLE.com"),
        email: "alice@EXAMPLE.com".into(),
        name: "Other".into(),
        phone: None,
        roles: vec![],
        at: at(),
    };
    UserTest::with(())
        .given(vec![registered()])
        .when(again)
        .then_expect_error(UserError::EmailTaken {
            email: "alice@EXAMPLE.com".into(),
        });
    assert_eq!(
        UserError::EmailTaken {
            email: String::new()
        }
        .kind(),
        ErrorKind::Conflict
    );
}

#[test]
fn registering_with_a_malformed_email_is_rejected() {
    for email in [
        "alice",
        "alice@",
        "@example.com",
        "alice@example",
        "a b@example.com",
        "a@b@c.com",
    ] {
        let result = UserTest::with(())
            .given_no_previous_events()
            .when(UserCommand::RegisterUser {
                user_id: user_id_for_email(email),
                email: email.into(),
                name: "A".into(),
                phone: None,
                roles: vec![],
                at: at(),
            })
            .inspect_result();
        assert!(
            matches!(result, Err(UserError::InvalidEmail { .. })),
            "{email}: {result:?}"
        );
    }
    let long = format!("{}@example.com", "a".repeat(250));
    assert!(validate_email(&long).is_err());
}

#[test]
fn registering_with_an_empty_or_overlong_name_is_rejected() {
    for (name, length) in [("   ", 0), (&*"n".repeat(101), 101)] {
        let UserCommand::RegisterUser {
            user_id,
            email,
            phone,
            roles,
            at,
            ..
        } = register()
        else {
            unreachable!()
        };
        UserTest::with(())
            .given_no_previous_events()
            .when(UserCommand::RegisterUser {
                user_id,
                email,
                name: name.into(),
                phone,
                roles,
                at,
            })
            .then_expect_error(UserError::InvalidName { length });
    }
}

#[test]
fn a_password_needs_eight_characters_a_letter_and_a_digit() {
    assert_eq!(validate_password("abcdefg1"), Ok(()));
    for weak in ["abc1", "abcdefgh", "12345678", &"a1".repeat(65)] {
        let result = validate_password(weak);
        assert!(
            matches!(result, Err(UserError::WeakPassword { .. })),
            "{weak}"
        );
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Invalid);
    }
}

#[test]
fn updating_the_profile_emits_the_new_full_values() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile {
            name: Some("Alicia".into()),
            phone: None,
            at: at(),
        })
        .then_expect_events(vec![UserEvent::ProfileUpdated {
            user_id: id(),
            name: "Alicia".into(),
            phone: Some("+1 555 0100".into()),
            at: at(),
        }]);
}

#[test]
fn an_empty_phone_in_a_profile_update_removes_the_phone() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile {
            name: None,
            phone: Some(String::new()),
            at: at(),
        })
        .then_expect_events(vec![UserEvent::ProfileUpdated {
            user_id: id(),
            name: "Alice".into(),
            phone: None,
            at: at(),
        }]);
}

#[test]
fn a_profile_update_that_changes_nothing_emits_nothing() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::UpdateProfile {
            name: Some("Alice".into()),
            phone: None,
            at: at(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn updating_the_profile_of_an_unknown_user_is_rejected_as_not_found() {
    UserTest::with(())
        .given_no_previous_events()
        .when(UserCommand::UpdateProfile {
            name: None,
            phone: None,
            at: at(),
        })
        .then_expect_error(UserError::NotFound);
}

#[test]
fn changing_the_password_records_the_fact_without_a_hash() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::ChangePassword { at: at() })
        .then_expect_events(vec![UserEvent::PasswordChanged {
            user_id: id(),
            at: at(),
        }]);
}

#[test]
fn events_written_with_a_password_hash_still_load_and_keep_it_out() {
    // As events looked before guarantee 9 held (and do until the redaction migration ran).
    let old: UserEvent = serde_json::from_value(serde_json::json!({"UserRegistered": {
        "user_id": id(), "email": EMAIL, "name": "Alice", "phone": null,
        "password_hash": "$argon2id$v=19$old", "roles": ["customer"], "at": at()
    }}))
    .unwrap();
    let changed: UserEvent = serde_json::from_value(serde_json::json!({"PasswordChanged": {
        "user_id": id(), "password_hash": "$argon2id$v=19$new", "at": at()
    }}))
    .unwrap();
    assert_eq!(
        changed,
        UserEvent::PasswordChanged {
            user_id: id(),
            at: at()
        }
    );
    let mut user = User::default();
    user.apply(old);
    user.apply(changed);
    assert!(user.is_active());
    assert!(!serde_json::to_string(&user).unwrap().contains("argon2"));
}

#[test]
fn deactivating_a_user_emits_user_deactivated_once() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::DeactivateUser { at: at() })
        .then_expect_events(vec![deactivated()]);
    UserTest::with(())
        .given(vec![registered(), deactivated()])
        .when(UserCommand::DeactivateUser { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn a_deactivated_user_rejects_further_changes() {
    UserTest::with(())
        .given(vec![registered(), deactivated()])
        .when(UserCommand::ChangePassword { at: at() })
        .then_expect_error(UserError::Deactivated);
    assert_eq!(UserError::Deactivated.kind(), ErrorKind::Conflict);
}

#[test]
fn setting_roles_grants_the_new_and_revokes_the_dropped() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::SetRoles {
            roles: vec![Role::Auditor, Role::Admin],
            at: at(),
        })
        .then_expect_events(vec![
            UserEvent::RoleGranted {
                user_id: id(),
                role: Role::Admin,
                at: at(),
            },
            UserEvent::RoleGranted {
                user_id: id(),
                role: Role::Auditor,
                at: at(),
            },
            UserEvent::RoleRevoked {
                user_id: id(),
                role: Role::Customer,
                at: at(),
            },
        ]);
}

#[test]
fn setting_no_roles_is_rejected() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::SetRoles {
            roles: vec![],
            at: at(),
        })
        .then_expect_error(UserError::NoRoles);
}

#[test]
fn roles_serialise_in_lowercase_and_event_types_are_variant_names() {
    use cqrs_es::DomainEvent;
    assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
    assert_eq!(registered().event_type(), "UserRegistered");
    assert_eq!(registered().event_version(), "1.0");
}

#[test]
fn a_user_knows_its_profile_and_when_it_was_registered_and_last_changed() {
    let later = at() + chrono::Duration::minutes(5);
    let mut user = User::default();
    assert_eq!(user.times(), None);
    user.apply(registered());
    assert_eq!(user.times(), Some((at(), at())));
    user.apply(UserEvent::ProfileUpdated {
        user_id: id(),
        name: "Alice B.".into(),
        phone: None,
        at: later,
    });
    assert_eq!((user.name(), user.phone()), ("Alice B.", None));
    assert_eq!(
        user.times(),
        Some((at(), later)),
        "created stays, updated moves"
    );
    user.apply(UserEvent::RoleGranted {
        user_id: id(),
        role: Role::Admin,
        at: later + chrono::Duration::minutes(1),
    });
    assert_eq!(
        user.times(),
        Some((at(), later + chrono::Duration::minutes(1)))
    );
}

fn erased() -> UserEvent {
    UserEvent::PersonalDataErased {
        user_id: id(),
        at: at(),
    }
}

#[test]
fn erasing_a_registered_user_records_it_once() {
    UserTest::with(())
        .given(vec![registered()])
        .when(UserCommand::ErasePersonalData { at: at() })
        .then_expect_events(vec![erased()]);
    UserTest::with(())
        .given(vec![registered(), erased()])
        .when(UserCommand::ErasePersonalData { at: at() })
        .then_expect_events(vec![]);
    UserTest::with(())
        .given(vec![registered(), deactivated()])
        .when(UserCommand::ErasePersonalData { at: at() })
        .then_expect_events(vec![erased()]);
    UserTest::with(())
        .given_no_previous_events()
        .when(UserCommand::ErasePersonalData { at: at() })
        .then_expect_error(UserError::NotFound);
}

#[test]
fn an_erased_user_reads_as_erased_cannot_change_and_keeps_the_email_taken() {
    let mut user = User::default();
    user.apply(registered());
    user.apply(erased());
    assert_eq!(
        (user.email(), user.name(), user.phone()),
        (crate::ERASED, crate::ERASED, Some(crate::ERASED))
    );
    assert!(user.is_erased() && !user.is_active());
    assert_eq!(user.user_id(), Some(id()), "the id stays");
    UserTest::with(())
        .given(vec![registered(), erased()])
        .when(UserCommand::UpdateProfile {
            name: Some("Back".into()),
            phone: None,
            at: at(),
        })
        .then_expect_error(UserError::Deactivated);
    UserTest::with(())
        .given(vec![registered(), erased()])
        .when(register())
        .then_expect_error(UserError::EmailTaken {
            email: EMAIL.into(),
        });
}

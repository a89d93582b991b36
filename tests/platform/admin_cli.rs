//! Bootstrapping an operator account with `commerce admin create-user`, and the API's refusal to
//! start in `prod` without a strong token signing key.

use std::process::Output;

use crate::support::TestApp;
use commerce_event_store::db::MIGRATOR;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Command;

const ADMIN_PASSWORD: &str = "bootstrap-admin-42";

fn commerce() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_commerce"));
    for var in [
        "DATABASE_URL",
        "AMQP_URL",
        "JWT_SECRET",
        "COMMERCE_ENV",
        "ADMIN_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "warn")
        .env("DATA_KEY", crate::support::DATA_KEY)
        .kill_on_drop(true);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn run(cmd: &mut Command) -> Output {
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finished in time")
        .expect("the binary runs")
}

async fn create_user(database_url: &str, email: &str, role: &str) -> Output {
    run(commerce()
        .args(["admin", "create-user", "--email", email, "--name", "Root"])
        .args(["--role", role, "--password-memory-kib", "1024"])
        .env("DATABASE_URL", database_url)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD))
    .await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_created_by_the_cli_signs_in_and_may_set_roles(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let database = c.get_database().expect("sqlx::test names a database");
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let created = create_user(&url, "root@example.com", "admin").await;
    let stdout = text(&created.stdout);
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(stdout.contains("created user"), "{stdout}");
    assert!(
        !stdout.contains(ADMIN_PASSWORD) && !text(&created.stderr).contains(ADMIN_PASSWORD),
        "the password is never printed"
    );

    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let roles_path = format!("/api/v1/users/{}/roles", customer.user_id);
    let signed_in = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ROOT@example.com", "password": ADMIN_PASSWORD}),
        )
        .await
        .expect(200);
    assert_eq!(signed_in.data()["user"]["roles"], json!(["admin"]));
    let token = signed_in.data()["access_token"].as_str().unwrap();
    let promoted = app
        .put(
            &roles_path,
            Some(token),
            json!({"roles": ["customer", "admin"]}),
        )
        .await
        .expect(200);
    assert_eq!(promoted.data()["roles"], json!(["customer", "admin"]));
    // A plain customer is refused the same route.
    let other = app.customer().await;
    app.put(
        &format!("/api/v1/users/{}/roles", other.user_id),
        Some(&other.token),
        json!({"roles": ["admin"]}),
    )
    .await
    .expect(403);

    // Run again for the same email: the role is added, the password kept.
    let again = create_user(&url, "root@example.com", "auditor").await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("already existed"));
    let relogin = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "root@example.com", "password": ADMIN_PASSWORD}),
        )
        .await
        .expect(200);
    assert_eq!(relogin.data()["user"]["roles"], json!(["admin", "auditor"]));

    let bad_role = create_user(&url, "x@example.com", "superuser").await;
    assert!(!bad_role.status.success());
    assert!(text(&bad_role.stderr).contains("--role"));
    app.stop().await;
}

#[tokio::test]
async fn the_api_refuses_to_start_in_prod_without_a_strong_jwt_secret() {
    let weak = [
        None,
        Some("too-short-secret"),
        Some("abababababababababababababababababab"),
    ];
    for secret in weak {
        let mut cmd = commerce();
        cmd.args(["api", "--listen-addr", "127.0.0.1:0"])
            .env("COMMERCE_ENV", "prod")
            // Unreachable: the key must be refused before any connection is tried.
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/commerce");
        if let Some(secret) = secret {
            cmd.env("JWT_SECRET", secret);
        }
        let out = run(&mut cmd).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{secret:?}: {stderr}");
        assert!(stderr.contains("JWT_SECRET"), "{secret:?}: {stderr}");
        assert!(!stderr.contains("Postgres"), "{secret:?}: {stderr}");
        if let Some(secret) = secret {
            assert!(!stderr.contains(secret), "the secret is never printed");
        }
    }
}

#[tokio::test]
async fn the_api_refuses_to_start_in_prod_with_an_argon2_memory_below_the_owasp_minimum() {
    let out = run(commerce()
        .args(["api", "--listen-addr", "127.0.0.1:0"])
        .env("COMMERCE_ENV", "prod")
        .env("JWT_SECRET", "a-strong-secret-0123456789-abcdefghijklmnop")
        .env("PASSWORD_HASH_MEMORY_KIB", "19455")
        // Unreachable: the setting must be refused before any connection is tried.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/commerce"))
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("PASSWORD_HASH_MEMORY_KIB") && stderr.contains("19456"),
        "{stderr}"
    );
    assert!(!stderr.contains("Postgres"), "{stderr}");
}

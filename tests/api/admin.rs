//! The first root admin: created once at first boot, never reset by a restart, and reset on
//! purpose by `burncloud admin create`.

use burncloud::domain::{email::Email, password};
use burncloud::services::accounts::{self, RootAdmin};
use sqlx::Row;

use crate::support::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, spawn_app};

db_tests!(first_boot_creates_the_root_admin_once, generated_password_is_returned_once, admin_create_resets_an_account);

async fn stored_hash(app: &crate::support::helpers::TestApp, email: &str) -> (String, String) {
    let row = sqlx::query("SELECT password_hash, role FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn first_boot_creates_the_root_admin_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (hash, role) = stored_hash(&app, ADMIN_EMAIL).await;
    assert_eq!(role, "root");
    assert!(password::verify(ADMIN_PASSWORD, &hash));

    // A restart with a different configured password changes nothing.
    let again =
        accounts::ensure_root_admin(&app.db, ADMIN_EMAIL, Some(&burncloud::config::Secret::new("another-password")))
            .await
            .unwrap();
    assert_eq!(again, RootAdmin::Existing);
    assert!(password::verify(ADMIN_PASSWORD, &stored_hash(&app, ADMIN_EMAIL).await.0));
}

async fn generated_password_is_returned_once(backend: Backend) {
    let app = spawn_app(backend).await;
    sqlx::query("DELETE FROM users").execute(app.db.pool()).await.unwrap();

    let created = accounts::ensure_root_admin(&app.db, "Owner@Example.com", None).await.unwrap();
    let RootAdmin::CreatedWithPassword { email, password: generated } = created else {
        panic!("expected a generated password, got {created:?}");
    };
    assert_eq!(email, "owner@example.com");
    assert!(password::verify(&generated, &stored_hash(&app, "owner@example.com").await.0));
    assert_eq!(accounts::ensure_root_admin(&app.db, "owner@example.com", None).await.unwrap(), RootAdmin::Existing);
}

async fn admin_create_resets_an_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = Email::parse("second@example.com").unwrap();
    accounts::create_or_reset_admin(&app.db, &email, "first-password").await.unwrap();
    accounts::create_or_reset_admin(&app.db, &email, "second-password").await.unwrap();
    let (hash, role) = stored_hash(&app, "second@example.com").await;
    assert_eq!(role, "root");
    assert!(password::verify("second-password", &hash));
    let err = accounts::create_or_reset_admin(&app.db, &email, "short").await.unwrap_err();
    assert!(err.to_string().contains("at least 8"), "{err}");
}

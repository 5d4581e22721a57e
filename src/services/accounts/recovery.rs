//! Password reset and email change, both through single-use emailed links. A reset request
//! answers the same whether or not the address has an account; using a reset link sets the new
//! password and ends every session of the account. An email change asks for the current
//! password, then mails a link to the new address; the address changes only when it is used.

use crate::db::email_tokens::{self, Purpose};
use crate::db::sessions::end_user_sessions;
use crate::db::users;
use crate::domain::email::Email;
use crate::domain::{password, token};
use crate::i18n::Lang;
use crate::mail::ActionMail;
use crate::services::accounts::signup::issue_link;
use crate::state::AppState;

/// How long a reset link works.
pub const RESET_TTL_MS: i64 = 3600 * 1000;
/// How long an email-change link works.
pub const CHANGE_TTL_MS: i64 = 24 * 3600 * 1000;

pub mod texts {
    pub const RESET_SUBJECT: &str = "Reset your password";
    pub const RESET_INTRO: &str =
        "Someone asked to reset the password of your account. Choose a new password with the link below.";
    pub const RESET_ACTION: &str = "Choose a new password";
    pub const RESET_FOOTNOTE: &str = "The link works once and expires in one hour. If you did not ask for it, ignore this email: your password stays as it is.";
    pub const CHANGE_SUBJECT: &str = "Confirm your new email address";
    pub const CHANGE_INTRO: &str = "Confirm that this address should become the email of your account.";
    pub const CHANGE_ACTION: &str = "Confirm new address";
    pub const CHANGE_FOOTNOTE: &str =
        "The link works once and expires in 24 hours. If you did not ask for this, ignore this email.";
    pub const ALL: &[&str] = &[
        RESET_SUBJECT,
        RESET_INTRO,
        RESET_ACTION,
        RESET_FOOTNOTE,
        CHANGE_SUBJECT,
        CHANGE_INTRO,
        CHANGE_ACTION,
        CHANGE_FOOTNOTE,
    ];
}

/// Mails a reset link when `email` belongs to an active account; otherwise does nothing. The
/// caller answers the same either way.
pub async fn request_reset(state: &AppState, email: &str, lang: Lang) -> Result<(), sqlx::Error> {
    let Ok(email) = Email::parse(email) else { return Ok(()) };
    let Some((id, _, status)) = users::credentials(state.db().pool(), &email).await? else { return Ok(()) };
    if status != "active" {
        return Ok(());
    }
    let link = issue_link(state, id, Purpose::ResetPassword, None, RESET_TTL_MS, "/reset-password").await?;
    let mail = ActionMail {
        lang,
        site_name: state.site().site_name.clone(),
        subject: texts::RESET_SUBJECT,
        intro: texts::RESET_INTRO,
        action: texts::RESET_ACTION,
        link,
        footnote: texts::RESET_FOOTNOTE,
        details: Vec::new(),
    };
    state.send_mail_later(email.as_str().to_string(), mail);
    Ok(())
}

/// Whether a reset link is still good (for the form page).
pub async fn reset_link_is_open(state: &AppState, secret: &str) -> Result<bool, sqlx::Error> {
    Ok(email_tokens::peek(state.db().pool(), &token::hash(secret), Purpose::ResetPassword).await?.is_some())
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("{0}")]
    WeakPassword(String),
    #[error("This link is not valid any more: it was used or has expired. Ask for a new one.")]
    BadLink,
    /// Password hashing is saturated (`services::accounts::passwords`).
    #[error("The server is busy. Try again in a moment.")]
    Busy,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for ResetError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Sets the new password with a reset link, ends every session of the account (and, if asked,
/// revokes its access tokens), and marks the address verified (the link proved the inbox); the
/// account's email. The link is checked first, with a lookup by its hash, so a bogus or spent one
/// costs no password hash; it is used only when the password is acceptable, so a typo does not
/// cost the user their link.
pub async fn reset_password(
    state: &AppState,
    secret: &str,
    new_password: &str,
    revoke_tokens: bool,
) -> Result<String, ResetError> {
    if !reset_link_is_open(state, secret).await? {
        return Err(ResetError::BadLink);
    }
    password::validate(new_password).map_err(ResetError::WeakPassword)?;
    let hash = crate::services::accounts::passwords::hash(new_password.to_string())
        .await
        .map_err(|_| ResetError::Busy)?
        .map_err(ResetError::Internal)?;
    // Claimed only now: two uses of one link race here, and exactly one wins.
    let claimed = email_tokens::claim(state.db().writer(), &token::hash(secret), Purpose::ResetPassword)
        .await?
        .ok_or(ResetError::BadLink)?;
    let id = claimed.user_id;
    users::set_password_hash(state.db().writer(), id, &hash).await?;
    email_tokens::retire_all(state.db().writer(), id, Purpose::ResetPassword).await?;
    users::mark_verified(state.db().writer(), id).await?;
    end_user_sessions(state.db(), id, None).await?;
    if revoke_tokens {
        crate::services::accounts::access_tokens::revoke_all(state, id).await?;
    }
    let email = users::verification(state.db().pool(), id).await?.map(|(email, _, _)| email).unwrap_or_default();
    Ok(email)
}

#[derive(Debug, PartialEq, Eq)]
pub enum EmailChange {
    /// A link went to the new address (or would have, if it were free).
    LinkSent,
    /// No mail to verify with: the address changed at once.
    Changed,
}

#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    #[error("The current password is not right.")]
    WrongPassword,
    #[error("{0}")]
    Invalid(String),
    #[error("This is already your email address.")]
    Same,
    #[error("An account with this email already exists.")]
    Taken,
    #[error("Sign-ups are limited to some email domains, and this address is not at one of them.")]
    DomainNotAllowed,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for EmailChangeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Starts an email change for a logged-in user, who re-authenticates with their password.
pub async fn change_email(
    state: &AppState,
    user_id: i64,
    current_password: &str,
    new_email: &str,
    lang: Lang,
) -> Result<EmailChange, EmailChangeError> {
    let hash = users::password_hash(state.db().pool(), user_id).await?.ok_or(EmailChangeError::WrongPassword)?;
    let plain = current_password.to_string();
    if !crate::services::accounts::passwords::verify(plain, Some(hash))
        .await
        .map_err(|e| EmailChangeError::Internal(e.to_string()))?
    {
        return Err(EmailChangeError::WrongPassword);
    }
    let email = Email::parse(new_email).map_err(EmailChangeError::Invalid)?;
    if !state.site().allows_email(email.as_str()) {
        return Err(EmailChangeError::DomainNotAllowed);
    }
    let current = users::verification(state.db().pool(), user_id).await?.map(|(email, _, _)| email);
    if current.as_deref() == Some(email.as_str()) {
        return Err(EmailChangeError::Same);
    }
    let taken = users::id_by_email(state.db().pool(), &email).await?.is_some();
    if !state.site().verification_required(state.mailer().is_configured()) {
        if taken {
            return Err(EmailChangeError::Taken);
        }
        return match users::set_email(state.db().writer(), user_id, &email).await {
            Ok(()) => Ok(EmailChange::Changed),
            Err(e) if crate::db::is_unique_violation(&e, "users_email_key", "users.email") => {
                Err(EmailChangeError::Taken)
            }
            Err(e) => Err(e.into()),
        };
    }
    // With mail, a taken address gets no link and the answer stays the same: this form must not
    // tell which addresses have accounts.
    if !taken {
        email_tokens::retire_all(state.db().writer(), user_id, Purpose::ChangeEmail).await?;
        let link =
            issue_link(state, user_id, Purpose::ChangeEmail, Some(email.as_str()), CHANGE_TTL_MS, "/verify-email")
                .await?;
        let mail = ActionMail {
            lang,
            site_name: state.site().site_name.clone(),
            subject: texts::CHANGE_SUBJECT,
            intro: texts::CHANGE_INTRO,
            action: texts::CHANGE_ACTION,
            link,
            footnote: texts::CHANGE_FOOTNOTE,
            details: Vec::new(),
        };
        state.send_mail_later(email.as_str().to_string(), mail);
    }
    Ok(EmailChange::LinkSent)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mail_texts_are_translated() {
        for text in super::texts::ALL {
            assert_ne!(crate::i18n::Lang::Zh.t(text), *text, "no Chinese for {text:?}");
        }
    }
}

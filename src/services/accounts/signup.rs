//! Self-service signup: who may sign up (mode, invitation, email domain), the verification
//! email, and the credits granted once an address is verified (the welcome credit and both
//! invitation rewards, each exactly once through ledger idempotency keys).
//!
//! With verification on (the default once SMTP is configured) signup never says whether an
//! address already had an account: both cases answer "check your inbox", and the existing
//! account's owner gets a note instead of a link. Without SMTP nothing can be verified, so the
//! account is created and logged in at once (and an existing address has to be reported).

use crate::billing;
use crate::config::SignupMode;
use crate::db::email_tokens::{self, Purpose};
use crate::db::invitations::{self, Invitation};
use crate::db::ledger::Kind;
use crate::db::users::{self, NewUser, Role};
use crate::domain::email::Email;
use crate::domain::{password, time::now_ms, token};
use crate::i18n::Lang;
use crate::mail::ActionMail;
use crate::state::AppState;

/// How long a verification link works.
pub const VERIFY_TTL_MS: i64 = 24 * 3600 * 1000;

/// Mail texts (English; translated through the console's table, see the test below).
pub mod texts {
    pub const VERIFY_SUBJECT: &str = "Confirm your email address";
    pub const VERIFY_INTRO: &str = "Welcome! Confirm that this is your email address to finish creating your account.";
    pub const VERIFY_ACTION: &str = "Confirm email address";
    pub const VERIFY_FOOTNOTE: &str =
        "The link works once and expires in 24 hours. If you did not sign up, ignore this email.";
    pub const EXISTS_SUBJECT: &str = "You already have an account";
    pub const EXISTS_INTRO: &str = "Someone tried to sign up with this email address, but it already has an account. If it was you, log in — or reset your password if you have forgotten it.";
    pub const EXISTS_ACTION: &str = "Log in";
    pub const EXISTS_FOOTNOTE: &str = "If it was not you, you can ignore this email: nothing was changed.";
    pub const ALL: &[&str] = &[
        VERIFY_SUBJECT,
        VERIFY_INTRO,
        VERIFY_ACTION,
        VERIFY_FOOTNOTE,
        EXISTS_SUBJECT,
        EXISTS_INTRO,
        EXISTS_ACTION,
        EXISTS_FOOTNOTE,
    ];
}

pub struct SignupInput {
    pub email: String,
    pub password: String,
    /// An invitation code ("" for none).
    pub invite: String,
    /// The language the mail is written in.
    pub lang: Lang,
}

/// What happened, for the page to say.
#[derive(Debug, PartialEq, Eq)]
pub enum SignupOutcome {
    /// No verification needed: the account exists and may be logged in.
    Created(i64),
    /// A link went to the address (or a note, when it already had an account).
    CheckInbox,
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("Sign-ups are closed on this site. Ask its operators for an account.")]
    Closed,
    #[error("This site is invite-only: enter an invitation code.")]
    InviteRequired,
    #[error("This invitation code is not valid.")]
    BadInvite,
    #[error("Sign-ups are limited to some email domains, and this address is not at one of them.")]
    DomainNotAllowed,
    #[error("An account with this email already exists; log in instead.")]
    EmailTaken,
    #[error("{0}")]
    Invalid(String),
    /// Password hashing is saturated (`services::accounts::passwords`).
    #[error("The server is busy. Try again in a moment.")]
    Busy,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for SignupError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

pub async fn sign_up(state: &AppState, input: SignupInput) -> Result<SignupOutcome, SignupError> {
    let site = state.site();
    let invite = input.invite.trim();
    match site.signup_mode {
        SignupMode::Closed => return Err(SignupError::Closed),
        SignupMode::InviteOnly if invite.is_empty() => return Err(SignupError::InviteRequired),
        _ => {}
    }
    let inviter = match invite {
        "" => None,
        code => Some(users::id_by_invite_code(state.db().pool(), code).await?.ok_or(SignupError::BadInvite)?),
    };
    let email = Email::parse(&input.email).map_err(SignupError::Invalid)?;
    if !site.allows_email(email.as_str()) {
        return Err(SignupError::DomainNotAllowed);
    }
    password::validate(&input.password).map_err(SignupError::Invalid)?;
    let verify = site.verification_required(state.mailer().is_configured());

    // Hashing runs whether or not the address is taken, so both take the same time.
    let plain = input.password.clone();
    let hash = crate::services::accounts::passwords::hash(plain)
        .await
        .map_err(|_| SignupError::Busy)?
        .map_err(SignupError::Internal)?;
    let user = NewUser {
        email: &email,
        password_hash: &hash,
        role: Role::User,
        group: "default",
        invite_code: &token::invite_code(),
        email_verified: !verify,
    };
    let id = match users::insert(state.db().writer(), &user).await {
        Ok(id) => id,
        Err(e) if crate::db::is_unique_violation(&e, "users_email_key", "users.email") => {
            if !verify {
                return Err(SignupError::EmailTaken);
            }
            state.send_mail_later(email.as_str().to_string(), exists_mail(state, input.lang));
            return Ok(SignupOutcome::CheckInbox);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(inviter) = inviter.filter(|inviter| *inviter != id) {
        users::set_invited_by(state.db().writer(), id, inviter).await?;
        let invitation = Invitation {
            inviter_id: inviter,
            invitee_id: id,
            inviter_reward: site.inviter_reward,
            invitee_reward: site.invitee_reward,
        };
        invitations::insert(state.db().writer(), &invitation, invite).await?;
    }
    if verify {
        send_verification(state, id, &email, input.lang).await?;
        Ok(SignupOutcome::CheckInbox)
    } else {
        grant_signup_credits(state, id).await;
        Ok(SignupOutcome::Created(id))
    }
}

/// Sends a fresh verification link (older ones stop working).
pub async fn send_verification(state: &AppState, user_id: i64, email: &Email, lang: Lang) -> Result<(), sqlx::Error> {
    email_tokens::retire_all(state.db().writer(), user_id, Purpose::VerifyEmail).await?;
    let link = issue_link(state, user_id, Purpose::VerifyEmail, None, VERIFY_TTL_MS, "/verify-email").await?;
    let mail = ActionMail {
        lang,
        site_name: state.site().site_name.clone(),
        subject: texts::VERIFY_SUBJECT,
        intro: texts::VERIFY_INTRO,
        action: texts::VERIFY_ACTION,
        link,
        footnote: texts::VERIFY_FOOTNOTE,
        details: Vec::new(),
    };
    state.send_mail_later(email.as_str().to_string(), mail);
    Ok(())
}

fn exists_mail(state: &AppState, lang: Lang) -> ActionMail {
    ActionMail {
        lang,
        site_name: state.site().site_name.clone(),
        subject: texts::EXISTS_SUBJECT,
        intro: texts::EXISTS_INTRO,
        action: texts::EXISTS_ACTION,
        link: page_link(state, "/login", None),
        footnote: texts::EXISTS_FOOTNOTE,
        details: Vec::new(),
    }
}

/// Stores a new single-use token and returns the page link carrying it.
pub async fn issue_link(
    state: &AppState,
    user_id: i64,
    purpose: Purpose,
    new_email: Option<&str>,
    ttl_ms: i64,
    path: &str,
) -> Result<String, sqlx::Error> {
    let secret = token::random_alphanumeric(43);
    email_tokens::insert(state.db().writer(), &token::hash(&secret), user_id, purpose, new_email, now_ms() + ttl_ms)
        .await?;
    Ok(page_link(state, path, Some(&secret)))
}

/// A link to `path` on the configured public URL (never the request's Host).
pub fn page_link(state: &AppState, path: &str, token: Option<&str>) -> String {
    let mut url = state.public_url();
    url.set_path(path);
    url.set_query(None);
    if let Some(token) = token {
        url.query_pairs_mut().append_pair("token", token);
    }
    url.to_string()
}

/// Whether a verification link is still good (for the confirmation page).
pub async fn verification_link_is_open(state: &AppState, secret: &str) -> Result<bool, sqlx::Error> {
    let hash = token::hash(secret);
    Ok(email_tokens::peek(state.db().pool(), &hash, Purpose::VerifyEmail).await?.is_some()
        || email_tokens::peek(state.db().pool(), &hash, Purpose::ChangeEmail).await?.is_some())
}

/// What a verification link did.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// A new account's address: its credits are granted.
    Account(i64),
    /// A changed address is now the account's.
    EmailChanged(i64),
}

/// Uses a verification (or email-change) link. `None` when it is unknown, used or expired, or
/// the new address was taken in the meantime.
pub async fn verify(state: &AppState, secret: &str) -> Result<Option<Verified>, sqlx::Error> {
    let hash = token::hash(secret);
    if let Some(claimed) = email_tokens::claim(state.db().writer(), &hash, Purpose::VerifyEmail).await? {
        if users::mark_verified(state.db().writer(), claimed.user_id).await? {
            grant_signup_credits(state, claimed.user_id).await;
        }
        return Ok(Some(Verified::Account(claimed.user_id)));
    }
    let Some(claimed) = email_tokens::claim(state.db().writer(), &hash, Purpose::ChangeEmail).await? else {
        return Ok(None);
    };
    let Some(new_email) = claimed.new_email.as_deref().and_then(|e| Email::parse(e).ok()) else { return Ok(None) };
    match users::set_email(state.db().writer(), claimed.user_id, &new_email).await {
        Ok(()) => {
            email_tokens::retire_all(state.db().writer(), claimed.user_id, Purpose::ChangeEmail).await?;
            Ok(Some(Verified::EmailChanged(claimed.user_id)))
        }
        Err(e) if crate::db::is_unique_violation(&e, "users_email_key", "users.email") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The welcome credit and the invitation rewards, once per account (idempotency keys make a
/// repeat — a second link, a retry — credit nothing). Failures are logged: the account works
/// without them, and a retry of the same grant is safe.
pub async fn grant_signup_credits(state: &AppState, user_id: i64) {
    let site = state.site();
    let mut grants = Vec::new();
    if site.welcome_credit > 0 {
        grants.push((user_id, site.welcome_credit, Kind::WelcomeCredit, format!("welcome:{user_id}")));
    }
    let invitation = match invitations::unrewarded(state.db().writer(), user_id).await {
        Ok(invitation) => invitation,
        Err(e) => {
            tracing::error!(error = %e, "loading an invitation failed");
            None
        }
    };
    if let Some(inv) = &invitation {
        if inv.invitee_reward > 0 {
            grants.push((user_id, inv.invitee_reward, Kind::InvitationReward, format!("invitee:{user_id}")));
        }
        if inv.inviter_reward > 0 {
            grants.push((inv.inviter_id, inv.inviter_reward, Kind::InvitationReward, format!("inviter:{user_id}")));
        }
    }
    for (to, amount, kind, key) in grants {
        if let Err(e) = billing::adjust(state.db(), to, amount, kind, None, Some(&key)).await {
            tracing::error!(error = %e, grant = %key, "granting a signup credit failed");
        }
    }
    if invitation.is_some()
        && let Err(e) = invitations::mark_rewarded(state.db().writer(), user_id).await
    {
        tracing::error!(error = %e, "marking an invitation rewarded failed");
    }
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

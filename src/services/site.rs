//! Site settings an operator changes at run time (`PUT /api/admin/settings/{key}`): the site's
//! name and announcement, who may sign up, and the credits granted on signup. Each falls back to
//! the configuration (file or environment) when the `settings` table has no row for it. The
//! console reads them on every page, so they live in memory ([`SiteSettings`] behind an `Arc`)
//! and are reloaded after a change and by the maintenance loop (other replicas' changes).

use crate::config::{Config, SignupMode};
use crate::db::{Db, settings};
use crate::domain::money::Money;

/// The keys [`SiteSettings`] reads, as stored in `settings`.
pub mod keys {
    pub const SITE_NAME: &str = "site.name";
    pub const ANNOUNCEMENT: &str = "site.announcement";
    pub const SIGNUP_MODE: &str = "signup.mode";
    pub const EMAIL_DOMAINS: &str = "signup.email_domains";
    pub const EMAIL_VERIFICATION: &str = "signup.email_verification";
    pub const WELCOME_CREDIT: &str = "signup.welcome_credit";
    pub const INVITER_REWARD: &str = "invitation.inviter_reward";
    pub const INVITEE_REWARD: &str = "invitation.invitee_reward";
    pub const TOPUP_REWARD_PERCENT: &str = "invitation.topup_reward_percent";
    pub const ALL: &[&str] = &[
        SITE_NAME,
        ANNOUNCEMENT,
        SIGNUP_MODE,
        EMAIL_DOMAINS,
        EMAIL_VERIFICATION,
        WELCOME_CREDIT,
        INVITER_REWARD,
        INVITEE_REWARD,
        TOPUP_REWARD_PERCENT,
    ];
}

/// Whether new accounts must verify their email before they can log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Required exactly when SMTP is configured (the default).
    Auto,
    Required,
    Off,
}

#[derive(Clone, Debug)]
pub struct SiteSettings {
    pub site_name: String,
    pub announcement: String,
    pub signup_mode: SignupMode,
    /// Lowercase domains new accounts' emails must be at; empty means any.
    pub email_domains: Vec<String>,
    pub verification: Verification,
    /// Nano-units credited once the account is verified (or at signup without verification).
    pub welcome_credit: i64,
    pub inviter_reward: i64,
    pub invitee_reward: i64,
    /// Percent of the invitee's first top-up credited to the inviter.
    pub topup_reward_percent: u8,
}

impl SiteSettings {
    /// The configuration's values, before any stored setting.
    pub fn from_config(config: &Config) -> Self {
        Self {
            site_name: "BurnCloud".into(),
            announcement: String::new(),
            signup_mode: config.signup_mode,
            email_domains: Vec::new(),
            verification: Verification::Auto,
            welcome_credit: config.welcome_credit,
            inviter_reward: 0,
            invitee_reward: 0,
            topup_reward_percent: 0,
        }
    }

    /// Applies one stored setting; an unknown key or a bad value is an error naming what is
    /// accepted (the admin API shows it; at load, a bad stored value is logged and skipped).
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        match key {
            keys::SITE_NAME => {
                if value.is_empty() || value.chars().count() > 64 {
                    return Err("the site name is 1 to 64 characters".into());
                }
                self.site_name = value.to_string();
            }
            keys::ANNOUNCEMENT => {
                if value.chars().count() > 500 {
                    return Err("the announcement is at most 500 characters".into());
                }
                self.announcement = value.to_string();
            }
            keys::SIGNUP_MODE => {
                self.signup_mode = match value {
                    "open" => SignupMode::Open,
                    "invite_only" => SignupMode::InviteOnly,
                    "closed" => SignupMode::Closed,
                    _ => return Err("open, invite_only or closed".into()),
                }
            }
            keys::EMAIL_DOMAINS => {
                let domains: Vec<String> = value
                    .split([',', ' ', '\n'])
                    .map(|d| d.trim().trim_start_matches('@').to_lowercase())
                    .filter(|d| !d.is_empty())
                    .collect();
                if let Some(bad) = domains.iter().find(|d| !d.contains('.') || d.contains('@')) {
                    return Err(format!("{bad:?} is not a domain (a comma-separated list like example.com)"));
                }
                self.email_domains = domains;
            }
            keys::EMAIL_VERIFICATION => {
                self.verification = match value {
                    "auto" => Verification::Auto,
                    "required" => Verification::Required,
                    "off" => Verification::Off,
                    _ => return Err("auto (required when SMTP is configured), required or off".into()),
                }
            }
            keys::WELCOME_CREDIT => self.welcome_credit = amount(value)?,
            keys::INVITER_REWARD => self.inviter_reward = amount(value)?,
            keys::INVITEE_REWARD => self.invitee_reward = amount(value)?,
            keys::TOPUP_REWARD_PERCENT => {
                self.topup_reward_percent =
                    value.parse::<u8>().ok().filter(|p| *p <= 100).ok_or("a whole percent from 0 to 100")?;
            }
            _ => return Err(format!("unknown setting {key:?}")),
        }
        Ok(())
    }

    /// True when an email at this address may sign up.
    pub fn allows_email(&self, email: &str) -> bool {
        self.email_domains.is_empty()
            || email.rsplit_once('@').is_some_and(|(_, domain)| self.email_domains.iter().any(|d| d == domain))
    }

    /// Whether signups must verify their address, given whether mail can be sent.
    pub fn verification_required(&self, smtp_configured: bool) -> bool {
        match self.verification {
            Verification::Auto => smtp_configured,
            Verification::Required => true,
            Verification::Off => false,
        }
    }
}

fn amount(value: &str) -> Result<i64, String> {
    Money::parse(value).ok().map(|m| m.nanos()).filter(|n| *n >= 0).ok_or_else(|| "an amount like \"1.00\"".into())
}

/// The configuration's values overlaid with every stored setting.
pub async fn load(db: &Db, config: &Config) -> Result<SiteSettings, sqlx::Error> {
    let mut site = SiteSettings::from_config(config);
    for prefix in ["site.", "signup.", "invitation."] {
        for (key, value) in settings::with_prefix(db.pool(), prefix).await? {
            if let Err(message) = site.apply(&key, &value) {
                tracing::warn!(setting = %key, %message, "ignoring a stored setting");
            }
        }
    }
    Ok(site)
}

/// Reloads the settings into `state` (after a change, and periodically for other replicas').
pub async fn reload(state: &crate::state::AppState) {
    match load(state.db(), state.config()).await {
        Ok(site) => state.set_site(site),
        Err(e) => tracing::warn!(error = %e, "reloading the site settings failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> SiteSettings {
        SiteSettings::from_config(&Config::load_from(None, |_| None).unwrap())
    }

    #[test]
    fn settings_are_validated() {
        let mut site = site();
        assert!(site.apply(keys::SIGNUP_MODE, "invite_only").is_ok());
        assert_eq!(site.signup_mode, SignupMode::InviteOnly);
        assert!(site.apply(keys::SIGNUP_MODE, "sometimes").is_err());
        assert!(site.apply(keys::WELCOME_CREDIT, "-1").is_err());
        assert!(site.apply(keys::WELCOME_CREDIT, "2.50").is_ok());
        assert_eq!(site.welcome_credit, 2_500_000_000);
        assert!(site.apply(keys::TOPUP_REWARD_PERCENT, "101").is_err());
        assert!(site.apply("site.colour", "red").is_err());
        assert!(site.apply(keys::SITE_NAME, "").is_err());
    }

    #[test]
    fn the_domain_allowlist_matches_whole_domains() {
        let mut site = site();
        assert!(site.allows_email("a@anything.org"));
        site.apply(keys::EMAIL_DOMAINS, "example.com, @Corp.example").unwrap();
        assert!(site.allows_email("a@example.com") && site.allows_email("b@corp.example"));
        assert!(!site.allows_email("a@evilexample.com") && !site.allows_email("a@example.com.evil"));
        assert!(site.apply(keys::EMAIL_DOMAINS, "not a domain").is_err());
    }

    #[test]
    fn verification_follows_smtp_unless_overridden() {
        let mut site = site();
        assert!(site.verification_required(true) && !site.verification_required(false));
        site.apply(keys::EMAIL_VERIFICATION, "off").unwrap();
        assert!(!site.verification_required(true));
        site.apply(keys::EMAIL_VERIFICATION, "required").unwrap();
        assert!(site.verification_required(false));
    }
}

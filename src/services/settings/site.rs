//! Site settings an operator changes at run time (`PUT /api/admin/settings/{key}`): the site's
//! name, public URL, currency and announcement, who may sign up, the credits granted on signup,
//! SMTP, Stripe keys, the gateway's defaults and the low-balance email threshold. Each falls back
//! to the configuration (file or environment) when the `settings` table has no row for it. The
//! console and the gateway read them on every request, so they live in memory ([`SiteSettings`]
//! behind an `Arc`, no database read) and are reloaded after a change and by the maintenance loop
//! (other replicas' changes). Secret settings (`Kind::Secret` in the table) are stored encrypted.

use url::Url;

use crate::config::runtime::{self, Kind};
use crate::config::{Config, GatewayConfig, Secret, SignupMode, SmtpConfig, SmtpSecurity};
use crate::db::{Db, settings};
use crate::domain::money::Money;
use crate::payments::TopupSettings;
use crate::secret_key::SecretKey;

/// The keys [`SiteSettings`] applies itself; every run-time setting is in [`runtime::TABLE`].
pub use crate::config::runtime::keys;

/// The key prefixes [`load`] reads.
const PREFIXES: &[&str] = &["site.", "signup.", "invitation.", "smtp.", "stripe.", "topup.", "gateway.", "notify."];

/// The SMTP settings as the operator edits them: the environment's values overlaid with stored
/// ones. An empty host means no SMTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    /// `None`: the security mode's usual port.
    pub port: Option<u16>,
    pub username: String,
    pub password: Option<Secret>,
    pub from: String,
    pub security: SmtpSecurity,
}

impl SmtpSettings {
    fn from_config(config: Option<&SmtpConfig>) -> Self {
        match config {
            Some(c) => Self {
                host: c.host.clone(),
                port: Some(c.port),
                username: c.username.clone().unwrap_or_default(),
                password: c.password.clone(),
                from: c.from.clone(),
                security: c.security,
            },
            None => Self {
                host: String::new(),
                port: None,
                username: String::new(),
                password: None,
                from: String::new(),
                security: SmtpSecurity::StartTls,
            },
        }
    }

    /// What the mailer is built from; `None` without a host.
    pub fn config(&self) -> Option<SmtpConfig> {
        if self.host.is_empty() {
            return None;
        }
        let port = self.port.unwrap_or(match self.security {
            SmtpSecurity::None => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        });
        Some(SmtpConfig {
            host: self.host.clone(),
            port,
            username: Some(self.username.clone()).filter(|u| !u.is_empty()),
            password: self.password.clone(),
            from: self.from.clone(),
            security: self.security,
        })
    }
}

fn security_name(security: SmtpSecurity) -> &'static str {
    match security {
        SmtpSecurity::None => "none",
        SmtpSecurity::StartTls => "starttls",
        SmtpSecurity::Tls => "tls",
    }
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
    /// Overrides `BURNCLOUD_PUBLIC_URL` for links in mail, invitations and the quick start.
    pub public_url: Option<Url>,
    /// The site currency's code, for display (amounts are nano-units of it).
    pub currency: String,
    pub smtp: SmtpSettings,
    pub stripe_secret_key: Option<Secret>,
    pub stripe_webhook_secret: Option<Secret>,
    /// How top-ups are priced (`topup.*`).
    pub topup: TopupSettings,
    /// The gateway's limits, read once per request by the gateway; the default routing strategy
    /// (read when the routing table is rebuilt), the connect timeout (the client is rebuilt) and
    /// the key cache's lifetime are applied by [`reload`].
    pub gateway: GatewayConfig,
    /// Nano-units; a user whose balance falls below it gets one email (0 = off).
    pub low_balance: i64,
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
            public_url: None,
            currency: "USD".into(),
            smtp: SmtpSettings::from_config(config.smtp.as_ref()),
            stripe_secret_key: config.stripe.secret_key.clone(),
            stripe_webhook_secret: config.stripe.webhook_secret.clone(),
            topup: TopupSettings::default(),
            gateway: config.gateway.clone(),
            low_balance: 0,
        }
    }

    /// Applies one stored setting; an unknown key or a bad value is an error naming what is
    /// accepted (the admin API shows it; at load, a bad stored value is logged and skipped).
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        let setting = runtime::find(key).ok_or_else(|| format!("unknown setting {key:?}"))?;
        if setting.apply_to(&mut self.gateway, value)? {
            return Ok(());
        }
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
            keys::PUBLIC_URL => self.public_url = public_url(value)?,
            keys::CURRENCY => {
                if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err("a three-letter currency code like USD".into());
                }
                self.currency = value.to_ascii_uppercase();
            }
            keys::SMTP_HOST => {
                if value.contains(['/', ':', ' ']) || value.len() > 253 {
                    return Err("a host name like smtp.example.com (empty: no SMTP)".into());
                }
                self.smtp.host = value.to_string();
            }
            keys::SMTP_PORT => {
                self.smtp.port = match value {
                    "" => None,
                    v => Some(v.parse::<u16>().ok().filter(|p| *p > 0).ok_or("a port from 1 to 65535")?),
                }
            }
            keys::SMTP_USERNAME => self.smtp.username = value.to_string(),
            keys::SMTP_PASSWORD => self.smtp.password = Some(Secret::new(value)).filter(|s| !s.expose().is_empty()),
            keys::SMTP_FROM => {
                if !value.is_empty() && value.parse::<lettre::message::Mailbox>().is_err() {
                    return Err("a mailbox like \"BurnCloud <noreply@example.com>\"".into());
                }
                self.smtp.from = value.to_string();
            }
            keys::SMTP_SECURITY => {
                self.smtp.security = match value {
                    "none" => SmtpSecurity::None,
                    "starttls" => SmtpSecurity::StartTls,
                    "tls" => SmtpSecurity::Tls,
                    _ => return Err("none, starttls or tls".into()),
                }
            }
            keys::STRIPE_SECRET_KEY => {
                if !(value.is_empty() || value.starts_with("sk_") || value.starts_with("rk_")) {
                    return Err("a Stripe secret key (sk_… or rk_…), or empty to remove it".into());
                }
                self.stripe_secret_key = Some(Secret::new(value)).filter(|s| !s.expose().is_empty());
            }
            keys::STRIPE_WEBHOOK_SECRET => {
                if !value.is_empty() && !value.starts_with("whsec_") {
                    return Err("a Stripe webhook signing secret (whsec_…), or empty to remove it".into());
                }
                self.stripe_webhook_secret = Some(Secret::new(value)).filter(|s| !s.expose().is_empty());
            }
            keys::LOW_BALANCE => self.low_balance = amount(value)?,
            keys::TOPUP_CURRENCY => self.topup.set_currency(value)?,
            keys::TOPUP_AMOUNTS => self.topup.presets = self.topup.parse_presets(value)?,
            keys::TOPUP_MIN => self.topup.min = self.topup_amount(value)?,
            keys::TOPUP_MAX => self.topup.max = self.topup_amount(value)?,
            keys::TOPUP_CREDIT_PER_UNIT => {
                self.topup.credit_per_unit =
                    Some(amount(value)?).filter(|n| *n > 0).ok_or("a positive amount like \"1.00\"")?
            }
            keys::TOPUP_GROUP_BONUS => self.topup.group_bonus = TopupSettings::parse_group_bonus(value)?,
            _ => return Err(format!("unknown setting {key:?}")),
        }
        Ok(())
    }

    /// The value of `key` as the settings page and `GET /api/admin/settings` show it; `None` for
    /// secrets (write-only) and unknown keys.
    pub fn value_of(&self, key: &str) -> Option<String> {
        let money = |n: i64| Money(n).to_string();
        if let Some(value) = runtime::find(key)?.value_in(&self.gateway) {
            return Some(value);
        }
        Some(match key {
            keys::SITE_NAME => self.site_name.clone(),
            keys::PUBLIC_URL => self.public_url.as_ref().map(Url::to_string).unwrap_or_default(),
            keys::CURRENCY => self.currency.clone(),
            keys::ANNOUNCEMENT => self.announcement.clone(),
            keys::SIGNUP_MODE => match self.signup_mode {
                SignupMode::Open => "open",
                SignupMode::InviteOnly => "invite_only",
                SignupMode::Closed => "closed",
            }
            .into(),
            keys::EMAIL_DOMAINS => self.email_domains.join(", "),
            keys::EMAIL_VERIFICATION => match self.verification {
                Verification::Auto => "auto",
                Verification::Required => "required",
                Verification::Off => "off",
            }
            .into(),
            keys::WELCOME_CREDIT => money(self.welcome_credit),
            keys::INVITER_REWARD => money(self.inviter_reward),
            keys::INVITEE_REWARD => money(self.invitee_reward),
            keys::TOPUP_REWARD_PERCENT => self.topup_reward_percent.to_string(),
            keys::SMTP_HOST => self.smtp.host.clone(),
            keys::SMTP_PORT => self.smtp.port.map(|p| p.to_string()).unwrap_or_default(),
            keys::SMTP_USERNAME => self.smtp.username.clone(),
            keys::SMTP_FROM => self.smtp.from.clone(),
            keys::SMTP_SECURITY => security_name(self.smtp.security).into(),
            keys::LOW_BALANCE => money(self.low_balance),
            keys::TOPUP_CURRENCY => self.topup.currency.clone(),
            keys::TOPUP_AMOUNTS => self.topup.presets_text(),
            keys::TOPUP_MIN => crate::payments::format_minor(self.topup.min, &self.topup.currency),
            keys::TOPUP_MAX => crate::payments::format_minor(self.topup.max, &self.topup.currency),
            keys::TOPUP_CREDIT_PER_UNIT => money(self.topup.credit_per_unit),
            keys::TOPUP_GROUP_BONUS => self.topup.group_bonus_text(),
            _ => return None,
        })
    }

    /// Whether a write-only setting holds a value.
    pub fn secret_is_set(&self, key: &str) -> bool {
        match key {
            keys::SMTP_PASSWORD => self.smtp.password.is_some(),
            keys::STRIPE_SECRET_KEY => self.stripe_secret_key.is_some(),
            keys::STRIPE_WEBHOOK_SECRET => self.stripe_webhook_secret.is_some(),
            _ => false,
        }
    }

    fn topup_amount(&self, value: &str) -> Result<i64, String> {
        self.topup
            .parse_amount(value)
            .ok_or_else(|| format!("a positive amount in {} like 10.00", self.topup.currency.to_ascii_uppercase()))
    }

    /// Whether top-ups can be offered: Stripe's secret key and webhook secret are both set.
    pub fn stripe_ready(&self) -> bool {
        self.stripe_secret_key.is_some() && self.stripe_webhook_secret.is_some()
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

fn public_url(value: &str) -> Result<Option<Url>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let url = Url::parse(value).map_err(|_| "an http:// or https:// URL like https://ai.example.com".to_string())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err("an http:// or https:// URL with a host, without query or fragment".into());
    }
    Ok(Some(url))
}

/// How a secret setting is stored: `enc:` + hex of the AES-GCM sealed value.
pub fn seal(secret_key: &SecretKey, value: &str) -> Result<String, String> {
    crate::crypto::encrypt(secret_key, value.as_bytes())
        .map(|v| format!("enc:{}", hex::encode(v)))
        .map_err(|e| e.to_string())
}

fn unseal(secret_key: &SecretKey, stored: &str) -> Result<String, String> {
    let sealed = stored.strip_prefix("enc:").and_then(|h| hex::decode(h).ok()).ok_or("not an encrypted value")?;
    let plain = crate::crypto::decrypt(secret_key, &sealed).map_err(|e| e.to_string())?;
    String::from_utf8(plain).map_err(|_| "not text".into())
}

/// The configuration's values overlaid with every stored setting (secrets decrypted).
pub async fn load(db: &Db, config: &Config, secret_key: &SecretKey) -> Result<SiteSettings, sqlx::Error> {
    let mut site = SiteSettings::from_config(config);
    for prefix in PREFIXES {
        let mut rows = settings::with_prefix(db.pool(), prefix).await?;
        // The top-up currency first: the amounts are read in its minor unit.
        rows.sort_by_key(|(key, _)| key != keys::TOPUP_CURRENCY);
        for (key, value) in rows {
            let value = if runtime::find(&key).is_some_and(|s| s.kind == Kind::Secret) && !value.is_empty() {
                match unseal(secret_key, &value) {
                    Ok(plain) => plain,
                    Err(message) => {
                        tracing::warn!(setting = %key, %message, "ignoring a stored secret setting");
                        continue;
                    }
                }
            } else {
                value
            };
            if let Err(message) = site.apply(&key, &value) {
                tracing::warn!(setting = %key, %message, "ignoring a stored setting");
            }
        }
    }
    Ok(site)
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

    /// The table's defaults are the snapshot's values before any stored setting (so the
    /// documentation's defaults are true), and each one passes its own validation.
    #[test]
    fn every_setting_starts_at_its_documented_default() {
        let start = site();
        for setting in runtime::TABLE.iter().filter(|s| !s.is_secret()) {
            let mut again = start.clone();
            again.apply(setting.key, setting.default).unwrap_or_else(|e| panic!("{}: {e}", setting.key));
            assert_eq!(again.value_of(setting.key), start.value_of(setting.key), "{}", setting.key);
            assert!(start.value_of(setting.key).is_some(), "{} has no value to show", setting.key);
        }
    }

    /// The start-up variable sets a run-time setting's value until one is stored.
    #[test]
    fn the_environment_is_the_default_a_stored_value_overrides() {
        let config =
            Config::load_from(None, |name| (name == "BURNCLOUD_CLIENT_STALL_SECS").then(|| "7".into())).unwrap();
        let mut site = SiteSettings::from_config(&config);
        assert_eq!(site.value_of("gateway.client_stall_secs").as_deref(), Some("7"));
        site.apply("gateway.client_stall_secs", "9").unwrap();
        assert_eq!(site.gateway.client_stall, std::time::Duration::from_secs(9));
        assert!(site.apply("gateway.client_stall_secs", "3601").is_err());
        assert_eq!(site.gateway.client_stall, std::time::Duration::from_secs(9), "a refused value changes nothing");
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

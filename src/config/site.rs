//! The site settings' in-memory snapshot: the configuration's values overlaid with what an
//! operator stored (`services::settings::site` loads it). Each setting's rule — how a value is
//! checked, set and shown — is its entry in the run-time settings table (`runtime::TABLE`);
//! this file holds the snapshot's fields and the questions the pages ask of it. Applying and
//! showing a setting by key is `runtime`'s (`SiteSettings::apply`, `value_of`).

use url::Url;

use super::{Config, GatewayConfig, Secret, SignupMode, SmtpConfig, SmtpSecurity};
use crate::domain::money::Money;
use crate::domain::topup::TopupSettings;

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

pub(crate) fn security_name(security: SmtpSecurity) -> &'static str {
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
    /// Percent of a key's budget whose spending sends its owner one email per period (0 = off).
    pub budget_warning_percent: u8,
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
            budget_warning_percent: 80,
        }
    }

    /// An amount in the top-up currency's minor units, as `topup.min_amount`/`max_amount` take it.
    pub(crate) fn topup_amount(&self, value: &str) -> Result<i64, String> {
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

/// A non-negative amount like "1.00", in nano-units.
pub(crate) fn amount(value: &str) -> Result<i64, String> {
    Money::parse(value).ok().map(|m| m.nanos()).filter(|n| *n >= 0).ok_or_else(|| "an amount like \"1.00\"".into())
}

/// `site.public_url`: empty, or an http(s) URL with a host and no query or fragment.
pub(crate) fn public_url(value: &str) -> Result<Option<Url>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> SiteSettings {
        SiteSettings::from_config(&Config::load_from(None, |_| None).unwrap())
    }

    #[test]
    fn settings_are_validated() {
        let mut site = site();
        assert!(site.apply("signup.mode", "invite_only").is_ok());
        assert_eq!(site.signup_mode, SignupMode::InviteOnly);
        assert!(site.apply("signup.mode", "sometimes").is_err());
        assert!(site.apply("signup.welcome_credit", "-1").is_err());
        assert!(site.apply("signup.welcome_credit", "2.50").is_ok());
        assert_eq!(site.welcome_credit, 2_500_000_000);
        assert!(site.apply("invitation.topup_reward_percent", "101").is_err());
        assert!(site.apply("site.colour", "red").is_err());
        assert!(site.apply("site.name", "").is_err());
    }

    /// The table's defaults are the snapshot's values before any stored setting (so the
    /// documentation's defaults are true), and each one passes its own validation.
    #[test]
    fn every_setting_starts_at_its_documented_default() {
        let start = site();
        for setting in crate::config::runtime::TABLE.iter().filter(|s| !s.is_secret()) {
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
        site.apply("signup.email_domains", "example.com, @Corp.example").unwrap();
        assert!(site.allows_email("a@example.com") && site.allows_email("b@corp.example"));
        assert!(!site.allows_email("a@evilexample.com") && !site.allows_email("a@example.com.evil"));
        assert!(site.apply("signup.email_domains", "not a domain").is_err());
    }

    #[test]
    fn verification_follows_smtp_unless_overridden() {
        let mut site = site();
        assert!(site.verification_required(true) && !site.verification_required(false));
        site.apply("signup.email_verification", "off").unwrap();
        assert!(!site.verification_required(true));
        site.apply("signup.email_verification", "required").unwrap();
        assert!(site.verification_required(false));
    }
}

//! The run-time settings table: every setting an operator changes while BurnCloud runs, written
//! once — key, kind and range, default, the start-up variable that sets that default, form label,
//! help and section, and (for the gateway's) the field it sets. It drives start-up parsing of
//! those variables (`config`), validation and the in-memory snapshot (`services::settings::site`), the
//! settings page (`console::admin::settings_form`), `GET /api/admin/settings`, and the table in
//! docs/configuration.md (a test keeps it current). Pure data and rules: no I/O, no database.

use std::time::Duration;

use super::{ConfigError, GatewayConfig, Setting};

/// Who may sign up on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignupMode {
    Open,
    /// Only with an invitation code.
    InviteOnly,
    /// Nobody: accounts are created by operators.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// Upgrade with STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// The settings key prefix of per group × model strategies: `routing.strategy.<group>.<model>`.
pub const STRATEGY_SETTING_PREFIX: &str = "routing.strategy.";

/// How channels are picked inside one priority tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Random, proportional to weight (the default).
    WeightedRandom,
    /// Smooth weighted round-robin: proportional to weight, evenly interleaved.
    RoundRobin,
    /// Always the first healthy channel, by weight then id; the others only on failure.
    Failover,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "weighted_random" => Some(Self::WeightedRandom),
            "round_robin" => Some(Self::RoundRobin),
            "failover" => Some(Self::Failover),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WeightedRandom => "weighted_random",
            Self::RoundRobin => "round_robin",
            Self::Failover => "failover",
        }
    }

    /// What a strategy may be, for error messages (the settings, the per-model routing settings
    /// and the environment say it the same way).
    pub fn accepted() -> String {
        STRATEGY.kind.accepted()
    }
}

/// How a setting is edited and checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    LongText,
    Url,
    /// A number checked by its own rule in `services::settings::site` (a port, a percent).
    Number,
    /// A whole number from `min` to `max`, checked here.
    Whole {
        min: u64,
        max: u64,
    },
    /// An amount like "1.00".
    Amount,
    /// One of the options: (value, label).
    Choice(&'static [(&'static str, &'static str)]),
    /// `true` or `false` (at start-up also 1/0, yes/no, on/off).
    Flag,
    /// Write-only: stored encrypted, never shown, never in an audit row.
    Secret,
}

pub const YES_NO: &[(&str, &str)] = &[("false", "No"), ("true", "Yes")];

impl Kind {
    /// What a value may be, for error messages.
    pub fn accepted(&self) -> String {
        match self {
            Kind::Whole { min, max } => format!("a whole number from {min} to {max}"),
            Kind::Choice(options) => match options.split_last() {
                Some((last, [])) => last.0.to_string(),
                Some((last, rest)) => {
                    format!("{} or {}", rest.iter().map(|o| o.0).collect::<Vec<_>>().join(", "), last.0)
                }
                None => String::new(),
            },
            Kind::Flag => "true or false".into(),
            _ => "a valid value".into(),
        }
    }

    fn whole(&self, value: &str) -> Result<u64, String> {
        match self {
            Kind::Whole { min, max } => {
                value.parse::<u64>().ok().filter(|n| (min..=max).contains(&n)).ok_or_else(|| self.accepted())
            }
            _ => Err(self.accepted()),
        }
    }
}

/// Where a setting's value lives. The gateway's settings are bound here, field by field; the
/// others are fields of `services::settings::site::SiteSettings`, which applies them itself.
pub enum Bind {
    Site,
    Secs(fn(&mut GatewayConfig) -> &mut Duration),
    Count(fn(&mut GatewayConfig) -> &mut usize),
    Flag(fn(&mut GatewayConfig) -> &mut bool),
    Strategy(fn(&mut GatewayConfig) -> &mut Strategy),
}

/// One run-time setting.
pub struct RuntimeSetting {
    /// As stored in the `settings` table and named by `PUT /api/admin/settings/{key}`.
    pub key: &'static str,
    /// The settings page's section (one of [`SECTIONS`]).
    pub section: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub bind: Bind,
    /// The start-up setting (environment variable and TOML key) whose value is this one's
    /// default; a stored value overrides it.
    pub env: Option<&'static Setting>,
    /// The built-in default, as the setting is written ("" for empty).
    pub default: &'static str,
    /// A wider range the start-up variable accepts: kept from before the setting could change at
    /// run time, so configurations that started before still start.
    pub start_up_range: Option<(u64, u64)>,
    /// What it does, for docs/configuration.md.
    pub doc: &'static str,
}

const SITE: RuntimeSetting = RuntimeSetting {
    key: "",
    section: "",
    label: "",
    help: "",
    kind: Kind::Text,
    bind: Bind::Site,
    env: None,
    default: "",
    start_up_range: None,
    doc: "",
};

/// The settings page's sections: (id, title, note), in page order.
pub const SECTIONS: &[(&str, &str, &str)] = &[
    ("general", "General", "How the site presents itself."),
    ("signup", "Signups", "Who may create an account, and what they get."),
    ("invitation", "Invitations", "Rewards for inviting people."),
    ("smtp", "Mail (SMTP)", "Verification, password-reset and notification mail. Overrides the environment."),
    ("stripe", "Payments (Stripe)", "Stored encrypted and never shown again."),
    ("topup", "Top-ups", "What users can pay on the top-up page, and what it credits."),
    ("gateway", "Gateway", "Applied to the next request, without a restart."),
    ("notify", "Notifications", "Email sent to users by the site."),
];

/// The keys `services::settings::site` applies itself (the gateway's need none: [`Bind`] does it).
pub mod keys {
    pub const SITE_NAME: &str = "site.name";
    pub const PUBLIC_URL: &str = "site.public_url";
    pub const CURRENCY: &str = "site.currency";
    pub const ANNOUNCEMENT: &str = "site.announcement";
    pub const SIGNUP_MODE: &str = "signup.mode";
    pub const EMAIL_DOMAINS: &str = "signup.email_domains";
    pub const EMAIL_VERIFICATION: &str = "signup.email_verification";
    pub const WELCOME_CREDIT: &str = "signup.welcome_credit";
    pub const INVITER_REWARD: &str = "invitation.inviter_reward";
    pub const INVITEE_REWARD: &str = "invitation.invitee_reward";
    pub const TOPUP_REWARD_PERCENT: &str = "invitation.topup_reward_percent";
    pub const SMTP_HOST: &str = "smtp.host";
    pub const SMTP_PORT: &str = "smtp.port";
    pub const SMTP_SECURITY: &str = "smtp.security";
    pub const SMTP_USERNAME: &str = "smtp.username";
    pub const SMTP_PASSWORD: &str = "smtp.password";
    pub const SMTP_FROM: &str = "smtp.from";
    pub const STRIPE_SECRET_KEY: &str = "stripe.secret_key";
    pub const STRIPE_WEBHOOK_SECRET: &str = "stripe.webhook_secret";
    pub const TOPUP_CURRENCY: &str = "topup.currency";
    pub const TOPUP_AMOUNTS: &str = "topup.amounts";
    pub const TOPUP_MIN: &str = "topup.min_amount";
    pub const TOPUP_MAX: &str = "topup.max_amount";
    pub const TOPUP_CREDIT_PER_UNIT: &str = "topup.credit_per_unit";
    pub const TOPUP_GROUP_BONUS: &str = "topup.group_bonus";
    pub const LOW_BALANCE: &str = "notify.low_balance";
}

const SIGNUP_MODES: &[(&str, &str)] = &[("open", "Open"), ("invite_only", "Invitation only"), ("closed", "Closed")];
const VERIFICATION: &[(&str, &str)] =
    &[("auto", "When SMTP is configured"), ("required", "Always"), ("off", "Not required")];
const SECURITY: &[(&str, &str)] = &[("starttls", "STARTTLS"), ("tls", "TLS"), ("none", "None (plain)")];

/// The default routing strategy (also what `routing.strategy.<group>.<model>` may be).
pub const STRATEGY: RuntimeSetting = RuntimeSetting {
    key: "gateway.routing_strategy",
    section: "gateway",
    label: "Default routing strategy",
    help: "How a channel is picked among those of the same priority.",
    kind: Kind::Choice(&[
        ("weighted_random", "Weighted random"),
        ("round_robin", "Round robin"),
        ("failover", "Failover (in order)"),
    ]),
    bind: Bind::Strategy(|g| &mut g.strategy),
    env: Some(&super::ROUTING_STRATEGY),
    default: "weighted_random",
    doc: "The default strategy inside a priority tier: `weighted_random`, `round_robin` or `failover` (a `routing.strategy.<group>.<model>` setting still wins for its model).",
    ..SITE
};

/// Every run-time setting, in the settings page's order (and `GET /api/admin/settings`'s). The
/// top-up currency comes before the top-up amounts: they are read in its minor unit.
pub static TABLE: &[RuntimeSetting] = &[
    RuntimeSetting {
        key: keys::SITE_NAME,
        section: "general",
        label: "Site name",
        default: "BurnCloud",
        doc: "The name in the top bar, page titles and mail (1–64 characters).",
        ..SITE
    },
    RuntimeSetting {
        key: keys::PUBLIC_URL,
        section: "general",
        label: "Public URL",
        help: "Used in email, invitation and quick-start links. Empty: the configured URL.",
        kind: Kind::Url,
        env: Some(&super::PUBLIC_URL),
        doc: "The base of links in mail, invitations and the quick start (`http(s)://host[/path]`, no query); empty: the configured URL. The session cookie's `Secure` flag follows the configured URL until a restart.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::CURRENCY,
        section: "general",
        label: "Currency",
        help: "A three-letter code, shown with amounts.",
        default: "USD",
        doc: "The three-letter code of the site currency, for display (amounts are nano-units of it).",
        ..SITE
    },
    RuntimeSetting {
        key: keys::ANNOUNCEMENT,
        section: "general",
        label: "Announcement",
        help: "Shown on top of every page. Empty: none.",
        kind: Kind::LongText,
        doc: "A line shown under the top bar on every page (up to 500 characters).",
        ..SITE
    },
    RuntimeSetting {
        key: keys::SIGNUP_MODE,
        section: "signup",
        label: "Signup mode",
        kind: Kind::Choice(SIGNUP_MODES),
        env: Some(&super::SIGNUP_MODE),
        default: "open",
        doc: "`open`, `invite_only` or `closed`.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::EMAIL_DOMAINS,
        section: "signup",
        label: "Allowed email domains",
        help: "Comma-separated, like example.com. Empty: any.",
        doc: "Comma-separated domains new accounts (and changed emails) must be at, e.g. `acme.example, partner.example`. Empty: any.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::EMAIL_VERIFICATION,
        section: "signup",
        label: "Email verification",
        kind: Kind::Choice(VERIFICATION),
        default: "auto",
        doc: "`auto`: required exactly when SMTP is configured; `required`; `off`.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::WELCOME_CREDIT,
        section: "signup",
        label: "Welcome credit",
        help: "Credited once the address is verified.",
        kind: Kind::Amount,
        env: Some(&super::WELCOME_CREDIT),
        default: "0.00",
        doc: "Amount credited once the address is verified.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::INVITER_REWARD,
        section: "invitation",
        label: "Inviter reward",
        kind: Kind::Amount,
        default: "0.00",
        doc: "Credited to the inviter when someone who signed up with their code verifies the address (`invitation_reward` ledger row).",
        ..SITE
    },
    RuntimeSetting {
        key: keys::INVITEE_REWARD,
        section: "invitation",
        label: "Invitee reward",
        kind: Kind::Amount,
        default: "0.00",
        doc: "Credited to that new account at the same moment.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::TOPUP_REWARD_PERCENT,
        section: "invitation",
        label: "Top-up reward (%)",
        help: "Of the invitee's first top-up, to the inviter.",
        kind: Kind::Number,
        default: "0",
        doc: "Percent of an invitee's first paid top-up credited to the inviter, in the same transaction as the top-up ([payments.md](payments.md)).",
        ..SITE
    },
    RuntimeSetting {
        key: keys::SMTP_HOST,
        section: "smtp",
        label: "SMTP host",
        help: "Empty: no mail.",
        env: Some(&super::SMTP_HOST),
        doc: "SMTP server; empty: no mail. Each `smtp.*` setting overrides its `BURNCLOUD_SMTP_*` variable; the mailer is rebuilt when they change. Settings that cannot make a mailer (say, no sender yet) leave mail off with a warning in the log.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::SMTP_PORT,
        section: "smtp",
        label: "Port",
        help: "Empty: the usual port for the security mode.",
        kind: Kind::Number,
        env: Some(&super::SMTP_PORT),
        doc: "1–65535; empty: the security mode's port.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::SMTP_SECURITY,
        section: "smtp",
        label: "Security",
        kind: Kind::Choice(SECURITY),
        env: Some(&super::SMTP_SECURITY),
        default: "starttls",
        doc: "`none`, `starttls` or `tls`.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::SMTP_USERNAME,
        section: "smtp",
        label: "Username",
        env: Some(&super::SMTP_USERNAME),
        doc: "Login for the SMTP server.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::SMTP_PASSWORD,
        section: "smtp",
        label: "Password",
        kind: Kind::Secret,
        env: Some(&super::SMTP_PASSWORD),
        doc: "Write-only, stored encrypted.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::SMTP_FROM,
        section: "smtp",
        label: "Sender",
        help: "Like BurnCloud <noreply@example.com>.",
        env: Some(&super::SMTP_FROM),
        doc: "The sender mailbox, e.g. `Acme AI <noreply@acme.example>`.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::STRIPE_SECRET_KEY,
        section: "stripe",
        label: "Secret key",
        kind: Kind::Secret,
        env: Some(&super::STRIPE_SECRET_KEY),
        doc: "`sk_…` or `rk_…`. Write-only, stored encrypted (AES-GCM with the instance's secret key).",
        ..SITE
    },
    RuntimeSetting {
        key: keys::STRIPE_WEBHOOK_SECRET,
        section: "stripe",
        label: "Webhook signing secret",
        kind: Kind::Secret,
        env: Some(&super::STRIPE_WEBHOOK_SECRET),
        doc: "`whsec_…`. Write-only, stored encrypted. Top-ups are offered once both Stripe settings are set ([payments.md](payments.md)).",
        ..SITE
    },
    RuntimeSetting {
        key: keys::TOPUP_CURRENCY,
        section: "topup",
        label: "Payment currency",
        help: "The three-letter code Stripe charges in, like usd. Amounts below are in it.",
        default: "usd",
        doc: "The currency Stripe charges top-ups in: a three-letter code, stored lowercase. Zero-decimal currencies (`jpy`, `krw`, …) are read in whole units; three-decimal ones (`kwd`, …) are refused. Changing it rescales the amounts below to its minor unit.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::TOPUP_AMOUNTS,
        section: "topup",
        label: "Preset amounts",
        help: "Up to 12, separated by commas, like 5, 10, 20.",
        default: "5.00, 10.00, 20.00, 50.00, 100.00",
        doc: "The preset amounts on the top-up page, in `topup.currency`: up to 12, separated by commas or spaces.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::TOPUP_MIN,
        section: "topup",
        label: "Smallest custom amount",
        kind: Kind::Amount,
        default: "1.00",
        doc: "The smallest custom amount, in `topup.currency`.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::TOPUP_MAX,
        section: "topup",
        label: "Largest custom amount",
        kind: Kind::Amount,
        default: "10000.00",
        doc: "The largest custom amount, in `topup.currency`.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::TOPUP_CREDIT_PER_UNIT,
        section: "topup",
        label: "Credit per unit paid",
        help: "Balance credited for one unit of the payment currency (1.00 USD, say).",
        kind: Kind::Amount,
        default: "1.00",
        doc: "Balance (site currency) credited per whole unit of `topup.currency` paid, e.g. `7.10` when the site counts in CNY and users pay in USD. Positive.",
        ..SITE
    },
    RuntimeSetting {
        key: keys::TOPUP_GROUP_BONUS,
        section: "topup",
        label: "Bonus by group (%)",
        help: "Extra credit (or less, when negative) per group, like vip=10, trial=-5. Empty: none.",
        doc: "Extra credit per group in percent, `group=percent` pairs separated by commas: `vip=10, trial=-5` (−90 to 500; negative is a fee). Applied to the quote before paying.",
        ..SITE
    },
    RuntimeSetting {
        key: "gateway.retry_attempts",
        section: "gateway",
        label: "Channels tried per request",
        help: "1 to 20; 1 means no failover.",
        kind: Kind::Whole { min: 1, max: 20 },
        bind: Bind::Count(|g| &mut g.retry_attempts),
        env: Some(&super::RETRY_ATTEMPTS),
        default: "3",
        doc: "Channels one request may try (1 = no failover).",
        ..SITE
    },
    STRATEGY,
    RuntimeSetting {
        key: "gateway.connect_timeout_secs",
        section: "gateway",
        label: "Connect timeout (seconds)",
        help: "1 to 300.",
        kind: Kind::Whole { min: 1, max: 300 },
        bind: Bind::Secs(|g| &mut g.connect_timeout),
        env: Some(&super::CONNECT_TIMEOUT_SECS),
        default: "10",
        start_up_range: Some((0, 86_400)),
        doc: "Connecting to an upstream; a change rebuilds the upstream HTTP client (requests in flight finish on the old one).",
    },
    RuntimeSetting {
        key: "gateway.first_byte_timeout_secs",
        section: "gateway",
        label: "First-byte timeout (seconds)",
        kind: Kind::Whole { min: 1, max: 3600 },
        bind: Bind::Secs(|g| &mut g.first_byte_timeout),
        env: Some(&super::FIRST_BYTE_TIMEOUT_SECS),
        default: "300",
        start_up_range: Some((0, 86_400)),
        doc: "From sending the request to the answer's headers (and, for streams, the first chunk). A non-stream answer must also be complete within it.",
        ..SITE
    },
    RuntimeSetting {
        key: "gateway.idle_timeout_secs",
        section: "gateway",
        label: "Stream idle timeout (seconds)",
        kind: Kind::Whole { min: 1, max: 3600 },
        bind: Bind::Secs(|g| &mut g.idle_timeout),
        env: Some(&super::IDLE_TIMEOUT_SECS),
        default: "120",
        start_up_range: Some((0, 86_400)),
        doc: "Longest silence between two upstream stream chunks; streams have no total deadline.",
        ..SITE
    },
    RuntimeSetting {
        key: "gateway.client_stall_secs",
        section: "gateway",
        label: "Client stall cut (seconds)",
        help: "A streaming client that takes no data for this long is cut and billed for what it received.",
        kind: Kind::Whole { min: 1, max: 3600 },
        bind: Bind::Secs(|g| &mut g.client_stall),
        env: Some(&super::CLIENT_STALL_SECS),
        default: "60",
        doc: "A streaming client that takes no data for this long is cut and billed for what it received ([gateway.md](gateway.md#billing)); a change applies to the streams that start after it.",
        ..SITE
    },
    RuntimeSetting {
        key: "gateway.max_body_bytes",
        section: "gateway",
        label: "Largest request body (bytes)",
        kind: Kind::Whole { min: 1024, max: 1024 * 1024 * 1024 },
        bind: Bind::Count(|g| &mut g.max_body_bytes),
        env: Some(&super::MAX_BODY_BYTES),
        default: "33554432",
        doc: "Largest request body (32 MiB by default); larger ones get 413 before they are read whole.",
        ..SITE
    },
    RuntimeSetting {
        key: "gateway.allow_unpriced_models",
        section: "gateway",
        label: "Free use of models without a price",
        kind: Kind::Flag,
        bind: Bind::Flag(|g| &mut g.allow_unpriced_models),
        env: Some(&super::ALLOW_UNPRICED_MODELS),
        default: "false",
        doc: "Serve models that have no price, for free.",
        ..SITE
    },
    RuntimeSetting {
        key: "gateway.cache_ttl_secs",
        section: "gateway",
        label: "Key cache (seconds)",
        help: "How long a key's lookup is trusted; changes made on other replicas show within it.",
        kind: Kind::Whole { min: 0, max: 3600 },
        bind: Bind::Secs(|g| &mut g.cache_ttl),
        env: Some(&super::CACHE_TTL_SECS),
        default: "30",
        start_up_range: Some((0, 86_400)),
        doc: "How long a key lookup is trusted (changes made on other replicas show within it).",
    },
    RuntimeSetting {
        key: keys::LOW_BALANCE,
        section: "notify",
        label: "Low-balance email below",
        help: "One email when a balance falls below this amount. 0: off.",
        kind: Kind::Amount,
        default: "0.00",
        doc: "Amount below which a user gets one email (`Your balance is low`, linking to billing); again only after their balance was back at or above it. Checked every minute; sent only when SMTP is configured. `0.00`: off.",
        ..SITE
    },
];

/// The setting named `key`, if it is one.
pub fn find(key: &str) -> Option<&'static RuntimeSetting> {
    TABLE.iter().find(|s| s.key == key)
}

impl RuntimeSetting {
    pub fn is_secret(&self) -> bool {
        self.kind == Kind::Secret
    }

    /// Checks `value` and sets the gateway field it is bound to; `Ok(false)` when the setting is
    /// not the gateway's (the caller applies it).
    pub fn apply_to(&self, gateway: &mut GatewayConfig, value: &str) -> Result<bool, String> {
        match self.bind {
            Bind::Site => return Ok(false),
            Bind::Secs(field) => *field(gateway) = Duration::from_secs(self.kind.whole(value)?),
            Bind::Count(field) => *field(gateway) = self.kind.whole(value)? as usize,
            Bind::Flag(field) => {
                *field(gateway) = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(self.kind.accepted()),
                }
            }
            Bind::Strategy(field) => *field(gateway) = Strategy::parse(value).ok_or_else(|| self.kind.accepted())?,
        }
        Ok(true)
    }

    /// The value of a gateway setting as shown; `None` when the setting is not the gateway's.
    pub fn value_in(&self, gateway: &GatewayConfig) -> Option<String> {
        // The fields are read through the same accessor that writes them; the config is all Copy
        // fields, so the copy is cheap.
        let mut copy = gateway.clone();
        Some(match self.bind {
            Bind::Site => return None,
            Bind::Secs(field) => field(&mut copy).as_secs().to_string(),
            Bind::Count(field) => field(&mut copy).to_string(),
            Bind::Flag(field) => field(&mut copy).to_string(),
            Bind::Strategy(field) => field(&mut copy).as_str().to_string(),
        })
    }

    /// Sets a gateway field from its start-up variable (or file key), else from the default.
    /// Settings of the site snapshot are parsed by `config` itself (they are not bound here).
    fn start_up(&self, raw: Option<&str>, gateway: &mut GatewayConfig) -> Result<(), ConfigError> {
        let (Some(env), false) = (self.env, matches!(self.bind, Bind::Site)) else {
            return Ok(());
        };
        let value = raw.unwrap_or(self.default);
        let error = |message: String| ConfigError::new(env, format!("{value:?} {message}"));
        match (&self.bind, &self.kind) {
            (Bind::Secs(_) | Bind::Count(_), Kind::Whole { min, max }) => {
                let (min, max) = self.start_up_range.unwrap_or((*min, *max));
                let n = super::number(Some(value), env, 0, min..=max)?;
                match self.bind {
                    Bind::Secs(field) => *field(gateway) = Duration::from_secs(n),
                    Bind::Count(field) => *field(gateway) = n as usize,
                    _ => {}
                }
            }
            (Bind::Flag(field), _) => *field(gateway) = super::boolean(Some(value), env, false)?,
            _ => {
                self.apply_to(gateway, value).map_err(|m| error(format!("must be {m}")))?;
            }
        }
        Ok(())
    }

    /// The default column of docs/configuration.md.
    fn default_doc(&self) -> String {
        match (self.env, self.default) {
            (Some(env), "") => format!("`{}`", env.env),
            (Some(env), default) => format!("`{}`, else `{default}`", env.env),
            (None, "") => "empty".into(),
            (None, default) => format!("`{default}`"),
        }
    }
}

/// Sets every run-time gateway field from its start-up variable or its default.
pub(super) fn start_up(
    gateway: &mut GatewayConfig,
    get: impl Fn(&Setting) -> Option<String>,
) -> Result<(), ConfigError> {
    for setting in TABLE {
        let raw = setting.env.and_then(&get);
        setting.start_up(raw.as_deref(), gateway)?;
    }
    Ok(())
}

/// The run-time settings' table in docs/configuration.md.
pub fn doc_table() -> String {
    let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
    for s in TABLE {
        let range = match s.kind {
            Kind::Whole { min, max } => format!(" {min}–{max}."),
            _ => String::new(),
        };
        out.push_str(&format!("| `{}` | {} | {}{range} |\n", s.key, s.default_doc(), s.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = "<!-- run-time settings: generated from src/config/runtime.rs -->\n";
    const END: &str = "<!-- end of run-time settings -->";

    /// docs/configuration.md shows the table as it is; `BURNCLOUD_BLESS=1` rewrites it.
    #[test]
    fn the_documentation_shows_every_setting() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let start = doc.find(START).expect("the start marker") + START.len();
        let end = doc[start..].find(END).expect("the end marker") + start;
        let table = doc_table();
        if std::env::var_os("BURNCLOUD_BLESS").is_some() {
            std::fs::write(&path, format!("{}{table}{}", &doc[..start], &doc[end..])).unwrap();
            return;
        }
        assert_eq!(
            doc[start..end],
            table,
            "docs/configuration.md is stale: run `BURNCLOUD_BLESS=1 cargo test --lib the_documentation_shows_every_setting`"
        );
    }

    fn load(pairs: &[(&str, &str)]) -> Result<super::super::Config, ConfigError> {
        let env: std::collections::BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        super::super::Config::load_from(None, |name| env.get(name).cloned())
    }

    /// The run-time settings' start-up values come from the table: its defaults, or the
    /// environment (with the start-up parsing it always had: yes/no flags, wider timeout ranges).
    #[test]
    fn run_time_settings_start_from_the_table() {
        let g = load(&[]).unwrap().gateway;
        assert_eq!((g.retry_attempts, g.max_body_bytes, g.strategy), (3, 32 * 1024 * 1024, Strategy::WeightedRandom));
        assert_eq!((g.connect_timeout, g.first_byte_timeout), (Duration::from_secs(10), Duration::from_secs(300)));
        assert_eq!((g.idle_timeout, g.cache_ttl), (Duration::from_secs(120), Duration::from_secs(30)));
        assert_eq!((g.client_stall, g.allow_unpriced_models), (Duration::from_secs(60), false));
        let g = load(&[
            ("BURNCLOUD_CLIENT_STALL_SECS", "7"),
            ("BURNCLOUD_ROUTING_STRATEGY", "failover"),
            ("BURNCLOUD_ALLOW_UNPRICED_MODELS", "yes"),
            ("BURNCLOUD_UPSTREAM_CONNECT_TIMEOUT_SECS", "900"),
        ])
        .unwrap()
        .gateway;
        assert_eq!(
            (g.client_stall, g.strategy, g.allow_unpriced_models),
            (Duration::from_secs(7), Strategy::Failover, true)
        );
        assert_eq!(g.connect_timeout, Duration::from_secs(900));
    }

    #[test]
    fn keys_are_unique_and_sections_known() {
        for (i, s) in TABLE.iter().enumerate() {
            assert!(TABLE[..i].iter().all(|t| t.key != s.key), "{} twice", s.key);
            assert!(SECTIONS.iter().any(|(id, ..)| *id == s.section), "{}: section {}", s.key, s.section);
            assert!(!s.label.is_empty() && !s.doc.is_empty(), "{}", s.key);
        }
    }

    #[test]
    fn the_strategy_list_is_said_once() {
        assert_eq!(Strategy::accepted(), "weighted_random, round_robin or failover");
        if let Kind::Choice(options) = STRATEGY.kind {
            assert!(options.iter().all(|(v, _)| Strategy::parse(v).is_some_and(|s| s.as_str() == *v)));
        }
    }
}

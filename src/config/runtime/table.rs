//! The run-time settings table itself: one entry per setting, in the settings page's order. An
//! entry is the whole setting — key, kind and range, default, start-up variable, label, help,
//! section, documentation, and its rule (`bind`: how a value is checked, set and shown). Adding a
//! setting is one entry here plus the field it sets and the code that reads it.

use url::Url;

use super::{Bind, Kind, RuntimeSetting};
use crate::config::site::{self, Verification};
use crate::config::{SignupMode, SmtpSecurity};
use crate::domain::budget;
use crate::domain::money::Money;
use crate::domain::topup::{TopupSettings, format_minor};

/// What an entry is before its own fields: written `..BASE`. `Bind::Unbound` is refused by a
/// test, so an entry cannot forget its rule.
const BASE: RuntimeSetting = RuntimeSetting {
    key: "",
    section: "",
    label: "",
    help: "",
    kind: Kind::Text,
    bind: Bind::Unbound,
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
        ("least_latency", "Least latency"),
        ("least_busy", "Least busy"),
    ]),
    bind: Bind::Strategy(|g| &mut g.strategy),
    env: Some(&crate::config::ROUTING_STRATEGY),
    default: "weighted_random",
    doc: "The default strategy inside a priority tier: `weighted_random`, `round_robin`, `failover`, `least_latency` or `least_busy` ([gateway.md](gateway.md#routing); a `routing.strategy.<group>.<model>` setting still wins for its model).",
    ..BASE
};

/// Every run-time setting, in the settings page's order (and `GET /api/admin/settings`'s). The
/// top-up currency comes before the top-up amounts: they are read in its minor unit.
pub static TABLE: &[RuntimeSetting] = &[
    RuntimeSetting {
        key: "site.name",
        section: "general",
        label: "Site name",
        default: "BurnCloud",
        doc: "The name in the top bar, page titles and mail (1–64 characters).",
        bind: Bind::Site {
            set: |s, v| {
                if v.is_empty() || v.chars().count() > 64 {
                    return Err("the site name is 1 to 64 characters".into());
                }
                s.site_name = v.to_string();
                Ok(())
            },
            show: |s| s.site_name.clone(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "site.public_url",
        section: "general",
        label: "Public URL",
        help: "Used in email, invitation and quick-start links. Empty: the configured URL.",
        kind: Kind::Url,
        env: Some(&crate::config::PUBLIC_URL),
        doc: "The base of links in mail, invitations and the quick start (`http(s)://host[/path]`, no query); empty: the configured URL. The session cookie's `Secure` flag follows the configured URL until a restart.",
        bind: Bind::Site {
            set: |s, v| {
                s.public_url = site::public_url(v)?;
                Ok(())
            },
            show: |s| s.public_url.as_ref().map(Url::to_string).unwrap_or_default(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "site.currency",
        section: "general",
        label: "Currency",
        help: "A three-letter code, shown with amounts.",
        default: "USD",
        doc: "The three-letter code of the site currency, for display (amounts are nano-units of it).",
        bind: Bind::Site {
            set: |s, v| {
                if v.len() != 3 || !v.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err("a three-letter currency code like USD".into());
                }
                s.currency = v.to_ascii_uppercase();
                Ok(())
            },
            show: |s| s.currency.clone(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "site.announcement",
        section: "general",
        label: "Announcement",
        help: "Shown on top of every page. Empty: none.",
        kind: Kind::LongText,
        doc: "A line shown under the top bar on every page (up to 500 characters).",
        bind: Bind::Site {
            set: |s, v| {
                if v.chars().count() > 500 {
                    return Err("the announcement is at most 500 characters".into());
                }
                s.announcement = v.to_string();
                Ok(())
            },
            show: |s| s.announcement.clone(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "signup.mode",
        section: "signup",
        label: "Signup mode",
        kind: Kind::Choice(SIGNUP_MODES),
        env: Some(&crate::config::SIGNUP_MODE),
        default: "open",
        doc: "`open`, `invite_only` or `closed`.",
        bind: Bind::Site {
            set: |s, v| {
                s.signup_mode = match v {
                    "open" => SignupMode::Open,
                    "invite_only" => SignupMode::InviteOnly,
                    "closed" => SignupMode::Closed,
                    _ => return Err("open, invite_only or closed".into()),
                };
                Ok(())
            },
            show: |s| {
                match s.signup_mode {
                    SignupMode::Open => "open",
                    SignupMode::InviteOnly => "invite_only",
                    SignupMode::Closed => "closed",
                }
                .into()
            },
        },
        ..BASE
    },
    RuntimeSetting {
        key: "signup.email_domains",
        section: "signup",
        label: "Allowed email domains",
        help: "Comma-separated, like example.com. Empty: any.",
        doc: "Comma-separated domains new accounts (and changed emails) must be at, e.g. `acme.example, partner.example`. Empty: any.",
        bind: Bind::Site {
            set: |s, v| {
                let domains: Vec<String> = v
                    .split([',', ' ', '\n'])
                    .map(|d| d.trim().trim_start_matches('@').to_lowercase())
                    .filter(|d| !d.is_empty())
                    .collect();
                if let Some(bad) = domains.iter().find(|d| !d.contains('.') || d.contains('@')) {
                    return Err(format!("{bad:?} is not a domain (a comma-separated list like example.com)"));
                }
                s.email_domains = domains;
                Ok(())
            },
            show: |s| s.email_domains.join(", "),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "signup.email_verification",
        section: "signup",
        label: "Email verification",
        kind: Kind::Choice(VERIFICATION),
        default: "auto",
        doc: "`auto`: required exactly when SMTP is configured; `required`; `off`.",
        bind: Bind::Site {
            set: |s, v| {
                s.verification = match v {
                    "auto" => Verification::Auto,
                    "required" => Verification::Required,
                    "off" => Verification::Off,
                    _ => return Err("auto (required when SMTP is configured), required or off".into()),
                };
                Ok(())
            },
            show: |s| {
                match s.verification {
                    Verification::Auto => "auto",
                    Verification::Required => "required",
                    Verification::Off => "off",
                }
                .into()
            },
        },
        ..BASE
    },
    RuntimeSetting {
        key: "signup.welcome_credit",
        section: "signup",
        label: "Welcome credit",
        help: "Credited once the address is verified.",
        kind: Kind::Amount,
        env: Some(&crate::config::WELCOME_CREDIT),
        default: "0.00",
        doc: "Amount credited once the address is verified.",
        bind: Bind::Amount(|s| &mut s.welcome_credit),
        ..BASE
    },
    RuntimeSetting {
        key: "invitation.inviter_reward",
        section: "invitation",
        label: "Inviter reward",
        kind: Kind::Amount,
        default: "0.00",
        doc: "Credited to the inviter when someone who signed up with their code verifies the address (`invitation_reward` ledger row).",
        bind: Bind::Amount(|s| &mut s.inviter_reward),
        ..BASE
    },
    RuntimeSetting {
        key: "invitation.invitee_reward",
        section: "invitation",
        label: "Invitee reward",
        kind: Kind::Amount,
        default: "0.00",
        doc: "Credited to that new account at the same moment.",
        bind: Bind::Amount(|s| &mut s.invitee_reward),
        ..BASE
    },
    RuntimeSetting {
        key: "invitation.topup_reward_percent",
        section: "invitation",
        label: "Top-up reward (%)",
        help: "Of the invitee's first top-up, to the inviter.",
        kind: Kind::Number,
        default: "0",
        doc: "Percent of an invitee's first paid top-up credited to the inviter, in the same transaction as the top-up ([payments.md](payments.md)).",
        bind: Bind::Site {
            set: |s, v| {
                s.topup_reward_percent =
                    v.parse::<u8>().ok().filter(|p| *p <= 100).ok_or("a whole percent from 0 to 100")?;
                Ok(())
            },
            show: |s| s.topup_reward_percent.to_string(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "smtp.host",
        section: "smtp",
        label: "SMTP host",
        help: "Empty: no mail.",
        env: Some(&crate::config::SMTP_HOST),
        doc: "SMTP server; empty: no mail. Each `smtp.*` setting overrides its `BURNCLOUD_SMTP_*` variable; the mailer is rebuilt when they change. Settings that cannot make a mailer (say, no sender yet) leave mail off with a warning in the log.",
        bind: Bind::Site {
            set: |s, v| {
                if v.contains(['/', ':', ' ']) || v.len() > 253 {
                    return Err("a host name like smtp.example.com (empty: no SMTP)".into());
                }
                s.smtp.host = v.to_string();
                Ok(())
            },
            show: |s| s.smtp.host.clone(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "smtp.port",
        section: "smtp",
        label: "Port",
        help: "Empty: the usual port for the security mode.",
        kind: Kind::Number,
        env: Some(&crate::config::SMTP_PORT),
        doc: "1–65535; empty: the security mode's port.",
        bind: Bind::Site {
            set: |s, v| {
                s.smtp.port = match v {
                    "" => None,
                    v => Some(v.parse::<u16>().ok().filter(|p| *p > 0).ok_or("a port from 1 to 65535")?),
                };
                Ok(())
            },
            show: |s| s.smtp.port.map(|p| p.to_string()).unwrap_or_default(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "smtp.security",
        section: "smtp",
        label: "Security",
        kind: Kind::Choice(SECURITY),
        env: Some(&crate::config::SMTP_SECURITY),
        default: "starttls",
        doc: "`none`, `starttls` or `tls`.",
        bind: Bind::Site {
            set: |s, v| {
                s.smtp.security = match v {
                    "none" => SmtpSecurity::None,
                    "starttls" => SmtpSecurity::StartTls,
                    "tls" => SmtpSecurity::Tls,
                    _ => return Err("none, starttls or tls".into()),
                };
                Ok(())
            },
            show: |s| site::security_name(s.smtp.security).into(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "smtp.username",
        section: "smtp",
        label: "Username",
        env: Some(&crate::config::SMTP_USERNAME),
        doc: "Login for the SMTP server.",
        bind: Bind::Site {
            set: |s, v| {
                s.smtp.username = v.to_string();
                Ok(())
            },
            show: |s| s.smtp.username.clone(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "smtp.password",
        section: "smtp",
        label: "Password",
        kind: Kind::Secret,
        env: Some(&crate::config::SMTP_PASSWORD),
        doc: "Write-only, stored encrypted.",
        bind: Bind::Secret { rule: |_| Ok(()), slot: |s| &mut s.smtp.password, held: |s| s.smtp.password.is_some() },
        ..BASE
    },
    RuntimeSetting {
        key: "smtp.from",
        section: "smtp",
        label: "Sender",
        help: "Like BurnCloud <noreply@example.com>.",
        env: Some(&crate::config::SMTP_FROM),
        doc: "The sender mailbox, e.g. `Acme AI <noreply@acme.example>`.",
        bind: Bind::Site {
            set: |s, v| {
                if !v.is_empty() && v.parse::<lettre::message::Mailbox>().is_err() {
                    return Err("a mailbox like \"BurnCloud <noreply@example.com>\"".into());
                }
                s.smtp.from = v.to_string();
                Ok(())
            },
            show: |s| s.smtp.from.clone(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "stripe.secret_key",
        section: "stripe",
        label: "Secret key",
        kind: Kind::Secret,
        env: Some(&crate::config::STRIPE_SECRET_KEY),
        doc: "`sk_…` or `rk_…`. Write-only, stored encrypted (AES-GCM with the instance's secret key).",
        bind: Bind::Secret {
            rule: |v| {
                if v.is_empty() || v.starts_with("sk_") || v.starts_with("rk_") {
                    Ok(())
                } else {
                    Err("a Stripe secret key (sk_… or rk_…), or empty to remove it".into())
                }
            },
            slot: |s| &mut s.stripe_secret_key,
            held: |s| s.stripe_secret_key.is_some(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "stripe.webhook_secret",
        section: "stripe",
        label: "Webhook signing secret",
        kind: Kind::Secret,
        env: Some(&crate::config::STRIPE_WEBHOOK_SECRET),
        doc: "`whsec_…`. Write-only, stored encrypted. Top-ups are offered once both Stripe settings are set ([payments.md](payments.md)).",
        bind: Bind::Secret {
            rule: |v| {
                if v.is_empty() || v.starts_with("whsec_") {
                    Ok(())
                } else {
                    Err("a Stripe webhook signing secret (whsec_…), or empty to remove it".into())
                }
            },
            slot: |s| &mut s.stripe_webhook_secret,
            held: |s| s.stripe_webhook_secret.is_some(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "topup.currency",
        section: "topup",
        label: "Payment currency",
        help: "The three-letter code Stripe charges in, like usd. Amounts below are in it.",
        default: "usd",
        doc: "The currency Stripe charges top-ups in: a three-letter code, stored lowercase. Zero-decimal currencies (`jpy`, `krw`, …) are read in whole units; three-decimal ones (`kwd`, …) are refused. Changing it rescales the amounts below to its minor unit.",
        bind: Bind::Site { set: |s, v| s.topup.set_currency(v), show: |s| s.topup.currency.clone() },
        ..BASE
    },
    RuntimeSetting {
        key: "topup.amounts",
        section: "topup",
        label: "Preset amounts",
        help: "Up to 12, separated by commas, like 5, 10, 20.",
        default: "5.00, 10.00, 20.00, 50.00, 100.00",
        doc: "The preset amounts on the top-up page, in `topup.currency`: up to 12, separated by commas or spaces.",
        bind: Bind::Site {
            set: |s, v| {
                s.topup.presets = s.topup.parse_presets(v)?;
                Ok(())
            },
            show: |s| s.topup.presets_text(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "topup.min_amount",
        section: "topup",
        label: "Smallest custom amount",
        kind: Kind::Amount,
        default: "1.00",
        doc: "The smallest custom amount, in `topup.currency`.",
        bind: Bind::Site {
            set: |s, v| {
                s.topup.min = s.topup_amount(v)?;
                Ok(())
            },
            show: |s| format_minor(s.topup.min, &s.topup.currency),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "topup.max_amount",
        section: "topup",
        label: "Largest custom amount",
        kind: Kind::Amount,
        default: "10000.00",
        doc: "The largest custom amount, in `topup.currency`.",
        bind: Bind::Site {
            set: |s, v| {
                s.topup.max = s.topup_amount(v)?;
                Ok(())
            },
            show: |s| format_minor(s.topup.max, &s.topup.currency),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "topup.credit_per_unit",
        section: "topup",
        label: "Credit per unit paid",
        help: "Balance credited for one unit of the payment currency (1.00 USD, say).",
        kind: Kind::Amount,
        default: "1.00",
        doc: "Balance (site currency) credited per whole unit of `topup.currency` paid, e.g. `7.10` when the site counts in CNY and users pay in USD. Positive.",
        bind: Bind::Site {
            set: |s, v| {
                s.topup.credit_per_unit =
                    Some(site::amount(v)?).filter(|n| *n > 0).ok_or("a positive amount like \"1.00\"")?;
                Ok(())
            },
            show: |s| Money(s.topup.credit_per_unit).to_string(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "topup.group_bonus",
        section: "topup",
        label: "Bonus by group (%)",
        help: "Extra credit (or less, when negative) per group, like vip=10, trial=-5. Empty: none.",
        doc: "Extra credit per group in percent, `group=percent` pairs separated by commas: `vip=10, trial=-5` (−90 to 500; negative is a fee). Applied to the quote before paying.",
        bind: Bind::Site {
            set: |s, v| {
                s.topup.group_bonus = TopupSettings::parse_group_bonus(v)?;
                Ok(())
            },
            show: |s| s.topup.group_bonus_text(),
        },
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.retry_attempts",
        section: "gateway",
        label: "Channels tried per request",
        help: "1 to 20; 1 means no failover.",
        kind: Kind::Whole { min: 1, max: 20 },
        bind: Bind::Count(|g| &mut g.retry_attempts),
        env: Some(&crate::config::RETRY_ATTEMPTS),
        default: "3",
        doc: "Channels one request may try (1 = no failover).",
        ..BASE
    },
    STRATEGY,
    RuntimeSetting {
        key: "gateway.connect_timeout_secs",
        section: "gateway",
        label: "Connect timeout (seconds)",
        help: "1 to 300.",
        kind: Kind::Whole { min: 1, max: 300 },
        bind: Bind::Secs(|g| &mut g.connect_timeout),
        env: Some(&crate::config::CONNECT_TIMEOUT_SECS),
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
        env: Some(&crate::config::FIRST_BYTE_TIMEOUT_SECS),
        default: "300",
        start_up_range: Some((0, 86_400)),
        doc: "From sending the request to the answer's headers (and, for streams, the first chunk). A non-stream answer must also be complete within it.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.idle_timeout_secs",
        section: "gateway",
        label: "Stream idle timeout (seconds)",
        kind: Kind::Whole { min: 1, max: 3600 },
        bind: Bind::Secs(|g| &mut g.idle_timeout),
        env: Some(&crate::config::IDLE_TIMEOUT_SECS),
        default: "120",
        start_up_range: Some((0, 86_400)),
        doc: "Longest silence between two upstream stream chunks; streams have no total deadline.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.client_stall_secs",
        section: "gateway",
        label: "Client stall cut (seconds)",
        help: "A streaming client that takes no data for this long is cut and billed for what it received.",
        kind: Kind::Whole { min: 1, max: 3600 },
        bind: Bind::Secs(|g| &mut g.client_stall),
        env: Some(&crate::config::CLIENT_STALL_SECS),
        default: "60",
        doc: "A streaming client that takes no data for this long is cut and billed for what it received ([gateway.md](gateway.md#billing)); a change applies to the streams that start after it.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.max_body_bytes",
        section: "gateway",
        label: "Largest request body (bytes)",
        kind: Kind::Whole { min: 1024, max: 1024 * 1024 * 1024 },
        bind: Bind::Count(|g| &mut g.max_body_bytes),
        env: Some(&crate::config::MAX_BODY_BYTES),
        default: "33554432",
        doc: "Largest request body (32 MiB by default); larger ones get 413 before they are read whole.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.default_max_tokens",
        section: "gateway",
        label: "Output tokens assumed without a maximum",
        help: "Held for a request that sets no output limit (reasoning models: 32768).",
        kind: Kind::Whole { min: 1, max: 10_000_000 },
        bind: Bind::Count(|g| &mut g.default_max_tokens),
        env: Some(&crate::config::DEFAULT_MAX_TOKENS),
        default: "4096",
        doc: "Output tokens the hold assumes when a request sets no maximum (reasoning models: 32,768), and the `max_tokens` sent to upstreams that require one (Anthropic, Bedrock) when the client sets none.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.affinity_ttl_secs",
        section: "gateway",
        label: "Session affinity (seconds)",
        help: "How long a conversation stays on the channel that answered it, so prompt caches hit. 0: off.",
        kind: Kind::Whole { min: 0, max: 86_400 },
        bind: Bind::Secs(|g| &mut g.affinity_ttl),
        default: "300",
        doc: "How long requests of one conversation (its `prompt_cache_key`, Anthropic `metadata.user_id`, `user`, the Codex `session_id` or Claude Code `x-claude-code-session-id` header, or `gateway.affinity_header`) stay on the channel that last answered it, while it is healthy ([gateway.md](gateway.md#session-affinity)). `0`: off.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.affinity_header",
        section: "gateway",
        label: "Affinity header",
        help: "A request header that names a conversation, besides the ones clients send. Empty: none.",
        bind: Bind::Site {
            set: |s, v| {
                let v = v.to_ascii_lowercase();
                if v.len() > 64 || axum::http::HeaderName::from_bytes(v.as_bytes()).is_err() && !v.is_empty() {
                    return Err("a header name like x-conversation-id (empty: none)".into());
                }
                s.gateway.affinity_header = v;
                Ok(())
            },
            show: |s| s.gateway.affinity_header.clone(),
        },
        doc: "A request header the operator names as a conversation marker for session affinity, checked before the others (e.g. `x-conversation-id`). Empty: none.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.circuit_failures",
        section: "gateway",
        label: "Circuit breaker: failures in a row",
        help: "Failed attempts in a row that take a channel out of routing for the cooldown. 0: not on this rule.",
        kind: Kind::Whole { min: 0, max: 1000 },
        bind: Bind::Count(|g| &mut g.circuit_failures),
        default: "5",
        doc: "Consecutive failed attempts (connection errors, timeouts, 408, 429, 5xx) on a channel that open its circuit: no traffic on this replica for `gateway.circuit_cooldown_secs`, then one trial request ([gateway.md](gateway.md#circuit-breaker)). `0`: not on this rule (with `gateway.circuit_error_rate` also `0`, the breaker is off).",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.circuit_error_rate",
        section: "gateway",
        label: "Circuit breaker: error rate (%)",
        help: "The failed share of a window's attempts that opens a channel's circuit. 0: not on this rule.",
        kind: Kind::Whole { min: 0, max: 100 },
        bind: Bind::Count(|g| &mut g.circuit_error_rate),
        default: "50",
        doc: "The failed percentage of a channel's attempts within `gateway.circuit_window_secs` (once there are `gateway.circuit_min_requests`) that opens its circuit. `0`: not on this rule.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.circuit_min_requests",
        section: "gateway",
        label: "Circuit breaker: fewest attempts for the rate",
        kind: Kind::Whole { min: 1, max: 1_000_000 },
        bind: Bind::Count(|g| &mut g.circuit_min_requests),
        default: "20",
        doc: "The fewest attempts in a window for its error rate to open a circuit.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.circuit_window_secs",
        section: "gateway",
        label: "Circuit breaker: window (seconds)",
        kind: Kind::Whole { min: 1, max: 86_400 },
        bind: Bind::Secs(|g| &mut g.circuit_window),
        default: "60",
        doc: "The window the error rate is counted over (a new one starts when it ends).",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.circuit_min_users",
        section: "gateway",
        label: "Circuit breaker: users failing",
        help: "Distinct users whose requests must have failed before a circuit opens (1: any). One tenant alone cannot take a channel from everyone.",
        kind: Kind::Whole { min: 1, max: 10 },
        bind: Bind::Count(|g| &mut g.circuit_min_users),
        default: "2",
        doc: "How many distinct users' attempts must have failed in the window before a circuit opens (on either rule): a tenant provoking upstream errors (timeouts on huge prompts, inputs the upstream chokes on) cannot take a channel out for everyone alone. `1`: any failures (a single-tenant deployment).",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.circuit_cooldown_secs",
        section: "gateway",
        label: "Circuit breaker: cooldown (seconds)",
        help: "How long an open circuit takes no traffic before one trial request.",
        kind: Kind::Whole { min: 1, max: 86_400 },
        bind: Bind::Secs(|g| &mut g.circuit_cooldown),
        default: "30",
        doc: "How long an open circuit takes no traffic before one trial request is let through: its answer closes the circuit, its failure opens it for another cooldown.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.budget_time_zone",
        section: "gateway",
        label: "Budget time zone",
        help: "Where daily, weekly and monthly key budgets start again: UTC or an offset like +08:00.",
        default: "UTC",
        bind: Bind::Site {
            set: |s, v| {
                s.gateway.budget_zone = budget::parse_offset(v)
                    .ok_or("UTC or a fixed offset like +08:00 or -05:30 (from -12:00 to +14:00)")?;
                Ok(())
            },
            show: |s| budget::offset_text(s.gateway.budget_zone),
        },
        doc: "The time zone of calendar key budgets (`day`, `week`, `month` start at its midnight, weeks on Monday): `UTC` or a fixed offset like `+08:00` (no daylight-saving rules). A change starts the current windows again.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.allow_unpriced_models",
        section: "gateway",
        label: "Free use of models without a price",
        kind: Kind::Flag,
        bind: Bind::Flag(|g| &mut g.allow_unpriced_models),
        env: Some(&crate::config::ALLOW_UNPRICED_MODELS),
        default: "false",
        doc: "Serve models that have no price, for free.",
        ..BASE
    },
    RuntimeSetting {
        key: "gateway.cache_ttl_secs",
        section: "gateway",
        label: "Key cache (seconds)",
        help: "How long a key's lookup is trusted; changes made on other replicas show within it.",
        kind: Kind::Whole { min: 0, max: 3600 },
        bind: Bind::Secs(|g| &mut g.cache_ttl),
        env: Some(&crate::config::CACHE_TTL_SECS),
        default: "30",
        start_up_range: Some((0, 86_400)),
        doc: "How long a key lookup is trusted (changes made on other replicas show within it).",
    },
    RuntimeSetting {
        key: "notify.budget_warning_percent",
        section: "notify",
        label: "Budget warning at (%)",
        help: "One email per period when a key has spent this share of its budget. 0: off.",
        kind: Kind::Number,
        default: "80",
        bind: Bind::Site {
            set: |s, v| {
                s.budget_warning_percent =
                    v.parse::<u8>().ok().filter(|p| *p <= 100).ok_or("a whole percent from 0 to 100")?;
                Ok(())
            },
            show: |s| s.budget_warning_percent.to_string(),
        },
        doc: "When a key has spent this percent of its budget in a period, its owner gets one email for that period (`Your API key's budget is nearly spent`, linking to the keys page). Checked every minute; sent only when SMTP is configured. `0`: off.",
        ..BASE
    },
    RuntimeSetting {
        key: "notify.low_balance",
        section: "notify",
        label: "Low-balance email below",
        help: "One email when a balance falls below this amount. 0: off.",
        kind: Kind::Amount,
        default: "0.00",
        doc: "Amount below which a user gets one email (`Your balance is low`, linking to billing); again only after their balance was back at or above it. Checked every minute; sent only when SMTP is configured. `0.00`: off.",
        bind: Bind::Amount(|s| &mut s.low_balance),
        ..BASE
    },
];

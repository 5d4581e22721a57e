//! What the settings page shows: the site settings grouped in sections, each field with its
//! label, kind and current value (never a secret's value). Pure data; the page is `settings`.

use crate::services::site::{SiteSettings, keys};

/// How a field is edited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Url,
    Number,
    Amount,
    LongText,
    /// One of the options: (value, label).
    Choice(&'static [(&'static str, &'static str)]),
    /// Write-only: an empty input keeps the stored value.
    Secret,
}

/// One field of a section.
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub value: String,
    /// For a secret: whether one is stored.
    pub set: bool,
}

impl Field {
    pub fn is_choice(&self) -> bool {
        matches!(self.kind, Kind::Choice(_))
    }

    pub fn options(&self) -> &'static [(&'static str, &'static str)] {
        match self.kind {
            Kind::Choice(options) => options,
            _ => &[],
        }
    }

    pub fn input_type(&self) -> &'static str {
        match self.kind {
            Kind::Url => "url",
            Kind::Number => "number",
            Kind::Secret => "password",
            _ => "text",
        }
    }

    pub fn is_secret(&self) -> bool {
        self.kind == Kind::Secret
    }

    pub fn is_long(&self) -> bool {
        self.kind == Kind::LongText
    }

    pub fn input_mode(&self) -> &'static str {
        match self.kind {
            Kind::Amount => "decimal",
            Kind::Number => "numeric",
            _ => "text",
        }
    }
}

/// One card of the page, saved by its own form.
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    pub note: &'static str,
    pub fields: Vec<Field>,
    pub message: Option<String>,
    pub error: Option<String>,
}

const SIGNUP_MODES: &[(&str, &str)] = &[("open", "Open"), ("invite_only", "Invitation only"), ("closed", "Closed")];
const STRATEGIES: &[(&str, &str)] =
    &[("weighted_random", "Weighted random"), ("round_robin", "Round robin"), ("failover", "Failover (in order)")];
const VERIFICATION: &[(&str, &str)] =
    &[("auto", "When SMTP is configured"), ("required", "Always"), ("off", "Not required")];
const SECURITY: &[(&str, &str)] = &[("starttls", "STARTTLS"), ("tls", "TLS"), ("none", "None (plain)")];
const YES_NO: &[(&str, &str)] = &[("false", "No"), ("true", "Yes")];

/// (section id, title, note, fields as (key, label, help, kind)).
type Spec = (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str, &'static str, Kind)]);

const SPECS: &[Spec] = &[
    (
        "general",
        "General",
        "How the site presents itself.",
        &[
            (keys::SITE_NAME, "Site name", "", Kind::Text),
            (
                keys::PUBLIC_URL,
                "Public URL",
                "Used in email, invitation and quick-start links. Empty: the configured URL.",
                Kind::Url,
            ),
            (keys::CURRENCY, "Currency", "A three-letter code, shown with amounts.", Kind::Text),
            (keys::ANNOUNCEMENT, "Announcement", "Shown on top of every page. Empty: none.", Kind::LongText),
        ],
    ),
    (
        "signup",
        "Signups",
        "Who may create an account, and what they get.",
        &[
            (keys::SIGNUP_MODE, "Signup mode", "", Kind::Choice(SIGNUP_MODES)),
            (
                keys::EMAIL_DOMAINS,
                "Allowed email domains",
                "Comma-separated, like example.com. Empty: any.",
                Kind::Text,
            ),
            (keys::EMAIL_VERIFICATION, "Email verification", "", Kind::Choice(VERIFICATION)),
            (keys::WELCOME_CREDIT, "Welcome credit", "Credited once the address is verified.", Kind::Amount),
        ],
    ),
    (
        "invitation",
        "Invitations",
        "Rewards for inviting people.",
        &[
            (keys::INVITER_REWARD, "Inviter reward", "", Kind::Amount),
            (keys::INVITEE_REWARD, "Invitee reward", "", Kind::Amount),
            (
                keys::TOPUP_REWARD_PERCENT,
                "Top-up reward (%)",
                "Of the invitee's first top-up, to the inviter.",
                Kind::Number,
            ),
        ],
    ),
    (
        "smtp",
        "Mail (SMTP)",
        "Verification, password-reset and notification mail. Overrides the environment.",
        &[
            (keys::SMTP_HOST, "SMTP host", "Empty: no mail.", Kind::Text),
            (keys::SMTP_PORT, "Port", "Empty: the usual port for the security mode.", Kind::Number),
            (keys::SMTP_SECURITY, "Security", "", Kind::Choice(SECURITY)),
            (keys::SMTP_USERNAME, "Username", "", Kind::Text),
            (keys::SMTP_PASSWORD, "Password", "", Kind::Secret),
            (keys::SMTP_FROM, "Sender", "Like BurnCloud <noreply@example.com>.", Kind::Text),
        ],
    ),
    (
        "stripe",
        "Payments (Stripe)",
        "Stored encrypted and never shown again.",
        &[
            (keys::STRIPE_SECRET_KEY, "Secret key", "", Kind::Secret),
            (keys::STRIPE_WEBHOOK_SECRET, "Webhook signing secret", "", Kind::Secret),
        ],
    ),
    (
        "topup",
        "Top-ups",
        "What users can pay on the top-up page, and what it credits.",
        &[
            (
                keys::TOPUP_CURRENCY,
                "Payment currency",
                "The three-letter code Stripe charges in, like usd. Amounts below are in it.",
                Kind::Text,
            ),
            (keys::TOPUP_AMOUNTS, "Preset amounts", "Up to 12, separated by commas, like 5, 10, 20.", Kind::Text),
            (keys::TOPUP_MIN, "Smallest custom amount", "", Kind::Amount),
            (keys::TOPUP_MAX, "Largest custom amount", "", Kind::Amount),
            (
                keys::TOPUP_CREDIT_PER_UNIT,
                "Credit per unit paid",
                "Balance credited for one unit of the payment currency (1.00 USD, say).",
                Kind::Amount,
            ),
            (
                keys::TOPUP_GROUP_BONUS,
                "Bonus by group (%)",
                "Extra credit (or less, when negative) per group, like vip=10, trial=-5. Empty: none.",
                Kind::Text,
            ),
        ],
    ),
    (
        "gateway",
        "Gateway",
        "Applied to the next request, without a restart.",
        &[
            (keys::RETRY_ATTEMPTS, "Channels tried per request", "1 to 20; 1 means no failover.", Kind::Number),
            (
                keys::ROUTING_STRATEGY,
                "Default routing strategy",
                "How a channel is picked among those of the same priority.",
                Kind::Choice(STRATEGIES),
            ),
            (keys::CONNECT_TIMEOUT, "Connect timeout (seconds)", "1 to 300.", Kind::Number),
            (keys::FIRST_BYTE_TIMEOUT, "First-byte timeout (seconds)", "", Kind::Number),
            (keys::IDLE_TIMEOUT, "Stream idle timeout (seconds)", "", Kind::Number),
            (keys::MAX_BODY_BYTES, "Largest request body (bytes)", "", Kind::Number),
            (keys::ALLOW_UNPRICED, "Free use of models without a price", "", Kind::Choice(YES_NO)),
            (
                keys::CACHE_TTL,
                "Key cache (seconds)",
                "How long a key's lookup is trusted; changes made on other replicas show within it.",
                Kind::Number,
            ),
        ],
    ),
    (
        "notify",
        "Notifications",
        "Email sent to users by the site.",
        &[(
            keys::LOW_BALANCE,
            "Low-balance email below",
            "One email when a balance falls below this amount. 0: off.",
            Kind::Amount,
        )],
    ),
];

/// Every section with the current values.
pub fn sections(site: &SiteSettings) -> Vec<Section> {
    SPECS
        .iter()
        .map(|(id, title, note, fields)| Section {
            id,
            title,
            note,
            fields: fields
                .iter()
                .map(|(key, label, help, kind)| Field {
                    key,
                    label,
                    help,
                    kind: kind.clone(),
                    value: site.value_of(key).unwrap_or_default(),
                    set: site.secret_is_set(key),
                })
                .collect(),
            message: None,
            error: None,
        })
        .collect()
}

/// The label of a setting, for error messages.
pub fn label_of(key: &str) -> &'static str {
    SPECS.iter().flat_map(|s| s.3.iter()).find(|f| f.0 == key).map_or("Setting", |f| f.1)
}

/// The section a form names, if it is one.
pub fn section_id(id: &str) -> Option<&'static str> {
    SPECS.iter().find(|s| s.0 == id).map(|s| s.0)
}

/// The keys a section edits.
pub fn keys_of(section: &str) -> Vec<&'static str> {
    SPECS.iter().filter(|s| s.0 == section).flat_map(|s| s.3.iter().map(|f| f.0)).collect()
}

/// Every label, help line, title, note and option label the page shows (for the translation
/// test: these texts reach `layout.t` from data, not from template literals).
pub fn texts() -> Vec<&'static str> {
    let mut texts = Vec::new();
    for (_, title, note, fields) in SPECS {
        texts.extend([*title, *note]);
        for (_, label, help, kind) in fields.iter() {
            texts.extend([*label, *help]);
            if let Kind::Choice(options) = kind {
                texts.extend(options.iter().map(|o| o.1));
            }
        }
    }
    texts.retain(|t| !t.is_empty());
    texts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::i18n::Lang;

    /// The labels reach `layout.t` from this table, out of sight of the template scan.
    #[test]
    fn every_label_is_translated() {
        // Protocol names (STARTTLS, TLS) read the same in Chinese.
        let missing: Vec<_> =
            texts().into_iter().filter(|t| Lang::Zh.t(t) == *t && !t.chars().all(|c| c.is_ascii_uppercase())).collect();
        assert!(missing.is_empty(), "settings texts without a Chinese entry: {missing:#?}");
    }

    #[test]
    fn every_site_setting_has_a_field() {
        let shown: Vec<_> = SPECS.iter().flat_map(|s| s.3.iter().map(|f| f.0)).collect();
        for key in keys::ALL {
            assert!(shown.contains(key), "{key} is not on the settings page");
        }
    }
}

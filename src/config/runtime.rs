//! The run-time settings: every setting an operator changes while BurnCloud runs is one entry of
//! [`TABLE`] (`runtime/table.rs`) — key, kind and range, default, the start-up variable that sets
//! that default, form label, help, section, and its rule (how a value is checked, set and shown).
//! The table drives start-up parsing of those variables (`config`), validation and the in-memory
//! snapshot ([`SiteSettings`], loaded by `services::settings::site`), the settings page
//! (`console::admin::settings_form`), `GET /api/admin/settings`, and the table in
//! docs/configuration.md (a test keeps it current). Pure data and rules: no I/O, no database.

use std::time::Duration;

use super::site::{self, SiteSettings};
use super::{ConfigError, GatewayConfig, Secret, Setting};
use crate::domain::money::Money;

mod table;
pub use table::{SECTIONS, STRATEGY, TABLE};

/// The top-up currency's key: loaded before the other settings (the amounts are in its unit).
pub const TOPUP_CURRENCY: &str = "topup.currency";

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

/// The settings key prefix of per group × model fallback lists: `routing.fallback.<group>.<model>`.
pub const FALLBACK_SETTING_PREFIX: &str = "routing.fallback.";

/// The most fallback models one requested model may have.
pub const MAX_FALLBACKS: usize = 5;

/// A fallback list as stored (`"claude-sonnet-4-5, gpt-4o-mini"`): its models in order, or why it
/// cannot be one. Empty: no fallback.
pub fn parse_fallbacks(value: &str, requested: Option<&str>) -> Result<Vec<String>, String> {
    let models: Vec<String> =
        value.split([',', '\n']).map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect();
    if models.len() > MAX_FALLBACKS {
        return Err(format!("at most {MAX_FALLBACKS} fallback models"));
    }
    for (i, model) in models.iter().enumerate() {
        if model.len() > 200 || model.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("{model:?} is not a model name"));
        }
        if Some(model.as_str()) == requested || models[..i].contains(model) {
            return Err(format!("{model} is listed twice (or is the requested model itself)"));
        }
    }
    Ok(models)
}

/// How channels are picked inside one priority tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Random, proportional to weight (the default).
    WeightedRandom,
    /// Smooth weighted round-robin: proportional to weight, evenly interleaved.
    RoundRobin,
    /// Always the first healthy channel, by weight then id; the others only on failure.
    Failover,
    /// The channel with the lowest moving time to first token on this replica (one pick in 20
    /// by weight, so the others' figures stay current; unmeasured channels first).
    LeastLatency,
    /// The channel with the fewest requests in flight on this replica, relative to its weight.
    LeastBusy,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "weighted_random" => Some(Self::WeightedRandom),
            "round_robin" => Some(Self::RoundRobin),
            "failover" => Some(Self::Failover),
            "least_latency" => Some(Self::LeastLatency),
            "least_busy" => Some(Self::LeastBusy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WeightedRandom => "weighted_random",
            Self::RoundRobin => "round_robin",
            Self::Failover => "failover",
            Self::LeastLatency => "least_latency",
            Self::LeastBusy => "least_busy",
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
    /// A number checked by its entry's own rule (a port, a percent).
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

/// Where a setting's value lives and how it is checked, set and shown. The gateway's settings
/// bind a field of [`GatewayConfig`] (their start-up variables set it too, before the snapshot
/// exists); the others are rules on the site snapshot ([`SiteSettings`]).
pub enum Bind {
    /// No rule: only the table's base entry, which a test keeps out of [`TABLE`].
    Unbound,
    /// A site setting with its own rule: `set` checks a (trimmed) value and sets it, or says
    /// what is accepted; `show` writes the value as the settings page shows it.
    Site {
        set: fn(&mut SiteSettings, &str) -> Result<(), String>,
        show: fn(&SiteSettings) -> String,
    },
    /// A non-negative amount like "1.00", kept in nano-units.
    Amount(fn(&mut SiteSettings) -> &mut i64),
    /// Write-only: checked by `rule`, stored in `slot` (empty removes it), never shown.
    Secret {
        rule: fn(&str) -> Result<(), String>,
        slot: fn(&mut SiteSettings) -> &mut Option<Secret>,
        held: fn(&SiteSettings) -> bool,
    },
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

/// The setting named `key`, if it is one.
pub fn find(key: &str) -> Option<&'static RuntimeSetting> {
    TABLE.iter().find(|s| s.key == key)
}

impl RuntimeSetting {
    pub fn is_secret(&self) -> bool {
        self.kind == Kind::Secret
    }

    /// Checks `value` and sets it in `site`, or says what is accepted (and changes nothing).
    pub fn set(&self, site: &mut SiteSettings, value: &str) -> Result<(), String> {
        match self.bind {
            Bind::Unbound => Err(format!("unknown setting {:?}", self.key)),
            Bind::Site { set, .. } => set(site, value),
            Bind::Amount(field) => {
                *field(site) = site::amount(value)?;
                Ok(())
            }
            Bind::Secret { rule, slot, .. } => {
                rule(value)?;
                *slot(site) = Some(Secret::new(value)).filter(|s| !s.expose().is_empty());
                Ok(())
            }
            Bind::Secs(_) | Bind::Count(_) | Bind::Flag(_) | Bind::Strategy(_) => {
                self.set_gateway(&mut site.gateway, value)
            }
        }
    }

    /// The value as the settings page shows it; `None` for a secret.
    pub fn shown(&self, site: &SiteSettings) -> Option<String> {
        // Fields are read through the accessor that writes them, on a copy: only the settings
        // page and the settings API show values, never a request.
        Some(match self.bind {
            Bind::Unbound | Bind::Secret { .. } => return None,
            Bind::Site { show, .. } => show(site),
            Bind::Amount(field) => Money(*field(&mut site.clone())).to_string(),
            Bind::Secs(field) => field(&mut site.gateway.clone()).as_secs().to_string(),
            Bind::Count(field) => field(&mut site.gateway.clone()).to_string(),
            Bind::Flag(field) => field(&mut site.gateway.clone()).to_string(),
            Bind::Strategy(field) => field(&mut site.gateway.clone()).as_str().to_string(),
        })
    }

    /// Whether a write-only setting holds a value.
    pub fn secret_is_set(&self, site: &SiteSettings) -> bool {
        matches!(self.bind, Bind::Secret { held, .. } if held(site))
    }

    /// Checks `value` and sets the gateway field it is bound to.
    fn set_gateway(&self, gateway: &mut GatewayConfig, value: &str) -> Result<(), String> {
        match self.bind {
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
            _ => return Err(format!("{} is not a gateway setting", self.key)),
        }
        Ok(())
    }

    /// Sets a gateway field from its start-up variable (or file key), else from the default.
    /// Settings of the site snapshot are parsed by `config` itself (they are not bound here).
    fn start_up(&self, raw: Option<&str>, gateway: &mut GatewayConfig) -> Result<(), ConfigError> {
        let gateway_field = matches!(self.bind, Bind::Secs(_) | Bind::Count(_) | Bind::Flag(_) | Bind::Strategy(_));
        let (Some(env), true) = (self.env, gateway_field) else {
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
                self.set_gateway(gateway, value).map_err(|m| error(format!("must be {m}")))?;
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

/// A setting by its key: the table's rules applied to the snapshot.
impl SiteSettings {
    /// Applies one stored setting; an unknown key or a bad value is an error naming what is
    /// accepted (the admin API shows it; at load, a bad stored value is logged and skipped).
    /// Each setting's rule is its entry in [`TABLE`].
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        find(key).ok_or_else(|| format!("unknown setting {key:?}"))?.set(self, value.trim())
    }

    /// The value of `key` as the settings page and `GET /api/admin/settings` show it; `None` for
    /// secrets (write-only) and unknown keys.
    pub fn value_of(&self, key: &str) -> Option<String> {
        find(key)?.shown(self)
    }

    /// Whether a write-only setting holds a value.
    pub fn secret_is_set(&self, key: &str) -> bool {
        find(key).is_some_and(|s| s.secret_is_set(self))
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

    /// Every entry carries its rule (the base entry's `Unbound` would refuse every value).
    #[test]
    fn every_setting_has_a_rule() {
        let unbound: Vec<&str> = TABLE.iter().filter(|s| matches!(s.bind, Bind::Unbound)).map(|s| s.key).collect();
        assert!(unbound.is_empty(), "settings without a rule (bind): {unbound:?}");
        let secrets = TABLE.iter().filter(|s| s.is_secret());
        assert!(secrets.clone().all(|s| matches!(s.bind, Bind::Secret { .. })), "a secret kind is bound as a secret");
        assert!(TABLE.iter().filter(|s| matches!(s.bind, Bind::Secret { .. })).count() == secrets.count());
    }

    #[test]
    fn the_strategy_list_is_said_once() {
        assert_eq!(Strategy::accepted(), "weighted_random, round_robin, failover, least_latency or least_busy");
        if let Kind::Choice(options) = STRATEGY.kind {
            assert!(options.iter().all(|(v, _)| Strategy::parse(v).is_some_and(|s| s.as_str() == *v)));
        }
    }
}

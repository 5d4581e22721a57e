//! The state every layer shares: configuration, the database, the billing writer, the caches
//! of keys and channels, the site settings, the mailer and the background task tracker. One `Arc`
//! behind a cheap `Clone`, handed to handlers via `State`.
//!
//! It sits with the services and imports nothing above them. What only the gateway needs (the
//! upstream client, admission, rate limits) lives in `gateway::Gateway`; where a service must
//! reach upward (an operator's channel test goes through the gateway's request path; a settings
//! change rebuilds the gateway's client) the app installs a hook here when it composes the parts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::billing::batch::Batcher;
use crate::config::Config;
use crate::db::Db;
use crate::db::channels::ChannelRow;
use crate::mail::{ActionMail, Mailer};
use crate::secret_key::SecretKey;
use crate::services::counters::Counters;
use crate::services::keys::cache::KeyCache;
use crate::services::routing::Routing;
use crate::services::settings::site::{SiteSettings, SmtpSettings};
use crate::services::throttle::LoginThrottle;

/// What the services reach upstreams through. The gateway owns the request path and the upstream
/// client, so the app installs it here (`StateParts::upstream`) and the services do not depend on
/// the gateway.
pub trait UpstreamAccess: Send + Sync {
    /// Sends one probe through a stored channel the way requests go (an operator's channel test):
    /// through the key of that fingerprint, or else one the channel would pick now.
    fn probe_channel<'a>(
        &'a self,
        state: &'a AppState,
        row: &'a ChannelRow,
        model: &'a str,
        key: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, ProbeOutcome>;

    /// The gateway's upstream client (no redirects followed, the gateway's connect timeout).
    fn client(&self) -> reqwest::Client;
}

/// What a channel probe found.
pub enum ProbeOutcome {
    /// The row cannot become a channel (its keys do not decrypt, its type is unknown).
    Unusable(String),
    /// The probe ran through the key of fingerprint `key`: the start of the reply or what went
    /// wrong, and the channel's keys (which an upstream may quote back).
    Done { keys: Vec<String>, key: String, result: Result<String, String> },
}

/// Where this replica's listener for other replicas' changes is (`services::changes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerState {
    /// No listener: SQLite runs one process.
    Off,
    /// Connecting or reconnecting; changes arrive by the periodic reload meanwhile.
    Connecting,
    Listening,
}

impl ListenerState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Connecting => "connecting",
            Self::Listening => "listening",
        }
    }
}

/// Told of every settings change after it is in force (the gateway rebuilds its client).
pub type SettingsListener = Box<dyn Fn(&SiteSettings) + Send + Sync>;

#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    db: Db,
    public_url: Url,
    secret_key: SecretKey,
    billing: Batcher,
    keys: KeyCache,
    routing: Routing,
    counters: Counters,
    pending_settlements: AtomicUsize,
    change_listener: AtomicU8,
    login_throttle: LoginThrottle,
    site: std::sync::RwLock<Arc<SiteSettings>>,
    /// The mailer and the SMTP settings it was built from (rebuilt when they change).
    mailer: std::sync::RwLock<(SmtpSettings, Arc<Mailer>)>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    upstream: Arc<dyn UpstreamAccess>,
    settings_listeners: Vec<SettingsListener>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("public_url", &self.public_url.as_str()).finish_non_exhaustive()
    }
}

/// Everything the state is built from (start-up assembles it).
pub struct StateParts {
    pub config: Config,
    pub db: Db,
    pub public_url: Url,
    pub secret_key: SecretKey,
    pub billing: Batcher,
    pub keys: KeyCache,
    pub routing: Routing,
    /// Counters shared by the replicas (Redis), or this replica's own.
    pub counters: Counters,
    pub site: SiteSettings,
    pub mailer: Mailer,
    /// How the services reach upstreams (the gateway's request path and client).
    pub upstream: Arc<dyn UpstreamAccess>,
    pub settings_listeners: Vec<SettingsListener>,
}

impl AppState {
    pub fn new(parts: StateParts) -> Self {
        let StateParts {
            config,
            db,
            public_url,
            secret_key,
            billing,
            keys,
            routing,
            counters,
            site,
            mailer,
            upstream,
            settings_listeners,
        } = parts;
        let smtp = site.smtp.clone();
        Self {
            inner: Arc::new(Inner {
                config,
                db,
                public_url,
                secret_key,
                billing,
                keys,
                routing,
                counters,
                pending_settlements: AtomicUsize::new(0),
                change_listener: AtomicU8::new(0),
                login_throttle: Default::default(),
                site: std::sync::RwLock::new(Arc::new(site)),
                mailer: std::sync::RwLock::new((smtp, Arc::new(mailer))),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                upstream,
                settings_listeners,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The externally visible base URL for links: the site setting when an operator set one,
    /// else the configured one (or derived from the bound address).
    pub fn public_url(&self) -> Url {
        self.site().public_url.clone().unwrap_or_else(|| self.inner.public_url.clone())
    }

    /// The gateway's request path and client, for the services that reach upstreams.
    pub fn upstream(&self) -> &dyn UpstreamAccess {
        self.inner.upstream.as_ref()
    }

    pub fn secret_key(&self) -> &SecretKey {
        &self.inner.secret_key
    }

    /// The cache of API keys the gateway authenticates with.
    pub fn keys(&self) -> &KeyCache {
        &self.inner.keys
    }

    /// The counters the replicas share (key rate limits).
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The routing snapshot: channels, tiers and prices as last loaded.
    pub fn routing(&self) -> &Routing {
        &self.inner.routing
    }

    /// The group-committing writer for holds and settlements.
    pub fn billing(&self) -> &Batcher {
        &self.inner.billing
    }

    /// Requests whose hold is taken but not yet settled (settlements run after the answer).
    pub fn pending_settlements(&self) -> usize {
        self.inner.pending_settlements.load(Ordering::Acquire)
    }

    pub(crate) fn settlement_opened(&self) {
        self.inner.pending_settlements.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn settlement_closed(&self) {
        self.inner.pending_settlements.fetch_sub(1, Ordering::AcqRel);
    }

    /// Where the listener for other replicas' changes is.
    pub fn change_listener(&self) -> ListenerState {
        match self.inner.change_listener.load(Ordering::Acquire) {
            1 => ListenerState::Connecting,
            2 => ListenerState::Listening,
            _ => ListenerState::Off,
        }
    }

    pub(crate) fn set_change_listener(&self, to: ListenerState) {
        let code = match to {
            ListenerState::Off => 0,
            ListenerState::Connecting => 1,
            ListenerState::Listening => 2,
        };
        self.inner.change_listener.store(code, Ordering::Release);
    }

    /// Failed console logins, per address and account.
    pub fn login_throttle(&self) -> &LoginThrottle {
        &self.inner.login_throttle
    }

    /// The operator's site settings (name, signup rules, credits), as last loaded.
    pub fn site(&self) -> Arc<SiteSettings> {
        self.inner.site.read().map(|s| s.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Puts new settings in force: the key cache's TTL, the mailer, then whoever listens.
    pub(crate) fn set_site(&self, site: SiteSettings) {
        self.inner.keys.set_ttl(site.gateway.cache_ttl);
        self.refresh_mailer(&site.smtp);
        let site = Arc::new(site);
        {
            let mut slot = self.inner.site.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            *slot = site.clone();
        }
        for listener in &self.inner.settings_listeners {
            listener(&site);
        }
    }

    /// Outgoing mail (does nothing when SMTP is not configured).
    pub fn mailer(&self) -> Arc<Mailer> {
        let slot = self.inner.mailer.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.1.clone()
    }

    /// Rebuilds the mailer when `smtp` differs from what it was built from. Settings that cannot
    /// make a mailer (say, no sender address yet) leave mail off, with a warning.
    fn refresh_mailer(&self, smtp: &SmtpSettings) {
        let mut slot = self.inner.mailer.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if &slot.0 == smtp {
            return;
        }
        let mailer = Mailer::from_config(smtp.config().as_ref()).unwrap_or_else(|message| {
            tracing::warn!(%message, "the SMTP settings cannot send mail; mail is off");
            Mailer::disabled()
        });
        *slot = (smtp.clone(), Arc::new(mailer));
    }

    /// Cancelled when the server starts shutting down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Background work goes through this tracker so that shutdown waits for it.
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// Sends mail in the background (tracked, so shutdown waits for it); failures are logged.
    pub fn send_mail_later(&self, to: String, mail: ActionMail) {
        let mailer = self.mailer();
        self.tasks().spawn(async move {
            if let Err(e) = mailer.send(&to, &mail).await {
                tracing::warn!(error = %e, subject = mail.subject, "sending mail failed");
            }
        });
    }
}

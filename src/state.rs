//! Shared application state: one `Arc` behind a cheap `Clone`, handed to handlers via `State`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::billing::batch::Batcher;
use crate::config::Config;
use crate::db::Db;
use crate::gateway::GatewayState;
use crate::secret_key::SecretKey;
use crate::services::site::SiteSettings;

#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    db: Db,
    public_url: Url,
    secret_key: SecretKey,
    gateway: GatewayState,
    billing: Batcher,
    pending_settlements: AtomicUsize,
    login_throttle: crate::console::throttle::LoginThrottle,
    site: std::sync::RwLock<Arc<SiteSettings>>,
    /// The mailer and the SMTP settings it was built from (rebuilt when they change).
    mailer: std::sync::RwLock<(crate::services::site::SmtpSettings, Arc<crate::mail::Mailer>)>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    channel_probe: crate::services::channels::ChannelProbe,
}

/// Everything the state is built from (start-up assembles it).
pub struct StateParts {
    pub config: Config,
    pub db: Db,
    pub public_url: Url,
    pub secret_key: SecretKey,
    pub gateway: GatewayState,
    pub billing: Batcher,
    pub site: SiteSettings,
    pub mailer: crate::mail::Mailer,
    /// How an operator's channel test reaches the upstream (the gateway's request path).
    pub channel_probe: crate::services::channels::ChannelProbe,
}

impl AppState {
    pub fn new(parts: StateParts) -> Self {
        let StateParts { config, db, public_url, secret_key, gateway, billing, site, mailer, channel_probe } = parts;
        let smtp = site.smtp.clone();
        Self {
            inner: Arc::new(Inner {
                config,
                db,
                public_url,
                secret_key,
                gateway,
                billing,
                pending_settlements: AtomicUsize::new(0),
                login_throttle: Default::default(),
                site: std::sync::RwLock::new(Arc::new(site)),
                mailer: std::sync::RwLock::new((smtp, Arc::new(mailer))),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                channel_probe,
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

    /// The prober an operator's channel test uses.
    pub fn channel_probe(&self) -> crate::services::channels::ChannelProbe {
        self.inner.channel_probe
    }

    pub fn secret_key(&self) -> &SecretKey {
        &self.inner.secret_key
    }

    /// The gateway's HTTP client, caches and routing snapshot.
    pub fn gateway(&self) -> &GatewayState {
        &self.inner.gateway
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

    /// Failed console logins, per address and account.
    pub fn login_throttle(&self) -> &crate::console::throttle::LoginThrottle {
        &self.inner.login_throttle
    }

    /// The operator's site settings (name, signup rules, credits), as last loaded.
    pub fn site(&self) -> Arc<SiteSettings> {
        self.inner.site.read().map(|s| s.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub(crate) fn set_site(&self, site: SiteSettings) {
        let mut slot = self.inner.site.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Arc::new(site);
    }

    /// Outgoing mail (does nothing when SMTP is not configured).
    pub fn mailer(&self) -> Arc<crate::mail::Mailer> {
        let slot = self.inner.mailer.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.1.clone()
    }

    /// Rebuilds the mailer when `smtp` differs from what it was built from. Settings that cannot
    /// make a mailer (say, no sender address yet) leave mail off, with a warning.
    pub(crate) fn refresh_mailer(&self, smtp: &crate::services::site::SmtpSettings) {
        let mut slot = self.inner.mailer.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if &slot.0 == smtp {
            return;
        }
        let mailer = crate::mail::Mailer::from_config(smtp.config().as_ref()).unwrap_or_else(|message| {
            tracing::warn!(%message, "the SMTP settings cannot send mail; mail is off");
            crate::mail::Mailer::disabled()
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
}

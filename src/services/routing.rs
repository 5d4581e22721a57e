//! The routing table: an immutable in-memory snapshot of channels, abilities, prices and group
//! multipliers, swapped whole on every change (and on a timer, for changes made by other
//! replicas). The hot path reads it without touching the database.
//!
//! Selection: the highest priority tier first; inside a tier, a strategy (weighted random,
//! smooth weighted round-robin or failover order); a channel that failed for this request is
//! never picked again for it.

pub mod health;
pub mod keys;

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};

use rand::Rng;

use self::health::{ChannelHealth, HealthRegistry};
use self::keys::UpstreamKey;
use super::affinity::Affinity;

use crate::config::Strategy;
use crate::crypto;
use crate::db::{self, Db};
use crate::domain::capabilities::{self, Capabilities};
use crate::domain::limits::{Limits, ModelLimits, RateLimits};
use crate::domain::pricing::{MILLION, Price};
use crate::domain::time::now_ms;
use crate::providers::{ChannelType, Upstream};
use crate::secret_key::SecretKey;

/// A channel ready to be called: keys decrypted, mapping parsed.
#[derive(Debug)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub kind: ChannelType,
    /// Base URL without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub keys: Vec<UpstreamKey>,
    pub model_mapping: HashMap<String, String>,
    /// Provider settings from the channel's `config` (docs/providers.md).
    pub config: ChannelConfig,
    /// The round-robin turn among the keys.
    key_turn: AtomicUsize,
    /// How it has been answering on this replica, and its circuit breaker.
    pub health: Arc<ChannelHealth>,
}

pub use crate::providers::wire::ChannelConfig;

impl Channel {
    /// One of the channel's keys that may take a request now (`config.key_selection`), as the
    /// channel to call; `None` when every key is disabled, refused or cooling down.
    pub fn with_key(self: &Arc<Self>) -> Option<KeyedChannel> {
        let key = keys::pick(&self.keys, self.config.key_selection, &self.key_turn, now_ms())?;
        Some(KeyedChannel { channel: self.clone(), key })
    }

    /// Whether a key other than `index` may take a request now.
    pub fn has_other_key(&self, index: usize) -> bool {
        let now = now_ms();
        self.keys.iter().enumerate().any(|(i, k)| i != index && k.available(now))
    }

    /// The model name to send upstream for a requested one.
    pub fn upstream_model<'a>(&'a self, requested: &'a str) -> &'a str {
        self.model_mapping.get(requested).map_or(requested, String::as_str)
    }
}

#[derive(Debug)]
struct Member {
    channel: Arc<Channel>,
    weight: i64,
}

/// The channels of one priority, with the round-robin state.
#[derive(Debug)]
pub struct Tier {
    pub priority: i64,
    members: Vec<Member>,
    current: Mutex<Vec<i64>>,
}

impl Tier {
    fn new(priority: i64, mut members: Vec<Member>) -> Self {
        // Failover order: heavier first, then older.
        members.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.channel.id.cmp(&b.channel.id)));
        let current = Mutex::new(vec![0; members.len()]);
        Self { priority, members, current }
    }

    /// Picks a channel not in `tried`, or `None` when every channel of the tier was tried.
    pub fn pick(&self, strategy: Strategy, tried: &[i64]) -> Option<Arc<Channel>> {
        self.pick_excluding(strategy, |c| tried.contains(&c.id))
    }

    /// Picks a channel for which `excluded` is false.
    pub fn pick_excluding(&self, strategy: Strategy, excluded: impl Fn(&Channel) -> bool) -> Option<Arc<Channel>> {
        let open: Vec<usize> = (0..self.members.len()).filter(|&i| !excluded(&self.members[i].channel)).collect();
        let first = *open.first()?;
        // Zero weights everywhere mean "equal".
        let weight = |i: usize| {
            if open.iter().all(|&j| self.members[j].weight <= 0) { 1 } else { self.members[i].weight.max(0) }
        };
        let chosen = match strategy {
            Strategy::Failover => first,
            Strategy::WeightedRandom => self.weighted(&open, weight),
            Strategy::RoundRobin => {
                // nginx's smooth weighted round-robin over the channels still open.
                let Ok(mut current) = self.current.lock() else {
                    return Some(self.members[first].channel.clone());
                };
                let total: i64 = open.iter().map(|&i| weight(i)).sum();
                let mut best = first;
                for &i in &open {
                    current[i] += weight(i);
                    if current[i] > current[best] {
                        best = i;
                    }
                }
                current[best] -= total;
                best
            }
            // One pick in 20 by weight keeps every channel's figures current.
            Strategy::LeastLatency if rand::rng().random_range(0..20) == 0 => self.weighted(&open, weight),
            Strategy::LeastLatency => {
                let score = |i: usize| self.members[i].channel.health.health.latency_score();
                self.least(&open, |i, j| score(i).total_cmp(&score(j)))
            }
            Strategy::LeastBusy => {
                // Requests in flight per unit of weight: busy / weight, compared as fractions.
                let busy = |i: usize| i128::from(self.members[i].channel.health.health.in_flight());
                self.least(&open, |i, j| (busy(i) * i128::from(weight(j))).cmp(&(busy(j) * i128::from(weight(i)))))
            }
        };
        Some(self.members[chosen].channel.clone())
    }

    /// One of `open` at random, in proportion to `weight`.
    fn weighted(&self, open: &[usize], weight: impl Fn(usize) -> i64) -> usize {
        let total: i64 = open.iter().map(|&i| weight(i)).sum();
        let mut ticket = rand::rng().random_range(0..total.max(1));
        open.iter()
            .copied()
            .find(|&i| {
                ticket -= weight(i);
                ticket < 0
            })
            .unwrap_or(open[0])
    }

    /// The least of `open` by `order`; among equals, one at random (so equal channels share).
    fn least(&self, open: &[usize], order: impl Fn(usize, usize) -> std::cmp::Ordering) -> usize {
        let start = rand::rng().random_range(0..open.len());
        let rotated = open[start..].iter().chain(&open[..start]).copied();
        rotated.reduce(|best, i| if order(i, best).is_lt() { i } else { best }).unwrap_or(open[0])
    }
}

/// A channel with the key one attempt goes through (it reads as the channel).
#[derive(Debug, Clone)]
pub struct KeyedChannel {
    pub channel: Arc<Channel>,
    /// Index into the channel's keys.
    pub key: usize,
}

impl Deref for KeyedChannel {
    type Target = Channel;

    fn deref(&self) -> &Channel {
        &self.channel
    }
}

impl KeyedChannel {
    pub fn key(&self) -> &UpstreamKey {
        &self.channel.keys[self.key]
    }

    /// Whether a failure through this key was the key's alone at `now`: the key is out of routing
    /// (refused, or told to wait) and another key of the channel may serve.
    pub fn failed_alone(&self, now: i64) -> bool {
        !self.key().available(now) && self.channel.has_other_key(self.key)
    }

    /// The channel as the wire sees it for one upstream call, through this key.
    pub fn upstream<'a>(&'a self, http: &'a reqwest::Client) -> Upstream<'a> {
        Upstream {
            http,
            base_url: &self.channel.base_url,
            key: &self.key().secret,
            api_version: self.channel.config.api_version.as_deref(),
            region: self.channel.config.region.as_deref(),
        }
    }
}

/// Every channel that can serve one group × model, by tier.
#[derive(Debug)]
pub struct Route {
    pub tiers: Vec<Tier>,
}

impl Route {
    /// The route's channel `id`, in whichever tier.
    pub fn channel(&self, id: i64) -> Option<Arc<Channel>> {
        self.tiers.iter().flat_map(|t| &t.members).find(|m| m.channel.id == id).map(|m| m.channel.clone())
    }

    /// The most output tokens any channel of the route can answer `model` with (each channel's
    /// upstream name looked up in `table`); `None` when one of them has no known limit.
    pub fn output_limit(&self, table: &RoutingTable, model: &str) -> Option<i64> {
        let mut most = None;
        for member in self.tiers.iter().flat_map(|t| &t.members) {
            let limit = table.capabilities(member.channel.upstream_model(model)).max_output_tokens?;
            most = most.max(Some(limit));
        }
        most
    }
}

/// The whole snapshot.
#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: HashMap<String, HashMap<String, Route>>,
    prices: HashMap<String, Price>,
    group_prices: HashMap<(String, String), Price>,
    /// Operators' capability rows by model (the shipped defaults apply to the others).
    capabilities: HashMap<String, Capabilities>,
    multipliers: HashMap<String, i64>,
    /// Groups with `billing.cap_output_by_balance` on.
    capped_groups: HashSet<String>,
    strategies: HashMap<String, Strategy>,
    default_strategy: Option<Strategy>,
    /// `routing.fallback.<group>.<model>`: the models to try, in order, when every channel of the
    /// requested one failed (by `"<group>.<model>"`).
    fallbacks: HashMap<String, Vec<String>>,
    /// The enabled channels the snapshot was built with.
    enabled: HashSet<i64>,
    /// Each group's budget and rate limits: the defaults its members get.
    group_limits: HashMap<String, Limits>,
    /// Each group's rate limits per model, for each member (group → model → limits).
    model_limits: HashMap<String, HashMap<String, RateLimits>>,
}

pub use crate::config::{FALLBACK_SETTING_PREFIX, STRATEGY_SETTING_PREFIX};

impl RoutingTable {
    pub fn route(&self, group: &str, model: &str) -> Option<&Route> {
        self.routes.get(group)?.get(model)
    }

    /// Models a group can reach now (at least one enabled channel), sorted.
    pub fn models(&self, group: &str) -> Vec<&str> {
        let mut models: Vec<&str> = self
            .routes
            .get(group)
            .map(|m| m.iter().filter(|(_, r)| !r.tiers.is_empty()).map(|(k, _)| k.as_str()).collect())
            .unwrap_or_default();
        models.sort_unstable();
        models
    }

    /// The models a group's request for `model` falls back to, in order.
    pub fn fallbacks(&self, group: &str, model: &str) -> &[String] {
        if self.fallbacks.is_empty() {
            return &[];
        }
        self.fallbacks.get(&format!("{group}.{model}")).map_or(&[], Vec::as_slice)
    }

    pub fn strategy(&self, group: &str, model: &str) -> Strategy {
        self.strategies
            .get(&format!("{group}.{model}"))
            .copied()
            .or(self.default_strategy)
            .unwrap_or(Strategy::WeightedRandom)
    }

    /// The price for a group and model, and the multiplier to apply (1.0 for a group's own price).
    pub fn price(&self, group: &str, model: &str) -> Option<(Price, i64)> {
        if let Some(p) = self.group_prices.get(&(group.to_string(), model.to_string())) {
            return Some((*p, MILLION));
        }
        let price = self.prices.get(model).filter(|p| p.is_set())?;
        Some((*price, self.multipliers.get(group).copied().unwrap_or(MILLION)))
    }

    /// What `model` (an upstream's name) can do: the operator's row, else the shipped default,
    /// else nothing known.
    pub fn capabilities(&self, model: &str) -> Capabilities {
        self.capabilities.get(model).copied().or_else(|| capabilities::default_for(model)).unwrap_or_default()
    }

    /// A member's limits: their own values, else their group's.
    pub fn member_limits(&self, group: &str, own: &Limits) -> Limits {
        match self.group_limits.get(group) {
            Some(defaults) => own.or(defaults),
            None => *own,
        }
    }

    /// The rate limits each member of `group` has on `model`, when the group sets some.
    pub fn model_limits(&self, group: &str, model: &str) -> Option<&RateLimits> {
        if self.model_limits.is_empty() {
            return None;
        }
        self.model_limits.get(group)?.get(model)
    }

    /// Whether the group's `billing.cap_output_by_balance` is on: a request without an output cap
    /// gets one the user's balance can pay for.
    pub fn caps_output_by_balance(&self, group: &str) -> bool {
        self.capped_groups.contains(group)
    }

    /// Builds a snapshot from the database.
    pub async fn load(
        db: &Db,
        secret_key: &SecretKey,
        default_strategy: Strategy,
        registry: &HealthRegistry,
    ) -> Result<Self, sqlx::Error> {
        let mut channels = HashMap::new();
        let inactive: HashSet<(i64, String)> = db::channel_keys::all(db.pool())
            .await?
            .into_iter()
            .filter(|k| !k.is_active())
            .map(|k| (k.channel_id, k.fingerprint))
            .collect();
        let (mut live_keys, mut live_channels) = (HashSet::new(), HashSet::new());
        for row in db::channels::list(db.pool()).await? {
            if row.status != "enabled" {
                continue;
            }
            let key_state = |fingerprint: &str| {
                live_keys.insert((row.id, fingerprint.to_string()));
                KeyState {
                    active: !inactive.contains(&(row.id, fingerprint.to_string())),
                    stats: registry.key(row.id, fingerprint),
                }
            };
            match channel_from_row(&row, secret_key, key_state) {
                Ok(mut channel) => {
                    channel.health = registry.channel(row.id);
                    live_channels.insert(row.id);
                    channels.insert(row.id, Arc::new(channel));
                }
                Err(why) => tracing::error!(channel = row.id, name = %row.name, "channel skipped: {why}"),
            }
        }
        registry.retain(&live_keys, &live_channels);
        let enabled = channels.keys().copied().collect();
        // A group with a model allowlist reaches only those models, whatever its channels serve.
        let allowlists: HashMap<String, HashSet<String>> = db::groups::allowlists(db.pool())
            .await?
            .into_iter()
            .map(|(group, json)| {
                (group, serde_json::from_str::<Vec<String>>(&json).unwrap_or_default().into_iter().collect())
            })
            .collect();
        let mut grouped: HashMap<(String, String), HashMap<i64, Vec<Member>>> = HashMap::new();
        for ability in db::channels::abilities(db.pool()).await? {
            if allowlists.get(&ability.group).is_some_and(|allowed| !allowed.contains(&ability.model)) {
                continue;
            }
            let by_priority = grouped.entry((ability.group, ability.model)).or_default();
            let Some(channel) = channels.get(&ability.channel_id).filter(|_| ability.enabled) else {
                // Known model, but this channel cannot serve it now.
                continue;
            };
            by_priority
                .entry(ability.priority)
                .or_default()
                .push(Member { channel: channel.clone(), weight: ability.weight });
        }
        let mut routes: HashMap<String, HashMap<String, Route>> = HashMap::new();
        for ((group, model), by_priority) in grouped {
            let mut tiers: Vec<Tier> = by_priority.into_iter().map(|(p, m)| Tier::new(p, m)).collect();
            tiers.sort_by_key(|t| std::cmp::Reverse(t.priority));
            routes.entry(group).or_default().insert(model, Route { tiers });
        }

        let prices = db::prices::all_model_prices(db.pool()).await?.into_iter().collect();
        let group_prices =
            db::prices::all_group_prices(db.pool()).await?.into_iter().map(|(g, m, p)| ((g, m), p)).collect();
        let multipliers =
            db::prices::all_groups(db.pool()).await?.into_iter().map(|g| (g.name, g.multiplier_ppm)).collect();
        let mut strategies = HashMap::new();
        for (key, value) in db::settings::with_prefix(db.pool(), STRATEGY_SETTING_PREFIX).await? {
            if let (Some(target), Some(strategy)) = (key.strip_prefix(STRATEGY_SETTING_PREFIX), Strategy::parse(&value))
            {
                strategies.insert(target.to_string(), strategy);
            }
        }
        let mut fallbacks = HashMap::new();
        for (key, value) in db::settings::with_prefix(db.pool(), FALLBACK_SETTING_PREFIX).await? {
            let Some(target) = key.strip_prefix(FALLBACK_SETTING_PREFIX) else { continue };
            match crate::config::parse_fallbacks(&value, target.split_once('.').map(|(_, m)| m)) {
                Ok(models) if !models.is_empty() => {
                    fallbacks.insert(target.to_string(), models);
                }
                Ok(_) => {}
                Err(why) => tracing::warn!(setting = %key, "fallback list ignored: {why}"),
            }
        }
        let capped_groups = db::groups::capping_output(db.pool()).await?.into_iter().collect();
        let (mut group_limits, mut model_limits) = (HashMap::new(), HashMap::new());
        for (group, stored, models) in db::limits::all_groups(db.pool()).await? {
            if let Some(json) = models {
                match serde_json::from_str::<ModelLimits>(&json) {
                    Ok(models) if !models.is_empty() => {
                        model_limits.insert(group.clone(), models.into_iter().collect());
                    }
                    Ok(_) => {}
                    // Written only through the checked API: an unreadable value limits nothing.
                    Err(e) => tracing::error!(group = %group, error = %e, "per-model limits ignored"),
                }
            }
            let limits = stored.limits();
            if limits != Limits::default() {
                group_limits.insert(group, limits);
            }
        }
        let mut capabilities: HashMap<String, Capabilities> =
            db::capabilities::all(db.pool()).await?.into_iter().collect();
        // Every name a route can send upstream resolves with one lookup on the request path
        // (the shipped default, or nothing known), not a scan of the defaults per request.
        for (model, route) in routes.values().flat_map(|by_model| by_model.iter()) {
            for member in route.tiers.iter().flat_map(|t| &t.members) {
                let upstream = member.channel.upstream_model(model);
                if !capabilities.contains_key(upstream) {
                    let known = capabilities::default_for(upstream).unwrap_or_default();
                    capabilities.insert(upstream.to_string(), known);
                }
            }
        }
        Ok(Self {
            routes,
            prices,
            group_prices,
            capabilities,
            multipliers,
            capped_groups,
            strategies,
            default_strategy: Some(default_strategy),
            fallbacks,
            enabled,
            group_limits,
            model_limits,
        })
    }
}

/// What the routing knows of one key besides the key: its stored state and its counters.
pub struct KeyState {
    pub active: bool,
    pub stats: Arc<keys::KeyStats>,
}

/// A channel as the relay uses it, from its stored row (keys decrypted), each key's state given
/// by `key_state` (called with its fingerprint).
pub fn channel_from_row(
    row: &db::channels::ChannelRow,
    secret_key: &SecretKey,
    mut key_state: impl FnMut(&str) -> KeyState,
) -> Result<Channel, String> {
    let kind = ChannelType::parse(&row.kind).ok_or_else(|| format!("unknown type {:?}", row.kind))?;
    let keys_json = crypto::decrypt(secret_key, &row.keys_encrypted).map_err(|e| e.to_string())?;
    let secrets: Vec<String> = serde_json::from_slice(&keys_json).map_err(|e| format!("keys: {e}"))?;
    let keys = secrets
        .into_iter()
        .map(|secret| {
            let state = key_state(&keys::fingerprint(&secret));
            UpstreamKey::new(secret, state.active, state.stats)
        })
        .collect();
    let model_mapping = serde_json::from_str(&row.model_mapping).map_err(|e| format!("model_mapping: {e}"))?;
    let base =
        if row.base_url.is_empty() { kind.preset.default_base_url.unwrap_or_default() } else { row.base_url.as_str() };
    Ok(Channel {
        id: row.id,
        name: row.name.clone(),
        kind,
        base_url: base.trim_end_matches('/').to_string(),
        keys,
        model_mapping,
        config: serde_json::from_str(&row.config).unwrap_or_default(),
        key_turn: AtomicUsize::new(0),
        health: Arc::default(),
    })
}

/// The current snapshot, swapped atomically, and the channels suspended since it was built
/// (an upstream refused their key: they get no more traffic even before the next reload).
pub struct Routing {
    current: RwLock<Arc<RoutingTable>>,
    suspended: RwLock<HashSet<i64>>,
    /// Held from loading a snapshot to installing it, so a reload that starts later always
    /// installs later: an older snapshot can never replace a newer one.
    reloading: tokio::sync::Mutex<()>,
    /// Which channel each recent conversation sticks to (session affinity).
    affinity: Affinity,
    /// Each channel's and upstream key's health, across snapshots.
    health: HealthRegistry,
}

impl Routing {
    /// The routing of the channels in the database now.
    pub async fn load(db: &Db, secret_key: &SecretKey, strategy: Strategy) -> Result<Self, sqlx::Error> {
        let health = HealthRegistry::default();
        let table = RoutingTable::load(db, secret_key, strategy, &health).await?;
        Ok(Self {
            current: RwLock::new(Arc::new(table)),
            suspended: RwLock::new(HashSet::new()),
            reloading: tokio::sync::Mutex::new(()),
            affinity: Affinity::default(),
            health,
        })
    }

    /// Each channel's and upstream key's health on this replica.
    pub fn health(&self) -> &HealthRegistry {
        &self.health
    }

    /// Which channel each recent conversation sticks to.
    pub fn affinity(&self) -> &Affinity {
        &self.affinity
    }

    pub fn suspend(&self, channel_id: i64) {
        if let Ok(mut s) = self.suspended.write() {
            s.insert(channel_id);
        }
    }

    /// Lifts a suspension and closes the channel's circuit on this replica (the channel was
    /// re-enabled, saved again, or passed a probe).
    pub fn resume(&self, channel_id: i64) {
        if let Ok(mut s) = self.suspended.write() {
            s.remove(&channel_id);
        }
        if let Some(health) = self.health.find_channel(channel_id) {
            health.breaker.close();
        }
    }

    pub fn is_suspended(&self, channel_id: i64) -> bool {
        self.suspended.read().is_ok_and(|s| !s.is_empty() && s.contains(&channel_id))
    }

    pub fn current(&self) -> Arc<RoutingTable> {
        self.current.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Loads a fresh snapshot from the database and installs it, one reload at a time.
    pub async fn reload(&self, db: &Db, secret_key: &SecretKey, strategy: Strategy) -> Result<(), sqlx::Error> {
        let _order = self.reloading.lock().await;
        let table = RoutingTable::load(db, secret_key, strategy, &self.health).await?;
        self.replace(table);
        Ok(())
    }

    /// [`Self::reload`], retried a few times: until one succeeds, the change it carries is not
    /// live (the periodic reload catches up after that).
    pub async fn reload_retrying(&self, db: &Db, secret_key: &SecretKey, strategy: Strategy) {
        for attempt in 1..=3u64 {
            match self.reload(db, secret_key, strategy).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(error = %e, attempt, "reloading the routing table failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
            }
        }
        tracing::error!("keeping the previous routing table until the next periodic reload");
    }

    pub fn replace(&self, table: RoutingTable) {
        // A suspension bridges the moment until the database says the channel is disabled: once a
        // snapshot shows it so, the snapshot keeps it out, and a later re-enabling (on any replica)
        // takes effect with the snapshot that carries it.
        if let Ok(mut suspended) = self.suspended.write()
            && !suspended.is_empty()
        {
            suspended.retain(|id| table.enabled.contains(id));
        }
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ChannelType;

    fn tier(weights: &[i64]) -> Tier {
        let kind = ChannelType::parse("openai").unwrap();
        let members = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Member {
                channel: Arc::new(Channel {
                    id: i as i64 + 1,
                    name: format!("c{i}"),
                    kind,
                    base_url: String::new(),
                    keys: vec![],
                    model_mapping: HashMap::new(),
                    config: ChannelConfig::default(),
                    key_turn: AtomicUsize::new(0),
                    health: Arc::default(),
                }),
                weight: *w,
            })
            .collect();
        Tier::new(0, members)
    }

    fn shares(t: &Tier, strategy: Strategy, n: usize) -> HashMap<i64, usize> {
        let mut counts = HashMap::new();
        for _ in 0..n {
            *counts.entry(t.pick(strategy, &[]).unwrap().id).or_default() += 1;
        }
        counts
    }

    #[test]
    fn weighted_random_follows_weights() {
        let counts = shares(&tier(&[1, 3]), Strategy::WeightedRandom, 20_000);
        let heavy = counts[&2] as f64 / 20_000.0;
        assert!((heavy - 0.75).abs() < 0.03, "{counts:?}");
    }

    #[test]
    fn round_robin_is_exact_and_interleaved() {
        let t = tier(&[2, 1]);
        let picks: Vec<i64> = (0..6).map(|_| t.pick(Strategy::RoundRobin, &[]).unwrap().id).collect();
        assert_eq!(picks, [1, 2, 1, 1, 2, 1]);
        let equal = tier(&[1, 1, 1]);
        let picks: Vec<i64> = (0..9).map(|_| equal.pick(Strategy::RoundRobin, &[]).unwrap().id).collect();
        assert!(picks.windows(2).all(|w| w[0] != w[1]), "{picks:?}");
    }

    #[test]
    fn least_latency_prefers_the_fastest_and_tries_the_unmeasured_first() {
        use std::time::Duration;
        let t = tier(&[1, 1, 1]);
        let health = |i: usize| &t.members[i].channel.health.health;
        // Channel 1 answers in 50 ms, channel 2 in 20 ms but fails half the time (counts as 40 ms);
        // channel 3 was never tried.
        health(0).record(Some(Duration::from_millis(50)));
        health(1).record(Some(Duration::from_millis(20)));
        health(1).record(None);
        // The untried one ranks first: it takes every pick but the one in 20 made by weight.
        let scores: Vec<f64> = (0..3).map(|i| health(i).latency_score()).collect();
        assert!(scores[2] < scores[1] && scores[1] < scores[0], "{scores:?}");
        let first = shares(&t, Strategy::LeastLatency, 200);
        assert!(first.get(&3).copied().unwrap_or(0) > 170, "{first:?}");
        health(2).record(None);
        // Channel 3 tried and never answered: last. Most picks go to the quickest (one in 20 by weight).
        let counts = shares(&t, Strategy::LeastLatency, 2_000);
        assert!(counts.get(&2).copied().unwrap_or(0) > 1_800, "{counts:?}");
        assert!(counts.get(&3).copied().unwrap_or(0) < 100, "{counts:?}");
    }

    #[test]
    fn least_busy_weighs_requests_in_flight_by_weight() {
        let t = tier(&[2, 1]);
        let key = Arc::new(keys::KeyStats::default());
        let mut busy = Vec::new();
        // With weights 2:1, in-flight requests pile up 2:1.
        for _ in 0..9 {
            let channel = t.pick(Strategy::LeastBusy, &[]).unwrap();
            busy.push(health::InFlight::start(channel.health.clone(), key.clone()));
        }
        let in_flight = |i: usize| t.members[i].channel.health.health.in_flight();
        assert_eq!((in_flight(0), in_flight(1)), (6, 3));
        drop(busy);
        assert_eq!((in_flight(0), in_flight(1)), (0, 0));
    }

    #[test]
    fn failover_and_exclusion() {
        let t = tier(&[1, 5, 5]);
        assert_eq!(t.pick(Strategy::Failover, &[]).unwrap().id, 2);
        assert_eq!(t.pick(Strategy::Failover, &[2]).unwrap().id, 3);
        assert_eq!(t.pick(Strategy::WeightedRandom, &[2, 3]).unwrap().id, 1);
        assert!(t.pick(Strategy::RoundRobin, &[1, 2, 3]).is_none());
        let zero = tier(&[0, 0]);
        assert_eq!(shares(&zero, Strategy::WeightedRandom, 100).len(), 2);
    }
}

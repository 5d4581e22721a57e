//! The site's live figures for the operator (`/admin`) and Prometheus (`/metrics`): requests per
//! minute, tokens per second, spend, error rate and p50/p95 latency, overall, per model and per
//! channel, over the last hour, day or week. Sums come from SQL (`db::monitoring`); percentiles
//! from the newest `SAMPLE` requests of the range, so the cost stays bounded on a busy site.

use std::collections::HashMap;

use crate::db::channels as db_channels;
use crate::db::monitoring::{self as db, Totals};
use crate::domain::time::now_ms;
use crate::state::AppState;

/// At most this many requests feed the latency percentiles.
const SAMPLE: i64 = 5000;
/// At most this many models and channels are listed.
const TOP: i64 = 20;

/// The time range shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    /// `hour`, `day` or `week`; anything else is the hour.
    pub fn parse(text: &str) -> Self {
        match text {
            "day" => Self::Day,
            "week" => Self::Week,
            _ => Self::Hour,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
            Self::Week => 7 * 86_400_000,
        }
    }

    /// The chart's bucket: a minute over an hour, 30 minutes over a day, 3 hours over a week.
    pub fn bucket_ms(self) -> i64 {
        match self {
            Self::Hour => 60_000,
            Self::Day => 30 * 60_000,
            Self::Week => 3 * 3_600_000,
        }
    }
}

/// Figures for one set of requests.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub totals: Totals,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
}

impl Figures {
    pub fn tokens(&self) -> i64 {
        self.totals.prompt_tokens.saturating_add(self.totals.completion_tokens)
    }

    /// Failed requests (HTTP status ≥ 400) per request, 0 to 1.
    pub fn error_rate(&self) -> f64 {
        if self.totals.requests == 0 { 0.0 } else { self.totals.errors as f64 / self.totals.requests as f64 }
    }
}

/// One line of the per-model or per-channel table.
#[derive(Clone, Debug)]
pub struct Line {
    /// The model, or the channel's name (`"—"` for requests no channel served).
    pub label: String,
    pub channel_id: Option<i64>,
    pub figures: Figures,
}

/// Everything the overview and `/metrics` show for a range.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub range: Range,
    /// Start of the range (unix ms) and of its first bucket.
    pub since: i64,
    /// One entry per bucket, oldest first (empty buckets included).
    pub buckets: Vec<Totals>,
    pub overall: Figures,
    pub models: Vec<Line>,
    pub channels: Vec<Line>,
}

impl Snapshot {
    pub fn requests_per_minute(&self) -> f64 {
        self.overall.totals.requests as f64 / (self.range.millis() as f64 / 60_000.0)
    }

    pub fn tokens_per_second(&self) -> f64 {
        self.overall.tokens() as f64 / (self.range.millis() as f64 / 1000.0)
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (usize::try_from(p).unwrap_or(100) * n).div_ceil(100).clamp(1, n);
    sorted.get(rank - 1).copied()
}

fn figures(totals: Totals, latencies: Option<&mut Vec<i64>>) -> Figures {
    let (p50_ms, p95_ms) = match latencies {
        Some(l) => {
            l.sort_unstable();
            (percentile(l, 50), percentile(l, 95))
        }
        None => (None, None),
    };
    Figures { totals, p50_ms, p95_ms }
}

/// The figures of the range ending now.
pub async fn snapshot(state: &AppState, range: Range) -> Result<Snapshot, sqlx::Error> {
    let pool = state.db().pool();
    let bucket_ms = range.bucket_ms();
    // Whole buckets: the range starts on a bucket boundary, the last bucket is the current one.
    let now = now_ms();
    let count = range.millis() / bucket_ms;
    let since = (now.div_euclid(bucket_ms) - count + 1) * bucket_ms;
    let rows = db::buckets(pool, since, bucket_ms).await?;
    let mut buckets = vec![Totals::default(); usize::try_from(count).unwrap_or(0)];
    for (index, totals) in rows {
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
            *slot = totals;
        }
    }
    let overall_totals = buckets.iter().fold(Totals::default(), |mut sum, b| {
        sum.requests += b.requests;
        sum.errors += b.errors;
        sum.prompt_tokens += b.prompt_tokens;
        sum.completion_tokens += b.completion_tokens;
        sum.cost += b.cost;
        sum
    });

    let sample = db::latency_sample(pool, since, SAMPLE).await?;
    let mut all: Vec<i64> = sample.iter().map(|(.., l)| *l).collect();
    let mut per_model: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut per_channel: HashMap<Option<i64>, Vec<i64>> = HashMap::new();
    for (model, channel, latency) in &sample {
        per_model.entry(model.as_str()).or_default().push(*latency);
        per_channel.entry(*channel).or_default().push(*latency);
    }

    let models = db::by_model(pool, since, TOP)
        .await?
        .into_iter()
        .map(|(model, totals)| {
            let figures = figures(totals, per_model.get_mut(model.as_str()));
            let label = if model.is_empty() { "—".to_string() } else { model };
            Line { label, channel_id: None, figures }
        })
        .collect();
    let names: HashMap<i64, String> = db_channels::list(pool).await?.into_iter().map(|c| (c.id, c.name)).collect();
    let channels = db::by_channel(pool, since, TOP)
        .await?
        .into_iter()
        .map(|(channel, totals)| {
            let figures = figures(totals, per_channel.get_mut(&channel));
            let label = match channel {
                Some(id) => names.get(&id).cloned().unwrap_or_else(|| format!("#{id}")),
                None => "—".to_string(),
            };
            Line { label, channel_id: channel, figures }
        })
        .collect();
    Ok(Snapshot { range, since, buckets, overall: figures(overall_totals, Some(&mut all)), models, channels })
}

/// Every channel, for the per-channel gauges of `/metrics`.
pub async fn channels(state: &AppState) -> Result<Vec<db_channels::ChannelRow>, sqlx::Error> {
    db_channels::list(state.db().pool()).await
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&[1, 2, 3, 1000], 95), Some(1000));
        assert_eq!(percentile(&[1, 2, 3, 1000], 50), Some(2));
    }
}

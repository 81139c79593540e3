//! End-to-end latency: an HDR histogram per subscriber (no sharing on the hot path), merged
//! at the end into the percentiles the report shows.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies in microseconds, 1 µs to one hour, three significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    const MAX_US: u64 = 3_600_000_000;

    /// An empty histogram.
    pub fn new() -> Self {
        // invariant: the bounds are constants that hdrhistogram accepts (low >= 1,
        // high >= 2 * low, 3 significant figures).
        let histogram = Histogram::new_with_bounds(1, Self::MAX_US, 3)
            .unwrap_or_else(|e| unreachable!("histogram bounds: {e}"));
        Self { histogram }
    }

    /// Records one latency of `ns` nanoseconds (clamped to the histogram's range).
    pub fn record_ns(&mut self, ns: u64) {
        self.histogram
            .saturating_record((ns / 1_000).clamp(1, Self::MAX_US));
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Self) {
        // Both have the same bounds: adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    /// The figures of the report; `None` with nothing recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        let h = &self.histogram;
        if h.is_empty() {
            return None;
        }
        Some(LatencySummary {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// Percentiles of end-to-end latency, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Messages measured.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_merged_histograms() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        assert!(a.summary().is_none());
        for us in 1..=900 {
            a.record_ns(us * 1_000);
        }
        for us in 901..=1_000 {
            b.record_ns(us * 1_000);
        }
        b.record_ns(0); // clamped to 1 µs
        a.merge(&b);
        let s = a.summary().unwrap();
        assert_eq!(s.count, 1_001);
        assert_eq!(s.min, 1);
        assert!((499..=501).contains(&s.p50), "{s:?}");
        assert!((989..=991).contains(&s.p99), "{s:?}");
        assert!(s.max >= 1_000 && s.max <= 1_001, "{s:?}");
    }
}

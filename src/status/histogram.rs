//! A fixed-bucket histogram: the one measurement behind the page's p50/p99,
//! the Prometheus histograms and nothing else.
//!
//! Recording is a short scan over a dozen bounds and one increment, cheap
//! enough to run every reactor turn. The buckets are fixed at compile time,
//! so the Prometheus `_bucket` series never change shape, and percentiles
//! are read off the bucket counts (interpolated inside the bucket), which is
//! as precise as a projector needs.

/// Counts of values per bucket. Bucket `i` holds values `<= bounds[i]` (and
/// above the bound before it); the last bucket holds everything larger.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [u64],
    /// `bounds.len() + 1` counts; the last is the overflow (`+Inf`) bucket.
    counts: Vec<u64>,
    sum: u64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`, which must be increasing.
    pub fn new(bounds: &'static [u64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0,
            count: 0,
        }
    }

    /// Adds one value.
    #[inline]
    pub fn record(&mut self, value: u64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        // `i <= bounds.len()`, and `counts` has `bounds.len() + 1` entries.
        self.counts[i] += 1;
        self.sum = self.sum.saturating_add(value);
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> u64 {
        self.sum
    }

    pub fn bounds(&self) -> &'static [u64] {
        self.bounds
    }

    /// Per-bucket (not cumulative) counts, the overflow bucket last.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The value below which a fraction `q` (0..=1) of the recorded values
    /// fall, interpolated linearly inside its bucket; `None` when empty.
    /// A value in the overflow bucket is reported as the last bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_of(self.bounds, &self.counts, q)
    }
}

/// [`Histogram::quantile`] over any counts with these bounds (the page uses
/// it on the difference of two snapshots, for "the last few seconds").
pub fn quantile_of(bounds: &[u64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if (seen + c) as f64 >= rank {
            let Some(&hi) = bounds.get(i) else {
                return bounds.last().map(|&b| b as f64);
            };
            let lo = if i == 0 { 0 } else { bounds[i - 1] };
            let within = (rank - seen as f64) / c as f64;
            return Some(lo as f64 + within * (hi - lo) as f64);
        }
        seen += c;
    }
    bounds.last().map(|&b| b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[u64] = &[1, 10, 100];

    #[test]
    fn values_land_in_their_bucket() {
        let mut h = Histogram::new(BOUNDS);
        for v in [0, 1, 2, 10, 11, 100, 101, 5000] {
            h.record(v);
        }
        assert_eq!(h.counts(), &[2, 2, 2, 2]);
        assert_eq!(h.count(), 8);
        assert_eq!(h.sum(), 5225);
    }

    #[test]
    fn quantiles_interpolate_inside_a_bucket() {
        let mut h = Histogram::new(BOUNDS);
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..100 {
            h.record(50); // all in (10, 100]
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((54.0..=56.0).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), Some(100.0));
        h.record(1_000_000);
        // The overflow bucket reports the last bound, not infinity.
        assert_eq!(h.quantile(1.0), Some(100.0));
    }

    #[test]
    fn p99_sees_the_tail() {
        let mut h = Histogram::new(BOUNDS);
        for _ in 0..98 {
            h.record(1);
        }
        h.record(90);
        h.record(90);
        assert!(h.quantile(0.5).unwrap() <= 1.0);
        assert!(h.quantile(0.99).unwrap() > 10.0);
    }
}

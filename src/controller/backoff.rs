//! Exponential backoff with jitter for failing resources, as kube-runtime
//! does it: 800 ms doubling to 30 s, reset after a success.

use std::time::Duration;

use rand::Rng;

const INITIAL: Duration = Duration::from_millis(800);
const MAX: Duration = Duration::from_secs(30);

/// Delays for one failing resource.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The delay before the next attempt after one more failure: the
    /// exponential step, with up to ±20 % jitter so that many failing
    /// resources do not retry in lockstep.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let exp = INITIAL.saturating_mul(1u32 << self.failures.min(10));
        self.failures += 1;
        let base = exp.min(MAX);
        let jitter = rng.random_range(0.8..=1.2);
        base.mul_f64(jitter).min(MAX)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn doubles_from_800ms_to_30s_with_bounded_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay(&mut rng)).collect();
        let bases = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0, 30.0];
        for (d, base) in delays.iter().zip(bases) {
            let s = d.as_secs_f64();
            assert!(s >= base * 0.8 - 1e-9 && s <= (base * 1.2).min(30.0) + 1e-9, "{s} not within jitter of {base}");
        }
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(960));
    }
}

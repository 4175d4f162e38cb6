//! Random faults for a whole run (demos, benchmarks, chaos runs): each call misbehaves with a
//! given probability, in one of the configured ways.

use rand::Rng;

use super::kinds::Fault;

/// Faults drawn at random for a whole run: each call gets one of `kinds` with probability `rate`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RandomFaults {
    pub rate: f64,
    pub kinds: Vec<Fault>,
}

impl RandomFaults {
    pub fn draw(&self, rng: &mut impl Rng) -> Option<Fault> {
        if self.kinds.is_empty() || self.rate <= 0.0 || !rng.random_bool(self.rate.min(1.0)) {
            return None;
        }
        Some(self.kinds[rng.random_range(0..self.kinds.len())].clone())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn random_faults_follow_the_rate() {
        let faults = RandomFaults {
            rate: 0.25,
            kinds: vec![Fault::Reset, Fault::Conflict],
        };
        let mut rng = StdRng::seed_from_u64(7);
        let hits = (0..4000)
            .filter(|_| faults.draw(&mut rng).is_some())
            .count();
        assert!((800..1200).contains(&hits), "{hits} of 4000");
        assert_eq!(RandomFaults::default().draw(&mut rng), None);
    }
}

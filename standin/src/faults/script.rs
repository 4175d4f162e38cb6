//! The scripted faults: a FIFO of steps ("the next N calls get X"), for tests that need a given
//! call to misbehave.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::kinds::Fault;

/// A step of the script: how the next `times` calls are answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The fault to inject; `None` (or absent) answers normally.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// How many calls this step answers; `None` (JSON `null`) means every call until the script
    /// is cleared. Absent means one.
    #[serde(default = "one")]
    pub times: Option<u32>,
}

fn one() -> Option<u32> {
    Some(1)
}

impl Step {
    /// The next call gets `fault`.
    pub fn once(fault: Fault) -> Step {
        Step::times(1, fault)
    }

    /// The next `n` calls get `fault`.
    pub fn times(n: u32, fault: Fault) -> Step {
        Step {
            fault: Some(fault),
            times: Some(n),
        }
    }

    /// Every call gets `fault` until the script is cleared.
    pub fn always(fault: Fault) -> Step {
        Step {
            fault: Some(fault),
            times: None,
        }
    }

    /// The next `n` calls are answered normally.
    pub fn pass(n: u32) -> Step {
        Step {
            fault: None,
            times: Some(n),
        }
    }
}

/// The scripted FIFO of steps.
#[derive(Debug, Default)]
pub struct Script {
    steps: Mutex<VecDeque<Step>>,
}

impl Script {
    pub fn push(&self, steps: impl IntoIterator<Item = Step>) {
        self.lock()
            .extend(steps.into_iter().filter(|s| s.times != Some(0)));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn steps(&self) -> Vec<Step> {
        self.lock().iter().cloned().collect()
    }

    /// Takes the next call's answer: `None` when the script is empty, else the step's fault
    /// (`Some(None)`: answer normally).
    pub fn next(&self) -> Option<Option<Fault>> {
        let mut steps = self.lock();
        let step = steps.front_mut()?;
        let fault = step.fault.clone();
        if let Some(n) = step.times.as_mut() {
            *n -= 1;
            if *n == 0 {
                steps.pop_front();
            }
        }
        Some(fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Step>> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_in_order_and_unlimited_steps_stay() {
        let script = Script::default();
        script.push([
            Step::times(2, Fault::Reset),
            Step::pass(1),
            Step::always(Fault::Conflict),
        ]);
        assert_eq!(script.next(), Some(Some(Fault::Reset)));
        assert_eq!(script.next(), Some(Some(Fault::Reset)));
        assert_eq!(script.next(), Some(None));
        for _ in 0..5 {
            assert_eq!(script.next(), Some(Some(Fault::Conflict)));
        }
        script.clear();
        assert_eq!(script.next(), None);
    }

    #[test]
    fn steps_read_from_json_default_to_one_call() {
        let step: Step = serde_json::from_str("{\"fault\":{\"kind\":\"reset\"}}").unwrap();
        assert_eq!(step, Step::once(Fault::Reset));
        let step: Step = serde_json::from_str("{\"times\":null}").unwrap();
        assert_eq!(step.times, None);
    }
}

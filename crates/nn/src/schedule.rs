//! Learning-rate schedules: `lr_t = lr * factor(t, T)` for step `t` of `T`.

use crate::config::ScheduleConfig;

impl ScheduleConfig {
    /// The factor on the peak learning rate at step `t` (0-based) of a run of `total` steps.
    pub fn factor(&self, t: usize, total: usize) -> f64 {
        let frac = t as f64 / total.max(1) as f64;
        match *self {
            ScheduleConfig::Constant => 1.0,
            ScheduleConfig::Step { every, gamma } => gamma.powi((t / every) as i32),
            ScheduleConfig::Linear { end } => 1.0 + (end - 1.0) * frac,
            ScheduleConfig::Cosine { end } => {
                end + (1.0 - end) * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
            }
            ScheduleConfig::OneCycle {
                peak_at,
                start,
                end,
            } => {
                if frac < peak_at {
                    start + (1.0 - start) * frac / peak_at
                } else {
                    1.0 + (end - 1.0) * (frac - peak_at) / (1.0 - peak_at)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_hit_their_endpoints() {
        let t = 100;
        assert_eq!(ScheduleConfig::Constant.factor(57, t), 1.0);
        assert_eq!(
            ScheduleConfig::Step {
                every: 30,
                gamma: 0.1
            }
            .factor(65, t),
            0.1f64.powi(2)
        );
        assert_eq!(ScheduleConfig::Linear { end: 0.0 }.factor(0, t), 1.0);
        assert!((ScheduleConfig::Linear { end: 0.2 }.factor(50, t) - 0.6).abs() < 1e-12);
        assert_eq!(ScheduleConfig::Cosine { end: 0.0 }.factor(0, t), 1.0);
        assert!((ScheduleConfig::Cosine { end: 0.0 }.factor(50, t) - 0.5).abs() < 1e-12);
        let oc = ScheduleConfig::OneCycle {
            peak_at: 0.25,
            start: 0.04,
            end: 0.0,
        };
        assert_eq!(oc.factor(0, t), 0.04);
        assert!((oc.factor(25, t) - 1.0).abs() < 1e-12);
        assert!((oc.factor(100, t)).abs() < 1e-12);
    }
}

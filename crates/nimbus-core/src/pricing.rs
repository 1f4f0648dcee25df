//! Pricing usage the way the AWS bill does: requests, GB-seconds with tiers, and the monthly
//! free tier. Defaults are AWS's public x86 prices (us-east-1).

use serde::{Deserialize, Serialize};

/// One duration price tier: the price per GB-second up to `up_to_gb_seconds` (cumulative).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The cumulative GB-seconds (of the month) this tier ends at; `None` for the last, open-ended
    /// tier.
    pub up_to_gb_seconds: Option<f64>,
    /// The price of one GB-second in this tier, in US dollars.
    pub price_per_gb_second: f64,
}

/// The price sheet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceSheet {
    /// US dollars per million requests (0.20).
    pub request_price_per_million: f64,
    /// Duration price tiers, in ascending order of `up_to_gb_seconds`.
    pub duration_tiers: Vec<Tier>,
    /// Requests a month that the free tier covers (one million).
    pub free_requests: u64,
    /// GB-seconds a month that the free tier covers (400,000).
    pub free_gb_seconds: f64,
    /// Billing granularity in ms (1 since Dec 2020; 100 before).
    pub billing_granularity_ms: u64,
}

impl Default for PriceSheet {
    fn default() -> Self {
        PriceSheet {
            request_price_per_million: 0.20,
            duration_tiers: vec![
                Tier {
                    up_to_gb_seconds: Some(6_000_000_000.0),
                    price_per_gb_second: 0.0000166667,
                },
                Tier {
                    up_to_gb_seconds: Some(15_000_000_000.0),
                    price_per_gb_second: 0.000015,
                },
                Tier {
                    up_to_gb_seconds: None,
                    price_per_gb_second: 0.0000133334,
                },
            ],
            free_requests: 1_000_000,
            free_gb_seconds: 400_000.0,
            billing_granularity_ms: 1,
        }
    }
}

/// A priced amount of usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// The requests counted (all of them, also those the free tier covers).
    pub requests: u64,
    /// The GB-seconds counted (all of them, also those the free tier covers).
    pub gb_seconds: f64,
    /// The price of the billable requests, in US dollars.
    pub request_cost: f64,
    /// The price of the billable GB-seconds over the tiers, in US dollars.
    pub duration_cost: f64,
    /// `request_cost + duration_cost`, in US dollars.
    pub total: f64,
}

impl PriceSheet {
    /// Rounds a duration up to the billing granularity.
    pub fn billed_ms(&self, duration_ms: f64) -> u64 {
        let g = self.billing_granularity_ms.max(1) as f64;
        ((duration_ms / g).ceil() * g).max(g) as u64
    }

    /// GB-seconds for `billed_ms` at `memory_mb`.
    pub fn gb_seconds(memory_mb: u64, billed_ms: u64) -> f64 {
        memory_mb as f64 / 1024.0 * billed_ms as f64 / 1000.0
    }

    fn duration_price(&self, gb_seconds: f64) -> f64 {
        let mut remaining = gb_seconds;
        let mut floor = 0.0;
        let mut cost = 0.0;
        for t in &self.duration_tiers {
            let cap = t
                .up_to_gb_seconds
                .map(|c| c - floor)
                .unwrap_or(f64::INFINITY);
            let here = remaining.min(cap).max(0.0);
            cost += here * t.price_per_gb_second;
            remaining -= here;
            if let Some(c) = t.up_to_gb_seconds {
                floor = c;
            }
            if remaining <= 0.0 {
                break;
            }
        }
        cost
    }

    /// Prices usage without the free tier (per-function figures, "before free tier").
    pub fn price(&self, requests: u64, gb_seconds: f64) -> Cost {
        let request_cost = requests as f64 * self.request_price_per_million / 1_000_000.0;
        let duration_cost = self.duration_price(gb_seconds);
        Cost {
            requests,
            gb_seconds,
            request_cost,
            duration_cost,
            total: request_cost + duration_cost,
        }
    }

    /// Prices an account's monthly usage with the free tier taken off first.
    pub fn price_with_free_tier(&self, requests: u64, gb_seconds: f64) -> Cost {
        let billable_requests = requests.saturating_sub(self.free_requests);
        let billable_gbs = (gb_seconds - self.free_gb_seconds).max(0.0);
        let c = self.price(billable_requests, billable_gbs);
        Cost {
            requests,
            gb_seconds,
            ..c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(x: f64) -> f64 {
        (x * 100.0).round() / 100.0
    }

    /// Seed 004: 1M requests × 0.5 s × 512 MB = $0.20 + ≈$4.17 = ≈$4.37 before the free tier.
    #[test]
    fn one_million_half_second_512mb() {
        let p = PriceSheet::default();
        let billed = p.billed_ms(500.0);
        assert_eq!(billed, 500);
        let gbs = PriceSheet::gb_seconds(512, billed) * 1_000_000.0;
        assert!((gbs - 250_000.0).abs() < 1e-6);
        let c = p.price(1_000_000, gbs);
        assert_eq!(cents(c.request_cost), 0.20);
        assert_eq!(cents(c.duration_cost), 4.17);
        assert_eq!(cents(c.total), 4.37);
    }

    /// Seed 000: 1M messages a day for 30 days, 0.1 s at 128 MB: 375,000 GB-s is inside the
    /// 400,000 GB-s free tier ($0), and 29M billable requests cost $5.80.
    #[test]
    fn mms_filter_month_with_free_tier() {
        let p = PriceSheet {
            billing_granularity_ms: 100,
            ..PriceSheet::default()
        };
        let requests = 30_000_000u64;
        let billed = p.billed_ms(100.0);
        assert_eq!(billed, 100);
        let gbs = PriceSheet::gb_seconds(128, billed) * requests as f64;
        assert!((gbs - 375_000.0).abs() < 1e-6);
        let c = p.price_with_free_tier(requests, gbs);
        assert_eq!(c.duration_cost, 0.0);
        assert_eq!(cents(c.request_cost), 5.80);
        assert_eq!(cents(c.total), 5.80);
    }

    /// Seeds 000/003: legacy billing rounds up to the next 100 ms.
    #[test]
    fn legacy_granularity_rounds_up() {
        let p = PriceSheet {
            billing_granularity_ms: 100,
            ..PriceSheet::default()
        };
        assert_eq!(p.billed_ms(15.11), 100);
        assert_eq!(p.billed_ms(122204.28), 122300);
        assert_eq!(PriceSheet::default().billed_ms(15.11), 16);
    }

    #[test]
    fn tiers_apply_in_order() {
        let p = PriceSheet::default();
        let c = p.price(0, 7_000_000_000.0);
        let expected = 6e9 * 0.0000166667 + 1e9 * 0.000015;
        assert!((c.duration_cost - expected).abs() < 1e-3);
    }
}

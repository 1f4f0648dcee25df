//! API Gateway API keys and usage plans (REST APIs): keys (kind `api-key`), plans with their API
//! stages, throttle and quota and the keys attached to them (kind `usage-plan`), and the check a
//! method with `apiKeyRequired` makes: an enabled key, in a plan that covers the API's stage,
//! within the plan's quota (counted in memory for the current day, week or month).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{Datelike, Utc};
use nimbus_store::Store;
use serde::{Deserialize, Serialize};

use crate::http_apis::{AResult, ApiError};
use nimbus_core::error::Result;
use nimbus_core::records::RecordMap;

/// An API key (`ApiKey`), as stored; the gateway looks it up by the `x-api-key` header's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's id (10 lowercase alphanumerics), which usage plans and the control plane name it
    /// by.
    pub id: String,
    /// The secret sent in `x-api-key`: 20–128 characters, unique among keys; 40 hex digits when
    /// generated.
    pub value: String,
    /// `name`; empty when none was given.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `enabled`: a disabled key is refused (403) as if unknown. CreateApiKey defaults it to
    /// `false`.
    pub enabled: bool,
    /// `customerId`: the AWS Marketplace customer the key belongs to; stored and returned only.
    pub customer_id: Option<String>,
    /// `createdDate`: seconds since the Unix epoch.
    pub created: i64,
    /// `lastUpdatedDate`: seconds since the Unix epoch.
    pub updated: i64,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
}

/// A usage plan's `throttle`: the token bucket every key of the plan gets one of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Throttle {
    /// `rateLimit`: the steady rate, in requests per second; no throttling by the plan when absent.
    pub rate_limit: Option<f64>,
    /// `burstLimit`: the bucket's size, in requests; the rate rounded up when absent.
    pub burst_limit: Option<u32>,
}

/// A usage plan's `quota`: requests a key may make per period, counted in memory (a restart forgets
/// them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// `limit`: requests per period per key; positive.
    pub limit: u64,
    /// `offset`: requests taken off the first period in AWS; stored and returned, not applied here.
    pub offset: u64,
    /// DAY, WEEK or MONTH.
    pub period: String,
}

/// A usage plan (`UsagePlan`): which API stages its keys open, at what rate and quota.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsagePlan {
    /// The plan's id (6 lowercase alphanumerics).
    pub id: String,
    /// `name`; required and not empty.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `apiStages`: each (`apiId`, `stage`) the plan's keys may call.
    pub api_stages: Vec<(String, String)>,
    /// `throttle`, per key.
    pub throttle: Option<Throttle>,
    /// `quota`, per key.
    pub quota: Option<Quota>,
    /// The ids of the keys attached (CreateUsagePlanKey), in the order they were added.
    pub keys: Vec<String>,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
}

/// What a request with `x-api-key` is allowed.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyCheck {
    /// Allowed (and counted against the plan's quota).
    Allowed {
        /// The plan's id.
        plan: String,
        /// The key's id (not its value).
        key: String,
    },
    /// The plan's throttle refused it (not counted against the quota): 429.
    Throttled,
    /// No key, an unknown or disabled key, or no plan for this stage: 403.
    Forbidden,
    /// The plan's quota is used up: 429 `Limit Exceeded`.
    QuotaExceeded,
}

/// The API keys and usage plans, as records (kinds `api-key` and `usage-plan`), and the quota
/// counts.
pub struct ApiKeys {
    keys: RecordMap<ApiKey>,
    plans: RecordMap<UsagePlan>,
    /// (plan, key, period start) → requests counted.
    usage: Mutex<HashMap<(String, String, i64), u64>>,
}

fn now() -> i64 {
    Utc::now().timestamp()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

fn key_not_found() -> ApiError {
    ApiError::NotFound("Invalid API Key identifier specified".into())
}

fn plan_not_found() -> ApiError {
    ApiError::NotFound("Invalid Usage Plan ID specified".into())
}

/// The start of the current quota period, in seconds since the Unix epoch: today's midnight
/// (UTC) for DAY, Monday's for WEEK, the first of the month's for MONTH.
fn period_start(period: &str) -> i64 {
    let today = Utc::now().date_naive();
    let day = |d: chrono::NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .unwrap_or(0)
    };
    match period {
        "WEEK" => day(today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()))),
        "MONTH" => day(today.with_day(1).unwrap_or(today)),
        _ => day(today),
    }
}

impl ApiKeys {
    /// Loads the stored keys and plans; quota counts start at zero.
    pub fn open(store: Store) -> Result<ApiKeys> {
        Ok(ApiKeys {
            keys: RecordMap::open(store.clone(), "api-key")?,
            plans: RecordMap::open(store, "usage-plan")?,
            usage: Mutex::new(HashMap::new()),
        })
    }

    /// CreateApiKey: a given value (20–128 characters, unique) or a generated one.
    pub async fn create_key(
        &self,
        name: Option<String>,
        description: Option<String>,
        enabled: bool,
        value: Option<String>,
        customer_id: Option<String>,
        tags: BTreeMap<String, String>,
    ) -> AResult<ApiKey> {
        let value = match value {
            Some(v) => {
                if !(20..=128).contains(&v.len()) {
                    return Err(ApiError::BadRequest(
                        "API Key value should be at least 20 characters long and at most 128"
                            .into(),
                    ));
                }
                if self.keys.find(|k| k.value == v).is_some() {
                    return Err(ApiError::Conflict("API Key already exists".into()));
                }
                v
            }
            None => format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        };
        let t = now();
        let key = ApiKey {
            id: new_id(),
            value,
            name: name.unwrap_or_default(),
            description,
            enabled,
            customer_id,
            created: t,
            updated: t,
            tags,
        };
        Ok(self.keys.put(key.id.clone(), key).await?)
    }

    /// GetApiKey: the key by id (404 `NotFoundException` when unknown).
    pub fn key(&self, id: &str) -> AResult<ApiKey> {
        self.keys.get(id).ok_or_else(key_not_found)
    }

    /// GetApiKeys: every key, in id order.
    pub fn list_keys(&self) -> Vec<ApiKey> {
        self.keys.values()
    }

    /// UpdateApiKey: `/name`, `/description`, `/enabled`, `/customerId`.
    pub async fn update_key(&self, id: &str, ops: &[crate::rest_apis::PatchOp]) -> AResult<ApiKey> {
        let _edit = self.keys.edit().await;
        let mut k = self.key(id)?;
        for op in ops {
            match (op.op.as_str(), op.path.as_str()) {
                ("replace", "/name") => k.name = op.value.clone().unwrap_or_default(),
                ("replace", "/description") => k.description = op.value.clone(),
                ("replace", "/customerId") => k.customer_id = op.value.clone(),
                ("replace", "/enabled") => {
                    k.enabled = match op.value.as_deref() {
                        Some("true") => true,
                        Some("false") => false,
                        other => {
                            return Err(ApiError::BadRequest(format!(
                                "Invalid value {other:?} for /enabled: must be true or false"
                            )));
                        }
                    }
                }
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "Invalid patch path '{}' specified for op '{}'. Must be one of: [/name, /description, /enabled, /customerId]",
                        op.path, op.op
                    )));
                }
            }
        }
        k.updated = now();
        Ok(self.keys.put(k.id.clone(), k).await?)
    }

    /// DeleteApiKey, detaching it from every plan.
    pub async fn delete_key(&self, id: &str) -> AResult<()> {
        let _edit = self.plans.edit().await;
        self.key(id)?;
        for mut p in self.plans.values() {
            if p.keys.iter().any(|k| k == id) {
                p.keys.retain(|k| k != id);
                self.plans.put(p.id.clone(), p).await?;
            }
        }
        Ok(self.keys.remove(id).await?)
    }

    /// CreateUsagePlan.
    pub async fn create_plan(
        &self,
        name: Option<String>,
        description: Option<String>,
        api_stages: Vec<(String, String)>,
        throttle: Option<Throttle>,
        quota: Option<Quota>,
        tags: BTreeMap<String, String>,
    ) -> AResult<UsagePlan> {
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::BadRequest("Usage plan name is required".into()))?;
        if let Some(q) = &quota {
            if !["DAY", "WEEK", "MONTH"].contains(&q.period.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "Invalid quota period '{}': must be DAY, WEEK or MONTH",
                    q.period
                )));
            }
            if q.limit == 0 {
                return Err(ApiError::BadRequest("Quota limit must be positive".into()));
            }
        }
        let plan = UsagePlan {
            id: new_id()[..6].to_string(),
            name,
            description,
            api_stages,
            throttle,
            quota,
            keys: Vec::new(),
            tags,
        };
        Ok(self.plans.put(plan.id.clone(), plan).await?)
    }

    /// GetUsagePlan: the plan by id (404 when unknown).
    pub fn plan(&self, id: &str) -> AResult<UsagePlan> {
        self.plans.get(id).ok_or_else(plan_not_found)
    }

    /// GetUsagePlans: every plan, in id order.
    pub fn list_plans(&self) -> Vec<UsagePlan> {
        self.plans.values()
    }

    /// DeleteUsagePlan (keys stay; only the plan and its attachments go).
    pub async fn delete_plan(&self, id: &str) -> AResult<()> {
        self.plan(id)?;
        Ok(self.plans.remove(id).await?)
    }

    /// CreateUsagePlanKey (`API_KEY`).
    pub async fn add_plan_key(&self, plan: &str, key: &str, key_type: &str) -> AResult<ApiKey> {
        let _edit = self.plans.edit().await;
        if key_type != "API_KEY" {
            return Err(ApiError::BadRequest(format!(
                "Invalid key type '{key_type}': must be API_KEY"
            )));
        }
        let mut p = self.plan(plan)?;
        let k = self.key(key)?;
        if p.keys.iter().any(|x| x == key) {
            return Err(ApiError::Conflict(
                "Usage Plan already contains this API Key".into(),
            ));
        }
        p.keys.push(key.to_string());
        self.plans.put(p.id.clone(), p).await?;
        Ok(k)
    }

    /// DeleteUsagePlanKey: detaches the key from the plan (the key itself stays); 404 when it was
    /// not attached.
    pub async fn remove_plan_key(&self, plan: &str, key: &str) -> AResult<()> {
        let _edit = self.plans.edit().await;
        let mut p = self.plan(plan)?;
        if !p.keys.iter().any(|x| x == key) {
            return Err(ApiError::NotFound(
                "Invalid API Key identifier specified".into(),
            ));
        }
        p.keys.retain(|x| x != key);
        self.plans.put(p.id.clone(), p).await?;
        Ok(())
    }

    /// Checks a request's `x-api-key` for an API's stage: an enabled key in a usage plan for
    /// the stage, its quota not used up, then its plan's throttle (`admit`, given the plan's id,
    /// the key's id and the throttle). Only an admitted request counts against the quota.
    pub fn check(
        &self,
        api: &str,
        stage: &str,
        value: Option<&str>,
        admit: impl FnOnce(&str, &str, Option<&Throttle>) -> bool,
    ) -> KeyCheck {
        let Some(value) = value else {
            return KeyCheck::Forbidden;
        };
        let Some(key) = self.keys.find(|k| k.value == value && k.enabled) else {
            return KeyCheck::Forbidden;
        };
        let Some(plan) = self.plans.find(|p| {
            p.keys.contains(&key.id) && p.api_stages.iter().any(|(a, s)| a == api && s == stage)
        }) else {
            return KeyCheck::Forbidden;
        };
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let counter = plan.quota.as_ref().map(|q| {
            (
                (plan.id.clone(), key.id.clone(), period_start(&q.period)),
                q.limit,
            )
        });
        if let Some((slot, limit)) = &counter
            && usage.get(slot).copied().unwrap_or(0) >= *limit
        {
            return KeyCheck::QuotaExceeded;
        }
        if !admit(&plan.id, &key.id, plan.throttle.as_ref()) {
            return KeyCheck::Throttled;
        }
        if let Some((slot, _)) = counter {
            *usage.entry(slot).or_insert(0) += 1;
        }
        KeyCheck::Allowed {
            plan: plan.id,
            key: key.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_periods_start_at_midnight_monday_and_the_first() {
        let day = period_start("DAY");
        let week = period_start("WEEK");
        let month = period_start("MONTH");
        assert_eq!(day % 86_400, 0);
        assert!(week <= day && day - week < 7 * 86_400);
        let monday = chrono::DateTime::from_timestamp(week, 0).map(|d| d.weekday());
        assert_eq!(monday, Some(chrono::Weekday::Mon));
        let first = chrono::DateTime::from_timestamp(month, 0).map(|d| d.day());
        assert_eq!(first, Some(1));
    }
}

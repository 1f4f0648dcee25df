//! The CloudWatch Logs read API (JSON 1.1, `X-Amz-Target: Logs_20140328.<Operation>`):
//! DescribeLogGroups, DescribeLogStreams, GetLogEvents, FilterLogEvents, DeleteLogGroup,
//! PutRetentionPolicy and DeleteRetentionPolicy.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_store::LogQuery;
use serde::Deserialize;
use serde_json::{Value, json};

use nimbus_edge::error::JsonError;

fn ok(body: Value) -> Response {
    nimbus_edge::protocol::json_ok(nimbus_edge::protocol::Json::V1_1, body.to_string())
}

fn invalid(msg: impl Into<String>) -> JsonError {
    JsonError::new("InvalidParameterException", msg)
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, JsonError> {
    let body = if body.is_empty() { &b"{}"[..] } else { body };
    serde_json::from_slice(body)
        .map_err(|e| JsonError::new("SerializationException", e.to_string()))
}

/// Serves one CloudWatch Logs request: the operation comes from `X-Amz-Target`, the body
/// (at most 8 MiB) is its JSON input. Queries run on the blocking pool; an unknown operation is
/// an `UnknownOperationException`.
pub async fn handle(core: Core, req: Request<Body>) -> Response {
    let op = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("Logs_20140328."))
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), 8 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return invalid("The request body could not be read").into_response(),
    };
    let result = match op.as_str() {
        // Queries scan the database: they run on the blocking pool, never on an async worker.
        "DescribeLogGroups" | "DescribeLogStreams" | "GetLogEvents" | "FilterLogEvents" => {
            let core = core.clone();
            let body = body.clone();
            let op = op.clone();
            tokio::task::spawn_blocking(move || match op.as_str() {
                "DescribeLogGroups" => describe_log_groups(&core, &body),
                "DescribeLogStreams" => describe_log_streams(&core, &body),
                "GetLogEvents" => get_log_events(&core, &body),
                _ => filter_log_events(&core, &body),
            })
            .await
            .unwrap_or_else(|e| {
                Err(JsonError::new(
                    "ServiceUnavailableException",
                    format!("the query could not run: {e}"),
                ))
            })
        }
        "DeleteLogGroup" => delete_log_group(&core, &body).await,
        "PutRetentionPolicy" => put_retention(&core, &body).await,
        "DeleteRetentionPolicy" => delete_retention(&core, &body).await,
        other => Err(JsonError::new(
            "UnknownOperationException",
            format!("Nimbus does not implement the CloudWatch Logs operation '{other}'"),
        )),
    };
    match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn region_account(core: &Core) -> (String, String) {
    (
        core.settings.region.clone(),
        core.settings.account_id.clone(),
    )
}

fn limit(l: Option<i64>, max: i64, default: i64) -> Result<usize, JsonError> {
    match l {
        None => Ok(default as usize),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(invalid(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {max}"
        ))),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DescribeLogGroupsIn {
    log_group_name_prefix: Option<String>,
    log_group_name_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
    account_identifiers: Option<Vec<String>>,
    include_linked_accounts: Option<bool>,
    log_group_class: Option<String>,
    log_group_identifiers: Option<Vec<String>>,
}

fn describe_log_groups(core: &Core, body: &[u8]) -> Result<Response, JsonError> {
    let input: DescribeLogGroupsIn = parse(body)?;
    let _ = (
        &input.account_identifiers,
        input.include_linked_accounts,
        &input.log_group_class,
        &input.log_group_identifiers,
    );
    let limit = limit(input.limit, 50, 50)?;
    let (region, account) = region_account(core);
    let groups = core.logs.groups(input.log_group_name_prefix.as_deref())?;
    let after = input.next_token.unwrap_or_default();
    let mut items: Vec<Value> = Vec::new();
    let mut next = None;
    for g in groups
        .into_iter()
        .filter(|g| after.is_empty() || g.name.as_str() > after.as_str())
        .filter(|g| {
            input
                .log_group_name_pattern
                .as_deref()
                .is_none_or(|p| g.name.contains(p))
        })
    {
        let (name, created, bytes) = (&g.name, g.created_ms, g.stored_bytes);
        if items.len() == limit {
            next = items
                .last()
                .and_then(|v| v["logGroupName"].as_str())
                .map(str::to_string);
            break;
        }
        items.push(json!({
            "logGroupName": name,
            "creationTime": created,
            "metricFilterCount": 0,
            "arn": format!("arn:aws:logs:{region}:{account}:log-group:{name}:*"),
            "logGroupArn": format!("arn:aws:logs:{region}:{account}:log-group:{name}"),
            "storedBytes": bytes,
            "logGroupClass": "STANDARD",
        }));
        if let (Some(d), Some(item)) = (g.retention_days, items.last_mut()) {
            item["retentionInDays"] = d.into();
        }
    }
    let mut out = json!({ "logGroups": items });
    if let Some(n) = next {
        out["nextToken"] = n.into();
    }
    Ok(ok(out))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DescribeLogStreamsIn {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    next_token: Option<String>,
    limit: Option<i64>,
}

fn group_name(name: Option<String>, ident: Option<String>) -> Result<String, JsonError> {
    match (name, ident) {
        (Some(n), None) => Ok(n),
        (None, Some(i)) => Ok(i
            .split(":log-group:")
            .nth(1)
            .map(|s| s.trim_end_matches(":*").to_string())
            .unwrap_or(i)),
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup identifier are mutually exclusive parameters.",
        )),
        (None, None) => Err(invalid(
            "Should provide either name or identifier of the log group.",
        )),
    }
}

fn missing_group() -> JsonError {
    JsonError::new(
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
}

fn describe_log_streams(core: &Core, body: &[u8]) -> Result<Response, JsonError> {
    let input: DescribeLogStreamsIn = parse(body)?;
    let group = group_name(input.log_group_name, input.log_group_identifier)?;
    let limit = limit(input.limit, 50, 50)?;
    if !core.logs.group_exists(&group)? {
        return Err(missing_group());
    }
    let by_time = match input.order_by.as_deref() {
        None | Some("LogStreamName") => false,
        Some("LastEventTime") => true,
        Some(o) => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{o}' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
            )));
        }
    };
    if by_time && input.log_stream_name_prefix.is_some() {
        return Err(invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let mut streams = core.logs.streams(&group)?;
    if let Some(p) = &input.log_stream_name_prefix {
        streams.retain(|s| s.name.starts_with(p.as_str()));
    }
    if by_time {
        streams.sort_by_key(|s| (s.last_event_ms.unwrap_or(0), s.name.clone()));
    }
    if input.descending.unwrap_or(false) {
        streams.reverse();
    }
    let start: usize = input
        .next_token
        .as_deref()
        .map(|t| {
            t.parse()
                .map_err(|_| invalid("The specified nextToken is invalid."))
        })
        .transpose()?
        .unwrap_or(0);
    let (region, account) = region_account(core);
    let page: Vec<Value> = streams
        .iter()
        .skip(start)
        .take(limit)
        .map(|s| {
            let mut v = json!({
                "logStreamName": s.name,
                "creationTime": s.created_ms,
                "arn": format!("arn:aws:logs:{region}:{account}:log-group:{}:log-stream:{}", s.group, s.name),
                "storedBytes": 0,
            });
            if let Some(t) = s.first_event_ms {
                v["firstEventTimestamp"] = t.into();
            }
            if let Some(t) = s.last_event_ms {
                v["lastEventTimestamp"] = t.into();
            }
            if let Some(t) = s.last_ingest_ms {
                v["lastIngestionTime"] = t.into();
            }
            v
        })
        .collect();
    let mut out = json!({ "logStreams": page });
    if start.saturating_add(limit) < streams.len() {
        out["nextToken"] = (start + limit).to_string().into();
    }
    Ok(ok(out))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GetLogEventsIn {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name: String,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<i64>,
    start_from_head: Option<bool>,
    unmask: Option<bool>,
}

fn get_log_events(core: &Core, body: &[u8]) -> Result<Response, JsonError> {
    let input: GetLogEventsIn = parse(body)?;
    let _ = input.unmask;
    let group = group_name(input.log_group_name, input.log_group_identifier)?;
    let limit = limit(input.limit, 10_000, 10_000)?;
    if !core.logs.group_exists(&group)? {
        return Err(missing_group());
    }
    if !core
        .logs
        .streams(&group)?
        .iter()
        .any(|s| s.name == input.log_stream_name)
    {
        return Err(JsonError::new(
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
        ));
    }
    // Tokens: "f/<id>" reads forward after event id, "b/<id>" reads backward before it.
    let (forward, anchor) = match input.next_token.as_deref() {
        Some(t) => {
            let (dir, id) = t
                .split_once('/')
                .ok_or_else(|| invalid("The specified nextToken is invalid."))?;
            let id: i64 = id
                .parse()
                .ok()
                .filter(|i| *i >= 0)
                .ok_or_else(|| invalid("The specified nextToken is invalid."))?;
            match dir {
                "f" => (true, Some(id)),
                "b" => (false, Some(id)),
                _ => return Err(invalid("The specified nextToken is invalid.")),
            }
        }
        None => (input.start_from_head.unwrap_or(false), None),
    };
    let streams = vec![input.log_stream_name.clone()];
    let q = LogQuery {
        group: &group,
        streams: Some(&streams),
        start_ms: input.start_time,
        end_ms: input.end_time.map(|e| e.saturating_sub(1)),
        after_id: if forward { anchor } else { None },
        before_id: if forward { None } else { anchor },
        newest_first: !forward,
        limit,
        ..Default::default()
    };
    let mut events = core.logs.events(&q)?;
    if !forward {
        events.reverse();
    }
    let first = events.first().map(|e| e.id);
    let last = events.last().map(|e| e.id);
    let fwd = last
        .or(anchor.map(|a| if forward { a } else { a.saturating_sub(1) }))
        .unwrap_or(0);
    let bwd = first
        .or(anchor.map(|a| if forward { a.saturating_add(1) } else { a }))
        .unwrap_or(0);
    let items: Vec<Value> = events
        .into_iter()
        .map(
            |e| json!({ "timestamp": e.ts_ms, "message": e.message, "ingestionTime": e.ingest_ms }),
        )
        .collect();
    Ok(ok(json!({
        "events": items,
        "nextForwardToken": format!("f/{fwd:056}"),
        "nextBackwardToken": format!("b/{bwd:056}"),
    })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FilterLogEventsIn {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
    interleaved: Option<bool>,
    unmask: Option<bool>,
}

/// Parses the subset of filter-pattern syntax Nimbus supports: terms and quoted phrases, all of
/// which must occur (case-sensitive), as CloudWatch Logs matches unstructured events.
pub fn filter_terms(pattern: &str) -> Result<Vec<String>, JsonError> {
    // CloudWatch Logs' limit on a filter pattern (it also bounds the terms each event is
    // matched against).
    if pattern.len() > 1024 {
        return Err(invalid(
            "1 validation error detected: Value at 'filterPattern' failed to satisfy constraint: Member must have length less than or equal to 1024",
        ));
    }
    let mut terms = Vec::new();
    let mut chars = pattern.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '{' || c == '[' || c == '?' || c == '-' || c == '%' {
            return Err(invalid(format!(
                "Nimbus supports filter patterns made of terms and quoted phrases only; '{pattern}' uses syntax it does not support yet"
            )));
        }
        let mut term = String::new();
        if c == '"' {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                term.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                term.push(c);
                chars.next();
            }
        }
        if !term.is_empty() {
            terms.push(term);
        }
    }
    Ok(terms)
}

fn filter_log_events(core: &Core, body: &[u8]) -> Result<Response, JsonError> {
    let input: FilterLogEventsIn = parse(body)?;
    let _ = (input.interleaved, input.unmask);
    let group = group_name(input.log_group_name, input.log_group_identifier)?;
    let limit = limit(input.limit, 10_000, 10_000)?;
    if input.log_stream_names.is_some() && input.log_stream_name_prefix.is_some() {
        return Err(invalid(
            "logStreamNames and logStreamNamePrefix are mutually exclusive",
        ));
    }
    if !core.logs.group_exists(&group)? {
        return Err(missing_group());
    }
    let terms = filter_terms(input.filter_pattern.as_deref().unwrap_or(""))?;
    let after = input
        .next_token
        .as_deref()
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| invalid("The specified nextToken is invalid."))
        })
        .transpose()?;
    let q = LogQuery {
        group: &group,
        streams: input.log_stream_names.as_deref(),
        stream_prefix: input.log_stream_name_prefix.as_deref(),
        start_ms: input.start_time,
        end_ms: input.end_time,
        after_id: after,
        contains_all: &terms,
        limit: limit + 1,
        ..Default::default()
    };
    let mut events = core.logs.events(&q)?;
    let more = events.len() > limit;
    events.truncate(limit);
    let next = if more {
        events.last().map(|e| e.id)
    } else {
        None
    };
    let mut searched: Vec<String> = events.iter().map(|e| e.stream.clone()).collect();
    searched.sort();
    searched.dedup();
    let items: Vec<Value> = events
        .into_iter()
        .map(|e| {
            json!({
                "logStreamName": e.stream,
                "timestamp": e.ts_ms,
                "message": e.message,
                "ingestionTime": e.ingest_ms,
                "eventId": format!("{:056}", e.id),
            })
        })
        .collect();
    let mut out = json!({
        "events": items,
        "searchedLogStreams": searched.iter().map(|s| json!({"logStreamName": s, "searchedCompletely": true})).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        out["nextToken"] = n.to_string().into();
    }
    Ok(ok(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteLogGroupIn {
    log_group_name: String,
}

async fn delete_log_group(core: &Core, body: &[u8]) -> Result<Response, JsonError> {
    let input: DeleteLogGroupIn = parse(body)?;
    if !core.logs.group_exists(&input.log_group_name)? {
        return Err(missing_group());
    }
    core.logs.delete_group(&input.log_group_name).await?;
    Ok(ok(json!({})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRetentionIn {
    log_group_name: String,
    retention_in_days: i64,
}

async fn put_retention(core: &Core, body: &[u8]) -> Result<Response, JsonError> {
    let input: PutRetentionIn = parse(body)?;
    let days = u32::try_from(input.retention_in_days)
        .ok()
        .filter(|d| nimbus_core::logs::RETENTION_DAYS.contains(d))
        .ok_or_else(|| {
            invalid(format!(
                "1 validation error detected: Value '{}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                input.retention_in_days,
                nimbus_core::logs::RETENTION_DAYS.map(|d| d.to_string()).join(", ")
            ))
        })?;
    if !core.logs.group_exists(&input.log_group_name)? {
        return Err(missing_group());
    }
    core.logs
        .set_retention(&input.log_group_name, Some(days))
        .await?;
    Ok(ok(json!({})))
}

async fn delete_retention(core: &Core, body: &[u8]) -> Result<Response, JsonError> {
    let input: DeleteLogGroupIn = parse(body)?;
    if !core.logs.group_exists(&input.log_group_name)? {
        return Err(missing_group());
    }
    core.logs.set_retention(&input.log_group_name, None).await?;
    Ok(ok(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_patterns() {
        assert_eq!(
            filter_terms("ERROR \"timed out\"").ok(),
            Some(vec!["ERROR".to_string(), "timed out".to_string()])
        );
        assert_eq!(filter_terms("").ok(), Some(vec![]));
        assert!(filter_terms("{ $.level = \"x\" }").is_err());
    }
}

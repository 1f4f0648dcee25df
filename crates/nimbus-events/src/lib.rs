//! Nimbus events: the typed shapes of what Nimbus hands to functions — the SQS event of a queue
//! mapping ([`sqs`]), the payload format 2.0 request of HTTP APIs and function URLs ([`http`]),
//! and the invocation record of asynchronous destinations ([`destination`]). Producers build
//! these types and serialize them, so every event has AWS's member names, casing and nulls; the
//! tests pin each type to AWS's documented sample (`fixtures/`, with their source) by a round
//! trip. Each new event source adds its shapes and fixtures here.

pub mod destination;
pub mod http;
pub mod sqs;

use serde::{Deserialize, Deserializer};

/// For `Option<Option<T>>` members: a member that is present (even as `null`) deserializes to
/// `Some(..)`, an absent one (with `#[serde(default)]`) to `None`, so that "absent" and "null"
/// both survive a round trip (`skip_serializing_if = "Option::is_none"` omits only the absent).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
pub(crate) fn round_trip<T>(fixture: &str) -> (serde_json::Value, serde_json::Value)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let expected: serde_json::Value = serde_json::from_str(fixture).expect("fixture is JSON");
    let typed: T = serde_json::from_str(fixture).expect("fixture fits the type");
    let back = serde_json::to_value(&typed).expect("serializes");
    (expected, back)
}

//! CORS configurations of HTTP endpoints — a function URL's `Cors`, an HTTP API's
//! `corsConfiguration` — and what they answer: preflight `OPTIONS` requests answered by the
//! platform itself, and the `Access-Control-*` headers added to (and, from the backend, replaced
//! in) actual responses, as Lambda and API Gateway apply them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A CORS configuration (Lambda's `Cors`, API Gateway's `corsConfiguration`); empty lists allow
/// nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cors {
    /// `AllowOrigins`: origins allowed, matched case-insensitively (`*` for any, then answered as
    /// `*`).
    pub allow_origins: Vec<String>,
    /// `AllowMethods`: methods allowed in preflight answers (`*` for any).
    pub allow_methods: Vec<String>,
    /// `AllowHeaders`: request headers allowed in preflight answers (`*` for any).
    pub allow_headers: Vec<String>,
    /// `ExposeHeaders`: response headers the browser may read.
    pub expose_headers: Vec<String>,
    /// `MaxAge`: how long a browser may cache a preflight answer, in seconds, 0–86400.
    pub max_age: Option<i64>,
    /// `AllowCredentials`: whether cookies and authorization may be sent.
    pub allow_credentials: bool,
}

const FIELDS: [&str; 6] = [
    "AllowOrigins",
    "AllowMethods",
    "AllowHeaders",
    "ExposeHeaders",
    "MaxAge",
    "AllowCredentials",
];

fn camel(pascal: &str) -> String {
    let mut c = pascal.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

impl Cors {
    /// Reads the wire object in either casing (`AllowOrigins` for Lambda, `allowOrigins` for
    /// API Gateway); the error says which field is wrong.
    pub fn from_wire(v: &Value) -> Result<Cors, String> {
        let obj = v
            .as_object()
            .ok_or("the CORS configuration must be an object")?;
        for k in obj.keys() {
            if !FIELDS.iter().any(|f| f == k || camel(f) == *k) {
                return Err(format!(
                    "unknown CORS field {k}; expected one of {}",
                    FIELDS.join(", ")
                ));
            }
        }
        let field = |f: &str| obj.get(f).or_else(|| obj.get(&camel(f)));
        let list = |f: &str| -> Result<Vec<String>, String> {
            match field(f) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("{f} must be a list of strings"))
                    })
                    .collect(),
                Some(_) => Err(format!("{f} must be a list of strings")),
            }
        };
        let cors = Cors {
            allow_origins: list("AllowOrigins")?,
            allow_methods: list("AllowMethods")?
                .into_iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            allow_headers: list("AllowHeaders")?,
            expose_headers: list("ExposeHeaders")?,
            max_age: match field("MaxAge") {
                None | Some(Value::Null) => None,
                Some(m) => Some(
                    m.as_i64()
                        .filter(|m| (0..=86_400).contains(m))
                        .ok_or("MaxAge must be an integer between 0 and 86400")?,
                ),
            },
            allow_credentials: match field("AllowCredentials") {
                None | Some(Value::Null) => false,
                Some(b) => b
                    .as_bool()
                    .ok_or("AllowCredentials must be true or false")?,
            },
        };
        if cors.allow_credentials && cors.allow_origins.iter().any(|o| o == "*") {
            return Err(
                "AllowCredentials cannot be true when AllowOrigins contains '*'; list the origins"
                    .into(),
            );
        }
        Ok(cors)
    }

    /// The wire object, `PascalCase` (Lambda) or `camelCase` (API Gateway).
    pub fn to_wire(&self, pascal: bool) -> Value {
        let mut v = json!({
            "AllowOrigins": self.allow_origins,
            "AllowMethods": self.allow_methods,
            "AllowHeaders": self.allow_headers,
            "ExposeHeaders": self.expose_headers,
            "AllowCredentials": self.allow_credentials,
        });
        if let Some(m) = self.max_age {
            v["MaxAge"] = json!(m);
        }
        if pascal {
            return v;
        }
        Value::Object(
            v.as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (camel(k), v.clone()))
                .collect(),
        )
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if it is allowed.
    fn allowed_origin(&self, origin: &str) -> Option<String> {
        if self.allow_origins.iter().any(|o| o == "*") {
            return Some("*".into());
        }
        self.allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| origin.to_string())
    }

    /// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`.
    pub fn is_preflight(method: &str, origin: Option<&str>, request_method: Option<&str>) -> bool {
        method.eq_ignore_ascii_case("OPTIONS") && origin.is_some() && request_method.is_some()
    }

    /// The headers answering a preflight; none when the origin or method is not allowed.
    pub fn preflight_headers(&self, origin: &str, request_method: &str) -> Vec<(String, String)> {
        let Some(allow) = self.allowed_origin(origin) else {
            return Vec::new();
        };
        let method_ok = self
            .allow_methods
            .iter()
            .any(|m| m == "*" || m.eq_ignore_ascii_case(request_method));
        if !method_ok {
            return Vec::new();
        }
        let mut h = vec![("access-control-allow-origin".to_string(), allow)];
        h.push((
            "access-control-allow-methods".into(),
            self.allow_methods.join(","),
        ));
        if !self.allow_headers.is_empty() {
            h.push((
                "access-control-allow-headers".into(),
                self.allow_headers.join(","),
            ));
        }
        if let Some(m) = self.max_age {
            h.push(("access-control-max-age".into(), m.to_string()));
        }
        if self.allow_credentials {
            h.push(("access-control-allow-credentials".into(), "true".into()));
        }
        h
    }

    /// The headers added to an actual response to a request from `origin`.
    pub fn response_headers(&self, origin: &str) -> Vec<(String, String)> {
        let Some(allow) = self.allowed_origin(origin) else {
            return Vec::new();
        };
        let mut h = vec![("access-control-allow-origin".to_string(), allow)];
        if !self.expose_headers.is_empty() {
            h.push((
                "access-control-expose-headers".into(),
                self.expose_headers.join(","),
            ));
        }
        if self.allow_credentials {
            h.push(("access-control-allow-credentials".into(), "true".into()));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_casings_and_validation() {
        let c = Cors::from_wire(
            &json!({"AllowOrigins": ["https://a.example"], "AllowMethods": ["get"], "MaxAge": 60}),
        )
        .expect("pascal");
        assert_eq!(c.allow_methods, vec!["GET"]);
        let d = Cors::from_wire(
            &json!({"allowOrigins": ["https://a.example"], "allowMethods": ["GET"], "maxAge": 60}),
        )
        .expect("camel");
        assert_eq!(c, d);
        assert_eq!(
            d.to_wire(false)["allowOrigins"],
            json!(["https://a.example"])
        );
        assert_eq!(d.to_wire(true)["MaxAge"], 60);
        for bad in [
            json!({"AllowOrigins": "x"}),
            json!({"MaxAge": 90000}),
            json!({"Bogus": 1}),
            json!({"AllowOrigins": ["*"], "AllowCredentials": true}),
        ] {
            assert!(Cors::from_wire(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_only_for_allowed_origins_and_methods() {
        let c = Cors {
            allow_origins: vec!["https://a.example".into()],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["content-type".into()],
            expose_headers: vec!["x-id".into()],
            max_age: Some(300),
            allow_credentials: true,
        };
        let pre = c.preflight_headers("https://A.example", "POST");
        assert!(pre.contains(&(
            "access-control-allow-origin".into(),
            "https://A.example".into()
        )));
        assert!(pre.contains(&("access-control-allow-methods".into(), "GET,POST".into())));
        assert!(pre.contains(&("access-control-max-age".into(), "300".into())));
        assert!(
            c.preflight_headers("https://a.example", "DELETE")
                .is_empty()
        );
        assert!(
            c.preflight_headers("https://evil.example", "GET")
                .is_empty()
        );
        let resp = c.response_headers("https://a.example");
        assert!(resp.contains(&("access-control-expose-headers".into(), "x-id".into())));
        assert!(resp.contains(&("access-control-allow-credentials".into(), "true".into())));
        assert!(c.response_headers("https://evil.example").is_empty());
        let any = Cors {
            allow_origins: vec!["*".into()],
            allow_methods: vec!["*".into()],
            ..Cors::default()
        };
        assert_eq!(
            any.preflight_headers("https://x", "PATCH")[0].1,
            "*".to_string()
        );
        assert!(Cors::is_preflight("OPTIONS", Some("o"), Some("GET")));
        assert!(!Cors::is_preflight("OPTIONS", Some("o"), None));
    }
}

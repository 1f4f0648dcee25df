//! API Gateway REST APIs (`apigateway`): resources, methods, integrations with their request and
//! response templates, method and integration responses, deployments (snapshots of the resource
//! tree) and stages. Each API is one record (kind `rest-api`).

use std::collections::BTreeMap;

use nimbus_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::http_apis::{AResult, ApiError};
use crate::records::RecordMap;

const KIND: &str = "rest-api";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IntegrationResponse {
    pub status_code: String,
    pub selection_pattern: Option<String>,
    pub response_parameters: BTreeMap<String, String>,
    pub response_templates: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Integration {
    pub integration_type: String,
    pub http_method: Option<String>,
    pub uri: Option<String>,
    pub request_templates: BTreeMap<String, String>,
    pub request_parameters: BTreeMap<String, String>,
    pub passthrough_behavior: String,
    pub timeout_ms: u32,
    pub responses: BTreeMap<String, IntegrationResponse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MethodResponse {
    pub status_code: String,
    pub response_parameters: BTreeMap<String, bool>,
    pub response_models: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Method {
    pub http_method: String,
    pub authorization_type: String,
    pub api_key_required: bool,
    pub request_parameters: BTreeMap<String, bool>,
    pub responses: BTreeMap<String, MethodResponse>,
    pub integration: Option<Integration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    pub parent_id: Option<String>,
    pub path_part: String,
    pub path: String,
    pub methods: BTreeMap<String, Method>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub created: i64,
    pub description: Option<String>,
    pub resources: Vec<Resource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub deployment_id: String,
    pub description: Option<String>,
    pub variables: BTreeMap<String, String>,
    pub created: i64,
    pub updated: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestApi {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created: i64,
    pub root_id: String,
    pub binary_media_types: Vec<String>,
    pub resources: BTreeMap<String, Resource>,
    pub deployments: BTreeMap<String, Deployment>,
    pub stages: BTreeMap<String, Stage>,
    pub tags: BTreeMap<String, String>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "ANY",
];

pub struct RestApis {
    map: RecordMap<RestApi>,
}

impl RestApis {
    pub fn open(store: Store) -> Result<RestApis> {
        Ok(RestApis {
            map: RecordMap::open(store, KIND)?,
        })
    }

    pub fn get(&self, id: &str) -> AResult<RestApi> {
        self.map
            .get(id)
            .ok_or_else(|| ApiError::NotFound("Invalid API identifier specified".into()))
    }

    pub fn list(&self) -> Vec<RestApi> {
        self.map.values()
    }

    async fn save(&self, api: RestApi) -> AResult<RestApi> {
        Ok(self.map.put(api.id.clone(), api).await?)
    }

    async fn change<T>(&self, id: &str, f: impl FnOnce(&mut RestApi) -> AResult<T>) -> AResult<T> {
        let mut api = self.get(id)?;
        let out = f(&mut api)?;
        self.save(api).await?;
        Ok(out)
    }

    /// CreateRestApi: the API and its root resource `/`.
    pub async fn create(
        &self,
        name: Option<String>,
        description: Option<String>,
        binary_media_types: Vec<String>,
        tags: BTreeMap<String, String>,
    ) -> AResult<RestApi> {
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::BadRequest("Invalid API name specified".into()))?;
        let root = Resource {
            id: new_id(),
            parent_id: None,
            path_part: String::new(),
            path: "/".into(),
            methods: BTreeMap::new(),
        };
        let api = RestApi {
            id: new_id(),
            name,
            description,
            created: now(),
            root_id: root.id.clone(),
            binary_media_types,
            resources: [(root.id.clone(), root)].into_iter().collect(),
            deployments: BTreeMap::new(),
            stages: BTreeMap::new(),
            tags,
        };
        self.save(api).await
    }

    pub async fn delete(&self, id: &str) -> AResult<()> {
        self.get(id)?;
        Ok(self.map.remove(id).await?)
    }

    /// CreateResource under `parent`.
    pub async fn create_resource(
        &self,
        api: &str,
        parent: &str,
        part: Option<String>,
    ) -> AResult<Resource> {
        let part = part
            .filter(|p| !p.is_empty() && !p.contains('/'))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "Resource's path part must be a single, non-empty path segment".into(),
                )
            })?;
        let greedy = part.starts_with('{') && part.ends_with("+}");
        let valid = part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:{}+".contains(c));
        if !valid {
            return Err(ApiError::BadRequest(format!(
                "Resource's path part only allow a-zA-Z0-9._- and curly braces at the beginning and the end and an optional plus sign before the closing brace: {part}"
            )));
        }
        self.change(api, |a| {
            let p = a
                .resources
                .get(parent)
                .ok_or_else(|| ApiError::NotFound("Invalid Resource identifier specified".into()))?
                .clone();
            if p.path_part.ends_with("+}") {
                return Err(ApiError::BadRequest(
                    "A greedy path variable must be the last segment".into(),
                ));
            }
            if a.resources
                .values()
                .any(|r| r.parent_id.as_deref() == Some(parent) && r.path_part == part)
            {
                return Err(ApiError::Conflict(format!(
                    "Another resource with the same parent already has this name: {part}"
                )));
            }
            let _ = greedy;
            let path = if p.path == "/" {
                format!("/{part}")
            } else {
                format!("{}/{part}", p.path)
            };
            let r = Resource {
                id: new_id(),
                parent_id: Some(parent.to_string()),
                path_part: part,
                path,
                methods: BTreeMap::new(),
            };
            a.resources.insert(r.id.clone(), r.clone());
            Ok(r)
        })
        .await
    }

    pub async fn delete_resource(&self, api: &str, id: &str) -> AResult<()> {
        self.change(api, |a| {
            if a.root_id == id {
                return Err(ApiError::BadRequest(
                    "Cannot delete the root resource".into(),
                ));
            }
            if !a.resources.contains_key(id) {
                return Err(ApiError::NotFound(
                    "Invalid Resource identifier specified".into(),
                ));
            }
            // The resource and everything under it.
            let mut doomed = vec![id.to_string()];
            let mut i = 0;
            while i < doomed.len() {
                let parent = doomed[i].clone();
                doomed.extend(
                    a.resources
                        .values()
                        .filter(|r| r.parent_id.as_deref() == Some(&parent))
                        .map(|r| r.id.clone()),
                );
                i += 1;
            }
            for d in doomed {
                a.resources.remove(&d);
            }
            Ok(())
        })
        .await
    }

    fn method_mut<'a>(a: &'a mut RestApi, resource: &str, method: &str) -> AResult<&'a mut Method> {
        a.resources
            .get_mut(resource)
            .ok_or_else(|| ApiError::NotFound("Invalid Resource identifier specified".into()))?
            .methods
            .get_mut(method)
            .ok_or_else(|| ApiError::NotFound("Invalid Method identifier specified".into()))
    }

    /// PutMethod.
    pub async fn put_method(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        authorization_type: Option<String>,
        api_key_required: bool,
        request_parameters: BTreeMap<String, bool>,
    ) -> AResult<Method> {
        let method = method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "Invalid HttpMethod specified: {method}"
            )));
        }
        let auth = authorization_type
            .ok_or_else(|| ApiError::BadRequest("Authorization type is required".into()))?;
        if auth != "NONE" {
            return Err(ApiError::BadRequest(format!(
                "Authorization type {auth} is not supported by Nimbus yet; use NONE"
            )));
        }
        self.change(api, |a| {
            let r = a.resources.get_mut(resource).ok_or_else(|| {
                ApiError::NotFound("Invalid Resource identifier specified".into())
            })?;
            let m = Method {
                http_method: method.clone(),
                authorization_type: auth,
                api_key_required,
                request_parameters,
                responses: BTreeMap::new(),
                integration: None,
            };
            r.methods.insert(method, m.clone());
            Ok(m)
        })
        .await
    }

    pub fn method(&self, api: &str, resource: &str, method: &str) -> AResult<Method> {
        let a = self.get(api)?;
        a.resources
            .get(resource)
            .ok_or_else(|| ApiError::NotFound("Invalid Resource identifier specified".into()))?
            .methods
            .get(&method.to_ascii_uppercase())
            .cloned()
            .ok_or_else(|| ApiError::NotFound("Invalid Method identifier specified".into()))
    }

    /// PutIntegration.
    pub async fn put_integration(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        mut i: Integration,
    ) -> AResult<Integration> {
        match i.integration_type.as_str() {
            "AWS_PROXY" | "AWS" => {
                if i.uri.is_none() {
                    return Err(ApiError::BadRequest(
                        "Enumeration value for Integration uri is required".into(),
                    ));
                }
            }
            "HTTP" | "HTTP_PROXY" => {
                if i.uri.is_none() {
                    return Err(ApiError::BadRequest(
                        "Integrations of type 'HTTP' or 'HTTP_PROXY' require a uri".into(),
                    ));
                }
            }
            "MOCK" => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid integration type specified: {other}"
                )));
            }
        }
        if i.passthrough_behavior.is_empty() {
            i.passthrough_behavior = "WHEN_NO_MATCH".into();
        }
        if i.timeout_ms == 0 {
            i.timeout_ms = 29_000;
        }
        if !(50..=29_000).contains(&i.timeout_ms) {
            return Err(ApiError::BadRequest(
                "Timeout should be between 50 ms and 29000 ms".into(),
            ));
        }
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let m = Self::method_mut(a, resource, &method)?;
            m.integration = Some(i.clone());
            Ok(i)
        })
        .await
    }

    pub async fn put_method_response(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        r: MethodResponse,
    ) -> AResult<MethodResponse> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let m = Self::method_mut(a, resource, &method)?;
            m.responses.insert(r.status_code.clone(), r.clone());
            Ok(r)
        })
        .await
    }

    pub async fn put_integration_response(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        r: IntegrationResponse,
    ) -> AResult<IntegrationResponse> {
        if let Some(p) = &r.selection_pattern
            && regex_lite::Regex::new(p).is_err()
        {
            return Err(ApiError::BadRequest(format!(
                "Invalid selection pattern specified: {p}"
            )));
        }
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let m = Self::method_mut(a, resource, &method)?;
            if !m.responses.contains_key(&r.status_code) {
                return Err(ApiError::NotFound(
                    "Invalid Response status code specified".into(),
                ));
            }
            let i = m.integration.as_mut().ok_or_else(|| {
                ApiError::NotFound("Invalid Integration identifier specified".into())
            })?;
            i.responses.insert(r.status_code.clone(), r.clone());
            Ok(r)
        })
        .await
    }

    /// CreateDeployment: a snapshot of the resources, optionally to a (new or existing) stage.
    pub async fn create_deployment(
        &self,
        api: &str,
        stage: Option<String>,
        description: Option<String>,
        variables: BTreeMap<String, String>,
    ) -> AResult<Deployment> {
        self.change(api, |a| {
            if !a.resources.values().any(|r| !r.methods.is_empty()) {
                return Err(ApiError::BadRequest(
                    "The REST API doesn't contain any methods".into(),
                ));
            }
            let d = Deployment {
                id: new_id(),
                created: now(),
                description,
                resources: a.resources.values().cloned().collect(),
            };
            if let Some(name) = stage {
                let t = now();
                let st = a.stages.entry(name.clone()).or_insert(Stage {
                    name,
                    deployment_id: d.id.clone(),
                    description: None,
                    variables: BTreeMap::new(),
                    created: t,
                    updated: t,
                });
                st.deployment_id = d.id.clone();
                st.variables.extend(variables);
                st.updated = t;
            }
            a.deployments.insert(d.id.clone(), d.clone());
            Ok(d)
        })
        .await
    }

    pub async fn create_stage(
        &self,
        api: &str,
        name: Option<String>,
        deployment: Option<String>,
        description: Option<String>,
        variables: BTreeMap<String, String>,
    ) -> AResult<Stage> {
        let name = name.ok_or_else(|| ApiError::BadRequest("Stage name is required".into()))?;
        let deployment =
            deployment.ok_or_else(|| ApiError::BadRequest("Deployment id is required".into()))?;
        self.change(api, |a| {
            if !a.deployments.contains_key(&deployment) {
                return Err(ApiError::NotFound(
                    "Invalid Deployment identifier specified".into(),
                ));
            }
            if a.stages.contains_key(&name) {
                return Err(ApiError::Conflict("Stage already exists".into()));
            }
            let t = now();
            let st = Stage {
                name: name.clone(),
                deployment_id: deployment,
                description,
                variables,
                created: t,
                updated: t,
            };
            a.stages.insert(name, st.clone());
            Ok(st)
        })
        .await
    }

    /// The resources a stage serves.
    pub fn served(&self, api: &str, stage: &str) -> Option<(RestApi, Stage, Vec<Resource>)> {
        let a = self.get(api).ok()?;
        let st = a.stages.get(stage)?.clone();
        let d = a.deployments.get(&st.deployment_id)?.clone();
        Some((a, st, d.resources))
    }
}

/// The resource a path selects: literal segments over `{param}` over a greedy `{proxy+}`;
/// returns it with its path parameters.
pub fn match_resource<'a>(
    resources: &'a [Resource],
    path: &str,
) -> Option<(&'a Resource, BTreeMap<String, String>)> {
    let req: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // (rank, resource, path parameters); lower ranks are more specific.
    type Candidate<'r> = ((u8, usize), &'r Resource, BTreeMap<String, String>);
    let mut best: Option<Candidate<'a>> = None;
    for r in resources {
        let pat: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
        let mut params = BTreeMap::new();
        let mut greedy = false;
        let mut vars = 0;
        let mut ok = true;
        for (i, seg) in pat.iter().enumerate() {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                let rest = req.get(i..).map(|r| r.join("/")).unwrap_or_default();
                ok = !rest.is_empty();
                params.insert(name.to_string(), rest);
                greedy = true;
                break;
            }
            match req.get(i) {
                Some(actual) => {
                    if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        params.insert(name.to_string(), (*actual).to_string());
                        vars += 1;
                    } else if seg != actual {
                        ok = false;
                        break;
                    }
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !greedy && pat.len() != req.len() {
            ok = false;
        }
        if !ok {
            continue;
        }
        let rank = (u8::from(greedy), vars);
        if best.as_ref().is_none_or(|(b, _, _)| rank < *b) {
            best = Some((rank, r, params));
        }
    }
    best.map(|(_, r, p)| (r, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> Resource {
        Resource {
            id: path.into(),
            parent_id: None,
            path_part: String::new(),
            path: path.into(),
            methods: BTreeMap::new(),
        }
    }

    #[test]
    fn resources_match_like_api_gateway() {
        let rs = vec![
            res("/"),
            res("/sms"),
            res("/items/{id}"),
            res("/items/special"),
            res("/{proxy+}"),
        ];
        assert_eq!(
            match_resource(&rs, "/").map(|(r, _)| r.path.as_str()),
            Some("/")
        );
        assert_eq!(
            match_resource(&rs, "/sms").map(|(r, _)| r.path.as_str()),
            Some("/sms")
        );
        assert_eq!(
            match_resource(&rs, "/items/special").map(|(r, _)| r.path.as_str()),
            Some("/items/special")
        );
        let (r, p) = match_resource(&rs, "/items/9").expect("match");
        assert_eq!(
            (r.path.as_str(), p.get("id").map(String::as_str)),
            ("/items/{id}", Some("9"))
        );
        let (r, p) = match_resource(&rs, "/a/b").expect("match");
        assert_eq!(
            (r.path.as_str(), p.get("proxy").map(String::as_str)),
            ("/{proxy+}", Some("a/b"))
        );
    }
}

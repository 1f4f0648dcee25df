//! The crate layering of `docs/architecture.md` ("What may depend on what"), checked against
//! every crate's `Cargo.toml`: service crates never depend on each other, the platform never on
//! a service or the front door, and only the binary depends on everything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crates of one AWS service each (they meet only through the core's seams).
const SERVICES: &[&str] = &["nimbus-apigw", "nimbus-lambda", "nimbus-logs", "nimbus-sqs"];

/// The Nimbus crates each horizontal crate may depend on.
fn allowed(krate: &str) -> Option<BTreeSet<&'static str>> {
    let set = |v: &[&'static str]| Some(v.iter().copied().collect());
    match krate {
        "nimbus-store" | "nimbus-vtl" | "nimbus-exec" | "nimbus-events" | "nimbus-bench" => {
            set(&[])
        }
        "nimbus-core" => set(&["nimbus-store", "nimbus-exec", "nimbus-events"]),
        "nimbus-edge" => set(&["nimbus-core", "nimbus-store"]),
        k if SERVICES.contains(&k) => set(&[
            "nimbus-core",
            "nimbus-edge",
            "nimbus-store",
            "nimbus-vtl",
            "nimbus-events",
        ]),
        _ => None,
    }
}

/// Each crate's Nimbus dependencies (normal and build; dev-dependencies are the tests' own).
fn workspace() -> BTreeMap<String, BTreeSet<String>> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&crates).expect("crates/") {
        let dir = entry.expect("entry").path();
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let doc: toml::Table = text.parse().expect("Cargo.toml parses");
        let name = doc["package"]["name"]
            .as_str()
            .expect("package.name")
            .to_string();
        let mut deps = BTreeSet::new();
        for section in ["dependencies", "build-dependencies"] {
            if let Some(t) = doc.get(section).and_then(|v| v.as_table()) {
                deps.extend(t.keys().filter(|k| k.starts_with("nimbus-")).cloned());
            }
        }
        out.insert(name, deps);
    }
    out
}

#[test]
fn crates_depend_only_on_what_the_layering_allows() {
    let ws = workspace();
    assert!(
        ws.contains_key("nimbus") && ws.contains_key("nimbus-core"),
        "{ws:?}"
    );
    for service in SERVICES {
        assert!(ws.contains_key(*service), "{service} is listed but missing");
    }
    let mut wrong = Vec::new();
    for (krate, deps) in &ws {
        if krate == "nimbus" {
            continue;
        }
        let Some(ok) = allowed(krate) else {
            wrong.push(format!(
                "{krate} is not in the layering table (docs/architecture.md and this test)"
            ));
            continue;
        };
        for d in deps {
            if !ok.contains(d.as_str()) {
                wrong.push(format!("{krate} depends on {d}"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken: {wrong:#?}");
    // Only the binary composes the services.
    let composing: Vec<&String> = ws
        .iter()
        .filter(|(_, deps)| deps.iter().any(|d| SERVICES.contains(&d.as_str())))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(composing, vec!["nimbus"]);
}

//! Mapping templates as the gateway runs them: parsed once per template text (a bounded cache
//! of parsed trees) and rendered on the blocking pool, never on an async worker, so a template
//! that uses its whole budget cannot stall other requests; at most 8 render at once, so
//! templates cannot take the whole blocking pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use nimbus_vtl::{Request, Template, VtlError};

/// Parsed templates kept at most; the cache starts over when full.
const CACHE_ENTRIES: usize = 512;

fn cache() -> &'static Mutex<HashMap<String, Arc<Template>>> {
    static C: OnceLock<Mutex<HashMap<String, Arc<Template>>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

fn parsed(text: &str) -> Result<Arc<Template>, VtlError> {
    if let Some(t) = cache().lock().unwrap_or_else(|p| p.into_inner()).get(text) {
        return Ok(t.clone());
    }
    let t = Arc::new(Template::parse(text)?);
    let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
    if c.len() >= CACHE_ENTRIES {
        c.clear();
    }
    c.insert(text.to_string(), t.clone());
    Ok(t)
}

/// Renders at once at most; others wait their turn (a template at its budget holds a thread for
/// up to the engine's time limit).
const CONCURRENT_RENDERS: usize = 8;

fn slots() -> &'static tokio::sync::Semaphore {
    static S: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    S.get_or_init(|| tokio::sync::Semaphore::new(CONCURRENT_RENDERS))
}

/// Renders `text` against `req` off the async workers.
pub async fn render(text: &str, req: Request) -> Result<String, VtlError> {
    let text = text.to_string();
    let _slot = slots()
        .acquire()
        .await
        .map_err(|e| VtlError::Eval(format!("the template could not run: {e}")))?;
    tokio::task::spawn_blocking(move || parsed(&text)?.render(&req))
        .await
        .unwrap_or_else(|e| Err(VtlError::Eval(format!("the template could not run: {e}"))))
}

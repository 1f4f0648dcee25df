//! `vtl-render`: renders one template from a JSON request on stdin (`template`, `body`, `path`,
//! `querystring`, `header`, `context`, `stageVariables`) and prints the output. Used by the
//! differential test against an independent Velocity implementation.

use std::io::Read;

fn pairs(v: &serde_json::Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn main() -> std::process::ExitCode {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        eprintln!("cannot read stdin");
        return std::process::ExitCode::FAILURE;
    }
    let v: serde_json::Value = match serde_json::from_str(&input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("stdin is not JSON: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let req = nimbus_vtl::Request {
        body: v["body"].as_str().unwrap_or("").to_string(),
        path_params: pairs(&v["path"]),
        query_params: pairs(&v["querystring"]),
        headers: pairs(&v["header"]),
        context: v["context"].clone(),
        stage_variables: pairs(&v["stageVariables"]),
    };
    match nimbus_vtl::render(v["template"].as_str().unwrap_or(""), &req) {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! A minimal read-only web UI: the newest runs of the default namespace with their
//! status and result, refreshed every few seconds.

use crate::engine::Engine;
use crate::ids::Namespace;
use crate::journal::RunFilter;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;

pub fn router(engine: Engine) -> Router {
    Router::new().route("/", get(index)).with_state(engine)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn index(State(engine): State<Engine>) -> Html<String> {
    let filter = RunFilter {
        limit: 100,
        ..RunFilter::default()
    };
    let rows = match engine.list(&Namespace::default_namespace(), &filter).await {
        Ok(runs) => runs
            .into_iter()
            .map(|r| {
                let result = r
                    .output
                    .clone()
                    .or_else(|| r.failure.as_ref().map(|f| format!("{}: {}", f.error_type, f.message)))
                    .or(r.blocked_reason.clone())
                    .unwrap_or_default();
                format!(
                    "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    escape(r.workflow_id.as_str()),
                    escape(r.workflow_type.as_str()),
                    r.status.as_str(),
                    r.status.as_str(),
                    r.created_at_ms,
                    escape(&result.chars().take(200).collect::<String>()),
                )
            })
            .collect::<String>(),
        Err(e) => format!("<tr><td colspan=5>cannot list runs: {}</td></tr>", escape(&e.to_string())),
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=3>\
         <title>Spool</title><style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}\
         .failed,.terminated{{color:#b00}}.completed{{color:#070}}.blocked,.cancelled{{color:#a60}}</style></head>\
         <body><h1>Spool workflows</h1><table><tr><th>workflow id</th><th>type</th><th>status</th>\
         <th>created (ms)</th><th>result</th></tr>{rows}</table></body></html>"
    ))
}

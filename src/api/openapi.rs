//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the management API. It is assembled
//! from one JSON fragment per area under `src/api/openapi/` (`admin.json`, `me.json`,
//! `reseller.json`, `payments.json`, each `{"paths": {…}, "components": {"schemas": {…}}}`) over `base.json`, so
//! documenting an endpoint is adding its entry to its area's file. Tests check that every
//! `/api/…` route is documented and that real answers match the response schemas.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

const BASE: &str = include_str!("openapi/base.json");
const PARTS: &[(&str, &str)] = &[
    ("admin.json", include_str!("openapi/admin.json")),
    ("me.json", include_str!("openapi/me.json")),
    ("reseller.json", include_str!("openapi/reseller.json")),
    ("payments.json", include_str!("openapi/payments.json")),
];

/// The whole document, or a message naming the fragment that is not valid JSON or redefines a
/// path or schema.
pub fn document() -> Result<Value, String> {
    let mut doc: Value = serde_json::from_str(BASE).map_err(|e| format!("base.json: {e}"))?;
    for (name, text) in PARTS {
        let part: Value = serde_json::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        merge(&mut doc, &part, "/paths", "paths").map_err(|e| format!("{name}: {e}"))?;
        merge(&mut doc, &part, "/components/schemas", "schema").map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(doc)
}

fn merge(doc: &mut Value, part: &Value, pointer: &str, what: &str) -> Result<(), String> {
    let Some(entries) = part.pointer(pointer).and_then(Value::as_object) else { return Ok(()) };
    let target =
        doc.pointer_mut(pointer).and_then(Value::as_object_mut).ok_or(format!("base.json has no {pointer}"))?;
    for (name, entry) in entries {
        if target.insert(name.clone(), entry.clone()).is_some() {
            return Err(format!("{what} {name} is defined twice"));
        }
    }
    Ok(())
}

/// `GET /api/openapi.json` (public: it describes the API, not the site's data).
pub async fn serve() -> Response {
    static BODY: OnceLock<String> = OnceLock::new();
    let body = BODY.get_or_init(|| match document() {
        Ok(doc) => doc.to_string(),
        Err(message) => {
            tracing::error!(%message, "the OpenAPI document is broken");
            Value::Object(Map::new()).to_string()
        }
    });
    let mut response = body.clone().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fragments_assemble() {
        let doc = super::document().unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/api/admin/settings"].is_object());
    }
}

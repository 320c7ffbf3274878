//! The JSON Schemas (2020-12) of subsync's file formats, generated from the Rust types so that
//! they cannot drift: manifests (input), plans and apply summaries (output). The committed
//! copies under `schema/` are checked against these by a test.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

/// Each schema, by the file name it is committed under.
pub fn all() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "manifest.schema.json",
            generate::<crate::manifest::ManifestDocument>(),
        ),
        ("plan.schema.json", generate::<crate::plan::Plan>()),
        ("summary.schema.json", generate::<crate::apply::Summary>()),
    ]
}

/// The schema called `name` (`manifest`, `plan` or `summary`).
pub(crate) fn by_name(name: &str) -> Option<serde_json::Value> {
    all()
        .into_iter()
        .find(|(file, _)| file.strip_suffix(".schema.json") == Some(name))
        .map(|(_, s)| s)
}

fn generate<T: JsonSchema>() -> serde_json::Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    serde_json::to_value(schema).unwrap_or_default()
}

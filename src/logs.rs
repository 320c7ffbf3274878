//! How log events are written for collectors: one JSON object a line, fields as their JSON
//! types, and lists as JSON arrays.
//!
//! tracing has no list values (short of an unstable feature), so a list is logged as
//! `field = ?Array(&items)`: its Debug form is a JSON array, which reads well in text logs
//! and which [`JsonLines`] writes as an array rather than as a string holding one.

use std::ffi::OsStr;
use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// A list of paths or names, logged as a JSON array.
pub(crate) struct Array<'a, T>(pub &'a [T]);

impl<T: AsRef<OsStr>> fmt::Debug for Array<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<Value> = self
            .0
            .iter()
            .map(|item| Value::String(item.as_ref().to_string_lossy().into_owned()))
            .collect();
        f.write_str(&Value::Array(items).to_string())
    }
}

/// One JSON object per event: `timestamp`, `level`, `message`, then the event's fields.
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            crate::clock::rfc3339_millis(crate::clock::unix_millis()).into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        if let Some(message) = fields.0.remove("message") {
            line.insert("message".into(), message);
        }
        line.append(&mut fields.0);
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        // An [`Array`] (or any list whose Debug form is a JSON array) stays a list.
        let value = match serde_json::from_str::<Value>(&text) {
            Ok(array @ Value::Array(_)) if text.starts_with('[') => array,
            _ => Value::String(text),
        };
        self.0.insert(field.name().into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_reads_as_json_and_odd_names_stay_whole() {
        let paths = ["manifests", "a \"quoted\" dir"];
        assert_eq!(
            format!("{:?}", Array(&paths)),
            r#"["manifests","a \"quoted\" dir"]"#
        );
    }

    #[test]
    fn json_lines_carry_lists_as_arrays_and_numbers_as_numbers() {
        use std::sync::{Arc, Mutex};
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(paths = ?Array(&["a", "b"]), added = 3u64, name = "x", "watching");
        });
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["paths"], serde_json::json!(["a", "b"]));
        assert_eq!(line["added"], 3);
        assert_eq!(line["name"], "x");
        assert_eq!(line["message"], "watching");
        assert_eq!(line["level"], "INFO");
    }

    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

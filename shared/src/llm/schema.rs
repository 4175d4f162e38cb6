//! The JSON Schema of one day, derived from the Rust types and made acceptable to Structured
//! Outputs in strict mode (every property required, no additional properties, no `format`).
//! Written by hand because no maintained crate does this transformation; it is small.

use std::sync::LazyLock;

use serde_json::Value;

use crate::menu::Day;

/// The schema sent as `response_format.json_schema.schema`, built once.
pub fn day_schema() -> &'static Value {
    static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
        let mut schema = schemars::schema_for!(Day).to_value();
        if let Some(root) = schema.as_object_mut() {
            root.remove("$schema");
            root.remove("title");
        }
        make_strict(&mut schema);
        schema
    });
    &SCHEMA
}

fn make_strict(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("format");
            if let Some(Value::Object(props)) = map.get("properties") {
                let names: Vec<Value> = props.keys().cloned().map(Value::String).collect();
                map.insert("required".into(), Value::Array(names));
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for child in map.values_mut() {
                make_strict(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(make_strict),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(value: &Value, found: &mut Vec<serde_json::Map<String, Value>>) {
        match value {
            Value::Object(map) => {
                if map.contains_key("properties") {
                    found.push(map.clone());
                }
                map.values().for_each(|v| objects(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| objects(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_object_is_closed_and_requires_all_its_properties() {
        let mut found = Vec::new();
        objects(day_schema(), &mut found);
        assert!(found.len() >= 4, "day, meal, ingredient, nutrition");
        for obj in found {
            assert_eq!(obj["additionalProperties"], Value::Bool(false));
            let props: Vec<&String> = obj["properties"].as_object().unwrap().keys().collect();
            let required: Vec<&str> = obj["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(props.len(), required.len());
        }
    }

    #[test]
    fn fields_filled_in_locally_are_not_asked_of_the_model() {
        let mut found = Vec::new();
        objects(day_schema(), &mut found);
        let names: Vec<String> = found
            .iter()
            .flat_map(|o| o["properties"].as_object().unwrap().keys().cloned())
            .collect();
        for local in ["day_number", "date", "totals", "servings"] {
            assert!(
                !names.iter().any(|n| n == local),
                "{local} must not be asked for"
            );
        }
        assert!(names.iter().any(|n| n == "main_ingredient"));
        assert!(!day_schema().to_string().contains("\"format\""));
    }
}

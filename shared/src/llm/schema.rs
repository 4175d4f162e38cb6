//! The JSON Schema of one day (and of a whole menu, derived from it for the batch lane), derived from the Rust types and made acceptable to Structured
//! Outputs in strict mode (every property required, no additional properties, no `format`).
//! Descriptions go too: they are our doc comments, written for developers, and every call pays
//! for the schema's tokens; the rules the model needs are in the system prompt.
//! Written by hand because no maintained crate does this transformation; it is small.

use std::sync::LazyLock;

use serde_json::Value;

use domain::menu::Day;

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

/// The schema of a whole-menu answer, `{"days": [day, …]}`: the day's schema as the items of
/// one array, its `$defs` moved to the root so that every `#/$defs/…` reference still points
/// at them. Built once.
pub fn menu_schema() -> &'static Value {
    static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
        let mut day = day_schema().clone();
        let defs = day
            .as_object_mut()
            .and_then(|d| d.remove("$defs"))
            .unwrap_or_else(|| Value::Object(Default::default()));
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {"days": {"type": "array", "items": day}},
            "$defs": defs,
        });
        make_strict(&mut schema);
        schema
    });
    &SCHEMA
}

/// Applies the strict-mode rules to a schema and every schema inside it.
fn make_strict(value: &mut Value) {
    match value {
        Value::Object(schema) => {
            schema.remove("format");
            schema.remove("description");
            if let Some(Value::Object(props)) = schema.get("properties") {
                let names: Vec<Value> = props.keys().cloned().map(Value::String).collect();
                schema.insert("required".into(), Value::Array(names));
                schema.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, child) in schema.iter_mut() {
                match (key.as_str(), child) {
                    // Maps from names to schemas: their keys are names, not keywords.
                    ("properties" | "$defs", Value::Object(named)) => {
                        named.values_mut().for_each(make_strict);
                    }
                    (_, child) => make_strict(child),
                }
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
    fn the_menu_schema_is_a_list_of_days_with_every_reference_resolvable() {
        let menu = menu_schema();
        assert_eq!(menu["required"], serde_json::json!(["days"]));
        assert_eq!(menu["additionalProperties"], Value::Bool(false));
        let items = &menu["properties"]["days"]["items"];
        assert_eq!(items["properties"], day_schema()["properties"]);
        assert!(items.get("$defs").is_none());
        let text = menu.to_string();
        for reference in text.split("\"#/$defs/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(menu["$defs"].get(name).is_some(), "{name} must resolve");
        }
        let mut found = Vec::new();
        objects(menu, &mut found);
        assert!(found.iter().all(|o| o["additionalProperties"] == false));
    }

    #[test]
    fn a_property_named_like_a_keyword_survives() {
        let mut schema = serde_json::json!({
            "type": "object",
            "description": "dropped",
            "properties": {"description": {"type": "string", "format": "x"}}
        });
        make_strict(&mut schema);
        assert_eq!(
            schema,
            serde_json::json!({
                "type": "object",
                "properties": {"description": {"type": "string"}},
                "required": ["description"],
                "additionalProperties": false
            })
        );
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
        let text = day_schema().to_string();
        assert!(!text.contains("\"format\"") && !text.contains("\"description\""));
    }
}

//! Request input into typed values, every failure an [`ApiError`] that names the field at fault.
//!
//! Bodies are read as a JSON object first and typed second. That order lets a body hold keys of
//! its own (`client_id`, `auto_generate_weekly`) beside the menu options, which are read into a
//! type that denies unknown fields ([`WithMenuOptions`]), which serde's `flatten` cannot do.

use std::any::TypeId;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use domain::field_error::FieldError;
use domain::request::MenuOptions;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ArrayItems, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;

/// A request body that is a JSON object, sent as JSON and within the size limit.
#[derive(Debug)]
pub struct JsonObject(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes =
            Bytes::from_request(req, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::BodyTooLarge
                    } else {
                        ApiError::MalformedJson(rejection.body_text())
                    }
                })?;
        let mut parser = serde_json::Deserializer::from_slice(&bytes);
        let value = match serde_path_to_error::deserialize(&mut parser) {
            Ok(Unique(value)) => value,
            Err(e) if e.inner().to_string().starts_with(DUPLICATE_KEY) => {
                // The error is the object's, so its path ends before the repeated key.
                let message = e.inner().to_string();
                let key = message.split('`').nth(1).unwrap_or_default();
                let field = join(&join("", &e.path().to_string()), key);
                return Err(ApiError::MalformedJson(format!(
                    "{field} appears twice in its object: a key may appear once"
                )));
            }
            Err(e) => return Err(ApiError::MalformedJson(e.into_inner().to_string())),
        };
        parser
            .end()
            .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        if let Some(field) = unstorable_text(&value, "") {
            // Named with `\0` for the character, so the answer carries none.
            let field = match field.is_empty() {
                true => "body".to_string(),
                false => field.replace('\0', "\\0"),
            };
            return Err(ApiError::Validation(vec![FieldError::new(
                &field,
                "invalid_text",
                format!("{field} contains the NUL character (U+0000), which cannot be stored"),
            )]));
        }
        let mut value = value;
        integral_numbers(&mut value);
        match value {
            Value::Object(map) => Ok(JsonObject(map)),
            _ => Err(ApiError::InvalidType {
                field: None,
                detail: "the body must be a JSON object".into(),
            }),
        }
    }
}

/// Where in `value` (a path such as `dislikes[2]`, or `prefix` itself) text holds the NUL
/// character, the one character PostgreSQL's `text` and `jsonb` cannot store; `None` when
/// nowhere. Keys are text too.
fn unstorable_text(value: &Value, prefix: &str) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then(|| prefix.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| unstorable_text(item, &format!("{prefix}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let path = join(prefix, key);
            if key.contains('\0') {
                Some(path)
            } else {
                unstorable_text(item, &path)
            }
        }),
        _ => None,
    }
}

/// Writes every number with a zero fraction (`3.0`, `1e2`) as the integer it is. JSON Schema
/// holds them integers (`type: integer` accepts `3.0`), and so does every integer field here;
/// serde would refuse them as floats. A number too large for an `i64` stays as it is.
fn integral_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0)
                && f >= i64::MIN as f64
                && f < i64::MAX as f64
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Refuses a JSON array where `schema` (with `components` for its `$ref`s) says object. serde
/// reads a struct from an array of its fields in order as readily as from an object, which the
/// document does not allow: `"time_limits": [30, 45]` is a type error, as a validator of the
/// schema would say. Each branch of a `oneOf` is held to it: those here are an object or `null`.
fn objects_as_documented(
    value: &Value,
    schema: &RefOr<Schema>,
    components: &[(String, RefOr<Schema>)],
    path: &str,
) -> Result<(), ApiError> {
    let schema = match schema {
        RefOr::Ref(reference) => {
            let name = reference
                .ref_location
                .rsplit('/')
                .next()
                .unwrap_or_default();
            return match components.iter().find(|(n, _)| n == name) {
                Some((_, schema)) => objects_as_documented(value, schema, components, path),
                None => Ok(()),
            };
        }
        RefOr::T(schema) => schema,
    };
    match (schema, value) {
        (Schema::OneOf(one_of), _) => one_of
            .items
            .iter()
            .try_for_each(|item| objects_as_documented(value, item, components, path)),
        (Schema::Object(object), Value::Array(_))
            if object.schema_type == SchemaType::Type(Type::Object) =>
        {
            Err(ApiError::InvalidType {
                field: Some(path.to_string()).filter(|p| !p.is_empty()),
                detail: "an array, expected an object".into(),
            })
        }
        (Schema::Object(object), Value::Object(map)) => map.iter().try_for_each(|(key, item)| {
            object.properties.get(key).map_or(Ok(()), |property| {
                objects_as_documented(item, property, components, &join(path, key))
            })
        }),
        (Schema::Array(array), Value::Array(items)) => match &array.items {
            ArrayItems::RefOrSchema(item_schema) => {
                items.iter().enumerate().try_for_each(|(i, item)| {
                    let path = format!("{path}[{i}]");
                    objects_as_documented(item, item_schema, components, &path)
                })
            }
            ArrayItems::False => Ok(()),
        },
        _ => Ok(()),
    }
}

/// A body type's schema, the components it refers to and its property names: built once per
/// type, since building one walks every field's attributes, too much to redo per request.
struct Documented {
    schema: RefOr<Schema>,
    components: Vec<(String, RefOr<Schema>)>,
    properties: Vec<String>,
}

fn documented<T: ToSchema + 'static>() -> Arc<Documented> {
    static BUILT: LazyLock<Mutex<HashMap<TypeId, Arc<Documented>>>> =
        LazyLock::new(Default::default);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    built
        .entry(TypeId::of::<T>())
        .or_insert_with(|| {
            let mut components = Vec::new();
            T::schemas(&mut components);
            let schema = T::schema();
            let properties = match &schema {
                RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
                _ => Vec::new(),
            };
            Arc::new(Documented {
                schema,
                components,
                properties,
            })
        })
        .clone()
}

/// [`objects_as_documented`] for a body documented as `T`.
fn shaped_as<T: ToSchema + 'static>(body: &Map<String, Value>) -> Result<(), ApiError> {
    let documented = documented::<T>();
    let body = Value::Object(body.clone());
    objects_as_documented(&body, &documented.schema, &documented.components, "")
}

/// How [`Unique`]'s error begins.
const DUPLICATE_KEY: &str = "duplicate key";

/// A JSON value whose objects name each key once. serde_json keeps the last of repeated keys;
/// parsers that keep the first exist, and a body two of them read differently is a known
/// smuggling vector (RFC 8259 §4 leaves repeated names' meaning to the parser), so a repeat is
/// refused. Written by hand: serde_json has no such option.
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE_KEY} `{key}`")));
            }
            let Unique(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// `application/json`, or any `application/*+json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl JsonObject {
    /// Reads what is left of the object as `T`.
    pub fn into_typed<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        typed(Value::Object(self.0), "")
    }
}

/// One JSON object holding `MenuOptions`' keys and `K`'s side by side: the body of
/// `POST /v1/menus` and `PUT /v1/preferences`, and how `GET /v1/preferences` writes the profile.
///
/// Read by splitting the object by the property names of `K`'s own schema: those are read as
/// `K`, the rest as `MenuOptions` (which refuses unknown keys), so the split and the document
/// come from one source. Neither serde's `flatten` (which cannot deny unknown fields) nor
/// OpenAPI's `allOf` (which holds each part to its own schema, refusing the other's keys) can
/// say this, so the schema is `MenuOptions`' object with `K`'s properties added, under `K`'s
/// name. Errors are those of [`JsonObject`], with the field's path from the body's root.
#[derive(Debug, Serialize)]
pub struct WithMenuOptions<K> {
    #[serde(flatten)]
    pub keys: K,
    #[serde(flatten)]
    pub options: MenuOptions,
}

impl<S: Send + Sync, K: ToSchema + DeserializeOwned + 'static> FromRequest<S>
    for WithMenuOptions<K>
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        JsonObject::from_request(req, state).await?.split()
    }
}

impl JsonObject {
    /// Splits the object into `K` (the keys its schema names) and `MenuOptions` (the rest).
    pub fn split<K: ToSchema + DeserializeOwned + 'static>(
        mut self,
    ) -> Result<WithMenuOptions<K>, ApiError> {
        shaped_as::<WithMenuOptions<K>>(&self.0)?;
        let own: Map<String, Value> = documented::<K>()
            .properties
            .iter()
            .filter_map(|name| self.0.remove_entry(name))
            .collect();
        let keys = typed(Value::Object(own), "")?;
        Ok(WithMenuOptions {
            keys,
            options: self.into_typed()?,
        })
    }
}

impl<K: ToSchema> PartialSchema for WithMenuOptions<K> {
    fn schema() -> RefOr<Schema> {
        let (RefOr::T(Schema::Object(mut object)), RefOr::T(Schema::Object(keys))) =
            (MenuOptions::schema(), K::schema())
        else {
            unreachable!("MenuOptions and the key structs derive object schemas")
        };
        object.properties.extend(keys.properties);
        object.required.extend(keys.required);
        object.description = keys.description;
        object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        RefOr::T(Schema::Object(object))
    }
}

impl<K: ToSchema> ToSchema for WithMenuOptions<K> {
    fn name() -> Cow<'static, str> {
        K::name()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        MenuOptions::schemas(schemas);
        K::schemas(schemas);
    }
}

/// A JSON object body read straight into `T`, held to `T`'s schema where serde is laxer.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + ToSchema + 'static> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = JsonObject::from_request(req, state).await?;
        shaped_as::<T>(&body.0)?;
        body.into_typed().map(JsonBody)
    }
}

/// Reads `value` as `T`; `prefix` is where `value` sits in the body, for the error's path.
fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = join(prefix, &e.path().to_string());
        classify(&path, &e.into_inner().to_string())
    })
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix, path) {
        (p, ".") | (p, "") => p.to_string(),
        ("", path) => path.to_string(),
        (p, path) if path.starts_with('[') => format!("{p}{path}"),
        (p, path) => format!("{p}.{path}"),
    }
}

/// Sorts serde's error into our codes. serde words these errors itself (`de::Error`'s provided
/// methods), so their prefixes are stable; anything else is a value the type refused.
fn classify(path: &str, message: &str) -> ApiError {
    let quoted = |rest: &str| rest.split('`').next().unwrap_or_default().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // The path already ends at the unknown key.
        let field = if path.is_empty() {
            quoted(rest)
        } else {
            path.to_string()
        };
        ApiError::UnknownField { field }
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        ApiError::MissingField {
            field: join(path, &quoted(rest)),
        }
    } else if let Some(detail) = message.strip_prefix("invalid type: ") {
        ApiError::InvalidType {
            field: Some(path.to_string()).filter(|p| !p.is_empty()),
            detail: detail.to_string(),
        }
    } else {
        let field = if path.is_empty() { "body" } else { path };
        ApiError::Validation(vec![FieldError::new(
            field,
            "invalid_value",
            format!("{field}: {message}"),
        )])
    }
}

/// The `{id}` segment of a path. An id that is not a UUID names nothing: 404, like an id that
/// exists but is not the caller's.
#[derive(Debug, Clone, Copy)]
pub struct Id(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<Uuid>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Id(id))
            .map_err(|_| ApiError::NotFound("resource"))
    }
}

/// The query string's parameters, read one by one with their own checks.
#[derive(Debug)]
pub struct QueryParams(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(map) =
            axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
                .map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
        // `%00` decodes to the NUL character, which no query can carry to PostgreSQL.
        if let Some(name) = map
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
            .map(|(name, _)| name.replace('\0', "\\0"))
        {
            return Err(ApiError::Validation(vec![FieldError::new(
                &name,
                "invalid_text",
                format!("{name} contains the NUL character (U+0000), which cannot be stored"),
            )]));
        }
        Ok(QueryParams(map))
    }
}

/// A query string read into one type per operation: the type the handler takes is the one its
/// `#[utoipa::path]` lists in `params(…)` (it derives `IntoParams`), so what the document says of
/// the parameters and what the server checks are written together.
pub trait FromQuery: Sized {
    /// Reads and checks the parameters; the error names the parameter at fault.
    fn from_query(params: &QueryParams) -> Result<Self, ApiError>;
}

/// A query string read as `T` (see [`FromQuery`]), after [`QueryParams`]' own checks.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: FromQuery> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = QueryParams::from_request_parts(parts, state).await?;
        T::from_query(&params).map(Query)
    }
}

impl QueryParams {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameter's text; present but empty is refused (`invalid_value`), for parameters
    /// whose documented schema has no empty value.
    pub fn non_empty(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.text(name) {
            Some("") => Err(ApiError::Validation(vec![FieldError::new(
                name,
                "invalid_value",
                format!("{name} must not be empty: leave it out instead"),
            )])),
            text => Ok(text),
        }
    }

    /// `true` or `false`; absent is `false`.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::Validation(vec![FieldError::new(
                name,
                "invalid_value",
                format!("{name} must be true or false"),
            )])),
        }
    }

    /// An integer within `lo..=hi`, or `default` when absent.
    pub fn int(&self, name: &str, (lo, hi): (i64, i64), default: i64) -> Result<i64, ApiError> {
        let Some(raw) = self.text(name) else {
            return Ok(default);
        };
        let value: i64 = raw.parse().map_err(|_| ApiError::InvalidType {
            field: Some(name.to_string()),
            detail: format!("{name} must be an integer, got {raw:?}"),
        })?;
        if !(lo..=hi).contains(&value) {
            return Err(ApiError::Validation(vec![FieldError::new(
                name,
                "out_of_range",
                format!("{name} must be between {lo} and {hi}, got {value}"),
            )]));
        }
        Ok(value)
    }

    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.text(name)
            .map(|raw| {
                raw.parse().map_err(|_| ApiError::InvalidType {
                    field: Some(name.to_string()),
                    detail: format!("{name} must be a UUID"),
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use domain::request::MenuOptions;
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => JsonObject(map),
            _ => unreachable!("tests pass objects"),
        }
    }

    fn options_error(value: Value) -> ApiError {
        object(value).into_typed::<MenuOptions>().unwrap_err()
    }

    #[test]
    fn an_unknown_field_is_named_with_its_path() {
        match options_error(json!({"days": 3, "for_client_id": "x"})) {
            ApiError::UnknownField { field } => assert_eq!(field, "for_client_id"),
            other => panic!("{other:?}"),
        }
        match options_error(json!({"macros": {"protein": 40, "carbs": 30, "fat": 30, "fibre": 1}}))
        {
            ApiError::UnknownField { field } => assert_eq!(field, "macros.fibre"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_is_named_with_its_path() {
        match options_error(json!({"days": "seven"})) {
            ApiError::InvalidType { field, .. } => assert_eq!(field.as_deref(), Some("days")),
            other => panic!("{other:?}"),
        }
        match options_error(json!({"macros": {"protein": "x", "carbs": 30, "fat": 30}})) {
            ApiError::InvalidType { field, .. } => {
                assert_eq!(field.as_deref(), Some("macros.protein"))
            }
            other => panic!("{other:?}"),
        }
        match options_error(json!({"meal_times": ["lunch", 3]})) {
            ApiError::InvalidType { field, .. } => {
                assert_eq!(field.as_deref(), Some("meal_times[1]"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_nested_field_is_named_with_its_path() {
        match options_error(json!({"macros": {"protein": 40, "carbs": 60}})) {
            ApiError::MissingField { field } => assert_eq!(field, "macros.fat"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_variant_is_a_validation_error_on_its_field() {
        match options_error(json!({"diet_type": "carnivore"})) {
            ApiError::Validation(errors) => assert_eq!(errors[0].field, "diet_type"),
            other => panic!("{other:?}"),
        }
    }

    /// Keys beside the menu options, as a handler's would be.
    #[derive(Debug, serde::Deserialize, ToSchema)]
    struct Beside {
        client_id: Option<Uuid>,
        #[serde(default)]
        flag: bool,
    }

    #[test]
    fn a_split_body_reports_errors_under_each_key_s_own_name() {
        match object(json!({"client_id": 12}))
            .split::<Beside>()
            .unwrap_err()
        {
            ApiError::InvalidType { field, .. } => assert_eq!(field.as_deref(), Some("client_id")),
            other => panic!("{other:?}"),
        }
        match object(json!({"flag": true, "days": "x"}))
            .split::<Beside>()
            .unwrap_err()
        {
            ApiError::InvalidType { field, .. } => assert_eq!(field.as_deref(), Some("days")),
            other => panic!("{other:?}"),
        }
        match object(json!({"flag": true, "clientid": 1}))
            .split::<Beside>()
            .unwrap_err()
        {
            ApiError::UnknownField { field } => assert_eq!(field, "clientid"),
            other => panic!("{other:?}"),
        }
        let body = object(json!({"client_id": null, "flag": true, "days": 2}))
            .split::<Beside>()
            .unwrap();
        assert_eq!((body.keys.client_id, body.keys.flag), (None, true));
        assert_eq!(body.options.days, Some(2));
    }

    #[test]
    fn an_array_where_the_schema_says_object_is_a_type_error() {
        for (body, at) in [
            (json!({"time_limits": [30, 45]}), "time_limits"),
            (json!({"macros": [40, 30, 30]}), "macros"),
        ] {
            match object(body.clone()).split::<Beside>().unwrap_err() {
                ApiError::InvalidType { field, .. } => assert_eq!(field.as_deref(), Some(at)),
                other => panic!("{body}: {other:?}"),
            }
        }
        // An object, `null`, and arrays where the schema says array, are read.
        let body = json!({"time_limits": {"weekday_minutes": 30}, "macros": null, "cuisines": []});
        assert!(object(body).split::<Beside>().is_ok());
    }

    #[test]
    fn numbers_with_a_zero_fraction_are_integers() {
        let mut value = json!({"days": 3.0, "nested": [1e2, 2.5, -4.0], "big": 1e300});
        integral_numbers(&mut value);
        assert_eq!(
            value,
            json!({"days": 3, "nested": [100, 2.5, -4], "big": 1e300})
        );
        let mut value = json!({"days": 3.0});
        integral_numbers(&mut value);
        assert_eq!(
            object(value).into_typed::<MenuOptions>().unwrap().days,
            Some(3)
        );
    }

    #[test]
    fn a_split_body_is_documented_as_one_object_of_both_parts() {
        let schema = serde_json::to_value(WithMenuOptions::<Beside>::schema()).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        assert!(properties.contains_key("client_id") && properties.contains_key("flag"));
        assert!(properties.contains_key("days") && properties.contains_key("time_limits"));
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            documented::<Beside>().properties,
            ["client_id".to_string(), "flag".to_string()]
        );
    }

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_suffixes() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn query_integers_are_range_checked() {
        let params = QueryParams(HashMap::from([
            ("wait".to_string(), "30".to_string()),
            ("limit".to_string(), "x".to_string()),
        ]));
        assert!(matches!(
            params.int("wait", (0, 25), 0),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            params.int("limit", (1, 100), 20),
            Err(ApiError::InvalidType { .. })
        ));
        assert_eq!(params.int("absent", (1, 100), 20).unwrap(), 20);
    }
}

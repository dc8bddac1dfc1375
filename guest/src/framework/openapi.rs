//! OpenAPI 3.0.2 documents for a backend's paths, in the shape Vault merges into
//! `sys/internal/specs/openapi`.
//!
//! Each operation id is the backend's prefix, the operation's verb and the path's suffix in
//! kebab case (`kong-read-consumer`), so ids stay stable when wording changes. Writes take a
//! JSON request body whose schema sits under `components.schemas` with the id in Pascal case
//! plus `Request` (`KongWriteConsumerRequest`). Path segments that the pattern captures are
//! path parameters. A `list` is a `get` with the query parameter `list=true`, as in Vault.

use serde_json::{json, Map, Value};

use super::field::{Field, FieldType};
use super::request::Operation;
use super::router::{Backend, OperationHandler, Path};

/// The version of the OpenAPI specification these documents follow.
pub const OPENAPI_VERSION: &str = "3.0.2";

/// Builds the document for `paths` of `backend`.
pub fn document<'a, C: 'a>(
    backend: &Backend<C>,
    paths: impl Iterator<Item = &'a Path<C>>,
) -> Value {
    let mut path_items = Map::new();
    let mut schemas = Map::new();
    for path in paths {
        path_items.insert(
            path.pattern.openapi_path(),
            path_item(backend.operation_prefix, path, &mut schemas),
        );
    }

    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": backend.title,
            "description": backend.synopsis,
            "version": env!("CARGO_PKG_VERSION"),
            "license": {
                "name": "Apache-2.0",
                "url": "https://www.apache.org/licenses/LICENSE-2.0",
            },
        },
        "paths": path_items,
        "components": { "schemas": schemas },
    })
}

/// Builds the kebab-case operation id, such as `kong-read-consumer`.
pub fn operation_id(prefix: &str, verb: &str, suffix: &str) -> String {
    [prefix, verb, suffix]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("-")
}

fn path_item<C>(prefix: &str, path: &Path<C>, schemas: &mut Map<String, Value>) -> Value {
    let params: Vec<&str> = path.pattern.params().collect();
    let parameters: Vec<Value> = params
        .iter()
        .map(|name| {
            let field = path.fields.iter().find(|field| field.name == *name);
            json!({
                "name": name,
                "description": field.map(|field| field.description).unwrap_or_default(),
                "in": "path",
                "schema": { "type": "string" },
                "required": true,
            })
        })
        .collect();
    let body_fields: Vec<&Field> = path
        .fields
        .iter()
        .filter(|field| !params.contains(&field.name))
        .collect();

    let mut item = Map::new();
    item.insert("description".into(), Value::from(path.synopsis));
    if !parameters.is_empty() {
        item.insert("parameters".into(), Value::from(parameters));
    }
    if path.existence_check.is_some() {
        item.insert("x-vault-createSupported".into(), Value::Bool(true));
    }

    for handler in &path.operations {
        let Some(method) = http_method(handler.operation) else {
            continue;
        };
        // Create and update share one `post`; the first one listed names it.
        if item.contains_key(method) {
            continue;
        }
        let id = operation_id(prefix, handler.verb, path.operation_suffix);
        let operation = operation(handler, &id, &body_fields, schemas);
        item.insert(method.into(), operation);
    }
    Value::Object(item)
}

fn http_method(operation: Operation) -> Option<&'static str> {
    match operation {
        Operation::Read | Operation::List => Some("get"),
        Operation::Create | Operation::Update => Some("post"),
        Operation::Patch => Some("patch"),
        Operation::Delete => Some("delete"),
        _ => None,
    }
}

fn operation<C>(
    handler: &OperationHandler<C>,
    id: &str,
    body_fields: &[&Field],
    schemas: &mut Map<String, Value>,
) -> Value {
    let mut operation = Map::new();
    operation.insert("summary".into(), Value::from(handler.summary));
    operation.insert("operationId".into(), Value::from(id));
    operation.insert("tags".into(), json!(["secrets"]));

    match handler.operation {
        Operation::List => {
            operation.insert(
                "parameters".into(),
                json!([{
                    "name": "list",
                    "description": "Must be set to `true`",
                    "in": "query",
                    "schema": { "type": "string", "enum": ["true"] },
                    "required": true,
                }]),
            );
        }
        Operation::Create | Operation::Update | Operation::Patch if !body_fields.is_empty() => {
            let schema_name = format!("{}Request", pascal_case(id));
            schemas.insert(schema_name.clone(), request_schema(body_fields));
            let content_type = if handler.operation == Operation::Patch {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            operation.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": {
                        content_type: {
                            "schema": { "$ref": format!("#/components/schemas/{schema_name}") },
                        },
                    },
                }),
            );
        }
        _ => {}
    }

    let responses = match handler.operation {
        Operation::Delete => json!({ "204": { "description": "empty body" } }),
        _ => json!({ "200": { "description": "OK" } }),
    };
    operation.insert("responses".into(), responses);
    Value::Object(operation)
}

fn request_schema(fields: &[&Field]) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|field| (field.name.to_string(), property(field)))
        .collect();
    json!({ "type": "object", "properties": properties })
}

fn property(field: &Field) -> Value {
    let mut property = match field.kind {
        FieldType::String => json!({ "type": "string" }),
        FieldType::Int => json!({ "type": "integer" }),
        FieldType::Bool => json!({ "type": "boolean" }),
        FieldType::Duration => json!({ "type": "string", "format": "duration" }),
        FieldType::CommaStringList => json!({ "type": "array", "items": { "type": "string" } }),
        FieldType::Map => json!({ "type": "object" }),
    };
    let object = property.as_object_mut().expect("property is an object");
    object.insert("description".into(), Value::from(field.description));
    if let Some(default) = &field.default {
        object.insert("default".into(), default.to_json());
    }
    if field.sensitive {
        object.insert("x-vault-displayAttrs".into(), json!({ "sensitive": true }));
    }
    property
}

/// `kong-write-consumer` → `KongWriteConsumer`.
fn pascal_case(id: &str) -> String {
    id.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::error::Error;
    use crate::framework::field::{FieldData, FieldValue};
    use crate::framework::request::{Request, Response};

    fn noop(_: &(), _: &Request, _: &FieldData) -> Result<Option<Response>, Error> {
        Ok(None)
    }

    fn check(_: &(), _: &Request, _: &FieldData) -> Result<bool, Error> {
        Ok(true)
    }

    fn backend() -> Backend<()> {
        Backend {
            operation_prefix: "kong",
            title: "Kong secrets engine",
            synopsis: "Issues things.",
            description: "Things.",
            paths: vec![
                Path::new("things/", "things", "Lists things.", "Lists.").operation(
                    Operation::List,
                    "list",
                    "List things.",
                    noop,
                ),
                Path::new("things/{name+}", "thing", "Manages a thing.", "Manages.")
                    .field(Field::new("name", FieldType::String, "Name of the thing."))
                    .field(
                        Field::new("ttl", FieldType::Duration, "Lease TTL.")
                            .with_default(FieldValue::Duration(0)),
                    )
                    .field(Field::new("token", FieldType::String, "A token.").sensitive())
                    .operation(Operation::Read, "read", "Read a thing.", noop)
                    .operation(Operation::Create, "write", "Write a thing.", noop)
                    .operation(Operation::Update, "write", "Write a thing.", noop)
                    .operation(Operation::Delete, "delete", "Delete a thing.", noop)
                    .existence_check(check),
            ],
            secret_types: Vec::new(),
        }
    }

    #[test]
    fn openapi_document_shape() {
        let backend = backend();
        let document = document(&backend, backend.paths.iter());

        assert_eq!(document["openapi"], "3.0.2");
        assert_eq!(document["info"]["title"], "Kong secrets engine");

        let list = &document["paths"]["/things/"]["get"];
        assert_eq!(list["operationId"], "kong-list-things", "list: {list}");
        assert_eq!(list["parameters"][0]["name"], "list", "list: {list}");

        let item = &document["paths"]["/things/{name}"];
        assert_eq!(item["parameters"][0]["in"], "path", "item: {item}");
        assert_eq!(item["x-vault-createSupported"], true, "item: {item}");
        assert_eq!(
            item["get"]["operationId"], "kong-read-thing",
            "item: {item}"
        );
        assert_eq!(
            item["post"]["operationId"], "kong-write-thing",
            "item: {item}"
        );
        assert_eq!(
            item["delete"]["operationId"], "kong-delete-thing",
            "item: {item}"
        );
        assert_eq!(
            item["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/KongWriteThingRequest",
            "item: {item}"
        );
    }

    #[test]
    fn openapi_request_schema_fields() {
        let backend = backend();
        let document = document(&backend, backend.paths.iter());
        let schema = &document["components"]["schemas"]["KongWriteThingRequest"];

        assert_eq!(
            schema["properties"]["ttl"],
            json!({"type": "string", "format": "duration", "description": "Lease TTL.", "default": 0})
        );
        assert_eq!(
            schema["properties"]["token"]["x-vault-displayAttrs"],
            json!({"sensitive": true}),
            "schema: {schema}"
        );
        assert!(
            schema["properties"].get("name").is_none(),
            "path parameter in body: {schema}"
        );
    }

    #[test]
    fn operation_id_and_pascal_case() {
        assert_eq!(
            operation_id("kong", "generate", "credentials"),
            "kong-generate-credentials"
        );
        assert_eq!(
            pascal_case("kong-write-access-configuration"),
            "KongWriteAccessConfiguration"
        );
    }
}

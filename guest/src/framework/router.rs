//! The backend: its paths, their operations, and the routing of each request to a handler.
//!
//! Routing rules, in order:
//! - `rollback` succeeds with no response on any path (this backend keeps no write-ahead log);
//! - `renew` and `revoke` go to the secret type named in the lease's internal data;
//! - `help` on the empty path returns the whole backend's help, on a known path that path's;
//! - any other operation goes to the first path whose pattern matches, and then to that path's
//!   handler for the operation. No matching path is `unsupported-path`; a path without the
//!   operation is `unsupported-operation`.
//!
//! The request's fields are parsed against the path's schema before the handler runs, so a
//! bad value is a 400 that names it. On writes, names that the schema does not know come back
//! as a warning instead of failing the request, as in Vault's Go framework.

use super::error::Error;
use super::field::{Field, FieldData};
use super::help;
use super::path::{Captures, PathPattern};
use super::request::{Operation, Request, Response};
use super::secret::{self, SecretType};

/// Handles one operation on a path.
pub type Handler<C> = fn(&C, &Request, &FieldData) -> Result<Option<Response>, Error>;

/// Tells whether a write's target exists. It must not change anything.
pub type ExistenceCheck<C> = fn(&C, &Request, &FieldData) -> Result<bool, Error>;

/// One operation a path supports.
pub struct OperationHandler<C> {
    pub operation: Operation,
    pub handler: Handler<C>,
    /// The verb of the OpenAPI operation id, such as `read`, `write` or `generate`.
    pub verb: &'static str,
    /// One line for the OpenAPI summary.
    pub summary: &'static str,
}

/// One path of the backend: its pattern, schema, operations and help.
pub struct Path<C> {
    pub pattern: PathPattern,
    pub fields: Vec<Field>,
    pub operations: Vec<OperationHandler<C>>,
    pub existence_check: Option<ExistenceCheck<C>>,
    /// One sentence starting with a verb.
    pub synopsis: &'static str,
    /// Two to four short paragraphs.
    pub description: &'static str,
    /// The suffix of the OpenAPI operation ids, such as `consumer`.
    pub operation_suffix: &'static str,
    /// Related paths, shown in help.
    pub see_also: Vec<&'static str>,
}

impl<C> Path<C> {
    /// Starts a path with no fields and no operations.
    pub fn new(
        pattern: &'static str,
        operation_suffix: &'static str,
        synopsis: &'static str,
        description: &'static str,
    ) -> Self {
        Self {
            pattern: PathPattern::parse(pattern),
            fields: Vec::new(),
            operations: Vec::new(),
            existence_check: None,
            synopsis,
            description,
            operation_suffix,
            see_also: Vec::new(),
        }
    }

    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    pub fn operation(
        mut self,
        operation: Operation,
        verb: &'static str,
        summary: &'static str,
        handler: Handler<C>,
    ) -> Self {
        self.operations.push(OperationHandler {
            operation,
            handler,
            verb,
            summary,
        });
        self
    }

    pub fn existence_check(mut self, check: ExistenceCheck<C>) -> Self {
        self.existence_check = Some(check);
        self
    }

    pub fn see_also(mut self, path: &'static str) -> Self {
        self.see_also.push(path);
        self
    }

    /// The handler for `operation`, if the path supports it.
    pub fn handler(&self, operation: Operation) -> Option<&OperationHandler<C>> {
        self.operations
            .iter()
            .find(|candidate| candidate.operation == operation)
    }
}

/// The result of an existence check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Existence {
    /// False when the path has no existence check; Vault then treats a write as `update`.
    pub check_found: bool,
    /// Whether the target exists (`update`) or not (`create`).
    pub exists: bool,
}

/// A whole backend.
pub struct Backend<C> {
    /// The first word of every OpenAPI operation id, such as `kong`.
    pub operation_prefix: &'static str,
    /// The title of the OpenAPI document.
    pub title: &'static str,
    /// One sentence starting with a verb.
    pub synopsis: &'static str,
    /// The backend's purpose and the configuration to write first.
    pub description: &'static str,
    pub paths: Vec<Path<C>>,
    pub secret_types: Vec<SecretType<C>>,
}

impl<C> Backend<C> {
    /// Handles one request; see the module docs for the routing rules.
    pub fn handle_request(
        &self,
        context: &C,
        request: &Request,
    ) -> Result<Option<Response>, Error> {
        match request.operation {
            Operation::Rollback => return Ok(None),
            Operation::Renew | Operation::Revoke => {
                return secret::dispatch(&self.secret_types, context, request)
            }
            Operation::Help => return help::respond(self, &request.path).map(Some),
            _ => {}
        }

        let (path, captures) = self.route(&request.path).ok_or(Error::UnsupportedPath)?;
        let handler = path
            .handler(request.operation)
            .ok_or(Error::UnsupportedOperation)?;
        let fields = FieldData::parse(&path.fields, &request.data, &captures)?;

        let mut response = (handler.handler)(context, request, &fields)?;

        let is_write = matches!(
            request.operation,
            Operation::Create | Operation::Update | Operation::Patch
        );
        if is_write && !fields.unknown().is_empty() {
            let warning = format!(
                "ignored fields that {} does not take: {}",
                path.pattern,
                fields.unknown().join(", ")
            );
            response
                .get_or_insert_with(Response::default)
                .warnings
                .push(warning);
        }
        Ok(response)
    }

    /// Tells Vault whether a create or update request's target exists.
    pub fn handle_existence_check(
        &self,
        context: &C,
        request: &Request,
    ) -> Result<Existence, Error> {
        let (path, captures) = self.route(&request.path).ok_or(Error::UnsupportedPath)?;
        let Some(check) = path.existence_check else {
            return Ok(Existence {
                check_found: false,
                exists: false,
            });
        };

        let fields = FieldData::parse(&path.fields, &request.data, &captures)?;
        let exists = check(context, request, &fields)?;
        Ok(Existence {
            check_found: true,
            exists,
        })
    }

    /// Finds the first path whose pattern matches `path`, with its captures.
    pub fn route(&self, path: &str) -> Option<(&Path<C>, Captures)> {
        self.paths.iter().find_map(|candidate| {
            candidate
                .pattern
                .matches(path)
                .map(|captures| (candidate, captures))
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::field::FieldType;

    struct Context;

    fn read(_: &Context, _: &Request, fields: &FieldData) -> Result<Option<Response>, Error> {
        Ok(Some(Response::data(json!({"name": fields.string("name")}))))
    }

    fn write(_: &Context, _: &Request, _: &FieldData) -> Result<Option<Response>, Error> {
        Ok(None)
    }

    fn exists(_: &Context, _: &Request, fields: &FieldData) -> Result<bool, Error> {
        Ok(fields.string("name") == Some("present"))
    }

    fn backend() -> Backend<Context> {
        Backend {
            operation_prefix: "test",
            title: "Test backend",
            synopsis: "Tests the router.",
            description: "A backend for tests.",
            paths: vec![
                Path::new("items/{name+}", "item", "Manages items.", "Items.")
                    .field(Field::new("name", FieldType::String, "The item name."))
                    .field(Field::new("size", FieldType::Int, "The item size."))
                    .operation(Operation::Read, "read", "Read an item.", read)
                    .operation(Operation::Update, "write", "Write an item.", write)
                    .existence_check(exists),
                Path::new("plain", "plain", "Has no check.", "Plain.").operation(
                    Operation::Update,
                    "write",
                    "Write.",
                    write,
                ),
            ],
            secret_types: Vec::new(),
        }
    }

    #[test]
    fn route_passes_captures_to_handler() {
        let response = backend()
            .handle_request(&Context, &Request::new(Operation::Read, "items/a/b c"))
            .unwrap();
        assert_eq!(response, Some(Response::data(json!({"name": "a/b c"}))));
    }

    #[test]
    fn route_unknown_path_and_operation() {
        let backend = backend();
        let cases = [
            (
                Request::new(Operation::Read, "nothing"),
                Error::UnsupportedPath,
            ),
            (Request::new(Operation::Read, ""), Error::UnsupportedPath),
            (
                Request::new(Operation::Delete, "items/a"),
                Error::UnsupportedOperation,
            ),
            (
                Request::new(Operation::List, "items/"),
                Error::UnsupportedPath,
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(
                backend.handle_request(&Context, &request),
                Err(expected),
                "{} {}",
                request.operation.name(),
                request.path
            );
        }
    }

    #[test]
    fn route_rejects_bad_field_value() {
        let request = Request::new(Operation::Update, "items/a").with_data(json!({"size": "big"}));
        assert_eq!(
            backend().handle_request(&Context, &request),
            Err(Error::bad_request(
                "invalid size: \"big\" is not a whole number"
            ))
        );
    }

    #[test]
    fn route_warns_about_unknown_fields() {
        let request = Request::new(Operation::Update, "items/a")
            .with_data(json!({"size": 1, "colour": "red"}));
        let response = backend().handle_request(&Context, &request).unwrap();
        assert_eq!(
            response.map(|response| response.warnings),
            Some(vec![
                "ignored fields that items/{name+} does not take: colour".to_string()
            ])
        );
    }

    #[test]
    fn route_rollback_is_a_no_op() {
        for path in ["", "items/a", "unknown"] {
            assert_eq!(
                backend().handle_request(&Context, &Request::new(Operation::Rollback, path)),
                Ok(None),
                "rollback on {path:?}"
            );
        }
    }

    #[test]
    fn existence_check_table() {
        let backend = backend();
        let cases = [
            (
                "items/present",
                Ok(Existence {
                    check_found: true,
                    exists: true,
                }),
            ),
            (
                "items/absent",
                Ok(Existence {
                    check_found: true,
                    exists: false,
                }),
            ),
            (
                "plain",
                Ok(Existence {
                    check_found: false,
                    exists: false,
                }),
            ),
            ("nothing", Err(Error::UnsupportedPath)),
        ];
        for (path, expected) in cases {
            assert_eq!(
                backend.handle_existence_check(&Context, &Request::new(Operation::Update, path)),
                expected,
                "existence of {path:?}"
            );
        }
    }
}

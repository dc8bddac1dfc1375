//! Help text for `vault path-help`: one page per path and one for the whole backend.
//!
//! Vault returns a help response's data verbatim. Its `help` key is the text the CLI prints,
//! `see_also` lists related paths and `openapi` is an OpenAPI 3.0.2 document for the same
//! scope. `vault path-help` on the mount root, and Vault's `sys/internal/specs/openapi`, ask the
//! empty path, so root help always returns a document.

use std::fmt::Write as _;

use serde_json::json;

use super::error::Error;
use super::openapi;
use super::request::Response;
use super::router::{Backend, Path};

/// Builds the response to `help` on `path`: the backend's page for the empty path, the matching path's page
/// otherwise, and `unsupported-path` when no path matches.
pub fn respond<C>(backend: &Backend<C>, path: &str) -> Result<Response, Error> {
    if path.is_empty() {
        return Ok(Response::data(json!({
            "help": backend_text(backend),
            "see_also": [],
            "openapi": openapi::document(backend, backend.paths.iter()),
        })));
    }

    let (matched, _) = backend.route(path).ok_or(Error::UnsupportedPath)?;
    Ok(Response::data(json!({
        "help": path_text(matched, path),
        "see_also": matched.see_also,
        "openapi": openapi::document(backend, std::iter::once(matched)),
    })))
}

/// Writes the help page of the whole backend: its description and every path with its synopsis.
pub fn backend_text<C>(backend: &Backend<C>) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{}\n", backend.synopsis);
    let _ = writeln!(
        text,
        "## DESCRIPTION\n\n{}\n",
        backend.description.trim_end()
    );
    let _ = writeln!(text, "## PATHS\n");
    let _ = writeln!(
        text,
        "Run `vault path-help` on any path below for its parameters and behaviour.\n"
    );
    for path in &backend.paths {
        let _ = writeln!(text, "    {}\n        {}\n", path.pattern, path.synopsis);
    }
    text
}

/// Writes the help page of one path, as requested through `request_path`.
pub fn path_text<C>(path: &Path<C>, request_path: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Request:        {request_path}");
    let _ = writeln!(text, "Matching Route: {}\n", path.pattern);
    let _ = writeln!(text, "{}\n", path.synopsis);

    if !path.fields.is_empty() {
        let _ = writeln!(text, "## PARAMETERS\n");
        for field in &path.fields {
            let _ = writeln!(text, "    {} ({})\n", field.name, field.kind.name());
            let _ = writeln!(text, "        {}", field.description);
            if let Some(default) = &field.default {
                let _ = writeln!(text, "        Default: {}", default.to_json());
            }
            if field.sensitive {
                let _ = writeln!(text, "        Sensitive: never returned on read.");
            }
            text.push('\n');
        }
    }

    let operations: Vec<&str> = path
        .operations
        .iter()
        .map(|op| op.operation.name())
        .collect();
    let _ = writeln!(text, "## OPERATIONS\n\n    {}\n", operations.join(", "));
    let _ = writeln!(text, "## DESCRIPTION\n\n{}", path.description.trim_end());
    text
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::framework::field::FieldData;
    use crate::framework::field::{Field, FieldType, FieldValue};
    use crate::framework::request::{Operation, Request};
    use crate::framework::router::Path;

    fn noop(_: &(), _: &Request, _: &FieldData) -> Result<Option<Response>, Error> {
        Ok(None)
    }

    fn backend() -> Backend<()> {
        Backend {
            operation_prefix: "test",
            title: "Test backend",
            synopsis: "Tests help.",
            description: "A backend for tests.",
            paths: vec![Path::new(
                "things/{name}",
                "thing",
                "Manages things.",
                "Things are kept.",
            )
            .field(Field::new("name", FieldType::String, "Name of the thing."))
            .field(Field::new("secret", FieldType::String, "A secret value.").sensitive())
            .field(
                Field::new("ttl", FieldType::Duration, "Lease TTL.")
                    .with_default(FieldValue::Duration(60)),
            )
            .operation(Operation::Read, "read", "Read a thing.", noop)
            .see_also("other")],
            secret_types: Vec::new(),
        }
    }

    fn data(response: &Response) -> &serde_json::Map<String, Value> {
        response.data.as_ref().expect("help has data")
    }

    #[test]
    fn help_root_lists_paths() {
        let response = respond(&backend(), "").unwrap();
        let help = data(&response)["help"].as_str().unwrap();
        assert!(
            help.contains("    things/{name}\n        Manages things.\n"),
            "root help: {help}"
        );
        assert!(help.starts_with("Tests help.\n"), "root help: {help}");
        assert!(
            data(&response)["openapi"]["paths"]["/things/{name}"].is_object(),
            "{response:?}"
        );
    }

    #[test]
    fn help_path_has_fields_and_description() {
        let response = respond(&backend(), "things/box").unwrap();
        let expected = "Request:        things/box\n\
                        Matching Route: things/{name}\n\n\
                        Manages things.\n\n\
                        ## PARAMETERS\n\n\
                        \x20   name (string)\n\n\
                        \x20       Name of the thing.\n\n\
                        \x20   secret (string)\n\n\
                        \x20       A secret value.\n\
                        \x20       Sensitive: never returned on read.\n\n\
                        \x20   ttl (duration (seconds))\n\n\
                        \x20       Lease TTL.\n\
                        \x20       Default: 60\n\n\
                        ## OPERATIONS\n\n\
                        \x20   read\n\n\
                        ## DESCRIPTION\n\n\
                        Things are kept.\n";
        assert_eq!(data(&response)["help"], expected);
        assert_eq!(data(&response)["see_also"], serde_json::json!(["other"]));
    }

    #[test]
    fn help_unknown_path_is_unsupported() {
        assert_eq!(
            respond(&backend(), "nothing/here"),
            Err(Error::UnsupportedPath)
        );
    }
}

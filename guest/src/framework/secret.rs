//! Secret types: the kinds of leased secret a backend issues, and the dispatch of `renew` and
//! `revoke` to them.
//!
//! A lease created by [`SecretType::secret`] carries the type's name under the `secret_type`
//! key of its internal data, as Vault's Go framework does. Vault sends `renew` and `revoke`
//! with the secret it stored, and [`dispatch`] picks the handler by that key, ignoring the
//! request path. A type without a renew handler issues non-renewable leases.

use serde_json::{Map, Value};

use super::error::Error;
use super::request::{Operation, Request, Response, Secret};

/// The key in a lease's internal data that names its secret type.
pub const SECRET_TYPE_KEY: &str = "secret_type";

/// Handles `renew` or `revoke` of one lease. It receives the secret Vault stored with it.
pub type SecretHandler<C> = fn(&C, &Request, &Secret) -> Result<Option<Response>, Error>;

/// One kind of leased secret.
pub struct SecretType<C> {
    /// Stored under `secret_type` in each lease's internal data; never change it, or leases
    /// issued earlier can no longer be renewed or revoked.
    pub name: &'static str,
    pub renew: Option<SecretHandler<C>>,
    pub revoke: SecretHandler<C>,
}

impl<C> SecretType<C> {
    /// Builds the lease for a response: `internal_data` plus this type's name, renewable when
    /// the type has a renew handler. Durations are seconds, and 0 means the mount's default.
    pub fn secret(
        &self,
        ttl_seconds: u64,
        max_ttl_seconds: u64,
        mut internal_data: Map<String, Value>,
    ) -> Secret {
        internal_data.insert(SECRET_TYPE_KEY.to_string(), Value::from(self.name));
        Secret {
            ttl_seconds,
            max_ttl_seconds,
            renewable: self.renew.is_some(),
            increment_seconds: 0,
            issue_time: None,
            internal_data,
        }
    }
}

/// Routes a `renew` or `revoke` request to the handler of its secret's type.
pub fn dispatch<C>(
    types: &[SecretType<C>],
    context: &C,
    request: &Request,
) -> Result<Option<Response>, Error> {
    let secret = request.secret.as_ref().ok_or_else(|| {
        Error::bad_request(format!(
            "{} request has no secret",
            request.operation.name()
        ))
    })?;

    let type_name =
        match secret.internal_data.get(SECRET_TYPE_KEY) {
            Some(Value::String(name)) => name.as_str(),
            _ => return Err(Error::bad_request(
                "secret has no secret_type in its internal data, so this backend cannot handle it",
            )),
        };
    let secret_type = types
        .iter()
        .find(|candidate| candidate.name == type_name)
        .ok_or_else(|| {
            Error::bad_request(format!(
                "secret type {type_name:?} is unsupported by this backend"
            ))
        })?;

    match request.operation {
        Operation::Renew => {
            let renew = secret_type.renew.ok_or(Error::UnsupportedOperation)?;
            renew(context, request, secret)
        }
        Operation::Revoke => (secret_type.revoke)(context, request, secret),
        _ => Err(Error::UnsupportedOperation),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::json;

    use super::*;

    /// Records which handler ran.
    #[derive(Default)]
    struct Calls(RefCell<Vec<&'static str>>);

    fn renew(calls: &Calls, _: &Request, _: &Secret) -> Result<Option<Response>, Error> {
        calls.0.borrow_mut().push("renew");
        Ok(None)
    }

    fn revoke(calls: &Calls, _: &Request, _: &Secret) -> Result<Option<Response>, Error> {
        calls.0.borrow_mut().push("revoke");
        Ok(None)
    }

    fn types() -> Vec<SecretType<Calls>> {
        vec![
            SecretType {
                name: "token",
                renew: Some(renew),
                revoke,
            },
            SecretType {
                name: "fixed",
                renew: None,
                revoke,
            },
        ]
    }

    fn request(operation: Operation, secret_type: Value) -> Request {
        let mut internal = Map::new();
        if !secret_type.is_null() {
            internal.insert(SECRET_TYPE_KEY.into(), secret_type);
        }
        Request::new(operation, "creds/app").with_secret(Secret {
            ttl_seconds: 60,
            max_ttl_seconds: 0,
            renewable: true,
            increment_seconds: 0,
            issue_time: None,
            internal_data: internal,
        })
    }

    #[test]
    fn secret_carries_type_and_renewable() {
        let types = types();
        let renewable = types[0].secret(60, 120, json!({"id": "x"}).as_object().unwrap().clone());
        assert_eq!(
            renewable.internal_data.get("secret_type"),
            Some(&json!("token"))
        );
        assert_eq!(renewable.internal_data.get("id"), Some(&json!("x")));
        assert!(
            renewable.renewable,
            "type with renew handler: {renewable:?}"
        );

        let fixed = types[1].secret(60, 0, Map::new());
        assert!(!fixed.renewable, "type without renew handler: {fixed:?}");
    }

    #[test]
    fn dispatch_by_secret_type() {
        let calls = Calls::default();
        let types = types();

        dispatch(&types, &calls, &request(Operation::Renew, json!("token"))).unwrap();
        dispatch(&types, &calls, &request(Operation::Revoke, json!("fixed"))).unwrap();

        assert_eq!(*calls.0.borrow(), ["renew", "revoke"]);
    }

    #[test]
    fn dispatch_rejects_unknown_secrets() {
        let calls = Calls::default();
        let types = types();
        let cases = [
            (
                request(Operation::Revoke, Value::Null),
                Error::bad_request(
                    "secret has no secret_type in its internal data, so this backend cannot handle it",
                ),
            ),
            (
                request(Operation::Revoke, json!(7)),
                Error::bad_request(
                    "secret has no secret_type in its internal data, so this backend cannot handle it",
                ),
            ),
            (
                request(Operation::Renew, json!("other")),
                Error::bad_request("secret type \"other\" is unsupported by this backend"),
            ),
            (request(Operation::Renew, json!("fixed")), Error::UnsupportedOperation),
            (
                Request::new(Operation::Revoke, "creds/app"),
                Error::bad_request("revoke request has no secret"),
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(
                dispatch(&types, &calls, &request),
                Err(expected),
                "dispatch of {request:?}"
            );
        }
        assert!(
            calls.0.borrow().is_empty(),
            "no handler may run: {:?}",
            calls.0.borrow()
        );
    }
}

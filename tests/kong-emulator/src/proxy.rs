//! The proxy listener: a route guarded by the key-auth plugin with its default settings.
//!
//! Any method and path is accepted. The key comes from the `apikey` header or, failing that,
//! the `apikey` query parameter. A live key gets 200 with a JSON body naming the consumer and
//! the credential, and the upstream headers Kong would add. A request without a key, or with an
//! unknown or expired one, gets Kong 3.x's 401 and `WWW-Authenticate` header.

use http::HeaderMap;
use serde_json::{json, Value};

use crate::body::{parse_pairs, query_value};
use crate::store::Store;

/// Status, JSON body and extra headers of a proxy response.
pub(crate) struct ProxyReply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(&'static str, String)>,
}

/// Serves one proxy request.
pub(crate) fn handle(
    store: &Store,
    now_ms: i64,
    accept_expired: bool,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ProxyReply {
    let from_header = headers
        .get("apikey")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let from_query = || query_value(&parse_pairs(query.unwrap_or("")), "apikey").map(str::to_owned);
    let Some(key) = from_header.or_else(from_query) else {
        return unauthorized("No API key found in request");
    };

    let Some((credential, consumer)) = store.find_key(&key, now_ms, accept_expired) else {
        return unauthorized("Invalid authentication credentials");
    };

    let consumer_id = consumer.id().to_owned();
    let username = consumer.get("username").clone();
    let custom_id = consumer.get("custom_id").clone();
    let mut headers = vec![
        ("x-consumer-id", consumer_id.clone()),
        ("x-credential-identifier", credential.id().to_owned()),
    ];
    if let Some(username) = username.as_str() {
        headers.push(("x-consumer-username", username.to_owned()));
    }
    if let Some(custom_id) = custom_id.as_str() {
        headers.push(("x-consumer-custom-id", custom_id.to_owned()));
    }
    ProxyReply {
        status: 200,
        body: json!({
            "consumer": { "id": consumer_id, "username": username, "custom_id": custom_id },
            "credential": { "id": credential.id() },
        }),
        headers,
    }
}

fn unauthorized(message: &str) -> ProxyReply {
    ProxyReply {
        status: 401,
        body: json!({ "message": message }),
        headers: vec![("www-authenticate", "Key realm=\"kong\"".to_owned())],
    }
}

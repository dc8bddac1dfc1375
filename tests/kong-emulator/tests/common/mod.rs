//! Helpers shared by the emulator's integration tests: start an emulator and send Admin API
//! and proxy requests with a blocking HTTP client, getting the status and parsed body back.

#![allow(dead_code)]

use std::fmt;

use kong_emulator::{Emulator, Options};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::Value;

/// Starts an emulator with default options.
pub fn start() -> Emulator {
    start_with(Options::default())
}

/// Starts an emulator with the given options.
pub fn start_with(options: Options) -> Emulator {
    Emulator::start(options).expect("emulator starts on 127.0.0.1")
}

/// A response: status, raw text, JSON body (`Value::Null` when empty or not JSON) and headers.
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

/// An HTTP client bound to one base URL, with optional extra headers on every request.
pub struct Api {
    base: String,
    client: Client,
    headers: Vec<(String, String)>,
}

impl Api {
    /// Creates a client for the emulator's Admin API that follows no redirects.
    pub fn admin(emulator: &Emulator) -> Api {
        Api::new(emulator.admin_url(), plain_client())
    }

    /// Creates a client for the emulator's proxy.
    pub fn proxy(emulator: &Emulator) -> Api {
        Api::new(emulator.proxy_url(), plain_client())
    }

    pub fn new(base: String, client: Client) -> Api {
        Api {
            base,
            client,
            headers: Vec::new(),
        }
    }

    /// Adds a header to every request this client sends.
    pub fn with_header(mut self, name: &str, value: &str) -> Api {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None)
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body))
    }

    pub fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body))
    }

    pub fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body))
    }

    /// Sends a JSON request and panics if no response arrives.
    pub fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.try_send(method, path, body)
            .unwrap_or_else(|error| panic!("request to {path} got no response: {error}"))
    }

    /// Sends a JSON request, returning the transport error when no response arrives.
    pub fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<Reply> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send()?)
    }

    /// Sends a raw body with the given content type (or none).
    pub fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &'static [u8],
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        read(request.send().expect("request gets a response")).expect("response body reads")
    }
}

fn read(response: reqwest::blocking::Response) -> reqwest::Result<Reply> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        text,
        body,
        headers,
    })
}

/// Builds a blocking client that follows no redirects, so tests see the emulator's own responses.
pub fn plain_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client builds")
}

/// Creates a consumer and returns its JSON.
pub fn create_consumer(api: &Api, username: &str) -> Value {
    let reply = api.post("/consumers", serde_json::json!({ "username": username }));
    assert_eq!(reply.status, 201, "create consumer {username}: {reply:?}");
    reply.body
}

/// Returns an object's keys in order, to check the exact field set of an entity.
pub fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

//! A fake Kong Admin API behind the [`HttpClient`] trait, for native tests.
//!
//! It keeps consumers and key-auth credentials in memory and handles the calls the engine
//! makes the way Kong 3.x does: nested routes answer 404 for a missing consumer or
//! credential, `ttl` expires a key at the clock's time plus `ttl`, and deleting a consumer
//! deletes its credentials. Switches let a test make the next answer fail in chosen ways.

use std::cell::RefCell;
use std::collections::VecDeque;

use serde_json::{json, Value};

use super::ManualClock;
use crate::http::{HttpClient, HttpRequest, HttpResponse, TransportError};
use crate::kong::client::decode_segment;

/// One request the engine sent.
#[derive(Clone, Debug)]
pub struct SentRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SentRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A live credential, as a test reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KongCredential {
    pub id: String,
    pub key: String,
    pub consumer_id: String,
    pub tags: Vec<String>,
    /// Seconds left before Kong expires it; `None` when it never expires.
    pub ttl_seconds: Option<u64>,
}

struct Credential {
    id: String,
    key: String,
    consumer_id: String,
    tags: Vec<String>,
    expires_at: Option<u64>,
}

/// A failure that replaces the next normal response.
enum Fault {
    Status(u16, Vec<u8>),
    StripKey,
    LoseRequest,
    LoseAnswer,
    TimeOut,
}

#[derive(Default)]
struct State {
    consumers: Vec<(String, String)>,
    credentials: Vec<Credential>,
    requests: Vec<SentRequest>,
    faults: VecDeque<Fault>,
    refuse: bool,
    denial: Option<String>,
    next_number: u32,
    last_created_id: String,
}

/// The fake Kong. Its clock is the test's clock.
pub struct FakeKong {
    clock: ManualClock,
    state: RefCell<State>,
}

impl FakeKong {
    pub fn new(clock: ManualClock) -> Self {
        Self {
            clock,
            state: RefCell::default(),
        }
    }

    /// Adds a consumer and returns its id.
    pub fn add_consumer(&self, username: &str) -> String {
        let mut state = self.state.borrow_mut();
        let id = uuid(0xc0, &mut state.next_number);
        state.consumers.push((id.clone(), username.to_string()));
        id
    }

    /// Deletes a consumer and, as Kong does, its credentials.
    pub fn remove_consumer(&self, username: &str) {
        let mut state = self.state.borrow_mut();
        let id = self.consumer_id_in(&state, username);
        state.consumers.retain(|(_, name)| name != username);
        state
            .credentials
            .retain(|credential| credential.consumer_id != id);
    }

    /// Deletes a credential behind the engine's back.
    pub fn remove_credential(&self, id: &str) {
        self.state
            .borrow_mut()
            .credentials
            .retain(|credential| credential.id != id);
    }

    pub fn consumer_id(&self, username: &str) -> String {
        self.consumer_id_in(&self.state.borrow(), username)
    }

    fn consumer_id_in(&self, state: &State, username: &str) -> String {
        state
            .consumers
            .iter()
            .find(|(_, name)| name == username)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no consumer {username:?} in the fake Kong"))
    }

    /// Returns the credentials that have not expired.
    pub fn credentials(&self) -> Vec<KongCredential> {
        let now = self.clock.now();
        self.state
            .borrow()
            .credentials
            .iter()
            .filter(|credential| credential.expires_at.is_none_or(|at| at > now))
            .map(|credential| KongCredential {
                id: credential.id.clone(),
                key: credential.key.clone(),
                consumer_id: credential.consumer_id.clone(),
                tags: credential.tags.clone(),
                ttl_seconds: credential.expires_at.map(|at| at - now),
            })
            .collect()
    }

    pub fn requests(&self) -> Vec<SentRequest> {
        self.state.borrow().requests.clone()
    }

    /// Returns the id of the last credential created, even if it was deleted since.
    pub fn last_created_id(&self) -> String {
        self.state.borrow().last_created_id.clone()
    }

    /// Makes the next request fail with `status` and `body`.
    pub fn fail_next(&self, status: u16, body: &[u8]) {
        self.push_fault(Fault::Status(status, body.to_vec()));
    }

    /// Creates the next credential but leaves the key out of the answer.
    pub fn strip_key_from_next_create(&self) {
        self.push_fault(Fault::StripKey);
    }

    /// Reports the connection of the next request as reset before Kong reads it.
    pub fn lose_connection_before_next_request(&self) {
        self.push_fault(Fault::LoseRequest);
    }

    /// Carries out the next request, then reports the connection as reset.
    pub fn lose_answer_to_next_create(&self) {
        self.push_fault(Fault::LoseAnswer);
    }

    /// Carries out the next request, then reports a timeout.
    pub fn time_out_next(&self) {
        self.push_fault(Fault::TimeOut);
    }

    /// Refuses every connection from now on.
    pub fn refuse_connections(&self) {
        self.state.borrow_mut().refuse = true;
    }

    /// Makes the outbound policy deny every request from now on.
    pub fn deny(&self, reason: &str) {
        self.state.borrow_mut().denial = Some(reason.to_string());
    }

    fn push_fault(&self, fault: Fault) {
        self.state.borrow_mut().faults.push_back(fault);
    }

    fn answer(
        &self,
        state: &mut State,
        method: &str,
        path: &str,
        query: &str,
        body: &Value,
    ) -> (u16, Value) {
        let now = self.clock.now();
        state
            .credentials
            .retain(|credential| credential.expires_at.is_none_or(|at| at > now));
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(|segment| decode_segment(segment).expect("the engine encodes segments"))
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let not_found = (404, json!({"message": "Not found"}));

        match (method, segments.as_slice()) {
            ("POST", ["consumers", consumer, "key-auth"]) => {
                let Some(consumer_id) = find_consumer(state, consumer) else {
                    return not_found;
                };
                let id = uuid(0xa0, &mut state.next_number);
                let key = format!("key-{}-generated-by-fake-kong", state.next_number);
                let tags: Vec<String> = body["tags"]
                    .as_array()
                    .map(|tags| {
                        tags.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let ttl = body["ttl"].as_u64();
                state.credentials.push(Credential {
                    id: id.clone(),
                    key: key.clone(),
                    consumer_id: consumer_id.clone(),
                    tags: tags.clone(),
                    expires_at: ttl.map(|ttl| now + ttl),
                });
                state.last_created_id = id.clone();
                (
                    201,
                    json!({"id": id, "key": key, "consumer": {"id": consumer_id}, "tags": tags, "ttl": ttl}),
                )
            }
            ("GET", ["key-auths"]) => {
                let tag = query.strip_prefix("tags=").unwrap_or_default();
                let data: Vec<Value> = state
                    .credentials
                    .iter()
                    .filter(|credential| tag.is_empty() || credential.tags.iter().any(|t| t == tag))
                    .map(|credential| json!({"id": credential.id, "key": credential.key, "consumer": {"id": credential.consumer_id}}))
                    .collect();
                (200, json!({"data": data, "next": null}))
            }
            ("PATCH" | "DELETE", ["consumers", consumer, "key-auth", id]) => {
                let Some(consumer_id) = find_consumer(state, consumer) else {
                    return not_found;
                };
                let Some(index) = state.credentials.iter().position(|credential| {
                    credential.id == *id && credential.consumer_id == consumer_id
                }) else {
                    return not_found;
                };
                if method == "DELETE" {
                    state.credentials.remove(index);
                    return (204, Value::Null);
                }
                let credential = &mut state.credentials[index];
                if let Some(ttl) = body["ttl"].as_u64() {
                    credential.expires_at = (ttl > 0).then_some(now + ttl);
                }
                (
                    200,
                    json!({"id": credential.id, "key": credential.key, "consumer": {"id": consumer_id}}),
                )
            }
            _ => not_found,
        }
    }
}

fn find_consumer(state: &State, id_or_username: &str) -> Option<String> {
    state
        .consumers
        .iter()
        .find(|(id, name)| id == id_or_username || name == id_or_username)
        .map(|(id, _)| id.clone())
}

/// Generates a UUID-shaped id that is unique within one fake Kong.
fn uuid(kind: u8, next_number: &mut u32) -> String {
    *next_number += 1;
    format!("{kind:08x}-0000-4000-8000-{:012x}", *next_number)
}

impl HttpClient for FakeKong {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let url = request.url.to_string();
        let mut state = self.state.borrow_mut();
        state.requests.push(SentRequest {
            method: request.method.as_str().to_string(),
            url: url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone().unwrap_or_default(),
        });

        if let Some(reason) = &state.denial {
            return Err(TransportError::Denied {
                url,
                reason: reason.clone(),
            });
        }
        if state.refuse {
            return Err(TransportError::Unreachable {
                url,
                detail: "connection refused".into(),
            });
        }

        let body: Value = request
            .body
            .as_deref()
            .map(|body| serde_json::from_slice(body).expect("the engine sends JSON"))
            .unwrap_or(Value::Null);
        let (path, query) = request
            .url
            .path_and_query
            .split_once('?')
            .unwrap_or((&request.url.path_and_query, ""));

        let fault = state.faults.pop_front();
        match fault {
            Some(Fault::Status(status, body)) => return Ok(HttpResponse { status, body }),
            Some(Fault::LoseRequest) => {
                return Err(TransportError::ConnectionLost {
                    url,
                    detail: "connection reset".into(),
                })
            }
            _ => {}
        }
        let (status, mut answer) =
            self.answer(&mut state, request.method.as_str(), path, query, &body);
        match fault {
            Some(Fault::StripKey) => {
                answer.as_object_mut().map(|object| object.remove("key"));
            }
            Some(Fault::LoseAnswer) => {
                return Err(TransportError::ConnectionLost {
                    url,
                    detail: "connection reset".into(),
                })
            }
            Some(Fault::TimeOut) => {
                return Err(TransportError::TimedOut {
                    url,
                    timeout_seconds: request.timeout_seconds,
                    connected: true,
                })
            }
            _ => {}
        }

        let body = if answer.is_null() {
            Vec::new()
        } else {
            answer.to_string().into_bytes()
        };
        Ok(HttpResponse { status, body })
    }
}

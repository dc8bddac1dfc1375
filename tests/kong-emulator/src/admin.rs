//! The Admin API: routing, request arguments and Kong's endpoint semantics.
//!
//! Routes, each also under a `/{workspace}` prefix:
//! - `GET /`
//! - `GET|POST /consumers`, `GET|PUT|PATCH|DELETE /consumers/{username or id}`
//! - `GET|POST /{credentials}`, `GET|PUT|PATCH|DELETE /{credentials}/{endpoint key or id}`,
//!   `GET /{credentials}/{endpoint key or id}/consumer`, for `key-auths`, `basic-auths`,
//!   `hmac-auths`, `jwts` and `acls`
//! - `GET|POST /consumers/{c}/{credential}`, `GET|PUT|PATCH|DELETE /consumers/{c}/{credential}/{id}`
//!   for `key-auth`, `basic-auth`, `hmac-auth`, `jwt` and `acls` (where `{id}` may be the group)
//!
//! The nested and global routes differ the way Kong's do. A nested route returns 404 when the
//! consumer is missing, when the credential is missing or when it belongs to another consumer,
//! while a global `DELETE` of a missing entity returns 204. A trailing slash is ignored.

use std::sync::Mutex;

use http::Method;
use serde_json::{json, Map, Value};

use crate::body::{parse_pairs, parse_write_body, percent_decode, query_value};
use crate::clock::Clock;
use crate::errors::ApiError;
use crate::info::{root_body, NodeInfo, Version};
use crate::paging::{self, escape_uri};
use crate::schema::{self, Schema, ACLS, CONSUMERS};
use crate::store::{Ctx, Key, Store, Workspace};

/// Kong's other top-level routes. The engine never calls them, so they return 404 here rather
/// than being taken for a workspace name.
const KONG_ROUTES_NOT_EMULATED: &[&str] = &[
    "admins",
    "ca_certificates",
    "certificates",
    "clustering",
    "config",
    "debug",
    "endpoints",
    "key-sets",
    "keys",
    "metrics",
    "plugins",
    "rbac",
    "routes",
    "schemas",
    "services",
    "snis",
    "status",
    "tags",
    "targets",
    "timers",
    "upstreams",
    "vaults",
    "workspaces",
];

/// One Admin API request, after the listener has read it.
pub(crate) struct AdminRequest<'a> {
    pub(crate) method: &'a Method,
    /// Path without the query string, still percent-encoded.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

/// Status and JSON body of an Admin API response; `None` for 204.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Option<Value>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body: Some(body),
        }
    }

    fn no_content() -> Self {
        Reply {
            status: 204,
            body: None,
        }
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        Reply::json(error.status(), error.body())
    }
}

/// The emulated node's Admin API state.
pub(crate) struct Admin {
    pub(crate) store: Mutex<Store>,
    pub(crate) clock: std::sync::Arc<Clock>,
    pub(crate) version_text: String,
    pub(crate) version: Version,
    pub(crate) db_less: bool,
    pub(crate) enterprise: bool,
    pub(crate) node_id: String,
    /// Expired keys stay stored so that the proxy can still accept them.
    pub(crate) keep_expired: bool,
    pub(crate) admin_listen: String,
    pub(crate) proxy_listen: String,
}

impl Admin {
    pub(crate) fn ctx(&self) -> Ctx {
        Ctx {
            now_ms: self.clock.now_ms(),
            version: self.version,
            db_less: self.db_less,
        }
    }

    pub(crate) fn lock_store(&self) -> std::sync::MutexGuard<'_, Store> {
        // Every store operation validates before it mutates, so a panic cannot leave a
        // half-written row behind and a poisoned lock is still safe to use.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serves one Admin API request.
    pub(crate) fn handle(&self, request: &AdminRequest<'_>) -> Reply {
        match self.route(request) {
            Ok(reply) => reply,
            Err(error) => error.into(),
        }
    }

    fn route(&self, request: &AdminRequest<'_>) -> Result<Reply, ApiError> {
        let raw: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
        if raw.is_empty() {
            return self.root(request.method);
        }

        // The first segment is a workspace unless it names a top-level route.
        if KONG_ROUTES_NOT_EMULATED.contains(&raw[0]) {
            return Err(ApiError::not_found());
        }
        let (workspace_name, raw) = match schema::by_admin_name(raw[0]) {
            Some(_) => ("default".to_owned(), &raw[..]),
            None => (percent_decode(raw[0], false), &raw[1..]),
        };
        let segments: Vec<String> = raw.iter().map(|s| percent_decode(s, false)).collect();

        let ctx = self.ctx();
        let mut store = self.lock_store();
        let Some(workspace) = store.workspace_mut(&workspace_name) else {
            return Err(ApiError::message(
                404,
                format!("Workspace '{workspace_name}' not found"),
            ));
        };
        if !self.keep_expired {
            workspace.purge_expired(ctx.now_ms);
        }

        let call = Call {
            workspace,
            request,
            query: parse_pairs(request.query.unwrap_or("")),
            ctx,
        };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match segments.as_slice() {
            [collection] => {
                let schema = schema::by_admin_name(collection).ok_or_else(ApiError::not_found)?;
                call.collection(schema)
            }
            [collection, id] => {
                let schema = schema::by_admin_name(collection).ok_or_else(ApiError::not_found)?;
                call.entity(schema, id)
            }
            [collection, id, "consumer"] if *collection != "consumers" => {
                let schema = schema::by_admin_name(collection).ok_or_else(ApiError::not_found)?;
                call.credential_consumer(schema, id)
            }
            ["consumers", consumer, nested] => {
                let schema = schema::by_nested_name(nested).ok_or_else(ApiError::not_found)?;
                call.nested_collection(schema, consumer, raw[1])
            }
            ["consumers", consumer, nested, id] => {
                let schema = schema::by_nested_name(nested).ok_or_else(ApiError::not_found)?;
                call.nested_entity(schema, consumer, id)
            }
            _ => Err(ApiError::not_found()),
        }
    }

    fn root(&self, method: &Method) -> Result<Reply, ApiError> {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        let info = NodeInfo {
            version: &self.version_text,
            node_id: &self.node_id,
            db_less: self.db_less,
            enterprise: self.enterprise,
            admin_listen: self.admin_listen.clone(),
            proxy_listen: self.proxy_listen.clone(),
        };
        Ok(Reply::json(200, root_body(&info, self.version)))
    }
}

/// One request against one workspace.
struct Call<'a> {
    workspace: &'a mut Workspace,
    request: &'a AdminRequest<'a>,
    query: Vec<(String, String)>,
    ctx: Ctx,
}

impl Call<'_> {
    /// `/consumers`, `/key-auths` and the other top-level collections.
    fn collection(self, schema: &'static Schema) -> Result<Reply, ApiError> {
        match *self.request.method {
            Method::GET => {
                if schema.name == CONSUMERS.name {
                    if let Some(custom_id) = query_value(&self.query, "custom_id") {
                        let custom_id = custom_id.to_owned();
                        return self.consumer_by_custom_id(&custom_id);
                    }
                }
                self.list(schema, None, format!("/{}", schema.admin_name), true)
            }
            Method::POST => {
                let (body, ttl) = self.arguments(schema)?;
                let created = self
                    .workspace
                    .insert(schema, body, ttl.as_ref(), &self.ctx)?;
                Ok(Reply::json(201, created))
            }
            _ => Err(ApiError::method_not_allowed()),
        }
    }

    /// Serves `GET /consumers?custom_id=...`, a one-page list without an offset.
    fn consumer_by_custom_id(self, custom_id: &str) -> Result<Reply, ApiError> {
        if custom_id.is_empty() {
            return Err(ApiError::message(
                400,
                "custom_id must be an unempty string",
            ));
        }
        let key = Key::Field("custom_id", custom_id.to_owned());
        let data: Vec<Value> = self
            .workspace
            .find(&CONSUMERS, &key, &self.ctx)
            .map(|row| self.workspace.render(&CONSUMERS, row, &self.ctx))
            .into_iter()
            .collect();
        Ok(Reply::json(200, json!({ "data": data, "next": null })))
    }

    /// Lists a collection. Top-level `next` links keep `tags` and `size`; nested ones keep only
    /// `offset`, as in Kong.
    fn list(
        &self,
        schema: &Schema,
        consumer_id: Option<&str>,
        next_path: String,
        keep_filters: bool,
    ) -> Result<Reply, ApiError> {
        let size = query_value(&self.query, "size");
        let tags = query_value(&self.query, "tags");
        let request = paging::parse(size, query_value(&self.query, "offset"), tags)?;

        let (data, offset) = self
            .workspace
            .page(schema, &request, consumer_id, &self.ctx);

        let mut body = Map::new();
        body.insert("data".into(), Value::Array(data));
        // NOTE: under a workspace prefix `next` leaves the prefix out, as Kong OSS builds it.
        // Whether Kong Enterprise adds the prefix was not confirmed.
        let next = offset.as_ref().map(|offset| {
            let mut next = format!("{next_path}?offset={}", escape_uri(offset));
            if keep_filters {
                if let Some(tags) = tags {
                    next.push_str(&format!("&tags={}", escape_uri(tags)));
                }
                if let Some(size) = size {
                    next.push_str(&format!("&size={size}"));
                }
            }
            next
        });
        body.insert("next".into(), json!(next));
        if let Some(offset) = offset {
            body.insert("offset".into(), json!(offset));
        }
        Ok(Reply::json(200, Value::Object(body)))
    }

    /// `/consumers/{id}`, `/key-auths/{id}` and the other top-level entities.
    fn entity(self, schema: &'static Schema, segment: &str) -> Result<Reply, ApiError> {
        let method = self.request.method.clone();
        if !matches!(
            method,
            Method::GET | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            return Err(ApiError::method_not_allowed());
        }
        let key = Key::from_segment(schema, segment)?;
        match method {
            Method::GET => {
                let row = self
                    .workspace
                    .find(schema, &key, &self.ctx)
                    .ok_or_else(ApiError::not_found)?;
                Ok(Reply::json(
                    200,
                    self.workspace.render(schema, row, &self.ctx),
                ))
            }
            Method::PUT => {
                let (body, ttl) = self.arguments(schema)?;
                let upserted =
                    self.workspace
                        .upsert(schema, &key, body, ttl.as_ref(), &self.ctx)?;
                Ok(Reply::json(200, upserted))
            }
            Method::PATCH => {
                let (body, ttl) = self.arguments(schema)?;
                let updated = self
                    .workspace
                    .update(schema, &key, body, ttl.as_ref(), &self.ctx)?;
                Ok(Reply::json(200, updated))
            }
            _ => {
                self.workspace.delete(schema, &key, &self.ctx)?;
                Ok(Reply::no_content())
            }
        }
    }

    /// `GET /key-auths/{id or key}/consumer`.
    fn credential_consumer(
        self,
        schema: &'static Schema,
        segment: &str,
    ) -> Result<Reply, ApiError> {
        if !schema.is_credential() {
            return Err(ApiError::not_found());
        }
        if self.request.method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        let key = Key::from_segment(schema, segment)?;
        let credential = self
            .workspace
            .find(schema, &key, &self.ctx)
            .ok_or_else(ApiError::not_found)?;
        let consumer_id = credential.consumer_id().unwrap_or_default().to_owned();
        let consumer = self
            .workspace
            .find(&CONSUMERS, &Key::Id(consumer_id), &self.ctx)
            .ok_or_else(ApiError::not_found)?;
        Ok(Reply::json(
            200,
            self.workspace.render(&CONSUMERS, consumer, &self.ctx),
        ))
    }

    /// `/consumers/{c}/key-auth` and the other nested collections.
    fn nested_collection(
        self,
        schema: &'static Schema,
        consumer: &str,
        raw_consumer: &str,
    ) -> Result<Reply, ApiError> {
        if !matches!(*self.request.method, Method::GET | Method::POST) {
            return Err(ApiError::method_not_allowed());
        }
        let consumer_id = self.consumer_id(consumer)?;
        if self.request.method == Method::GET {
            let nested = schema.nested_name.unwrap_or_default();
            let next_path = format!("/consumers/{raw_consumer}/{nested}");
            return self.list(schema, Some(&consumer_id), next_path, false);
        }

        let (mut body, ttl) = self.arguments(schema)?;
        body.insert("consumer".into(), json!({ "id": consumer_id }));
        let created = self
            .workspace
            .insert(schema, body, ttl.as_ref(), &self.ctx)?;
        Ok(Reply::json(201, created))
    }

    /// `/consumers/{c}/key-auth/{id or key}` and the other nested entities.
    fn nested_entity(
        self,
        schema: &'static Schema,
        consumer: &str,
        segment: &str,
    ) -> Result<Reply, ApiError> {
        let method = self.request.method.clone();
        if !matches!(
            method,
            Method::GET | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            return Err(ApiError::method_not_allowed());
        }
        let consumer_id = self.consumer_id(consumer)?;

        // acls also take the group name in place of the id.
        let mut group_from_path = None;
        let key = if schema.name == ACLS.name && !crate::validate::is_uuid(segment) {
            match self
                .workspace
                .find_acl_group(&consumer_id, segment, &self.ctx)
            {
                Some(row) => Key::Id(row.id().to_owned()),
                None if method == Method::PUT => {
                    group_from_path = Some(segment.to_owned());
                    Key::Id(uuid::Uuid::new_v4().to_string())
                }
                None => return Err(ApiError::not_found()),
            }
        } else {
            Key::from_segment(schema, segment)?
        };

        if method == Method::PUT {
            let (mut body, ttl) = self.arguments(schema)?;
            body.insert("consumer".into(), json!({ "id": consumer_id }));
            if let Some(group) = group_from_path {
                body.entry("group").or_insert(json!(group));
            }
            let upserted = self
                .workspace
                .upsert(schema, &key, body, ttl.as_ref(), &self.ctx)?;
            return Ok(Reply::json(200, upserted));
        }

        let credential = self
            .workspace
            .find(schema, &key, &self.ctx)
            .filter(|row| row.consumer_id() == Some(consumer_id.as_str()))
            .ok_or_else(ApiError::not_found)?;
        let by_id = Key::Id(credential.id().to_owned());

        match method {
            Method::GET => Ok(Reply::json(
                200,
                self.workspace.render(schema, credential, &self.ctx),
            )),
            Method::PATCH => {
                let (body, ttl) = self.arguments(schema)?;
                let updated =
                    self.workspace
                        .update(schema, &by_id, body, ttl.as_ref(), &self.ctx)?;
                Ok(Reply::json(200, updated))
            }
            _ => {
                self.workspace.delete(schema, &by_id, &self.ctx)?;
                Ok(Reply::no_content())
            }
        }
    }

    /// Finds the consumer a nested route names, or returns a 404 error.
    fn consumer_id(&self, segment: &str) -> Result<String, ApiError> {
        self.workspace
            .find_consumer(segment, &self.ctx)
            .map(|row| row.id().to_owned())
            .ok_or_else(ApiError::not_found)
    }

    /// Parses the write body and takes the `ttl` option out of it.
    ///
    /// Only an entity with `ttl` support moves `ttl` into the options. For every other entity
    /// it stays in the body, where validation rejects it as an unknown field.
    fn arguments(&self, schema: &Schema) -> Result<(Map<String, Value>, Option<Value>), ApiError> {
        let mut body = parse_write_body(self.request.content_type, self.request.body)?;
        let ttl = if schema.ttl { body.remove("ttl") } else { None };
        Ok((body, ttl))
    }
}

//! In-memory storage with the semantics of Kong's DAO over Postgres.
//!
//! Each workspace has one table per schema, keyed and ordered by `id`. A write runs Kong's
//! steps in Kong's order: defaults and auto fields, foreign key resolution, schema validation,
//! the password transformation, the `ttl` option, and only then the storage write. At the
//! storage write DB-less mode fails, and unique, primary key and foreign key constraints apply.
//!
//! Rows of an entity with `ttl` carry an absolute expiry in milliseconds. Reads never return an
//! expired row, and `ttl` in a response is the whole seconds left, rounded down, as Kong's
//! Postgres strategy computes it.

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::errors::{ApiError, DaoError};
use crate::info::Version;
use crate::paging::{self, PageRequest};
use crate::schema::{Auto, Schema, CONSUMERS, CREDENTIALS, KEY_AUTH};
use crate::validate::{is_uuid, validate};

/// Largest `ttl` Kong accepts, "a bit over three years", to keep `now + ttl` from overflowing.
const MAX_TTL_SECONDS: i64 = 100_000_000;

/// One stored entity.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    entity: Map<String, Value>,
    expires_at_ms: Option<i64>,
}

impl Row {
    pub(crate) fn id(&self) -> &str {
        self.entity.get("id").and_then(Value::as_str).unwrap_or("")
    }

    pub(crate) fn get(&self, field: &str) -> &Value {
        self.entity.get(field).unwrap_or(&Value::Null)
    }

    pub(crate) fn consumer_id(&self) -> Option<&str> {
        self.get("consumer").get("id").and_then(Value::as_str)
    }

    fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|expiry| now_ms <= expiry)
    }
}

/// Facts one operation runs under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub(crate) now_ms: i64,
    pub(crate) version: Version,
    pub(crate) db_less: bool,
}

impl Ctx {
    fn now_s(&self) -> i64 {
        self.now_ms.div_euclid(1000)
    }
}

/// How a request names an entity: by `id`, or by the schema's endpoint key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Id(String),
    Field(&'static str, String),
}

impl Key {
    /// Reads a path segment the way Kong does: a UUID is the `id`, anything else is the
    /// endpoint key, and an entity without an endpoint key accepts only UUIDs.
    pub(crate) fn from_segment(schema: &Schema, segment: &str) -> Result<Key, DaoError> {
        if is_uuid(segment) {
            return Ok(Key::Id(segment.to_ascii_lowercase()));
        }
        match schema.endpoint_key {
            Some(field) => Ok(Key::Field(field, segment.to_owned())),
            None => Err(DaoError::invalid_primary_key("expected a valid UUID")),
        }
    }

    fn not_found(&self) -> DaoError {
        match self {
            Key::Id(id) => DaoError::not_found_by_primary_key(id),
            Key::Field(field, value) => DaoError::not_found_by_field(field, value),
        }
    }
}

/// The kind of write, which names the operation in DB-less errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Insert,
    Update,
    Upsert,
    Delete,
}

impl Write {
    fn verb(self) -> &'static str {
        match self {
            Write::Insert => "create",
            Write::Update => "update",
            Write::Upsert => "create or update",
            Write::Delete => "remove",
        }
    }
}

/// Entities of one workspace.
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    tables: HashMap<&'static str, BTreeMap<String, Row>>,
}

/// All workspaces, keyed by name.
#[derive(Debug)]
pub(crate) struct Store {
    workspaces: BTreeMap<String, Workspace>,
}

impl Store {
    pub(crate) fn new(extra_workspaces: &[String]) -> Self {
        let mut workspaces = BTreeMap::new();
        workspaces.insert("default".to_owned(), Workspace::default());
        for name in extra_workspaces {
            workspaces.entry(name.clone()).or_default();
        }
        Store { workspaces }
    }

    pub(crate) fn workspace_mut(&mut self, name: &str) -> Option<&mut Workspace> {
        self.workspaces.get_mut(name)
    }

    /// Lists live key-auth rows of every workspace as the Admin API renders them.
    pub(crate) fn live_key_auths(&self, ctx: &Ctx) -> Vec<Value> {
        self.workspaces
            .values()
            .flat_map(|workspace| workspace.rows(&KEY_AUTH))
            .filter(|row| row.is_live(ctx.now_ms))
            .map(|row| render(&KEY_AUTH, row, ctx))
            .collect()
    }

    /// Finds the key-auth row holding `key` and its consumer, in any workspace.
    ///
    /// `accept_expired` also finds rows whose `ttl` has run out but which were not deleted.
    pub(crate) fn find_key(
        &self,
        key: &str,
        now_ms: i64,
        accept_expired: bool,
    ) -> Option<(Row, Row)> {
        self.workspaces.values().find_map(|workspace| {
            let credential = workspace.rows(&KEY_AUTH).find(|row| {
                row.get("key").as_str() == Some(key) && (accept_expired || row.is_live(now_ms))
            })?;
            let consumer = workspace
                .table(&CONSUMERS)?
                .get(credential.consumer_id()?)?;
            Some((credential.clone(), consumer.clone()))
        })
    }
}

impl Workspace {
    fn table(&self, schema: &Schema) -> Option<&BTreeMap<String, Row>> {
        self.tables.get(schema.name)
    }

    fn table_mut(&mut self, schema: &Schema) -> &mut BTreeMap<String, Row> {
        self.tables.entry(schema.name).or_default()
    }

    fn rows<'a>(&'a self, schema: &Schema) -> impl Iterator<Item = &'a Row> + 'a {
        self.table(schema).into_iter().flat_map(BTreeMap::values)
    }

    /// Deletes expired rows, as Kong's cleanup timer does.
    pub(crate) fn purge_expired(&mut self, now_ms: i64) {
        for table in self.tables.values_mut() {
            table.retain(|_, row| row.is_live(now_ms));
        }
    }

    /// Finds a live row.
    pub(crate) fn find(&self, schema: &Schema, key: &Key, ctx: &Ctx) -> Option<&Row> {
        let table = self.table(schema)?;
        let row = match key {
            Key::Id(id) => table.get(id),
            Key::Field(field, value) => table
                .values()
                .find(|row| row.get(field).as_str() == Some(value.as_str())),
        };
        row.filter(|row| row.is_live(ctx.now_ms))
    }

    /// Finds a live consumer from a path segment (UUID or username).
    pub(crate) fn find_consumer(&self, segment: &str, ctx: &Ctx) -> Option<&Row> {
        let key = Key::from_segment(&CONSUMERS, segment).ok()?;
        self.find(&CONSUMERS, &key, ctx)
    }

    /// Finds the acls row of `consumer_id` for `group`.
    pub(crate) fn find_acl_group(&self, consumer_id: &str, group: &str, ctx: &Ctx) -> Option<&Row> {
        let acls = crate::schema::ACLS.name;
        self.tables.get(acls)?.values().find(|row| {
            row.consumer_id() == Some(consumer_id)
                && row.get("group").as_str() == Some(group)
                && row.is_live(ctx.now_ms)
        })
    }

    /// Lists one page of live rows, optionally only those of one consumer.
    ///
    /// Returns the rendered rows and, when more rows follow, the offset token of the next page.
    pub(crate) fn page(
        &self,
        schema: &Schema,
        request: &PageRequest,
        consumer_id: Option<&str>,
        ctx: &Ctx,
    ) -> (Vec<Value>, Option<String>) {
        let mut matching = self
            .rows(schema)
            .filter(|row| row.is_live(ctx.now_ms))
            .filter(|row| {
                request
                    .after_id
                    .as_deref()
                    .is_none_or(|after| row.id() > after)
            })
            .filter(|row| consumer_id.is_none_or(|id| row.consumer_id() == Some(id)))
            .filter(|row| {
                request
                    .tags
                    .as_ref()
                    .is_none_or(|tags| tags.matches(row.get("tags")))
            });

        let page: Vec<&Row> = matching.by_ref().take(request.size).collect();
        let more = matching.next().is_some();
        let offset = match (more, page.last()) {
            (true, Some(last)) => Some(paging::encode_offset(last.id())),
            _ => None,
        };
        let data = page
            .into_iter()
            .map(|row| render(schema, row, ctx))
            .collect();
        (data, offset)
    }

    /// Renders a row as the Admin API returns it.
    pub(crate) fn render(&self, schema: &Schema, row: &Row, ctx: &Ctx) -> Value {
        render(schema, row, ctx)
    }

    /// Inserts an entity (`POST`).
    pub(crate) fn insert(
        &mut self,
        schema: &Schema,
        body: Map<String, Value>,
        ttl: Option<&Value>,
        ctx: &Ctx,
    ) -> Result<Value, ApiError> {
        let mut entity = body;
        fill_auto_fields(schema, &mut entity, ctx);
        let expires_at_ms = self.check_write(schema, &mut entity, true, ttl, ctx)?;
        self.check_storage(schema, Write::Insert, None, &entity, None, ctx)?;
        Ok(self.store(schema, entity, expires_at_ms, ctx))
    }

    /// Updates the fields that `body` names (`PATCH`).
    ///
    /// Without a `ttl` option the expiry stays as it was; with one it moves to now + `ttl`
    /// (0 removes it).
    pub(crate) fn update(
        &mut self,
        schema: &Schema,
        key: &Key,
        body: Map<String, Value>,
        ttl: Option<&Value>,
        ctx: &Ctx,
    ) -> Result<Value, ApiError> {
        let existing = self
            .find(schema, key, ctx)
            .ok_or_else(|| key.not_found())?
            .clone();

        let password_changed = body.contains_key("password");
        let mut entity = existing.entity.clone();
        for (field, value) in body {
            if field != "id" {
                entity.insert(field, value);
            }
        }
        if schema.field("updated_at").is_some() && ctx.version.at_least((3, 3)) {
            entity.insert("updated_at".into(), json!(ctx.now_s()));
        }

        let new_expiry = self.check_write(schema, &mut entity, password_changed, ttl, ctx)?;
        self.check_storage(
            schema,
            Write::Update,
            Some(key),
            &entity,
            Some(existing.id()),
            ctx,
        )?;
        let expires_at_ms = if ttl.is_some() {
            new_expiry
        } else {
            existing.expires_at_ms
        };
        Ok(self.store(schema, entity, expires_at_ms, ctx))
    }

    /// Creates or replaces the entity named by `key` (`PUT`).
    ///
    /// The path value wins over the same field in `body`. A replaced entity keeps its `id` and
    /// `created_at`; every other field comes from `body` or its default.
    // NOTE: a replace without `ttl` removes any expiry, because Kong's upsert appears to write
    // every column, `ttl` included. This was not confirmed against a running Kong.
    pub(crate) fn upsert(
        &mut self,
        schema: &Schema,
        key: &Key,
        body: Map<String, Value>,
        ttl: Option<&Value>,
        ctx: &Ctx,
    ) -> Result<Value, ApiError> {
        let existing = self.find(schema, key, ctx).cloned();

        let mut entity = body;
        match key {
            Key::Id(id) => {
                entity.insert("id".into(), json!(id));
            }
            Key::Field(field, value) => {
                entity.insert((*field).to_owned(), json!(value));
            }
        }
        if let Some(existing) = &existing {
            entity.insert("id".into(), json!(existing.id()));
            if !entity.contains_key("created_at") {
                entity.insert("created_at".into(), existing.get("created_at").clone());
            }
        }
        fill_auto_fields(schema, &mut entity, ctx);

        let expires_at_ms = self.check_write(schema, &mut entity, true, ttl, ctx)?;
        let existing_id = existing.as_ref().map(Row::id);
        self.check_storage(schema, Write::Upsert, Some(key), &entity, existing_id, ctx)?;
        Ok(self.store(schema, entity, expires_at_ms, ctx))
    }

    /// Deletes the entity named by `key`, and for a consumer its credentials. Deleting an
    /// entity that does not exist succeeds, as in Kong.
    pub(crate) fn delete(&mut self, schema: &Schema, key: &Key, ctx: &Ctx) -> Result<(), ApiError> {
        let Some(existing) = self.find(schema, key, ctx) else {
            return Ok(());
        };
        let id = existing.id().to_owned();

        if ctx.db_less {
            return Err(unsupported(Write::Delete, schema, Some(key)).into());
        }

        self.table_mut(schema).remove(&id);
        if schema.name == CONSUMERS.name {
            for credential in CREDENTIALS {
                self.table_mut(credential)
                    .retain(|_, row| row.consumer_id() != Some(id.as_str()));
            }
        }
        Ok(())
    }

    /// Runs the steps before the storage write: foreign key resolution, validation, the
    /// password transformation and the `ttl` option. Returns the expiry the `ttl` sets.
    fn check_write(
        &self,
        schema: &Schema,
        entity: &mut Map<String, Value>,
        hash_password: bool,
        ttl: Option<&Value>,
        ctx: &Ctx,
    ) -> Result<Option<i64>, ApiError> {
        self.resolve_consumer(schema, entity)?;

        validate(schema, ctx.version, entity).map_err(DaoError::schema_violation)?;

        if schema.hashes_password && hash_password {
            hash_basic_auth_password(entity);
        }

        match ttl {
            None => Ok(None),
            Some(ttl) => {
                let seconds = ttl_seconds(ttl)?;
                Ok((seconds > 0).then(|| ctx.now_ms + seconds * 1000))
            }
        }
    }

    /// Replaces a `consumer` given by `username` or `custom_id` with its `id`, as Kong's
    /// `resolve_foreign` does.
    fn resolve_consumer(
        &self,
        schema: &Schema,
        entity: &mut Map<String, Value>,
    ) -> Result<(), DaoError> {
        if !schema.is_credential() {
            return Ok(());
        }
        let Some(Value::Object(reference)) = entity.get("consumer") else {
            return Ok(());
        };
        if let Some(Value::String(id)) = reference.get("id") {
            if is_uuid(id) {
                let id = id.to_ascii_lowercase();
                entity.insert("consumer".into(), json!({ "id": id }));
                return Ok(());
            }
        }

        for field in ["username", "custom_id"] {
            let Some(value) = reference.get(field).filter(|value| value.is_string()) else {
                continue;
            };
            let wanted = value.as_str().unwrap_or_default();
            let found = self
                .rows(&CONSUMERS)
                .find(|row| row.get(field).as_str() == Some(wanted))
                .map(|row| row.id().to_owned());
            return match found {
                Some(id) => {
                    entity.insert("consumer".into(), json!({ "id": id }));
                    Ok(())
                }
                None => Err(DaoError::foreign_key_unresolved(
                    "consumer",
                    field,
                    value,
                    CONSUMERS.name,
                )),
            };
        }
        Ok(())
    }

    /// Checks what the database checks at write time: DB-less mode, then primary key, unique
    /// and foreign key constraints.
    fn check_storage(
        &self,
        schema: &Schema,
        write: Write,
        key: Option<&Key>,
        entity: &Map<String, Value>,
        replacing_id: Option<&str>,
        ctx: &Ctx,
    ) -> Result<(), ApiError> {
        if ctx.db_less {
            return Err(unsupported(write, schema, key).into());
        }

        let id = entity.get("id").and_then(Value::as_str).unwrap_or_default();
        let others = || {
            self.rows(schema)
                .filter(|row| row.is_live(ctx.now_ms))
                .filter(move |row| Some(row.id()) != replacing_id)
        };

        if write == Write::Insert && others().any(|row| row.id() == id) {
            return Err(DaoError::primary_key_violation(id).into());
        }

        for field in schema.fields.iter().filter(|field| field.unique) {
            let value = entity.get(field.name).unwrap_or(&Value::Null);
            if value.is_null() {
                continue;
            }
            if others().any(|row| row.id() != id && row.get(field.name) == value) {
                return Err(DaoError::unique_violation(field.name, value).into());
            }
        }

        if let Some(field) = schema.unique_per_consumer {
            let consumer = entity.get("consumer").and_then(|c| c.get("id"));
            let value = entity.get(field);
            let taken = others().any(|row| {
                row.id() != id
                    && row.get("consumer").get("id") == consumer
                    && Some(row.get(field)) == value
            });
            if taken {
                return Err(DaoError::primary_key_violation(id).into());
            }
        }

        if schema.is_credential() {
            let consumer_id = entity
                .get("consumer")
                .and_then(|c| c.get("id"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let exists = self
                .table(&CONSUMERS)
                .is_some_and(|consumers| consumers.contains_key(consumer_id));
            if !exists {
                return Err(DaoError::foreign_key_violation(
                    "consumer",
                    consumer_id,
                    CONSUMERS.name,
                )
                .into());
            }
        }
        Ok(())
    }

    fn store(
        &mut self,
        schema: &Schema,
        entity: Map<String, Value>,
        expires_at_ms: Option<i64>,
        ctx: &Ctx,
    ) -> Value {
        let row = Row {
            entity,
            expires_at_ms,
        };
        let rendered = render(schema, &row, ctx);
        self.table_mut(schema).insert(row.id().to_owned(), row);
        rendered
    }
}

/// Fills left-out fields on insert and upsert: auto values, defaults, and `null` for the rest,
/// because the Admin API returns every field.
fn fill_auto_fields(schema: &Schema, entity: &mut Map<String, Value>, ctx: &Ctx) {
    for field in schema
        .fields
        .iter()
        .filter(|f| ctx.version.at_least(f.since))
    {
        let missing = entity.get(field.name).is_none_or(Value::is_null);
        if !missing {
            continue;
        }
        let value = match field.auto {
            Auto::No => Value::Null,
            Auto::Uuid => json!(uuid::Uuid::new_v4().to_string()),
            Auto::CreatedAt | Auto::UpdatedAt => json!(ctx.now_s()),
            Auto::RandomString => json!(random_string()),
            Auto::Default(value) => json!(value),
        };
        entity.insert(field.name.to_owned(), value);
    }
    if schema.field("updated_at").is_some() && ctx.version.at_least((3, 3)) {
        entity.insert("updated_at".into(), json!(ctx.now_s()));
    }
}

/// Validates the `ttl` option: an integer number of seconds from 0 to 100000000.
fn ttl_seconds(ttl: &Value) -> Result<i64, DaoError> {
    let seconds = ttl.as_f64().filter(|seconds| {
        seconds.fract() == 0.0 && (0.0..=MAX_TTL_SECONDS as f64).contains(seconds)
    });
    match seconds {
        Some(seconds) => Ok(seconds as i64),
        None => {
            let mut errors = crate::errors::FieldErrors::new();
            errors.insert(
                "ttl".into(),
                json!(format!(
                    "must be an integer between 0 and {MAX_TTL_SECONDS}"
                )),
            );
            Err(DaoError::invalid_options(errors))
        }
    }
}

/// Kong's basic-auth stores the hex SHA-1 of the password followed by the consumer id.
fn hash_basic_auth_password(entity: &mut Map<String, Value>) {
    let password = entity
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let consumer_id = entity
        .get("consumer")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let salted = format!("{password}{consumer_id}");
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        salted.as_bytes(),
    );
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    entity.insert("password".into(), json!(hex));
}

/// Kong's `random_string`: 24 random bytes in base64 (32 characters), with each `/`, `+` and
/// `=` replaced by a random alphanumeric character.
pub(crate) fn random_string() -> String {
    let mut rng = rand::rng();
    let bytes: [u8; 24] = rng.random();
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '/' | '+' | '=' => rng.sample(rand::distr::Alphanumeric) as char,
            other => other,
        })
        .collect()
}

fn unsupported(write: Write, schema: &Schema, key: Option<&Key>) -> DaoError {
    let message = match key {
        Some(Key::Field(field, _)) => format!(
            "cannot {} '{}' entities by '{}' when not using a database",
            write.verb(),
            schema.name,
            field
        ),
        _ => format!(
            "cannot {} '{}' entities when not using a database",
            write.verb(),
            schema.name
        ),
    };
    DaoError::operation_unsupported(message)
}

fn render(schema: &Schema, row: &Row, ctx: &Ctx) -> Value {
    let mut rendered = Map::new();
    for field in schema
        .fields
        .iter()
        .filter(|f| ctx.version.at_least(f.since))
    {
        rendered.insert(field.name.to_owned(), row.get(field.name).clone());
    }
    if schema.ttl {
        let remaining = row
            .expires_at_ms
            .map(|expiry| (expiry - ctx.now_ms).div_euclid(1000));
        rendered.insert("ttl".into(), json!(remaining));
    }
    Value::Object(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_string_is_32_alphanumerics() {
        for _ in 0..50 {
            let key = random_string();
            assert_eq!(key.len(), 32, "{key}");
            assert!(key.chars().all(|c| c.is_ascii_alphanumeric()), "{key}");
        }
    }

    #[test]
    fn ttl_seconds_table() {
        let cases = [
            (json!(0), Some(0)),
            (json!(10), Some(10)),
            (json!(10.0), Some(10)),
            (json!(100_000_000), Some(100_000_000)),
            (json!(100_000_001), None),
            (json!(-1), None),
            (json!(1.5), None),
            (json!("10"), None),
            (Value::Null, None),
        ];
        for (ttl, expected) in cases {
            assert_eq!(ttl_seconds(&ttl).ok(), expected, "ttl={ttl}");
        }
    }

    #[test]
    fn basic_auth_hash_is_sha1_of_password_and_consumer() {
        let mut entity = json!({ "password": "secret", "consumer": { "id": "c" } })
            .as_object()
            .unwrap()
            .clone();

        hash_basic_auth_password(&mut entity);

        // SHA-1 of "secretc", from `printf secretc | sha1sum`.
        assert_eq!(
            entity["password"],
            "94b26d568ad5f1b38fd5eb28872a8e1cfc217874"
        );
    }
}

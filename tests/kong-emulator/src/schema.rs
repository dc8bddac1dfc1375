//! Entity schemas: consumers and the five consumer credential types, as Kong 3.x declares them
//! in `kong/db/schema/entities/consumers.lua` and each plugin's `daos.lua`.

/// Kind of value a field holds, which decides its validation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    /// A UUID string (`id`).
    Uuid,
    /// Integer seconds since the Unix epoch (`created_at`, `updated_at`).
    Timestamp,
    /// A non-empty string.
    Text,
    /// Kong's `tags` typedef: a set of strings.
    Tags,
    /// The `consumer` foreign key: `{"id": "<uuid>"}`.
    Consumer,
    /// A string from a fixed list.
    OneOf(&'static [&'static str]),
}

/// How a field gets a value that the request left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auto {
    No,
    /// A random UUID on insert and upsert.
    Uuid,
    /// The current time on insert and upsert.
    CreatedAt,
    /// The current time on every write.
    UpdatedAt,
    /// Kong's 32-character random string on insert and upsert.
    RandomString,
    /// A fixed default on insert and upsert.
    Default(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) kind: FieldType,
    pub(crate) required: bool,
    pub(crate) unique: bool,
    pub(crate) auto: Auto,
    /// First Kong version (major, minor) that has the field.
    pub(crate) since: (u32, u32),
}

const fn field(name: &'static str, kind: FieldType) -> Field {
    Field {
        name,
        kind,
        required: false,
        unique: false,
        auto: Auto::No,
        since: (0, 0),
    }
}

const fn required(mut field: Field) -> Field {
    field.required = true;
    field
}

const fn unique(mut field: Field) -> Field {
    field.unique = true;
    field
}

const fn auto(mut field: Field, auto: Auto) -> Field {
    field.auto = auto;
    field
}

const ID: Field = auto(field("id", FieldType::Uuid), Auto::Uuid);
const CREATED_AT: Field = auto(field("created_at", FieldType::Timestamp), Auto::CreatedAt);
const CONSUMER: Field = required(field("consumer", FieldType::Consumer));
const TAGS: Field = field("tags", FieldType::Tags);

/// Entity-level checks beyond single fields.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EntityCheck {
    None,
    /// At least one of these fields must be set (consumers: `custom_id`, `username`).
    AtLeastOneOf(&'static [&'static str]),
    /// jwt: an RSA or ECDSA `algorithm` needs a valid `rsa_public_key`.
    PublicKeyForAlgorithm,
}

/// Schema of one entity type.
#[derive(Debug)]
pub(crate) struct Schema {
    /// DAO name, used in DB-less errors (`keyauth_credentials`).
    pub(crate) name: &'static str,
    /// Top-level Admin API collection (`key-auths`).
    pub(crate) admin_name: &'static str,
    /// Collection under `/consumers/{consumer}/` (`key-auth`); `None` for consumers.
    pub(crate) nested_name: Option<&'static str>,
    /// Field that a path segment which is not a UUID refers to.
    pub(crate) endpoint_key: Option<&'static str>,
    /// Whether the entity accepts the `ttl` option (only key-auth among credentials).
    pub(crate) ttl: bool,
    pub(crate) fields: &'static [Field],
    pub(crate) check: EntityCheck,
    /// basic-auth stores SHA-1(password + consumer id) in place of the password.
    pub(crate) hashes_password: bool,
    /// acls: a consumer has each group once. Kong enforces this with a unique `cache_key`
    /// column that is not a schema field, so a duplicate fails as a primary key violation.
    pub(crate) unique_per_consumer: Option<&'static str>,
}

impl Schema {
    pub(crate) fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    pub(crate) fn is_credential(&self) -> bool {
        self.nested_name.is_some()
    }
}

/// JWT algorithms that Kong 3.4 accepts.
// NOTE: later releases add ES512, PS256, PS384, PS512 and EdDSA; this list is the 3.4 one.
pub(crate) const JWT_ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384",
];

pub(crate) static CONSUMERS: Schema = Schema {
    name: "consumers",
    admin_name: "consumers",
    nested_name: None,
    endpoint_key: Some("username"),
    ttl: false,
    fields: &[
        ID,
        CREATED_AT,
        Field {
            since: (3, 3),
            ..auto(field("updated_at", FieldType::Timestamp), Auto::UpdatedAt)
        },
        unique(field("username", FieldType::Text)),
        unique(field("custom_id", FieldType::Text)),
        TAGS,
    ],
    check: EntityCheck::AtLeastOneOf(&["custom_id", "username"]),
    hashes_password: false,
    unique_per_consumer: None,
};

pub(crate) static KEY_AUTH: Schema = Schema {
    name: "keyauth_credentials",
    admin_name: "key-auths",
    nested_name: Some("key-auth"),
    endpoint_key: Some("key"),
    ttl: true,
    fields: &[
        ID,
        CREATED_AT,
        CONSUMER,
        unique(auto(field("key", FieldType::Text), Auto::RandomString)),
        TAGS,
    ],
    check: EntityCheck::None,
    hashes_password: false,
    unique_per_consumer: None,
};

pub(crate) static BASIC_AUTH: Schema = Schema {
    name: "basicauth_credentials",
    admin_name: "basic-auths",
    nested_name: Some("basic-auth"),
    endpoint_key: Some("username"),
    ttl: false,
    fields: &[
        ID,
        CREATED_AT,
        CONSUMER,
        required(unique(field("username", FieldType::Text))),
        required(field("password", FieldType::Text)),
        TAGS,
    ],
    check: EntityCheck::None,
    hashes_password: true,
    unique_per_consumer: None,
};

pub(crate) static HMAC_AUTH: Schema = Schema {
    name: "hmacauth_credentials",
    admin_name: "hmac-auths",
    nested_name: Some("hmac-auth"),
    endpoint_key: Some("username"),
    ttl: false,
    fields: &[
        ID,
        CREATED_AT,
        CONSUMER,
        required(unique(field("username", FieldType::Text))),
        auto(field("secret", FieldType::Text), Auto::RandomString),
        TAGS,
    ],
    check: EntityCheck::None,
    hashes_password: false,
    unique_per_consumer: None,
};

pub(crate) static JWT: Schema = Schema {
    name: "jwt_secrets",
    admin_name: "jwts",
    nested_name: Some("jwt"),
    endpoint_key: Some("key"),
    ttl: false,
    fields: &[
        ID,
        CREATED_AT,
        CONSUMER,
        unique(auto(field("key", FieldType::Text), Auto::RandomString)),
        auto(field("secret", FieldType::Text), Auto::RandomString),
        field("rsa_public_key", FieldType::Text),
        auto(
            field("algorithm", FieldType::OneOf(JWT_ALGORITHMS)),
            Auto::Default("HS256"),
        ),
        TAGS,
    ],
    check: EntityCheck::PublicKeyForAlgorithm,
    hashes_password: false,
    unique_per_consumer: None,
};

pub(crate) static ACLS: Schema = Schema {
    name: "acls",
    admin_name: "acls",
    nested_name: Some("acls"),
    endpoint_key: None,
    ttl: false,
    fields: &[
        ID,
        CREATED_AT,
        CONSUMER,
        required(field("group", FieldType::Text)),
        TAGS,
    ],
    check: EntityCheck::None,
    hashes_password: false,
    unique_per_consumer: Some("group"),
};

/// Every credential schema, in the order `GET /` lists their plugins.
pub(crate) static CREDENTIALS: [&Schema; 5] = [&KEY_AUTH, &BASIC_AUTH, &HMAC_AUTH, &JWT, &ACLS];

/// Finds a schema by its top-level Admin API collection name.
pub(crate) fn by_admin_name(name: &str) -> Option<&'static Schema> {
    std::iter::once(&CONSUMERS)
        .chain(CREDENTIALS)
        .find(|schema| schema.admin_name == name)
}

/// Finds a credential schema by its nested collection name.
pub(crate) fn by_nested_name(name: &str) -> Option<&'static Schema> {
    CREDENTIALS
        .into_iter()
        .find(|schema| schema.nested_name == Some(name))
}

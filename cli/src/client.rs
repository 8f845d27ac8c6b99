//! `writ client …`: register and manage OAuth clients.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};
use writ_domain::client::{AuthMethod, Client, ClientCommand as Register, ClientSettings};
use writ_domain::values::{
    ApplicationType, GrantType, IdTokenAlg, RedirectUri, ResourceUri, ScopeSet, SecretHash,
    TokenFormat,
};
use writ_infra::crypto::{random_token, sha256_hex};
use writ_store::views::clients::{self, ClientRow};
use writ_store::{ExecuteError, Metadata};

use crate::args::{ClientCommand, ClientFields};
use crate::context::{read_stdin_line, Context};
use crate::output;

const ACTOR: &str = "cli";
/// Below this a secret is guessable offline from its SHA-256 hash.
const MIN_SECRET_LEN: usize = 32;

pub async fn run(context: Context, command: ClientCommand, json: bool) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create {
            fields,
            public,
            client_id,
            secret_stdin,
            allow_weak_secret,
        } => {
            let client_id = match client_id {
                Some(id) => checked_client_id(id)?,
                None => uuid::Uuid::new_v4().simple().to_string(),
            };
            let settings = settings_from(&context, fields, None, public)?;
            let uses_keys = !public && !settings.uses_secret();
            if uses_keys && secret_stdin {
                bail!("a private_key_jwt client has no secret; drop --secret-stdin");
            }
            let secret = match (public || uses_keys, secret_stdin) {
                (true, true) => bail!("a public client has no secret; drop --secret-stdin"),
                (true, false) => None,
                (false, true) => Some(weak_checked(
                    read_stdin_line("client secret")?,
                    allow_weak_secret,
                )?),
                (false, false) => Some(random_token()),
            };
            let command = Register::Register {
                client_id: client_id.clone(),
                settings,
                secret_hash: secret
                    .as_deref()
                    .map(|s| SecretHash(sha256_hex(s.as_bytes()))),
                // An administrator's client is managed with this CLI, not
                // through RFC 7592.
                registration_token_hash: None,
            };
            execute(&context, &client_id, command).await?;
            show(&context, &client_id, secret.as_deref(), json).await
        }
        ClientCommand::List => list(&context, json).await,
        ClientCommand::Show { client_id } => show(&context, &client_id, None, json).await,
        ClientCommand::Update { client_id, fields } => {
            let current = load(&context, &client_id).await?;
            let public = current.public;
            let settings = settings_from(&context, fields, Some(current), public)?;
            execute(&context, &client_id, Register::ChangeSettings { settings }).await?;
            show(&context, &client_id, None, json).await
        }
        ClientCommand::RotateSecret { client_id } => {
            let secret = random_token();
            let hash = SecretHash(sha256_hex(secret.as_bytes()));
            execute(
                &context,
                &client_id,
                Register::RotateSecret { secret_hash: hash },
            )
            .await?;
            show(&context, &client_id, Some(&secret), json).await
        }
        ClientCommand::Disable { client_id, reason } => {
            execute(&context, &client_id, Register::Disable { reason }).await?;
            show(&context, &client_id, None, json).await
        }
    }
}

async fn execute(context: &Context, client_id: &str, command: Register) -> anyhow::Result<()> {
    match context
        .executor
        .execute::<Client>(client_id, command, &Metadata::cli(ACTOR))
        .await
    {
        Ok(_) => Ok(()),
        Err(ExecuteError::Rejected(why)) => Err(anyhow!("client {client_id}: {why}")),
        Err(other) => Err(anyhow!(other)),
    }
}

fn checked_client_id(id: String) -> anyhow::Result<String> {
    let valid = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if valid {
        Ok(id)
    } else {
        bail!("--client-id must be 1 to 128 characters of A-Z a-z 0-9 - . _ ~")
    }
}

fn weak_checked(secret: String, allow_weak: bool) -> anyhow::Result<String> {
    if secret.is_empty() {
        bail!("the client secret read from standard input is empty");
    }
    if secret.chars().count() < MIN_SECRET_LEN && !allow_weak {
        bail!("the client secret is shorter than {MIN_SECRET_LEN} characters; omit --secret-stdin to get a generated one, or add --allow-weak-secret for a demo");
    }
    Ok(secret)
}

fn settings_from(
    context: &Context,
    fields: ClientFields,
    current: Option<ClientSettings>,
    public: bool,
) -> anyhow::Result<ClientSettings> {
    let redirect_uris = fields
        .redirect_uris
        .iter()
        .map(|raw| RedirectUri::parse(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let post_logout_redirect_uris = fields
        .post_logout_redirect_uris
        .iter()
        .map(|raw| RedirectUri::parse(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let resources = fields
        .resources
        .iter()
        .map(|raw| ResourceUri::parse(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let mut grant_types = fields
        .grant_types
        .iter()
        .map(|raw| {
            // RFC 8628's name is a URN; its last part is what people type.
            let named = match raw.as_str() {
                "device_code" => GrantType::parse(GrantType::DeviceCode.as_str()),
                "token_exchange" => GrantType::parse(GrantType::TokenExchange.as_str()),
                other => GrantType::parse(other),
            };
            named.ok_or_else(|| anyhow!("unknown grant type {raw:?}; use authorization_code, client_credentials, refresh_token, password, device_code or token_exchange"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    grant_types.sort();
    grant_types.dedup();
    let scopes = fields.scope.as_deref().map(ScopeSet::parse).transpose()?;
    let ttl = |given: Option<Duration>, default: Duration| given.unwrap_or(default).as_secs();
    let (access_default, refresh_default) = (
        context.settings.access_token_ttl,
        context.settings.refresh_token_ttl,
    );
    let current = current.unwrap_or_else(|| ClientSettings {
        name: String::new(),
        redirect_uris: Vec::new(),
        grant_types: Vec::new(),
        scopes: ScopeSet::default(),
        public,
        application_type: ApplicationType::Web,
        token_format: TokenFormat::Jwt,
        access_token_ttl_secs: access_default.as_secs(),
        refresh_token_ttl_secs: refresh_default.as_secs(),
        audience: Vec::new(),
        resources: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        id_token_signed_response_alg: None,
        revocation_feed: false,
        require_pushed_authorization_requests: false,
        dpop_bound_access_tokens: false,
        fapi2_security_profile: false,
        token_endpoint_auth_method: None,
        jwks: None,
        jwks_uri: None,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
    });
    let is_new = current.name.is_empty();
    let jwks = match &fields.jwks_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot be read", path.display()))?;
            Some(
                serde_json::from_str::<Value>(&text)
                    .with_context(|| format!("{}: not a JSON Web Key Set", path.display()))?,
            )
        }
        None => None,
    };
    let keys_given = jwks.is_some() || fields.jwks_uri.is_some();
    let revocation_feed = fields.revocation_feed.unwrap_or(current.revocation_feed);
    let fapi2 = fields.fapi2.unwrap_or(current.fapi2_security_profile);
    if public && revocation_feed {
        bail!("a public client cannot authenticate to the revocation feed; drop --revocation-feed");
    }
    let grant_types = match (grant_types.is_empty(), is_new) {
        (false, _) => grant_types,
        (true, false) => current.grant_types.clone(),
        (true, true) if !redirect_uris.is_empty() => {
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        }
        (true, true) if !public => vec![GrantType::ClientCredentials],
        (true, true) => Vec::new(),
    };
    Ok(ClientSettings {
        name: fields.name.unwrap_or(current.name),
        redirect_uris: if redirect_uris.is_empty() {
            current.redirect_uris
        } else {
            redirect_uris
        },
        grant_types,
        scopes: scopes.unwrap_or(current.scopes),
        public,
        application_type: match fields.application_type.as_deref() {
            Some("native") => ApplicationType::Native,
            Some(_) => ApplicationType::Web,
            None => current.application_type,
        },
        token_format: match fields.token_format.as_deref() {
            Some("opaque") => TokenFormat::Opaque,
            Some(_) => TokenFormat::Jwt,
            None => current.token_format,
        },
        access_token_ttl_secs: ttl(
            fields.access_token_ttl,
            Duration::from_secs(current.access_token_ttl_secs),
        ),
        refresh_token_ttl_secs: ttl(
            fields.refresh_token_ttl,
            Duration::from_secs(current.refresh_token_ttl_secs),
        ),
        audience: if fields.audience.is_empty() {
            current.audience
        } else {
            fields.audience
        },
        resources: if resources.is_empty() {
            current.resources
        } else {
            resources
        },
        post_logout_redirect_uris: if post_logout_redirect_uris.is_empty() {
            current.post_logout_redirect_uris
        } else {
            post_logout_redirect_uris
        },
        id_token_signed_response_alg: fields
            .id_token_alg
            .as_deref()
            .and_then(IdTokenAlg::parse)
            .or(current.id_token_signed_response_alg)
            // FAPI 2.0 §5.4.1 rules RS256 out: its default is ES256.
            .or(fapi2.then_some(IdTokenAlg::ES256)),
        revocation_feed,
        require_pushed_authorization_requests: fields
            .require_par
            .unwrap_or(current.require_pushed_authorization_requests)
            || fapi2,
        dpop_bound_access_tokens: fields
            .dpop_bound
            .unwrap_or(current.dpop_bound_access_tokens)
            || fapi2,
        fapi2_security_profile: fapi2,
        token_endpoint_auth_method: if keys_given {
            Some(AuthMethod::PrivateKeyJwt)
        } else {
            current.token_endpoint_auth_method
        },
        jwks: if keys_given { jwks } else { current.jwks },
        jwks_uri: if keys_given {
            fields.jwks_uri
        } else {
            current.jwks_uri
        },
        backchannel_logout_uri: match fields.backchannel_logout_uri {
            Some(uri) if uri.is_empty() => None,
            Some(uri) => Some(uri),
            None => current.backchannel_logout_uri,
        },
        backchannel_logout_session_required: fields
            .backchannel_logout_session_required
            .unwrap_or(current.backchannel_logout_session_required),
    })
}

async fn load(context: &Context, client_id: &str) -> anyhow::Result<ClientSettings> {
    let row = clients::find(context.store.db(), client_id)
        .await?
        .ok_or_else(|| anyhow!("client {client_id}: no such client"))?;
    settings_of(&row)
}

fn settings_of(row: &ClientRow) -> anyhow::Result<ClientSettings> {
    row.settings()
        .context("stored client settings are unreadable")
}

/// RFC 7591 §2 and §3.2.1 field names.
fn describe(row: &ClientRow, secret: Option<&str>) -> anyhow::Result<Value> {
    let settings = settings_of(row)?;
    let mut value = json!({
        "client_id": row.client_id,
        "client_name": settings.name,
        "redirect_uris": settings.redirect_uris,
        "grant_types": settings.grant_types,
        "response_types": if settings.grant_types.contains(&GrantType::AuthorizationCode) { vec!["code"] } else { vec![] },
        "scope": settings.scopes.to_string(),
        "token_endpoint_auth_method": match settings.token_endpoint_auth_method {
            Some(method) => method.as_str(),
            None if settings.public => "none",
            None => "client_secret_basic",
        },
        "jwks_uri": settings.jwks_uri,
        "jwks": settings.jwks,
        "application_type": settings.application_type,
        "access_token_format": settings.token_format,
        "access_token_ttl": humantime::format_duration(Duration::from_secs(settings.access_token_ttl_secs)).to_string(),
        "refresh_token_ttl": humantime::format_duration(Duration::from_secs(settings.refresh_token_ttl_secs)).to_string(),
        "audience": settings.audience,
        "resources": settings.resources,
        "post_logout_redirect_uris": settings.post_logout_redirect_uris,
        "id_token_signed_response_alg": settings.id_token_signed_response_alg.unwrap_or_default().as_str(),
        "revocation_feed": settings.revocation_feed,
        "require_pushed_authorization_requests": settings.require_pushed_authorization_requests,
        "dpop_bound_access_tokens": settings.dpop_bound_access_tokens,
        "fapi2_security_profile": settings.fapi2_security_profile,
        "backchannel_logout_uri": settings.backchannel_logout_uri,
        "backchannel_logout_session_required": settings.backchannel_logout_session_required,
        "status": row.status.as_str(),
        "registered_at": row.registered_at,
    });
    if let Some(secret) = secret {
        value["client_secret"] = json!(secret);
        value["client_secret_expires_at"] = json!(0);
    }
    Ok(value)
}

async fn show(
    context: &Context,
    client_id: &str,
    secret: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let row = clients::find(context.store.db(), client_id)
        .await?
        .ok_or_else(|| anyhow!("client {client_id}: no such client"))?;
    let value = describe(&row, secret)?;
    if json {
        output::json(&value);
    } else {
        output::record(&value);
        if secret.is_some() {
            outln!("\nThe client secret is shown only now; store it safely.");
        }
    }
    Ok(())
}

async fn list(context: &Context, json: bool) -> anyhow::Result<()> {
    let rows = clients::all(context.store.db()).await?;
    let clients = rows
        .iter()
        .map(|row| describe(row, None))
        .collect::<Result<Vec<_>, _>>()?;
    if json {
        output::json(&Value::Array(clients));
        return Ok(());
    }
    let field = |c: &Value, k: &str| c[k].as_str().unwrap_or("-").to_owned();
    let table: Vec<Vec<String>> = clients
        .iter()
        .map(|c| {
            let grants: Vec<&str> = c["grant_types"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            vec![
                field(c, "client_id"),
                field(c, "client_name"),
                field(c, "status"),
                grants.join(","),
                field(c, "scope"),
            ]
        })
        .collect();
    output::table(
        &["CLIENT_ID", "NAME", "STATUS", "GRANT_TYPES", "SCOPE"],
        &table,
    );
    Ok(())
}

//! `writ user …`: accounts. Personal fields are sealed under the subject's
//! own data key before they reach a command; listings open them again, or
//! show "forgotten" once the key is gone.

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use writ_domain::account::{Account, AccountCommand};
use writ_domain::values::Sealed;
use writ_infra::crypto::hash_password;
use writ_infra::personal::{account_id, normalize_username, SubjectKey, FORGOTTEN};
use writ_store::executor::Stream;
use writ_store::inline::timestamp;
use writ_store::views::accounts::{self, AccountRow};
use writ_store::SideWrite;
use writ_store::{ExecuteError, Metadata};

use crate::args::UserCommand;
use crate::context::{read_stdin_line, Context};
use crate::output;

const ACTOR: &str = "cli";

pub async fn run(context: Context, command: UserCommand, json: bool) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            username,
            password_stdin,
            email,
            name,
        } => {
            let normalised = normalize_username(&username)?;
            if let Some(email) = email.as_deref().filter(|e| !looks_like_email(e)) {
                bail!("email {email:?} is not an email address");
            }
            let password = read_password(password_stdin)?;
            let sub = uuid::Uuid::new_v4().to_string();
            let key = SubjectKey::generate(&sub);
            let command = AccountCommand::Create {
                sub: sub.clone(),
                username: key.seal("username", &normalised),
                email: email.map(|e| key.seal("email", &e)),
                name: name.map(|n| key.seal("name", &n)),
                password_hash: key.seal("password_hash", &hash_password(&password)?),
            };
            let wrapped = SideWrite::StoreSubjectKey {
                sub: sub.clone(),
                wrapped_key: key.wrap(&context.keys),
                created_at: timestamp(&chrono::Utc::now()),
            };
            let id = account_id(&context.keys, &normalised);
            let outcome = context
                .executor
                .execute_with::<Account>(
                    &id,
                    command,
                    &Metadata::cli(ACTOR),
                    vec![wrapped],
                    Stream::Existing,
                )
                .await;
            check(outcome, &username)?;
            show(&context, &normalised, json).await
        }
        UserCommand::List => list(&context, json).await,
        UserCommand::Show { username } => {
            show(&context, &normalize_username(&username)?, json).await
        }
        UserCommand::SetPassword {
            username,
            password_stdin,
        } => {
            let (id, key) = subject_of(&context, &username).await?;
            let password = read_password(password_stdin)?;
            let command = AccountCommand::ChangePassword {
                password_hash: key.seal("password_hash", &hash_password(&password)?),
            };
            check(
                context
                    .executor
                    .execute::<Account>(&id, command, &Metadata::cli(ACTOR))
                    .await,
                &username,
            )?;
            outln!("password of {username} changed");
            Ok(())
        }
        UserCommand::Disable { username, reason } => {
            let command = AccountCommand::Disable { reason };
            set_status(&context, &username, command, json).await
        }
        UserCommand::Enable { username, reason } => {
            let command = AccountCommand::Enable { reason };
            set_status(&context, &username, command, json).await
        }
        UserCommand::SignOut { username } => {
            let (id, _) = subject_of(&context, &username).await?;
            let sub = accounts::sub_of(context.store.db(), &id)
                .await?
                .ok_or_else(|| anyhow!("user {username}: no such account"))?;
            let (sessions, grants) = writ_command_api::sign_out::sign_out(
                &context.executor,
                &context.store,
                &sub,
                ACTOR,
                &Metadata::cli(ACTOR),
            )
            .await
            .map_err(|_| anyhow!("user {username}: the store did not answer; try again"))?;
            if json {
                outln!(
                    "{}",
                    serde_json::json!({"sessions_ended": sessions, "grants_revoked": grants})
                );
            } else {
                outln!("signed {username} out of {sessions} session(s); {grants} grant(s) revoked");
            }
            Ok(())
        }
        UserCommand::Forget { username } => {
            let (id, _) = subject_of(&context, &username).await?;
            let sub = accounts::sub_of(context.store.db(), &id)
                .await?
                .ok_or_else(|| anyhow!("user {username}: no such account"))?;
            let delete_key = vec![SideWrite::DeleteSubjectKey { sub: sub.clone() }];
            let outcome = context
                .executor
                .execute_with::<Account>(
                    &id,
                    AccountCommand::Forget,
                    &Metadata::cli(ACTOR),
                    delete_key,
                    Stream::Existing,
                )
                .await;
            check(outcome, &username)?;
            outln!("forgot subject {sub}; its personal data can no longer be decrypted");
            Ok(())
        }
    }
}

/// Disables or enables an account, then shows it.
async fn set_status(
    context: &Context,
    username: &str,
    command: AccountCommand,
    json: bool,
) -> anyhow::Result<()> {
    let (id, _) = subject_of(context, username).await?;
    let outcome = context
        .executor
        .execute::<Account>(&id, command, &Metadata::cli(ACTOR))
        .await;
    check(outcome, username)?;
    show(context, &normalize_username(username)?, json).await
}

fn check<T>(
    outcome: Result<T, ExecuteError<writ_domain::account::AccountError>>,
    username: &str,
) -> anyhow::Result<()> {
    match outcome {
        Ok(_) => Ok(()),
        Err(ExecuteError::Rejected(why)) => Err(anyhow!("user {username}: {why}")),
        Err(ExecuteError::Conflict) => Err(anyhow!(
            "user {username}: the account kept changing; try again"
        )),
        Err(other) => Err(anyhow!(other)),
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if !from_stdin {
        bail!("a password is required: pipe it in and pass --password-stdin");
    }
    let password = read_stdin_line("password")?;
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    Ok(password)
}

fn looks_like_email(email: &str) -> bool {
    matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace))
}

/// The account id and the live subject's data key for a username.
async fn subject_of(context: &Context, username: &str) -> anyhow::Result<(String, SubjectKey)> {
    let id = account_id(&context.keys, &normalize_username(username)?);
    let account = accounts::by_account_id(context.store.db(), &id).await?;
    let (sub, wrapped) = account
        .and_then(|account| account.wrapped_key.map(|wrapped| (account.sub, wrapped)))
        .ok_or_else(|| anyhow!("user {username}: no such account"))?;
    let key = SubjectKey::unwrap(&sub, &wrapped, &context.keys)?;
    Ok((id, key))
}

fn describe(context: &Context, row: &AccountRow) -> anyhow::Result<Value> {
    let sub = row.sub.clone();
    let key = row
        .wrapped_key
        .as_deref()
        .and_then(|w| SubjectKey::unwrap(&sub, w, &context.keys).ok());
    let open = |field: &str| -> Value {
        let sealed = row.sealed(field).map(str::to_owned);
        match (&key, sealed) {
            (_, None) => Value::Null,
            (None, Some(_)) => json!(FORGOTTEN),
            (Some(key), Some(sealed)) => json!(key
                .open(field, &Sealed(sealed))
                .unwrap_or_else(|| FORGOTTEN.into())),
        }
    };
    Ok(json!({
        "sub": sub,
        "username": open("username"),
        "email": open("email"),
        "name": open("name"),
        "status": row.status.as_str(),
        "created_at": row.created_at,
    }))
}

async fn show(context: &Context, normalised: &str, json: bool) -> anyhow::Result<()> {
    let id = account_id(&context.keys, normalised);
    let row = accounts::by_account_id(context.store.db(), &id)
        .await?
        .ok_or_else(|| anyhow!("user {normalised}: no such account"))?;
    let value = describe(context, &row)?;
    if json {
        output::json(&value);
    } else {
        output::record(&value);
    }
    Ok(())
}

async fn list(context: &Context, json: bool) -> anyhow::Result<()> {
    let rows = accounts::all(context.store.db()).await?;
    let users = rows
        .iter()
        .map(|row| describe(context, row))
        .collect::<Result<Vec<_>, _>>()?;
    if json {
        output::json(&Value::Array(users));
        return Ok(());
    }
    let cell = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let table: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                cell(&u["sub"]),
                cell(&u["username"]),
                cell(&u["email"]),
                cell(&u["status"]),
                cell(&u["created_at"]),
            ]
        })
        .collect();
    output::table(
        &["SUB", "USERNAME", "EMAIL", "STATUS", "CREATED_AT"],
        &table,
    );
    Ok(())
}

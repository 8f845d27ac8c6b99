//! `writ keys list|rotate`: the signing keys' public side and rotation.

use anyhow::{anyhow, Context as _};
use serde_json::{json, Value};
use writ_infra::signing::{self, keypair};
use writ_store::views::keys as view;

use crate::context::Context;
use crate::output;

pub async fn list(context: Context, json: bool) -> anyhow::Result<()> {
    let rows = view::by_generation(context.store.db())
        .await
        .context("cannot read the signing keys")?;
    let keys: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "kid": row.kid,
                "alg": row.alg,
                "status": row.status.as_str(),
                "generated_at": row.generated_at,
                "updated_at": row.updated_at,
            })
        })
        .collect();
    if json {
        output::json(&Value::Array(keys));
    } else {
        let cells = |k: &Value, f: &str| k[f].as_str().unwrap_or("-").to_owned();
        let rows: Vec<Vec<String>> = keys
            .iter()
            .map(|k| {
                ["kid", "alg", "status", "generated_at", "updated_at"]
                    .iter()
                    .map(|f| cells(k, f))
                    .collect()
            })
            .collect();
        output::table(&["KID", "ALG", "STATUS", "GENERATED", "CHANGED"], &rows);
    }
    Ok(())
}

pub async fn rotate(context: Context, alg: &str, json: bool) -> anyhow::Result<()> {
    if !keypair::ALGS.contains(&alg) {
        return Err(anyhow!(
            "unknown algorithm {alg:?}; use ES256, EdDSA or RS256"
        ));
    }
    let kid = signing::rotate(&context.executor, &context.store, &context.keys, alg, "cli").await?;
    if json {
        output::json(&json!({"kid": kid, "alg": alg, "status": "active"}));
    } else {
        outln!("activated {alg} key {kid}; the previous {alg} key is retired and stays published while its tokens live");
    }
    Ok(())
}

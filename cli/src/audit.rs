//! `writ audit …`: the auditor's questions, answered from the log (see
//! `writ_query_api::audit`), as a table, JSON (`--json`) or CSV (`--csv`).

use anyhow::bail;
use chrono::Utc;
use serde_json::Value;
use writ_query_api::audit::{self, Report};
use writ_store::seal;

use crate::args::{AuditArgs, AuditCommand, ExportFormat, HistoryFormat};
use crate::context::Context;
use crate::output;

pub async fn run(context: Context, args: AuditArgs, json: bool) -> anyhow::Result<()> {
    let store = &context.store;
    let shape = Shape::from_flags(json, args.csv)?;
    match args.command {
        AuditCommand::Grants {
            subject,
            client,
            as_of,
        } => {
            let sub = audit::subject_of(&context.store, &context.keys, &subject).await?;
            let at = as_of.unwrap_or_else(Utc::now);
            shape.print(&audit::grants(store, &sub, client.as_deref(), at).await?);
        }
        AuditCommand::Consents { subject } => {
            let sub = audit::subject_of(&context.store, &context.keys, &subject).await?;
            shape.print(&audit::consents(store, &sub).await?);
        }
        AuditCommand::History { grant, format } => {
            let report = audit::history(store, &grant).await?;
            if report.rows.is_empty() {
                bail!("grant {grant}: no such grant in the log");
            }
            match format {
                HistoryFormat::Table => shape.print(&report),
                HistoryFormat::Dot => out!("{}", dot(&grant, &report)),
            }
        }
        AuditCommand::Seal => match seal::seal(store, &context.keys.checkpoint.0).await? {
            Some(checkpoint) => outln!(
                "sealed {} events up to {} (rolling hash {})",
                checkpoint.event_count,
                checkpoint.cursor,
                checkpoint.rolling_hash
            ),
            None => outln!("nothing to seal: no event since the last checkpoint"),
        },
        AuditCommand::Verify => return verify(&context, json).await,
        AuditCommand::WhoCan { scope, client, at } => {
            shape.print(&audit::who_can(store, &scope, client.as_deref(), at).await?);
        }
        AuditCommand::Notifications {
            grant,
            position,
            receiver,
            from,
            to,
        } => {
            if let (Some(receiver), Some(from), Some(to)) = (receiver, from, to) {
                if from >= to {
                    bail!("--from must be before --to");
                }
                shape.print(&audit::notifications_to(store, &receiver, from, to).await?);
            } else {
                let position = position
                    .map(|raw| raw.parse().map_err(|why: String| anyhow::anyhow!(why)))
                    .transpose()?;
                shape.print(&audit::notifications_of(store, grant.as_deref(), position).await?);
            }
        }
        AuditCommand::Export { from, to, format } => {
            if from >= to {
                bail!("--from must be before --to");
            }
            let report = audit::export(store, from, to).await?;
            match format {
                ExportFormat::Ndjson => {
                    for object in report.objects() {
                        outln!("{object}");
                    }
                }
                ExportFormat::Csv => Shape::Csv.print(&report),
            }
        }
    }
    Ok(())
}

async fn verify(context: &Context, json: bool) -> anyhow::Result<()> {
    let verification = seal::verify(&context.store, &context.keys.checkpoint.0).await?;
    let public_key = seal::public_key(&context.keys.checkpoint.0)?;
    if json {
        output::json(&verification.to_json(Some(&public_key)));
    } else {
        outln!(
            "hash chains: {} events checked, {} broken stream(s)",
            verification.events,
            verification.chain_breaks.len()
        );
        for broken in &verification.chain_breaks {
            outln!(
                "  broken: {}/{} at sequence {} (position {})",
                broken.aggregate_type,
                broken.aggregate_id,
                broken.sequence,
                broken.position
            );
        }
        outln!(
            "checkpoints: {} checked against key {public_key}, {} failed",
            verification.checkpoints,
            verification.failures.len()
        );
        for failure in &verification.failures {
            let since = failure.since.as_deref().unwrap_or("the start of the log");
            outln!(
                "  checkpoint {}: {} (damage after {since})",
                failure.cursor,
                failure.problem
            );
        }
        match &verification.last_sealed {
            Some(cursor) => outln!(
                "sealed up to {cursor}; {} event(s) after it are not sealed yet",
                verification.unsealed
            ),
            None => outln!(
                "nothing sealed yet; {} event(s) are not sealed",
                verification.unsealed
            ),
        }
    }
    if verification.intact() {
        Ok(())
    } else {
        bail!("the log fails verification")
    }
}

enum Shape {
    Table,
    Json,
    Csv,
}

impl Shape {
    fn from_flags(json: bool, csv: bool) -> anyhow::Result<Self> {
        Ok(match (json, csv) {
            (true, true) => bail!("give --json or --csv, not both"),
            (true, false) => Self::Json,
            (false, true) => Self::Csv,
            (false, false) => Self::Table,
        })
    }

    fn print(&self, report: &Report) {
        match self {
            Self::Json => output::json(&Value::Array(report.objects())),
            Self::Table => {
                let rows: Vec<Vec<String>> = report
                    .rows
                    .iter()
                    .map(|row| row.iter().map(cell).collect())
                    .collect();
                output::table(&report.columns, &rows);
            }
            Self::Csv => output::write(&csv_text(report)),
        }
    }
}

/// RFC 4180 through the `csv` crate (quoted where a comma, quote or line
/// break needs it), every cell through [`formula_guard`].
fn csv_text(report: &Report) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let header = report.columns.iter().map(|name| formula_guard(name));
    let rows = report.rows.iter().map(|row| {
        row.iter()
            .map(|value| formula_guard(&cell(value)))
            .collect::<Vec<_>>()
    });
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(header);
    for row in rows {
        let _ = writer.write_record(&row);
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet
/// opening the export never runs a value from the log as a formula.
fn formula_guard(text: &str) -> String {
    if text.starts_with(['=', '+', '@']) || (text.starts_with('-') && text != "-") {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The lineage as a Graphviz digraph: one node per event, in log order,
/// grouped by stream.
fn dot(gid: &str, report: &Report) -> String {
    let column = |name: &str| report.columns.iter().position(|c| *c == name);
    let (Some(time), Some(stream), Some(event)) =
        (column("recorded_at"), column("aggregate"), column("event"))
    else {
        return String::new();
    };
    let quote = |text: &str| text.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!(
        "digraph \"grant {}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
        quote(gid)
    );
    let mut streams: Vec<String> = Vec::new();
    for row in &report.rows {
        let name = cell(&row[stream]);
        if !streams.contains(&name) {
            streams.push(name);
        }
    }
    for (index, name) in streams.iter().enumerate() {
        out.push_str(&format!(
            "  subgraph cluster_{index} {{ label=\"{}\";",
            quote(name)
        ));
        for (n, row) in report.rows.iter().enumerate() {
            if cell(&row[stream]) == *name {
                out.push_str(&format!(
                    " e{n} [label=\"{}\\n{}\"];",
                    quote(&cell(&row[event])),
                    quote(&cell(&row[time]))
                ));
            }
        }
        out.push_str(" }\n");
    }
    for n in 1..report.rows.len() {
        out.push_str(&format!("  e{} -> e{n};\n", n - 1));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        let report = Report {
            columns: vec!["event", "note"],
            rows: vec![
                vec![json!("plain"), json!("a,b")],
                vec![json!("say \"hi\""), json!("=HYPERLINK(\"x\")")],
                vec![json!("-"), json!("-1+1")],
                vec![Value::Null, json!("two\nlines")],
                vec![json!("@sum"), json!(7)],
            ],
        };
        assert_eq!(
            csv_text(&report),
            "event,note\n\
             plain,\"a,b\"\n\
             \"say \"\"hi\"\"\",\"'=HYPERLINK(\"\"x\"\")\"\n\
             -,'-1+1\n\
             -,\"two\nlines\"\n\
             '@sum,7\n"
        );
    }
}

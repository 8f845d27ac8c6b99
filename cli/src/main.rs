//! The `writ` binary: parse arguments, resolve settings, start logging, run
//! the subcommand. Errors end as one line on stderr and a non-zero exit.

/// `println!` through [`output::write`]: no panic on a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`output::write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(&format!($($arg)*))
    };
}

mod args;
mod audit;
mod client;
mod config;
mod context;
mod http_server;
mod keys;
mod output;
mod replay;
mod serve;
mod split;
mod telemetry;
mod user;

use std::process::ExitCode;

/// A bulk replay spent a tenth of its time in glibc's malloc and free, much
/// of it freeing on one thread what another allocated.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::args::{Cli, Command, KeysCommand};
use crate::context::Context;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            // clap's error comes with tips and usage; one line is clearer.
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("writ: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
        Err(err) => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("writ: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("writ: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let serve_args = match &cli.command {
        Command::Serve(args)
        | Command::WriteApi(args)
        | Command::ReadApi(args)
        | Command::Projector(args) => Some(args),
        _ => None,
    };
    let settings = context::resolve_settings(&cli.global, serve_args)?;
    let default_filter = if serve_args.is_some() { "info" } else { "warn" };
    crate::telemetry::init(settings.log_format, default_filter);
    let json = cli.global.json;
    match cli.command {
        Command::Serve(_) => serve::run(settings).await,
        Command::WriteApi(_) => split::command_api(settings).await,
        Command::ReadApi(_) => split::query_api(settings).await,
        Command::Projector(_) => split::projector(settings).await,
        Command::Keys(KeysCommand::List) => keys::list(Context::open(settings).await?, json).await,
        Command::Keys(KeysCommand::Rotate { alg }) => {
            let alg = alg.unwrap_or_else(|| settings.signing_alg.as_str().to_owned());
            keys::rotate(Context::open(settings).await?, &alg, json).await
        }
        Command::Keys(KeysCommand::Init) => {
            writ_infra::keys::KeyRing::generate().write_new(&settings.key_file)?;
            outln!("created key file {}", settings.key_file.display());
            Ok(())
        }
        Command::Migrate => {
            let context = Context::open(settings).await?;
            migrated(&context.store, json);
            Ok(())
        }
        Command::Client(command) => {
            client::run(Context::open(settings).await?, command, json).await
        }
        Command::User(command) => user::run(Context::open(settings).await?, command, json).await,
        Command::Replay(args) => replay::run(Context::open(settings).await?, args).await,
        Command::Audit(args) => audit::run(Context::open(settings).await?, args, json).await,
    }
}

/// Says what opening the store migrated: adopted versions of an earlier
/// Writ, each migration applied, and where the database is now.
fn migrated(store: &writ_store::Store, json: bool) {
    let report = store.migrations();
    let database = store.target().describe();
    if json {
        let applied: Vec<_> = report
            .applied
            .iter()
            .map(|(version, description)| serde_json::json!({"version": version, "description": description}))
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "database": database,
                "adopted": report.adopted,
                "applied": applied,
                "current": report.current,
            })
        );
        return;
    }
    if !report.adopted.is_empty() {
        let versions: Vec<String> = report.adopted.iter().map(i64::to_string).collect();
        outln!(
            "recorded migrations {} of an earlier Writ as applied (nothing run)",
            versions.join(", ")
        );
    }
    for (version, description) in &report.applied {
        outln!("applied migration {version}: {description}");
    }
    if report.applied.is_empty() {
        outln!(
            "database {database} is up to date at migration {}",
            report.current
        );
    } else {
        outln!("database {database} is at migration {}", report.current);
    }
}

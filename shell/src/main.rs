//! `ringsh`: run RingDB statements interactively, from `-e`, from `-f`, or from piped stdin.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ringdb_client::Client;
use ringdb_shell::exec::{Format, Session};
use ringdb_shell::render::Style;
use ringdb_shell::repl;

#[derive(Parser)]
#[command(
    name = "ringsh",
    version,
    about = "The RingDB shell",
    after_help = "Statements: GET, PUT, DELETE, RESOLVE, USE, CREATE COLLECTION, DESCRIBE COLLECTIONS, CONSISTENCY, TRACING, STATUS, RING, DECOMMISSION, REMOVENODE, SOURCE, HELP, EXIT.\nRun `ringsh -e HELP` for details. On a terminal: Tab completes, Up recalls history (~/.ringsh_history, or $RINGSH_HISTORY), Ctrl-C cancels, Ctrl-D quits. NO_COLOR turns colour off."
)]
struct Args {
    /// Node to connect to, HOST:PORT; repeat for failover.
    #[arg(long = "host", default_value = "127.0.0.1:7401")]
    hosts: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Run these statements and exit (non-zero if any failed).
    #[arg(short = 'e', conflicts_with = "file")]
    execute: Option<String>,
    /// Run the statements in this file and exit (non-zero if any failed).
    #[arg(short = 'f')]
    file: Option<std::path::PathBuf>,
    /// The cluster CA (PEM): connect with TLS and verify nodes against it.
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// Access token, sent as `authorization: Bearer TOKEN`.
    #[arg(long, env = "RINGDB_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Run the statements the arguments name; `Ok(false)` when any statement failed.
fn run(rt: &tokio::runtime::Runtime, args: Args) -> anyhow::Result<bool> {
    let mut builder = Client::builder(&args.hosts);
    if let Some(ca) = &args.tls_ca {
        builder = builder.tls_ca_file(ca)?;
    }
    if let Some(t) = &args.token {
        builder = builder.token(t);
    }
    let client = rt.block_on(builder.connect()).context("cannot connect")?;
    let styles = (
        Style::detect(std::io::stdout().is_terminal()),
        Style::detect(std::io::stderr().is_terminal()),
    );
    let mut session = Session::new(client, args.format).with_styles(styles.0, styles.1);
    let text = if let Some(text) = args.execute {
        text
    } else if let Some(path) = &args.file {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    } else if std::io::stdin().is_terminal() {
        repl::run(rt, &mut session, &args.hosts).context("terminal")?;
        return Ok(true);
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        text
    };
    Ok(rt.block_on(session.run_script(&text)).0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&rt, args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

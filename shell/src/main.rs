//! `ringsh`: run RingDB statements interactively, from `-e`, from `-f`, or from piped stdin.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ringdb_client::Client;
use ringdb_shell::exec::{Flow, Format, Session};
use ringdb_shell::parse;

#[derive(Parser)]
#[command(
    name = "ringsh",
    version,
    about = "The RingDB shell",
    after_help = "Statements: GET, PUT, DELETE, CONSISTENCY, STATUS, RING, HELP, EXIT. Run `ringsh -e HELP` for details."
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
}

async fn run_all(session: &mut Session, text: &str) -> bool {
    let mut ok = true;
    for st in parse::split(text) {
        let (good, flow) = session.run(&st).await;
        ok &= good;
        if flow == Flow::Exit {
            break;
        }
    }
    ok
}

async fn interactive(session: &mut Session, hosts: &[String]) -> bool {
    println!(
        "ringsh connected to {} — HELP lists statements, EXIT quits.",
        hosts.join(", ")
    );
    let stdin = std::io::stdin();
    let mut buffer = String::new();
    loop {
        print!(
            "{}",
            if buffer.is_empty() {
                "ringsh> "
            } else {
                "   ...> "
            }
        );
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                println!();
                return true;
            }
            Ok(_) => {}
        }
        buffer.push_str(&line);
        if parse::is_incomplete(&buffer) {
            continue;
        }
        let text = std::mem::take(&mut buffer);
        for st in parse::split(&text) {
            if session.run(&st).await.1 == Flow::Exit {
                return true;
            }
        }
    }
}

async fn main_async(args: Args) -> anyhow::Result<bool> {
    let client = Client::connect(&args.hosts)
        .await
        .context("cannot connect")?;
    let mut session = Session::new(client, args.format);
    let ok = if let Some(text) = &args.execute {
        run_all(&mut session, text).await
    } else if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        run_all(&mut session, &text).await
    } else if std::io::stdin().is_terminal() {
        interactive(&mut session, &args.hosts).await
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        run_all(&mut session, &text).await
    };
    Ok(ok)
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
    match rt.block_on(main_async(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

//! Running statements against a cluster and printing what happened, as tables for people
//! or as one JSON object per statement for scripts.

use ringdb_client::{
    Client, Consistency, Context, GetResult, ReadOptions, WriteOptions, WriteResult,
};
use serde_json::{json, Value};

use crate::parse::{self, Statement};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// One JSON object per statement, on one line.
    Json,
}

/// A shell session: connection, output format and session defaults.
pub struct Session {
    client: Client,
    format: Format,
    consistency: Consistency,
}

/// What a statement asks of the loop after it ran.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop reading statements.
    Exit,
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Session {
    /// A session over `client`.
    pub fn new(client: Client, format: Format) -> Self {
        Session {
            client,
            format,
            consistency: Consistency::Quorum,
        }
    }

    fn error(&self, code: &str, message: &str) {
        match self.format {
            Format::Json => println!("{}", json!({"error": {"code": code, "message": message}})),
            Format::Table => eprintln!("error: {code}: {message}"),
        }
    }

    /// Parse and run one statement text; returns whether it succeeded and what to do next.
    pub async fn run(&mut self, text: &str) -> (bool, Flow) {
        let st = match parse::parse(text) {
            Ok(st) => st,
            Err(m) => {
                self.error("INVALID_ARGUMENT", &m);
                return (false, Flow::Continue);
            }
        };
        if st == Statement::Exit {
            return (true, Flow::Exit);
        }
        match self.execute(st).await {
            Ok(()) => (true, Flow::Continue),
            Err(e) => {
                self.error(e.code(), e.message());
                (false, Flow::Continue)
            }
        }
    }

    async fn execute(&mut self, st: Statement) -> Result<(), ringdb_client::Error> {
        match st {
            Statement::Get {
                collection,
                key,
                local,
                consistency,
            } => {
                let r = if local {
                    self.client.local_get(&collection, &key).await?
                } else {
                    let opts =
                        ReadOptions::new().consistency(consistency.unwrap_or(self.consistency));
                    self.client.get_with(&collection, &key, &opts).await?
                };
                self.print_get(&collection, &key, &r);
            }
            Statement::Put {
                collection,
                key,
                document,
                context,
                consistency,
            } => {
                let opts = self.write_options(context, consistency);
                let r = self
                    .client
                    .put_with(&collection, &key, &document, &opts)
                    .await?;
                self.print_write(&r);
            }
            Statement::Delete {
                collection,
                key,
                context,
                consistency,
            } => {
                let opts = self.write_options(context, consistency);
                let r = self.client.delete_with(&collection, &key, &opts).await?;
                self.print_write(&r);
            }
            Statement::Consistency(None) => match self.format {
                Format::Json => {
                    println!("{}", json!({"consistency": self.consistency.to_string()}))
                }
                Format::Table => println!("Current consistency level is {}.", self.consistency),
            },
            Statement::Consistency(Some(l)) => {
                self.consistency = l;
                match self.format {
                    Format::Json => {
                        println!("{}", json!({"ok": true, "consistency": l.to_string()}))
                    }
                    Format::Table => println!("Consistency level set to {l}."),
                }
            }
            Statement::Status => self.print_status().await?,
            Statement::Ring => self.print_ring().await?,
            Statement::Help(topic) => self.print_help(topic.as_deref()),
            Statement::Exit => {}
        }
        Ok(())
    }

    /// A statement's write options: its context, and its level or the session's.
    fn write_options(
        &self,
        context: Option<Context>,
        consistency: Option<Consistency>,
    ) -> WriteOptions {
        let opts = WriteOptions::new().consistency(consistency.unwrap_or(self.consistency));
        match context {
            Some(c) => opts.context(c),
            None => opts,
        }
    }

    fn print_get(&self, collection: &str, key: &str, r: &GetResult) {
        match self.format {
            Format::Json => println!(
                "{}",
                json!({"key": key, "values": r.values, "context": r.context.token()})
            ),
            Format::Table => {
                match r.values.len() {
                    0 => println!("{collection}/{key}: not found"),
                    1 => println!(
                        "{}",
                        serde_json::to_string_pretty(&r.values[0]).unwrap_or_default()
                    ),
                    n => {
                        println!("{collection}/{key}: {n} siblings (concurrent versions; write with the context to resolve)");
                        for (i, v) in r.values.iter().enumerate() {
                            println!(
                                "[{}] {}",
                                i + 1,
                                serde_json::to_string_pretty(v).unwrap_or_default()
                            );
                        }
                    }
                }
                if !r.context.is_empty() {
                    println!("context: {}", r.context);
                }
            }
        }
    }

    fn print_write(&self, r: &WriteResult) {
        match self.format {
            Format::Json => println!("{}", json!({"ok": true, "context": r.context.token()})),
            Format::Table => {
                if r.acknowledged_by.is_empty() {
                    println!("ok (nothing to do)");
                } else {
                    println!("ok (acknowledged by {})", r.acknowledged_by.join(", "));
                }
                if !r.context.is_empty() {
                    println!("context: {}", r.context);
                }
            }
        }
    }

    async fn print_status(&self) -> Result<(), ringdb_client::Error> {
        let s = self.client.status().await?;
        match self.format {
            Format::Json => {
                let nodes: Vec<Value> = s
                    .nodes
                    .iter()
                    .map(|n| {
                        json!({"id": n.id, "address": n.address, "up": n.up, "status": n.status,
                               "ownership": n.ownership, "keys": n.keys, "bytes": n.bytes, "hints": n.hints})
                    })
                    .collect();
                println!("{}", json!({"nodes": nodes}));
            }
            Format::Table => {
                println!(
                    "Cluster as seen by {} (replication factor {})",
                    s.node_id, s.replication_factor
                );
                println!(
                    "{:<12} {:<22} {:<5} {:<8} {:>7} {:>10} {:>11} {:>6}",
                    "ID", "ADDRESS", "STATE", "STATUS", "OWNS", "KEYS", "LOAD", "HINTS"
                );
                for n in &s.nodes {
                    println!(
                        "{:<12} {:<22} {:<5} {:<8} {:>6.1}% {:>10} {:>11} {:>6}",
                        n.id,
                        n.address,
                        if n.up { "UP" } else { "DOWN" },
                        n.status,
                        n.ownership * 100.0,
                        n.keys,
                        human_bytes(n.bytes),
                        n.hints
                    );
                }
            }
        }
        Ok(())
    }

    async fn print_ring(&self) -> Result<(), ringdb_client::Error> {
        let r = self.client.ring().await?;
        match self.format {
            Format::Json => {
                let tokens: Vec<Value> = r
                    .tokens
                    .iter()
                    .map(|(t, n)| json!({"token": t, "node": n}))
                    .collect();
                println!(
                    "{}",
                    json!({"replication_factor": r.replication_factor, "tokens": tokens})
                );
            }
            Format::Table => {
                println!("{:>21}  NODE", "TOKEN");
                for (t, n) in &r.tokens {
                    println!("{t:>21}  {n}");
                }
                println!(
                    "{} tokens, replication factor {}",
                    r.tokens.len(),
                    r.replication_factor
                );
            }
        }
        Ok(())
    }

    fn print_help(&self, topic: Option<&str>) {
        let text = match topic {
            Some(t) => match parse::usage(t) {
                Some(u) => format!("{u}\n{}", examples(t)),
                None => format!("no statement {t:?}; HELP lists statements"),
            },
            None => {
                let mut s = String::from(
                    "Statements (keywords are case-insensitive; end with ';' or a newline):\n",
                );
                for st in parse::STATEMENTS.iter().filter(|s| **s != "QUIT") {
                    s.push_str(&format!("  {}\n", parse::usage(st).unwrap_or(st)));
                }
                s.push_str("Levels: ONE TWO THREE QUORUM ALL, and ANY for writes. HELP <statement> shows examples.");
                s
            }
        };
        match self.format {
            Format::Json => println!("{}", json!({"help": text})),
            Format::Table => println!("{text}"),
        }
    }
}

fn examples(statement: &str) -> &'static str {
    match statement.to_ascii_uppercase().as_str() {
        "GET" => "  GET users alice\n  GET users alice CONSISTENCY ALL\n  GET users alice LOCAL   -- this node's own replica only",
        "PUT" => "  PUT users alice {\"name\": \"Alice\"}\n  PUT users alice {\"name\": \"Al\"} CONTEXT <token from GET>   -- replace what you read",
        "DELETE" => "  DELETE users alice\n  DELETE users alice CONTEXT <token> CONSISTENCY ALL",
        "CONSISTENCY" => "  CONSISTENCY          -- show the session default\n  CONSISTENCY ONE",
        _ => "",
    }
}

//! Running statements against a cluster and printing what happened, as tables for people
//! or as one JSON object per statement for scripts.
//!
//! Invariants: a statement prints exactly one result or one error (in JSON format, exactly
//! one line); errors never stop the session; the collection-name cache only grows between
//! refreshes and is shared with tab completion.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringdb_client::{Client, Consistency, Context, ReadOptions, WriteOptions};
use serde_json::json;

use crate::error::{one_line, ShellError};
use crate::indexes;
use crate::parse::{self, Statement};
use crate::render::{self, Color, Style};
use crate::trace;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// One JSON object per statement, on one line.
    Json,
}

/// What a statement asks of the loop after it ran.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop reading statements.
    Exit,
}

/// Collection names known to the session, shared with tab completion.
pub type CollectionCache = Arc<Mutex<BTreeSet<String>>>;

/// How deeply SOURCE files may source each other (a file sourcing itself stops here).
const MAX_SOURCE_DEPTH: usize = 16;

/// How long a background look-up (collection names for completion) may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(1500);

/// What the last GET of a key showed, for RESOLVE.
struct Seen {
    context: Context,
    siblings: usize,
}

/// A shell session: connection, output format and session state (level, USE, contexts).
pub struct Session {
    client: Client,
    format: Format,
    style: Style,
    err_style: Style,
    consistency: Consistency,
    tracing: bool,
    using: Option<String>,
    seen: HashMap<(String, String), Seen>,
    collections: CollectionCache,
    source_depth: usize,
}

impl Session {
    /// A session over `client`, without colour (see [`Session::with_styles`]).
    pub fn new(client: Client, format: Format) -> Self {
        Session {
            client,
            format,
            style: Style::default(),
            err_style: Style::default(),
            consistency: Consistency::Quorum,
            tracing: false,
            using: None,
            seen: HashMap::new(),
            collections: Arc::default(),
            source_depth: 0,
        }
    }

    /// Colour stdout and stderr output as these styles say (table format only).
    pub fn with_styles(mut self, out: Style, err: Style) -> Self {
        if self.format == Format::Table {
            self.style = out;
            self.err_style = err;
        }
        self
    }

    /// The collection chosen with USE, for the prompt.
    pub fn using(&self) -> Option<&str> {
        self.using.as_deref()
    }

    /// The output format, so the REPL can print its own messages in kind.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Collection names for completion; [`Session::refresh_collections`] fills it.
    pub fn collection_cache(&self) -> CollectionCache {
        self.collections.clone()
    }

    /// Ask the cluster for its collection names (bounded in time; failures are ignored:
    /// completion then offers what the session has seen).
    pub async fn refresh_collections(&self) {
        if let Ok(Ok((cs, _))) =
            tokio::time::timeout(LOOKUP_TIMEOUT, self.client.collections()).await
        {
            self.remember(cs.into_iter().map(|c| c.name));
        }
    }

    fn remember(&self, names: impl IntoIterator<Item = String>) {
        if let Ok(mut set) = self.collections.lock() {
            set.extend(names);
        }
    }

    /// Print an error: a JSON line on stdout, or `error: CODE: message — hint` on stderr.
    pub fn report(&self, e: &ShellError) {
        match self.format {
            Format::Json => println!("{}", render::error_json(e.code(), &e.message())),
            Format::Table => {
                eprintln!(
                    "{} {}",
                    self.err_style.paint(Color::Red, "error:"),
                    e.human()
                )
            }
        }
    }

    /// Print a one-line note for people (a JSON object in JSON format).
    fn note(&self, text: &str, as_json: serde_json::Value) {
        match self.format {
            Format::Json => println!("{as_json}"),
            Format::Table => println!("{text}"),
        }
    }

    /// Parse and run one statement; returns whether it succeeded and what to do next.
    pub async fn run(&mut self, text: &str) -> (bool, Flow) {
        let st = match parse::parse(text, self.using.as_deref()) {
            Ok(st) => st,
            Err(e) => {
                self.report(&e);
                return (false, Flow::Continue);
            }
        };
        self.run_parsed(st).await
    }

    /// Run a statement already parsed (the REPL parses first to confirm risky ones).
    pub async fn run_parsed(&mut self, st: Statement) -> (bool, Flow) {
        match st {
            Statement::Exit => (true, Flow::Exit),
            Statement::Source(path) => self.source(&path).await,
            st => match self.execute(st).await {
                Ok(()) => (true, Flow::Continue),
                Err(e) => {
                    self.report(&e);
                    (false, Flow::Continue)
                }
            },
        }
    }

    /// Run every statement of a script; stops at EXIT. Succeeds only if all did.
    pub fn run_script<'a>(
        &'a mut self,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = (bool, Flow)> + 'a>> {
        Box::pin(async move {
            let mut ok = true;
            for st in parse::split(text) {
                let (good, flow) = self.run(&st).await;
                ok &= good;
                if flow == Flow::Exit {
                    return (ok, Flow::Exit);
                }
            }
            (ok, Flow::Continue)
        })
    }

    async fn source(&mut self, path: &str) -> (bool, Flow) {
        if self.source_depth >= MAX_SOURCE_DEPTH {
            self.report(&ShellError::Source(format!(
                "SOURCE {path}: files source each other more than {MAX_SOURCE_DEPTH} deep"
            )));
            return (false, Flow::Continue);
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.report(&ShellError::Source(format!("cannot read {path}: {e}")));
                return (false, Flow::Continue);
            }
        };
        self.source_depth += 1;
        let r = self.run_script(&text).await;
        self.source_depth -= 1;
        r
    }

    async fn execute(&mut self, st: Statement) -> Result<(), ShellError> {
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
                    let opts = ReadOptions::new()
                        .consistency(consistency.unwrap_or(self.consistency))
                        .trace(self.tracing);
                    self.client.get_with(&collection, &key, &opts).await?
                };
                let k = (collection.clone(), key.clone());
                if r.context.is_empty() {
                    self.seen.remove(&k);
                } else {
                    let seen = Seen {
                        context: r.context.clone(),
                        siblings: r.values.len(),
                    };
                    self.seen.insert(k, seen);
                }
                match self.format {
                    Format::Json if self.tracing => println!(
                        "{}",
                        trace::json_line(render::get_value(&key, &r), r.trace.as_ref())
                    ),
                    Format::Json => println!("{}", render::get_json(&key, &r)),
                    Format::Table => {
                        println!("{}", render::get_table(&collection, &key, &r, self.style));
                        self.print_trace(r.trace.as_ref(), local);
                    }
                }
            }
            Statement::Put {
                collection,
                key,
                document,
                context,
                consistency,
                ttl_secs,
            } => {
                let mut opts = self.write_options(context, consistency);
                if let Some(s) = ttl_secs {
                    opts = opts.ttl(std::time::Duration::from_secs(s));
                }
                let r = self
                    .client
                    .put_with(&collection, &key, &document, &opts)
                    .await?;
                self.remember([collection]);
                self.print_write(&r, None);
            }
            Statement::Delete {
                collection,
                key,
                context,
                consistency,
            } => {
                let opts = self.write_options(context, consistency);
                let r = self.client.delete_with(&collection, &key, &opts).await?;
                self.print_write(&r, None);
            }
            Statement::Resolve {
                collection,
                key,
                document,
                consistency,
            } => {
                let k = (collection, key);
                let Some(seen) = self.seen.get(&k) else {
                    let (collection, key) = k;
                    return Err(ShellError::NoContext { collection, key });
                };
                let opts = self.write_options(Some(seen.context.clone()), consistency);
                let note = match seen.siblings {
                    0 | 1 => "replaced the version GET showed".to_string(),
                    n => format!("replaced the {n} siblings GET showed"),
                };
                let r = self.client.put_with(&k.0, &k.1, &document, &opts).await?;
                // The context is spent: a second RESOLVE needs a fresh GET.
                self.seen.remove(&k);
                self.print_write(&r, Some(&note));
            }
            Statement::Use(name) => {
                self.using = Some(name.clone());
                let cached = |s: &Self| s.collections.lock().is_ok_and(|c| c.contains(&name));
                if !cached(self) {
                    self.refresh_collections().await;
                }
                let known = cached(self);
                self.remember([name.clone()]);
                let text = if known {
                    format!("using collection {name}")
                } else {
                    format!(
                        "using collection {name} (it does not exist yet: the first PUT creates it)"
                    )
                };
                self.note(&text, json!({"ok": true, "using": name}));
            }
            Statement::CreateCollection {
                name,
                replication,
                if_not_exists,
            } => {
                let c = self
                    .client
                    .create_collection(&name, replication, if_not_exists)
                    .await?;
                self.remember([c.name.clone()]);
                self.refresh_collections().await;
                self.note(
                    &format!(
                        "created collection {} with replication {}",
                        c.name,
                        if c.replication == 0 {
                            "(cluster default)".to_string()
                        } else {
                            c.replication.to_string()
                        }
                    ),
                    json!({"ok": true, "collection": {"name": c.name, "replication": c.replication}}),
                );
            }
            Statement::DescribeCollections => {
                let (cs, default_n) = self.client.collections().await?;
                self.remember(cs.iter().map(|c| c.name.clone()));
                match self.format {
                    Format::Json => println!("{}", render::collections_json(&cs, default_n)),
                    Format::Table => {
                        println!("{}", render::collections_table(&cs, default_n, self.style))
                    }
                }
            }
            Statement::CreateIndex { collection, path } => {
                let i = self.client.create_index(&collection, &path, false).await?;
                self.remember([collection]);
                let text = match i.state {
                    ringdb_client::IndexState::Ready => {
                        format!("created index on {} ({}): ready", i.collection, i.path)
                    }
                    ringdb_client::IndexState::Building { .. } => format!(
                        "created index on {} ({}): building; DESCRIBE INDEXES shows when it is ready",
                        i.collection, i.path
                    ),
                };
                self.note(
                    &text,
                    json!({"ok": true, "index": indexes::index_value(&i)}),
                );
            }
            Statement::DropIndex { collection, path } => {
                self.client.drop_index(&collection, &path, false).await?;
                self.note(
                    &format!("dropped index on {collection} ({path}); every node deletes its entries in the background"),
                    json!({"ok": true}),
                );
            }
            Statement::DescribeIndexes(collection) => {
                let list = self.client.indexes(collection.as_deref()).await?;
                match self.format {
                    Format::Json => println!("{}", indexes::list_json(&list)),
                    Format::Table => println!("{}", indexes::list_table(&list, self.style)),
                }
            }
            Statement::Consistency(None) => self.note(
                &format!("Current consistency level is {}.", self.consistency),
                json!({"consistency": self.consistency.to_string()}),
            ),
            Statement::Consistency(Some(l)) => {
                self.consistency = l;
                self.note(
                    &format!("Consistency level set to {l}."),
                    json!({"ok": true, "consistency": l.to_string()}),
                );
            }
            Statement::Tracing(None) => self.note(
                &format!("Tracing is {}.", if self.tracing { "on" } else { "off" }),
                json!({"tracing": self.tracing}),
            ),
            Statement::Tracing(Some(on)) => {
                self.tracing = on;
                let text = if on {
                    "Tracing is on: GET, PUT, DELETE, RESOLVE and queries show what happened inside the cluster."
                } else {
                    "Tracing is off."
                };
                self.note(text, json!({"ok": true, "tracing": on}));
            }
            Statement::Status => {
                let s = self.client.status().await?;
                match self.format {
                    Format::Json => println!("{}", render::status_json(&s)),
                    Format::Table => println!("{}", render::status_table(&s, self.style)),
                }
            }
            Statement::Ring => {
                let r = self.client.ring().await?;
                match self.format {
                    Format::Json => println!("{}", render::ring_json(&r)),
                    Format::Table => println!("{}", render::ring_table(&r, self.style)),
                }
            }
            Statement::Decommission => {
                let m = one_line(&self.client.decommission().await?);
                self.note(&m, json!({"ok": true, "message": m}));
            }
            Statement::RemoveNode(id) => {
                let m = one_line(&self.client.remove_node(&id).await?);
                self.note(&m, json!({"ok": true, "message": m}));
            }
            Statement::Repair(collection) => {
                let r = self.client.repair(collection.as_deref()).await?;
                let text = format!(
                    "repair: {} ranges compared ({} failed), {} keys repaired, {} tombstones purged, {} bytes of hashes, {:.1} s",
                    r.ranges,
                    r.failed,
                    r.keys_repaired,
                    r.tombstones_purged,
                    r.bytes_exchanged,
                    r.elapsed.as_secs_f64()
                );
                self.note(
                    &text,
                    json!({"ok": r.failed == 0, "ranges": r.ranges, "failed": r.failed,
                        "keys_repaired": r.keys_repaired, "tombstones_purged": r.tombstones_purged,
                        "bytes_exchanged": r.bytes_exchanged, "elapsed_ms": r.elapsed.as_millis() as u64}),
                );
            }
            Statement::RepairStatus => {
                let s = self.client.repair_status().await?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let ago = |ms: Option<u64>| {
                    ms.map_or("never".to_string(), |m| {
                        format!("{} s ago", now.saturating_sub(m) / 1000)
                    })
                };
                let mut text = format!(
                    "{}: {} passes, last {}; {} keys repaired, {} tombstones purged; {} ranges verified, oldest {}",
                    s.node_id,
                    s.passes,
                    ago(s.last_pass_ms),
                    s.keys_repaired,
                    s.tombstones_purged,
                    s.ranges_verified,
                    ago(s.oldest_verified_ms)
                );
                for (c, root) in &s.roots {
                    text.push_str(&format!("\n  {c}  root {root:016x}"));
                }
                let roots: serde_json::Map<String, serde_json::Value> = s
                    .roots
                    .iter()
                    .map(|(c, r)| (c.clone(), format!("{r:016x}").into()))
                    .collect();
                self.note(
                    &text,
                    json!({"node_id": s.node_id, "passes": s.passes, "last_pass_ms": s.last_pass_ms,
                        "keys_repaired": s.keys_repaired, "tombstones_purged": s.tombstones_purged,
                        "ranges_verified": s.ranges_verified, "oldest_verified_ms": s.oldest_verified_ms,
                        "roots": roots}),
                );
            }
            Statement::Help(topic) => {
                let text = crate::help::text(topic.as_deref()).map_err(ShellError::Parse)?;
                self.note(&text, json!({"help": text}));
            }
            Statement::Query(q) => {
                let find = matches!(q, crate::query::QueryStatement::Find(_));
                let shown =
                    crate::query::run(&self.client, &q, self.consistency, self.tracing, self.style)
                        .await?;
                match self.format {
                    Format::Json => println!("{}", shown.json_line(self.tracing, find)),
                    Format::Table => {
                        println!("{}", shown.table);
                        if self.tracing {
                            for t in &shown.traces {
                                println!("{}", crate::query_render::trace_table(t, self.style));
                            }
                        }
                    }
                }
            }
            Statement::Source(_) | Statement::Exit => {}
        }
        Ok(())
    }

    /// A statement's write options: its context, and its level or the session's.
    fn write_options(
        &self,
        context: Option<Context>,
        consistency: Option<Consistency>,
    ) -> WriteOptions {
        let opts = WriteOptions::new()
            .consistency(consistency.unwrap_or(self.consistency))
            .trace(self.tracing);
        match context {
            Some(c) => opts.context(c),
            None => opts,
        }
    }

    fn print_write(&self, r: &ringdb_client::WriteResult, note: Option<&str>) {
        match self.format {
            Format::Json if self.tracing => println!(
                "{}",
                trace::json_line(render::write_value(r), r.trace.as_ref())
            ),
            Format::Json => println!("{}", render::write_json(r)),
            Format::Table => {
                println!("{}", render::write_table(r, note, self.style));
                self.print_trace(r.trace.as_ref(), false);
            }
        }
    }

    /// With tracing on, the trace block under a table-format result (`local`: the
    /// statement was a GET LOCAL, which nothing coordinates).
    fn print_trace(&self, t: Option<&ringdb_client::Trace>, local: bool) {
        if !self.tracing {
            return;
        }
        let why = if local {
            "trace: none (LOCAL reads this node's own replica, without coordination)"
        } else {
            "trace: none (the server sent none; it may predate tracing)"
        };
        match t {
            Some(t) => println!("{}", trace::trace_table(t, self.style)),
            None => println!("{}", self.style.paint(Color::Dim, why)),
        }
    }
}

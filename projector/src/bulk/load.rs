//! The bulk replay's second half: the folded inline tables copied in, and
//! every table's keys and indexes built, on two connections.
//!
//! The work is split by statement, not by table: one table's COPY and
//! builds in a row took longer than all the others together, and left the
//! other connection idle. A table's keys wait for its rows, and its other
//! indexes for its keys: adding a key locks the table against every other
//! build, while index builds share it. Of the steps that may run, the one
//! with the most work behind it goes first.

use std::collections::VecDeque;
use std::sync::Mutex;

use sqlx::postgres::PgConnection;
use tokio::sync::Notify;
use writ_store::fold::{copy_line, Tables};
use writ_store::statement::Statement;
use writ_store::views::{Table, INLINE_TABLES};
use writ_store::{Conn, RowExt};

use super::{storage, CHUNK};
use crate::ProjectorError;

/// The keys and indexes of a schema's tables, dropped before the load and
/// built after it from their own catalogue definitions.
pub(super) struct Deferred {
    by_table: Vec<Builds>,
}

/// One table's deferred statements.
#[derive(Default)]
struct Builds {
    table: String,
    /// `ALTER TABLE … ADD CONSTRAINT …`, one at a time.
    keys: VecDeque<String>,
    /// `CREATE INDEX …`, side by side once the keys are in.
    indexes: Vec<String>,
}

impl Deferred {
    /// Reads the definitions of `schema`'s keys and indexes, then drops them.
    pub(super) async fn take(conn: &mut Conn, schema: &str) -> Result<Self, ProjectorError> {
        let constraints = conn
            .fetch_all(
                &Statement::new(
                    "SELECT t.relname AS tbl, format('%I.%I', n.nspname, t.relname) AS qualified,
                            c.conname AS name, pg_get_constraintdef(c.oid) AS def
                     FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
                     JOIN pg_namespace n ON n.oid = t.relnamespace
                     WHERE n.nspname = $1 AND c.contype IN ('p', 'u') ORDER BY 1, 3",
                )
                .text(schema),
            )
            .await?;
        let indexes = conn
            .fetch_all(
                &Statement::new(
                    "SELECT i.tablename AS tbl, format('%I.%I', i.schemaname, i.indexname) AS name,
                            i.indexdef AS def
                     FROM pg_indexes i WHERE i.schemaname = $1
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                                     WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)
                     ORDER BY 1, 2",
                )
                .text(schema),
            )
            .await?;
        let field = |row: &writ_store::Row, column| row.text(column).unwrap_or_default();
        let mut drops = Vec::new();
        let mut deferred = Self {
            by_table: Vec::new(),
        };
        for row in &constraints {
            let (table, name) = (field(row, "qualified"), field(row, "name"));
            drops.push(format!("ALTER TABLE {table} DROP CONSTRAINT \"{name}\""));
            let key = format!(
                "ALTER TABLE {table} ADD CONSTRAINT \"{name}\" {}",
                field(row, "def")
            );
            deferred.of_mut(field(row, "tbl")).keys.push_back(key);
        }
        for row in &indexes {
            drops.push(format!("DROP INDEX {}", field(row, "name")));
            let index = field(row, "def");
            deferred.of_mut(field(row, "tbl")).indexes.push(index);
        }
        // Indexes first: a constraint's index goes with the constraint.
        drops.reverse();
        conn.batch(&drops.join(";\n")).await?;
        Ok(deferred)
    }

    fn of_mut(&mut self, table: String) -> &mut Builds {
        match self
            .by_table
            .iter()
            .position(|builds| builds.table == table)
        {
            Some(at) => &mut self.by_table[at],
            None => {
                self.by_table.push(Builds {
                    table,
                    ..Builds::default()
                });
                let last = self.by_table.len() - 1;
                &mut self.by_table[last]
            }
        }
    }

    fn take_of(&mut self, table: &str) -> Builds {
        self.by_table
            .iter()
            .position(|builds| builds.table == table)
            .map(|at| self.by_table.swap_remove(at))
            .unwrap_or_default()
    }
}

enum Step {
    /// The folded rows of an inline table.
    Rows(&'static Table),
    Key(String),
    Index(String),
}

struct Job {
    table: usize,
    step: Step,
    /// Its own work and the work that waits for it, in rows indexed.
    priority: usize,
}

/// A table's steps not yet started.
struct Pending {
    name: &'static str,
    rows: usize,
    builds: Builds,
}

impl Pending {
    fn builds_work(&self) -> usize {
        self.rows * (self.builds.keys.len() + self.builds.indexes.len())
    }
}

/// Copying a row costs about as much as indexing it twice, measured on the
/// grants and tokens tables.
fn copy_work(table: &Table, rows: usize) -> usize {
    rows * table.columns.len() / 2
}

/// The steps left and those under way.
struct Plan {
    tables: Vec<Pending>,
    ready: Vec<Job>,
    running: usize,
}

impl Plan {
    fn new(tables: &Tables, audit_rows: usize, mut deferred: Deferred) -> Self {
        let mut plan = Self {
            tables: Vec::new(),
            ready: Vec::new(),
            running: 0,
        };
        let mut add = |name: &'static str, rows: usize| {
            let builds = deferred.take_of(name);
            plan.tables.push(Pending { name, rows, builds });
            plan.tables.len() - 1
        };
        let audit_index = add("audit_index", audit_rows);
        let inline: Vec<_> = INLINE_TABLES
            .iter()
            .map(|table| (*table, add(table.name, tables.rows_of(table).count())))
            .collect();
        for (table, at) in inline {
            let pending = &plan.tables[at];
            plan.ready.push(Job {
                table: at,
                step: Step::Rows(table),
                priority: copy_work(table, pending.rows) + pending.builds_work(),
            });
        }
        // The audit index's rows went in while the log was read.
        plan.after(audit_index);
        plan
    }

    /// What may start once a table's previous step is done: its next key,
    /// or, when its keys are all in, every one of its indexes.
    fn after(&mut self, table: usize) {
        let pending = &mut self.tables[table];
        if let Some(key) = pending.builds.keys.pop_front() {
            let priority = pending.builds_work() + pending.rows;
            self.ready.push(Job {
                table,
                step: Step::Key(key),
                priority,
            });
            return;
        }
        let rows = pending.rows;
        for index in pending.builds.indexes.drain(..) {
            self.ready.push(Job {
                table,
                step: Step::Index(index),
                priority: rows,
            });
        }
    }

    fn next(&mut self) -> Option<Job> {
        let most = (0..self.ready.len()).max_by_key(|&at| self.ready[at].priority)?;
        self.running += 1;
        Some(self.ready.swap_remove(most))
    }

    fn finished(&self) -> bool {
        self.ready.is_empty() && self.running == 0
    }

    /// Nothing more starts: the steps under way end, and then the workers.
    fn abandon(&mut self) {
        self.ready.clear();
        for pending in &mut self.tables {
            pending.builds.keys.clear();
            pending.builds.indexes.clear();
        }
    }
}

/// Loads `tables` into `schema` and builds every deferred key and index,
/// on the two connections given.
pub(super) async fn load(
    connections: [&mut PgConnection; 2],
    schema: &str,
    tables: &Tables,
    audit_rows: u64,
    deferred: Deferred,
) -> Result<(), ProjectorError> {
    let plan = Mutex::new(Plan::new(tables, audit_rows as usize, deferred));
    let changed = Notify::new();
    let [one, two] = connections;
    let (one, two) = tokio::join!(
        work(one, schema, tables, &plan, &changed),
        work(two, schema, tables, &plan, &changed),
    );
    one.and(two)
}

/// Takes steps until none is left; on an error, stops the other worker too.
async fn work(
    conn: &mut PgConnection,
    schema: &str,
    tables: &Tables,
    plan: &Mutex<Plan>,
    changed: &Notify,
) -> Result<(), ProjectorError> {
    // Sorts for the index builds in memory rather than on disk.
    sqlx::Executor::execute(&mut *conn, "SET maintenance_work_mem = '256MB'").await?;
    let locked = || plan.lock().map_err(|_| storage("a load worker panicked"));
    loop {
        // Registered before looking, so a step that ends in between wakes us.
        let woken = changed.notified();
        let job = {
            let mut plan = locked()?;
            if plan.finished() {
                break;
            }
            plan.next()
        };
        let Some(job) = job else {
            woken.await;
            continue;
        };
        let started = std::time::Instant::now();
        let done = run(conn, schema, tables, &job.step).await;
        let mut plan = locked()?;
        if let Err(err) = done {
            plan.abandon();
            plan.running -= 1;
            drop(plan);
            changed.notify_waiters();
            return Err(err);
        }
        plan.running -= 1;
        if !matches!(job.step, Step::Index(_)) {
            plan.after(job.table);
        }
        tracing::debug!(
            table = plan.tables[job.table].name,
            step = match &job.step {
                Step::Rows(_) => "rows",
                Step::Key(_) => "key",
                Step::Index(_) => "index",
            },
            secs = started.elapsed().as_secs_f64(),
            "bulk replay: step done"
        );
        drop(plan);
        changed.notify_waiters();
    }
    sqlx::Executor::execute(&mut *conn, "RESET maintenance_work_mem").await?;
    Ok(())
}

async fn run(
    conn: &mut PgConnection,
    schema: &str,
    tables: &Tables,
    step: &Step,
) -> Result<(), ProjectorError> {
    match step {
        Step::Rows(table) => copy_table(conn, schema, tables, table).await,
        Step::Key(statement) | Step::Index(statement) => {
            sqlx::Executor::execute(&mut *conn, statement.as_str()).await?;
            Ok(())
        }
    }
}

async fn copy_table(
    conn: &mut PgConnection,
    schema: &str,
    tables: &Tables,
    table: &'static Table,
) -> Result<(), ProjectorError> {
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {schema}.{} ({}) FROM STDIN",
            table.name,
            table.columns.join(", ")
        ))
        .await?;
    let mut chunk = Vec::with_capacity(CHUNK + 4096);
    let mut expected = 0_u64;
    for row in tables.rows_of(table) {
        copy_line(row.iter().map(Option::as_deref), &mut chunk);
        expected += 1;
        if chunk.len() >= CHUNK {
            copy.send(std::mem::replace(
                &mut chunk,
                Vec::with_capacity(CHUNK + 4096),
            ))
            .await?;
        }
    }
    if !chunk.is_empty() {
        copy.send(chunk).await?;
    }
    let copied = copy.finish().await?;
    if copied != expected {
        return Err(storage(format!(
            "COPY took {copied} rows of {expected} into {}",
            table.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use writ_store::change::Change;
    use writ_store::views::grants::grant;
    use writ_store::views::GRANTS;

    fn deferred() -> Deferred {
        let builds = |table: &str, keys: &[&str], indexes: &[&str]| Builds {
            table: table.to_owned(),
            keys: keys.iter().map(|key| key.to_string()).collect(),
            indexes: indexes.iter().map(|index| index.to_string()).collect(),
        };
        Deferred {
            by_table: vec![
                builds("grants", &["grants key"], &["grants by a", "grants by b"]),
                builds("tokens", &["tokens key"], &["tokens by gid"]),
                builds(
                    "audit_index",
                    &["audit key", "audit unique"],
                    &["audit by time"],
                ),
            ],
        }
    }

    fn grants(count: usize) -> Tables {
        let mut tables = Tables::default();
        for n in 0..count {
            let gid = format!("g{n}");
            tables
                .apply(Change::insert(&GRANTS, vec![(grant::gid, Some(gid))]))
                .unwrap();
        }
        tables
    }

    fn name(step: &Step) -> String {
        match step {
            Step::Rows(table) => format!("{} rows", table.name),
            Step::Key(statement) | Step::Index(statement) => statement.clone(),
        }
    }

    /// Runs the plan with `workers` steps under way at a time, finishing
    /// the oldest first; the order steps started in.
    fn started(mut plan: Plan, workers: usize) -> Vec<String> {
        let mut running = std::collections::VecDeque::new();
        let mut order = Vec::new();
        while !plan.finished() {
            while running.len() < workers {
                let Some(job) = plan.next() else { break };
                order.push(name(&job.step));
                running.push_back(job);
            }
            let job = running.pop_front().expect("a step under way");
            plan.running -= 1;
            if !matches!(job.step, Step::Index(_)) {
                plan.after(job.table);
            }
        }
        order
    }

    fn at(order: &[String], step: &str) -> usize {
        order
            .iter()
            .position(|started| started == step)
            .unwrap_or_else(|| panic!("{step} never started: {order:?}"))
    }

    #[test]
    fn keys_follow_rows_and_indexes_follow_every_key() {
        for workers in [1, 2, 3] {
            let order = started(Plan::new(&grants(1000), 5000, deferred()), workers);
            assert_eq!(
                order.len(),
                INLINE_TABLES.len() + 8,
                "every step once: {order:?}"
            );
            assert!(at(&order, "grants rows") < at(&order, "grants key"));
            assert!(at(&order, "grants key") < at(&order, "grants by a"));
            assert!(at(&order, "grants key") < at(&order, "grants by b"));
            assert!(at(&order, "tokens rows") < at(&order, "tokens key"));
            assert!(at(&order, "audit key") < at(&order, "audit unique"));
            assert!(at(&order, "audit unique") < at(&order, "audit by time"));
        }
    }

    #[test]
    fn the_step_with_the_most_work_behind_it_starts_first() {
        let order = started(Plan::new(&grants(1000), 5000, deferred()), 2);
        // The audit index's 5,000 rows wait on two keys; the grants' 1,000
        // rows come next.
        assert_eq!(order[..2], ["audit key", "grants rows"]);
    }
}

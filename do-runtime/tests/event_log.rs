//! The event log on a real SQLite file: every lookup a write runs uses an index (checked
//! with `EXPLAIN QUERY PLAN`), and retention by count and by age bounds the log in
//! batches as events are written.

use do_modules::events::{EventHub, Retention, PRUNE_BATCH, PRUNE_EVERY, WRITE_PATH_STATEMENTS};
use do_modules::host::{Env, Sql, SqlValue, Task};
use do_modules::storage::things::{Store, WRITE_PATH_STATEMENTS as THING_STATEMENTS};
use do_runtime::host::sqlite::SqliteDb;
use std::cell::Cell;
use std::rc::Rc;

/// The time is set by the test; ids come from a counter.
struct TestEnv {
    now: Cell<i64>,
    n: Cell<u64>,
}

impl Env for TestEnv {
    fn now_ms(&self) -> i64 {
        self.now.get()
    }
    fn random_u64(&self) -> u64 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }
    fn spawn(&self, _: Task) {
        panic!("nothing is delivered in these tests (no subscribers)");
    }
}

fn db(name: &str) -> (Rc<SqliteDb>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("dotdo-event-log-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (Rc::new(SqliteDb::open(&dir.join("o.sqlite")).expect("open")), dir)
}

fn count(db: &SqliteDb) -> i64 {
    db.query("SELECT COUNT(*) FROM events", &[]).expect("count")[0][0].as_i64().expect("an integer")
}

fn oldest(db: &SqliteDb) -> i64 {
    db.query("SELECT MIN(seq) FROM events", &[]).expect("min")[0][0].as_i64().expect("an integer")
}

#[test]
fn no_write_path_statement_scans_a_table() {
    let (db, dir) = db("plan");
    let env = Rc::new(TestEnv { now: Cell::new(1_000), n: Cell::new(0) });
    let hub = EventHub::new(db.clone(), env.clone(), "o".into()).expect("hub");
    let store = Store { sql: &*db, env: &*env };
    store.migrate().expect("migrate");
    for i in 0..50 {
        hub.record("Item.created", &format!("{{\"i\": {i}}}")).expect("record");
        store.create("Item", &format!("i{i}"), "{}").expect("create");
    }
    db.execute("ANALYZE", &[]).expect("analyze");
    for stmt in WRITE_PATH_STATEMENTS.iter().chain(THING_STATEMENTS) {
        let n = stmt.matches('?').count();
        let params = vec![SqlValue::Integer(1); n];
        let plan: Vec<String> = db
            .query(&format!("EXPLAIN QUERY PLAN {stmt}"), &params)
            .expect("explain")
            .into_iter()
            .filter_map(|r| r.get(3).and_then(SqlValue::as_text).map(str::to_string))
            .collect();
        assert!(!plan.is_empty(), "{stmt}: no plan");
        for step in &plan {
            // A whole table or index walked (not `SCAN CONSTANT ROW`, nor a bounded subquery).
            let scanned = step.strip_prefix("SCAN ").and_then(|r| r.split(' ').next());
            let scans_a_table = matches!(scanned, Some("events" | "things"));
            assert!(!scans_a_table, "{stmt} scans: {plan:?}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn retention_by_count_keeps_the_newest_events_in_batches() {
    let (db, dir) = db("count");
    let env = Rc::new(TestEnv { now: Cell::new(1_000), n: Cell::new(0) });
    let retention = Retention { max_events: 100, max_age_ms: u64::MAX };
    let hub = EventHub::with_retention(db.clone(), env.clone(), "o".into(), retention).expect("hub");
    let mut last = 0;
    for i in 0..1000 {
        last = hub.record("Item.created", &format!("{{\"i\": {i}}}")).expect("record").seq;
    }
    let n = count(&db);
    assert!((100..=100 + PRUNE_EVERY as i64).contains(&n), "{n} events kept of 1000 with a bound of 100");
    assert_eq!(db.query("SELECT MAX(seq) FROM events", &[]).expect("max")[0][0].as_i64(), Some(last as i64));
    assert_eq!(oldest(&db), last as i64 - n + 1, "the newest are kept, with no gap");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_long_backlog_is_pruned_one_batch_per_pass() {
    let (db, dir) = db("backlog");
    let env = Rc::new(TestEnv { now: Cell::new(1_000), n: Cell::new(0) });
    {
        let hub = EventHub::with_retention(
            db.clone(),
            env.clone(),
            "o".into(),
            Retention { max_events: u64::MAX, max_age_ms: u64::MAX },
        )
        .expect("hub");
        db.transaction(&mut || {
            for i in 0..(3 * PRUNE_BATCH) {
                hub.record("Item.created", &format!("{{\"i\": {i}}}"))?;
            }
            Ok(())
        })
        .expect("fill");
    }
    assert_eq!(count(&db), 3 * PRUNE_BATCH);
    // Reloaded with a bound of 10: the first write prunes one batch, not the backlog.
    let hub = EventHub::with_retention(
        db.clone(),
        env.clone(),
        "o".into(),
        Retention { max_events: 10, max_age_ms: u64::MAX },
    )
    .expect("hub");
    hub.record("Item.created", "{}").expect("record");
    assert_eq!(count(&db), 3 * PRUNE_BATCH + 1 - PRUNE_BATCH, "one batch per pass");
    // A full batch makes the next write prune again, until the log is within the bound.
    hub.record("Item.created", "{}").expect("record");
    hub.record("Item.created", "{}").expect("record");
    assert_eq!(count(&db), 10, "caught up after three passes");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn retention_by_age_drops_old_events() {
    let (db, dir) = db("age");
    let env = Rc::new(TestEnv { now: Cell::new(1_000), n: Cell::new(0) });
    let hub = EventHub::with_retention(
        db.clone(),
        env.clone(),
        "o".into(),
        Retention { max_events: u64::MAX, max_age_ms: 60_000 },
    )
    .expect("hub");
    for _ in 0..PRUNE_EVERY * 2 {
        hub.record("Old.created", "{}").expect("record");
    }
    env.now.set(1_000 + 61_000);
    for _ in 0..PRUNE_EVERY {
        hub.record("New.created", "{}").expect("record");
    }
    let left = db.query("SELECT COUNT(*) FROM events WHERE noun = 'Old'", &[]).expect("old")[0][0].as_i64();
    assert_eq!(left, Some(0), "every event older than the bound is gone");
    assert_eq!(count(&db), PRUNE_EVERY as i64, "the new ones stay");
    let _ = std::fs::remove_dir_all(dir);
}

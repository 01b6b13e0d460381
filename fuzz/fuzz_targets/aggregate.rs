//! Aggregate queries and `ifMatch` preconditions: `Aggregate::parse` and the `GROUP BY`
//! it compiles to, run on a real in-memory SQLite database with a few things in it, and
//! the same input read as a precondition. A query that parses must run: SQLite refusing
//! the compiled SQL is a bug in the compiler.
#![no_main]

use do_modules::host::{Sql, SqlValue};
use do_modules::storage::aggregate::Aggregate;
use do_modules::storage::precondition::parse_if_match;
use do_modules::storage::things::MIGRATION;
use do_runtime::host::sqlite::SqliteDb;
use libfuzzer_sys::fuzz_target;
use rpc_core::Code;

fn db() -> SqliteDb {
    let db = SqliteDb::open(std::path::Path::new(":memory:")).expect("an in-memory database");
    for stmt in MIGRATION.split(';') {
        db.execute(stmt, &[]).expect("migration");
    }
    let rows = [
        ("a1", "Order", r#"{"country":"FR","amount":10,"tags":["x"],"n":{"k":1}}"#),
        ("a2", "Order", r#"{"country":"DE","amount":2.5,"paid":true}"#),
        ("b1", "Refund", r#"{"country":"FR","amount":"3"}"#),
        ("b2", "Order", r#"{}"#),
    ];
    for (i, (id, type_, data)) in rows.into_iter().enumerate() {
        let at = SqlValue::Integer(1_000 + i as i64);
        db.execute(
            "INSERT INTO things (id, type, data, created_at, updated_at, deleted_at, version) VALUES (?, ?, ?, ?, ?, NULL, 1)",
            &[SqlValue::Text(id.into()), SqlValue::Text(type_.into()), SqlValue::Text(data.into()), at.clone(), at],
        )
        .expect("insert");
    }
    db
}

thread_local! {
    static DB: SqliteDb = db();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    DB.with(|db| {
        if let Ok(a) = Aggregate::parse(text) {
            if let Err(e) = a.run(db) {
                // A $regex is compiled at parse time; nothing else may fail.
                assert_eq!(e.code, Code::InvalidArgument, "{text:?} compiled to SQL SQLite refused: {e:?}");
            }
        }
        let _ = parse_if_match(text);
    });
});

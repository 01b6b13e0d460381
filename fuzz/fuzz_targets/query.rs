//! Query JSON: the storage query compiler (`Query::parse`), and the SQL it compiles to,
//! run on a real in-memory SQLite database with a few things in it. A query that parses
//! must run: SQLite refusing the compiled SQL (wrong parameter count, bad syntax) is a
//! bug in the compiler.
#![no_main]

use do_modules::host::{Sql, SqlValue};
use do_modules::storage::query::Query;
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
        ("a1", "Customer", r#"{"name":"Ann","age":31,"tags":["x","y"],"city":{"name":"Oslo"}}"#, None),
        ("a2", "Customer", r#"{"name":"Bob","age":null,"score":2.5}"#, None),
        ("b1", "Order", r#"{"total":10,"paid":true,"items":[{"sku":"k"}]}"#, Some(5)),
        ("b2", "Order", r#"{}"#, None),
    ];
    for (i, (id, type_, data, deleted)) in rows.into_iter().enumerate() {
        let at = SqlValue::Integer(1_000 + i as i64);
        let deleted = deleted.map_or(SqlValue::Null, SqlValue::Integer);
        db.execute(
            "INSERT INTO things (id, type, data, created_at, updated_at, deleted_at, version) VALUES (?, ?, ?, ?, ?, ?, 1)",
            &[SqlValue::Text(id.into()), SqlValue::Text(type_.into()), SqlValue::Text(data.into()), at.clone(), at, deleted],
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
    let Ok(q) = Query::parse(text) else { return };
    DB.with(|db| {
        let (row, mut row_params) = q.row_sql();
        row_params.push(SqlValue::Integer(1));
        for (sql, params) in [q.page_sql(), (row, row_params), q.ids_after_sql((i64::MIN, i64::MIN), 10), q.count_sql()]
        {
            if let Err(e) = db.query(&sql, &params) {
                // A $regex is compiled at parse time; nothing else may fail.
                assert_eq!(
                    e.code,
                    Code::InvalidArgument,
                    "{text:?} compiled to SQL SQLite refused: {sql} {params:?}: {e:?}"
                );
            }
        }
    });
});

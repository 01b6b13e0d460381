//! A class's own SQL, checked by its words, for a host that cannot watch what SQLite
//! does (a Cloudflare Durable Object has no authorizer): one statement; its first word
//! a query or a change of the class's own tables; no identifier naming a framework
//! table ([`crate::host::is_framework_table`]) or the platform's (`_cf_*`); no PRAGMA,
//! ATTACH, DETACH or transaction control; and for a read, no word that writes. Words
//! inside string literals and comments do not count; quoted identifiers do. It is meant
//! to refuse what the native host's authorizer refuses; where the two differ it is the
//! stricter (a column of one's own named `events` must be renamed).

use crate::host::is_framework_table;
use rpc_core::{Code, RpcError};

/// One token of a statement that matters here.
#[derive(Debug, PartialEq)]
enum Token {
    /// A bare word (keyword or identifier), upper-cased.
    Word(String),
    /// A quoted identifier (`"x"`, `` `x` ``, `[x]`), as written inside the quotes.
    Quoted(String),
    /// `;`.
    End,
}

fn bad(message: &str) -> RpcError {
    RpcError::invalid_argument(format!("sql: {message}"))
}

/// The words, quoted identifiers and statement ends of `sql`.
fn tokens(sql: &str) -> Result<Vec<Token>, RpcError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(bad("an unterminated comment"));
                }
                i += 2;
            }
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let mut text = String::new();
                i += 1;
                loop {
                    let Some(&d) = chars.get(i) else { return Err(bad("an unterminated quote")) };
                    i += 1;
                    if d == close {
                        // A doubled quote is one quote character (not for brackets).
                        if c != '[' && chars.get(i) == Some(&close) {
                            text.push(d);
                            i += 1;
                            continue;
                        }
                        break;
                    }
                    text.push(d);
                }
                if c != '\'' {
                    out.push(Token::Quoted(text));
                }
            }
            ';' => {
                out.push(Token::End);
                i += 1;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                    i += 1;
                }
                out.push(Token::Word(chars[start..i].iter().collect::<String>().to_ascii_uppercase()));
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

/// Statements a class may start with; the reads first.
const READS: &[&str] = &["SELECT", "WITH", "VALUES"];
const WRITES: &[&str] = &["INSERT", "REPLACE", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER"];
/// Words refused anywhere (BEGIN is refused as a statement's first word: outside a
/// trigger's body it starts a transaction).
/// TEMP and VIRTUAL tables, views, triggers and indexes are refused by the native
/// authorizer too.
const NEVER: &[&str] = &[
    "PRAGMA",
    "ATTACH",
    "DETACH",
    "VACUUM",
    "SAVEPOINT",
    "RELEASE",
    "ROLLBACK",
    "COMMIT",
    "TEMP",
    "TEMPORARY",
    "VIRTUAL",
];

/// The refusal of a class's statement (`read_only`: through `sql()`), as every host words it.
pub fn forbidden(read_only: bool) -> RpcError {
    RpcError::new(
        Code::Forbidden,
        if read_only {
            "a class's sql() only reads its own tables (the framework's are things, events, schedules and dotdo_*)"
        } else {
            "a class's statements touch only its own tables (not things, events, schedules or dotdo_*), without PRAGMA, ATTACH or transaction control"
        },
    )
}

fn is_platform_or_framework(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    (is_framework_table(&lower) && !lower.starts_with("sqlite_")) || lower.starts_with("_cf_")
}

/// Checks one statement of a class (see the module's docs): FORBIDDEN when it may not
/// run, INVALID_ARGUMENT when it cannot be read.
pub fn check(sql: &str, read_only: bool) -> Result<(), RpcError> {
    let mut tokens = tokens(sql)?;
    while tokens.last() == Some(&Token::End) {
        tokens.pop();
    }
    let Some(Token::Word(first)) = tokens.first() else { return Err(bad("no statement")) };
    let trigger = first == "CREATE" && tokens.iter().take(6).any(|t| *t == Token::Word("TRIGGER".into()));
    // A `;` ends the statement, except inside a trigger's BEGIN ... END (where CASE ...
    // END nests too).
    let (mut body, mut cases) = (false, 0u32);
    for t in &tokens {
        match t {
            Token::Word(w) if trigger && w == "BEGIN" => body = true,
            Token::Word(w) if body && w == "CASE" => cases += 1,
            Token::Word(w) if body && w == "END" => {
                if cases > 0 {
                    cases -= 1;
                } else {
                    body = false;
                }
            }
            Token::End if !body => return Err(bad("one statement at a time")),
            _ => {}
        }
    }
    let starts_read = READS.contains(&first.as_str());
    if !starts_read && (read_only || !WRITES.contains(&first.as_str())) {
        return Err(forbidden(read_only));
    }
    for t in &tokens {
        let (name, word) = match t {
            Token::Word(w) => (w.as_str(), true),
            Token::Quoted(q) => (q.as_str(), false),
            Token::End => continue,
        };
        if is_platform_or_framework(name) {
            return Err(forbidden(read_only));
        }
        if word && (NEVER.contains(&name) || (read_only && WRITES.contains(&name))) {
            return Err(forbidden(read_only));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(sql: &str, read_only: bool) -> Option<Code> {
        check(sql, read_only).err().map(|e| e.code)
    }

    #[test]
    fn a_class_reads_and_writes_its_own_tables() {
        for sql in [
            "SELECT COUNT(*) FROM audit",
            "select note from audit where note = 'things' -- events",
            "WITH t AS (SELECT 1) SELECT * FROM t",
            "SELECT name FROM sqlite_master",
            "SELECT /* dotdo_meta */ 1;",
        ] {
            assert_eq!(code(sql, true), None, "{sql}");
        }
        for sql in [
            "CREATE TABLE IF NOT EXISTS audit (note TEXT)",
            "INSERT INTO audit (note) VALUES (?)",
            "UPDATE audit SET note = 'x'",
            "DELETE FROM audit",
            "CREATE INDEX audit_note ON audit (note)",
            "CREATE TRIGGER t AFTER INSERT ON audit BEGIN DELETE FROM audit WHERE 0; END",
            "CREATE TRIGGER u AFTER INSERT ON audit BEGIN UPDATE audit SET note = CASE WHEN 1 THEN 'a' END; DELETE FROM audit WHERE 0; END;",
            "DROP TABLE audit",
            "WITH old AS (SELECT 1) DELETE FROM audit",
        ] {
            assert_eq!(code(sql, false), None, "{sql}");
        }
    }

    #[test]
    fn framework_tables_and_control_are_refused_however_written() {
        for sql in [
            "DELETE FROM things",
            "delete from \"Things\"",
            "DELETE FROM [events]",
            "UPDATE `schedules` SET spec = ''",
            "INSERT INTO dotdo_meta VALUES (1, 2)",
            "SELECT * FROM _cf_KV",
            "CREATE VIEW v AS SELECT * FROM things",
            "CREATE TRIGGER t AFTER INSERT ON audit BEGIN DELETE FROM things; END",
            "PRAGMA table_info(audit)",
            "ATTACH 'x' AS y",
            "BEGIN",
            "COMMIT",
            "SAVEPOINT s",
            "VACUUM",
            "CREATE TEMP TABLE t (x)",
            "CREATE VIRTUAL TABLE v USING fts5(x)",
        ] {
            assert_eq!(code(sql, false), Some(Code::Forbidden), "{sql}");
        }
        for sql in ["DELETE FROM audit", "WITH t AS (SELECT 1) DELETE FROM audit", "SELECT * FROM things"] {
            assert_eq!(code(sql, true), Some(Code::Forbidden), "read-only: {sql}");
        }
    }

    #[test]
    fn unreadable_or_several_statements_are_invalid() {
        for sql in [
            "",
            "  ",
            "SELECT 'open",
            "SELECT 1; SELECT 2",
            "/* open",
            "SELECT \"open",
            "CREATE TRIGGER t AFTER INSERT ON audit BEGIN SELECT 1; END; DELETE FROM audit",
        ] {
            assert_eq!(code(sql, false), Some(Code::InvalidArgument), "{sql:?}");
        }
    }
}

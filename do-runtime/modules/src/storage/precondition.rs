//! `ifMatch`: a write that runs only if the thing matches a filter when it runs (in the
//! write's own transaction), else CONFLICT and nothing changes. The filter is a query's
//! `where`, compiled to the same parameterised SQL.

use super::query::{filter_sql, parse_filter, Filter};
use super::things::Store;
use crate::host::SqlValue;
use rpc_core::{Code, RpcError};

/// The precondition in `text`: none when empty, else a `where` filter (JSON object).
pub fn parse_if_match(text: &str) -> Result<Option<Filter>, RpcError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| RpcError::invalid_argument(format!("ifMatch is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(RpcError::invalid_argument("ifMatch is a filter object, as a query's \"where\""));
    }
    parse_filter(&v).map(Some)
}

impl Store<'_> {
    /// CONFLICT unless the live thing `id` matches `filter` (NOT_FOUND if there is none).
    pub fn check_precondition(&self, id: &str, filter: Option<&Filter>) -> Result<(), RpcError> {
        let Some(filter) = filter else { return Ok(()) };
        let mut params = vec![SqlValue::Text(id.to_string())];
        let cond = filter_sql(filter, &mut params);
        let sql = format!("SELECT deleted_at IS NULL, {cond} FROM things WHERE id = ?");
        // The id comes first in the statement's text but is bound last: reorder.
        params.rotate_left(1);
        let rows = self.sql.query(&sql, &params)?;
        match rows.first().map(|r| (r.first().and_then(SqlValue::as_i64), r.get(1).and_then(SqlValue::as_i64))) {
            None | Some((Some(0), _)) => Err(RpcError::new(Code::NotFound, format!("no thing {id:?}"))),
            Some((_, Some(1))) => Ok(()),
            Some(_) => Err(RpcError::new(Code::Conflict, format!("{id} does not match the ifMatch precondition"))),
        }
    }
}

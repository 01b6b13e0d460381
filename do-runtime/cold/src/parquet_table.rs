//! A table as Parquet. SQLite lets one column hold integers, reals and text side by
//! side, so each column of the table becomes three nullable Parquet columns, `i:<name>`
//! (Int64), `r:<name>` (Float64) and `t:<name>` (Utf8), of which a row's value fills one
//! (NULL: none). Lossless for every value `SqlValue` carries; compact, since Parquet
//! stores an all-null column in a few bytes.

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use do_modules::host::{SqlValue, Table};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use rpc_core::{Code, RpcError};
use std::sync::Arc;

fn internal(what: &str, e: impl std::fmt::Display) -> RpcError {
    RpcError::new(Code::Internal, format!("{what}: {e}"))
}

/// The table as a Parquet file.
pub fn encode(table: &Table) -> Result<Vec<u8>, RpcError> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (c, name) in table.columns.iter().enumerate() {
        let (mut ints, mut reals, mut texts) = (Int64Builder::new(), Float64Builder::new(), StringBuilder::new());
        for row in &table.rows {
            let v = row.get(c).unwrap_or(&SqlValue::Null);
            ints.append_option(if let SqlValue::Integer(i) = v { Some(*i) } else { None });
            reals.append_option(if let SqlValue::Real(r) = v { Some(*r) } else { None });
            texts.append_option(v.as_text());
        }
        fields.push(Field::new(format!("i:{name}"), DataType::Int64, true));
        fields.push(Field::new(format!("r:{name}"), DataType::Float64, true));
        fields.push(Field::new(format!("t:{name}"), DataType::Utf8, true));
        arrays.push(Arc::new(ints.finish()));
        arrays.push(Arc::new(reals.finish()));
        arrays.push(Arc::new(texts.finish()));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), None).map_err(|e| internal("parquet", e))?;
    if !table.columns.is_empty() {
        let batch = RecordBatch::try_new(schema, arrays).map_err(|e| internal("parquet", e))?;
        writer.write(&batch).map_err(|e| internal("parquet", e))?;
    }
    writer.close().map_err(|e| internal("parquet", e))?;
    Ok(out)
}

fn column<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T, RpcError> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| RpcError::new(Code::Internal, "a cold table's column has another type than it should"))
}

/// A table from a Parquet file [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Table, RpcError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .map_err(|e| internal("a cold table is not Parquet", e))?;
    let schema = reader.schema().clone();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if !names.len().is_multiple_of(3) {
        return Err(RpcError::new(Code::Internal, "a cold table's columns do not come in threes"));
    }
    let columns: Vec<String> = names.chunks(3).map(|c| c[0].strip_prefix("i:").unwrap_or(&c[0]).to_string()).collect();
    let mut rows = Vec::new();
    for batch in reader.build().map_err(|e| internal("parquet", e))? {
        let batch = batch.map_err(|e| internal("parquet", e))?;
        for r in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(columns.len());
            for c in 0..columns.len() {
                let (i, f, t) = (
                    column::<Int64Array>(&batch, 3 * c)?,
                    column::<Float64Array>(&batch, 3 * c + 1)?,
                    column::<StringArray>(&batch, 3 * c + 2)?,
                );
                row.push(if !i.is_null(r) {
                    SqlValue::Integer(i.value(r))
                } else if !f.is_null(r) {
                    SqlValue::Real(f.value(r))
                } else if !t.is_null(r) {
                    SqlValue::Text(t.value(r).to_string())
                } else {
                    SqlValue::Null
                });
            }
            rows.push(row);
        }
    }
    Ok(Table { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_comes_back() {
        let table = Table {
            columns: vec!["id".into(), "n".into(), "odd \"name\"".into()],
            rows: vec![
                vec![SqlValue::Text("a".into()), SqlValue::Integer(i64::MIN), SqlValue::Real(0.5)],
                vec![SqlValue::Text("é ✓".into()), SqlValue::Null, SqlValue::Text(String::new())],
                vec![SqlValue::Integer(7), SqlValue::Real(f64::MAX), SqlValue::Integer(-1)],
            ],
        };
        let bytes = encode(&table).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(decode(&bytes).unwrap(), table);
        let empty = Table { columns: vec!["x".into()], rows: vec![] };
        assert_eq!(decode(&encode(&empty).unwrap()).unwrap(), empty);
        assert_eq!(decode(b"not parquet").unwrap_err().code, Code::Internal);
    }
}

//! Parquet: one file per robot and topic, written through Arrow with Snappy compression. Each
//! batch is handed to the writer as it is decoded; a row group is closed at
//! [`Limits::row_group_rows`] rows or [`Limits::row_group_bytes`] encoded bytes, whichever comes
//! first, so memory stays bounded whatever the recording size.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, ConvertedType, Type as PhysicalType};
use parquet::file::properties::WriterProperties;

use super::{create_file, Limits, StreamMeta, TableWriter};
use crate::column::Batch;
use crate::error::{ExportError, Result};

/// The Parquet file of one topic.
pub struct ParquetTable {
    path: PathBuf,
    meta: StreamMeta,
    schema: SchemaRef,
    writer: ArrowWriter<BufWriter<File>>,
    limits: Limits,
}

impl ParquetTable {
    /// Creates the file and writes nothing yet.
    pub fn create(path: &Path, meta: &StreamMeta, limits: Limits) -> Result<ParquetTable> {
        let mut md = HashMap::new();
        md.insert("fleetrec.robot".to_string(), meta.robot.clone());
        md.insert("fleetrec.topic".to_string(), meta.topic.clone());
        md.insert("fleetrec.type".to_string(), meta.type_name.clone());
        md.insert("fleetrec.encoding".to_string(), if meta.plan.raw { "cdr (raw)" } else { "decoded" }.into());
        md.insert("fleetrec.definition".to_string(), meta.definition.clone());
        let schema = super::arrow::schema(&meta.plan, md);
        let props = writer_properties(&schema, limits).map_err(|e| err(path, meta, e))?;
        let file = create_file(path)?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| err(path, meta, e))?;
        Ok(ParquetTable { path: path.to_path_buf(), meta: meta.clone(), schema, writer, limits })
    }
}

/// Snappy, the row group limits, and no dictionary for the columns where it only costs time:
/// raw bytes (`uint8[]`: images, point clouds) and floating point values (sensor readings are
/// almost never repeated). Strings and integers keep the dictionary.
pub fn writer_properties(schema: &Schema, limits: Limits) -> parquet::errors::Result<WriterProperties> {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(limits.row_group_rows.max(1)))
        .set_max_row_group_bytes(Some(limits.row_group_bytes.max(1)))
        .set_created_by(format!("fleetrec-exporter {}", env!("CARGO_PKG_VERSION")));
    let descr = ArrowSchemaConverter::new().convert(schema)?;
    for c in descr.columns() {
        let no_dictionary = match c.physical_type() {
            PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY => c.converted_type() != ConvertedType::UTF8,
            PhysicalType::FLOAT | PhysicalType::DOUBLE => true,
            _ => false,
        };
        if no_dictionary {
            props = props.set_column_dictionary_enabled(c.path().clone(), false);
        }
    }
    Ok(props.build())
}

fn err(path: &Path, meta: &StreamMeta, e: impl std::fmt::Display) -> ExportError {
    ExportError::Write { format: "parquet", path: path.to_path_buf(), topic: meta.topic.clone(), reason: e.to_string() }
}

impl TableWriter for ParquetTable {
    fn write(&mut self, batch: Batch) -> Result<()> {
        let rb = super::arrow::record_batch(&self.schema, &self.meta.plan, batch)
            .map_err(|e| err(&self.path, &self.meta, e))?;
        self.writer.write(&rb).map_err(|e| err(&self.path, &self.meta, e))?;
        if self.writer.in_progress_size() >= self.limits.row_group_bytes {
            self.writer.flush().map_err(|e| err(&self.path, &self.meta, e))?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<PathBuf>> {
        let ParquetTable { path, meta, writer, .. } = *self;
        // Writes the last row group and the footer.
        let inner = writer.into_inner().map_err(|e| err(&path, &meta, e))?;
        let file = inner.into_inner().map_err(|e| err(&path, &meta, e.error()))?;
        file.sync_all().map_err(crate::error::io_err("fsync", &path))?;
        Ok(vec![path])
    }
}

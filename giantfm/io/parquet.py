"""Parquet with astropy: Arrow data as astropy Tables, and streamed writes that read back exactly.

astropy reads and writes whole Parquet tables; `giantfm.scale` needs one
block at a time in both directions, to keep a worker's memory bounded on files
of any size. pyarrow is optional (``pip install 'giantfm[scale]'``) and
imported inside the functions.
"""
import os
from pathlib import Path

import numpy as np

__all__ = ["arrow_to_table", "parquet_units", "iter_parquet", "ParquetStream"]


def arrow_to_table(batch):
    """A pyarrow RecordBatch/Table -> astropy Table (list columns as 2-D or object arrays).

    Columns ``X.mask`` that astropy's Parquet writer adds for masked columns
    are applied to ``X`` (its stored values under the mask are fill values).
    """
    import pyarrow as pa
    from astropy.table import MaskedColumn, Table

    table = Table()
    names = list(batch.schema.names)
    for name in names:
        if name.endswith(".mask") and name[:-5] in names:
            continue
        column = batch.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        kind = column.type
        nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) \
                or pa.types.is_large_list(kind):
            if not nulls.any() and len(column) and column.offset == 0:
                import pyarrow.compute as pc

                lengths = pc.list_value_length(column)
                size = pc.min(lengths).as_py()
                if size == pc.max(lengths).as_py() and size:  # the common case: fast
                    values = column.flatten().to_numpy(zero_copy_only=False)
                    table[name] = np.asarray(values, dtype=float).reshape(len(column), size)
                    continue
            cells = column.to_pylist()
            sizes = {len(c) for c in cells if c is not None}
            if len(sizes) == 1 and not nulls.any():
                values = np.array(cells, dtype=float)
            else:
                values = np.empty(len(cells), dtype=object)
                values[:] = [None if c is None else np.asarray(c, dtype=float) for c in cells]
            table[name] = values
            continue
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values = np.array(["" if c is None else c for c in column.to_pylist()], dtype=str)
        elif pa.types.is_floating(kind) or pa.types.is_integer(kind) \
                or pa.types.is_boolean(kind):
            filled = column.fill_null(0) if nulls.any() else column
            values = np.asarray(filled.to_numpy(zero_copy_only=False))
        else:
            values = np.asarray(column.to_pylist(), dtype=object)
        mask = nulls
        if f"{name}.mask" in names:
            mask = mask | np.asarray(batch.column(f"{name}.mask").to_numpy(
                zero_copy_only=False), dtype=bool)
        table[name] = MaskedColumn(values, mask=mask) if mask.any() else values
    return table


def parquet_units(path):
    """Column units recorded by astropy in a Parquet file's metadata (may be empty)."""
    import pyarrow.parquet as pq
    from astropy.table import meta

    md = pq.read_schema(path).metadata or {}
    text = md.get(b"table_meta_yaml")
    if not text:
        return {}
    try:
        header = meta.get_header_from_yaml(text.decode("utf-8").splitlines())
    except Exception:  # foreign or damaged metadata: the values still read
        return {}
    return {c["name"]: c["unit"] for c in header.get("datatype", []) if c.get("unit")}


def iter_parquet(path, chunk_rows):
    """Yield a Parquet file as astropy Tables of at most ``chunk_rows`` rows, in file order.

    Read row group by row group, so that one block is in memory at a time;
    the units astropy recorded in the file's metadata are put back.

    Raises
    ------
    ValueError
        The file cannot be read as Parquet.
    """
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:
        raise ValueError(f"cannot read {os.fspath(path)!r} as parquet: "
                         f"{type(exc).__name__}: {exc}") from exc
    units = parquet_units(path)
    for batch in reader.iter_batches(batch_size=chunk_rows):
        table = arrow_to_table(batch)
        for name, unit in units.items():
            if name in table.colnames:
                table[name].unit = unit
        yield table


class ParquetStream:
    """Append prediction QTables to one Parquet file that astropy reads back with units.

    astropy's own Parquet writer takes a whole table, adds ``X.mask`` columns
    only when something is masked and records string lengths from the data
    seen; here every chunk gets the same columns (all masks present) and the
    string lengths are recorded at the end, so the file reads back exactly as
    if it had been written in one go.
    """

    def __init__(self, path):
        self.path = path
        self.writer = None
        self.strlen = {}
        self.rows = 0

    @staticmethod
    def _encode(table):
        from astropy.table import serialize
        from astropy.utils.data_info import serialize_context_as

        with serialize_context_as("parquet"):
            return serialize.represent_mixins_as_columns(table)

    def write(self, result):
        import pyarrow as pa
        import pyarrow.parquet as pq
        from astropy.table import meta

        if self.writer is None:
            # a one-row template with every column masked fixes the serialized layout
            template = result[:1].copy()
            for name in template.colnames:
                if hasattr(template[name], "mask") and name not in ("flag", "reason"):
                    template[name].mask = True
            encoded = self._encode(template)
            self.columns = encoded.colnames
            yaml = "\n".join(meta.get_yaml_from_table(encoded))
            fields = [(name, pa.from_numpy_dtype(encoded[name].dtype.type)
                       if encoded[name].dtype.kind != "U" else pa.string())
                      for name in self.columns]
            encoded = self._encode(result)
            # string lengths as astropy records them; a longer string in a later
            # chunk makes close() rewrite the metadata (rare: reasons are few and short)
            self.declared = {name: max(1, encoded[name].dtype.itemsize // 4)
                             for name in self.columns
                             if name in encoded.colnames and encoded[name].dtype.kind == "U"}
            metadata = {b"table_meta_yaml": yaml.encode("utf-8")}
            metadata.update(self._lengths(self.declared))
            self.schema = pa.schema(fields, metadata=metadata)
            self.writer = pq.ParquetWriter(self.path, self.schema, version="2.4")
        else:
            encoded = self._encode(result)
        arrays = []
        for field in self.schema:
            name = field.name
            if name in encoded.colnames:
                values = np.asarray(encoded[name])
            elif name.endswith(".mask"):  # nothing masked in this chunk
                values = np.zeros(len(result), dtype=bool)
            else:
                raise RuntimeError(f"internal error: column {name!r} missing from a chunk")
            if values.dtype.kind == "U":
                self.strlen[name] = max(self.strlen.get(name, 1), values.dtype.itemsize // 4)
                arrays.append(pa.array(values.tolist(), type=pa.string()))
            else:
                arrays.append(pa.array(values.astype(values.dtype.newbyteorder("<"),
                                                     copy=False), type=field.type))
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(result)

    @staticmethod
    def _lengths(lengths):
        return {f"table::len::{name}".encode("utf-8"): str(n).encode("utf-8")
                for name, n in lengths.items()}

    def close(self):
        import pyarrow.parquet as pq

        if self.writer is None:
            return
        self.writer.close()
        longer = {name: n for name, n in self.strlen.items() if n > self.declared.get(name, 0)}
        if not longer:
            return
        # rewrite row group by row group with the final lengths (memory stays bounded)
        metadata = dict(self.schema.metadata)
        metadata.update(self._lengths({**self.declared, **longer}))
        schema = self.schema.with_metadata(metadata)
        fixed = f"{self.path}.strlen"
        try:
            source = pq.ParquetFile(self.path)
            with pq.ParquetWriter(fixed, schema, version="2.4") as writer:
                for group in range(source.num_row_groups):
                    writer.write_table(source.read_row_group(group).replace_schema_metadata(
                        metadata))
            os.replace(fixed, self.path)
        finally:
            Path(fixed).unlink(missing_ok=True)

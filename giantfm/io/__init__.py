"""File formats: tables of stars and results, and Parquet streaming.

- `giantfm.io.tables`: the one reading path (`read_table`, a registry of
  table formats, `TABLE_FORMATS`, chosen by the file extension; a new one is
  registered with `register_table_format`) and
  `write_table` (atomic writes; a result's metadata kept in FITS too), used by
  `giantfm.predict`, the command line and `giantfm.predict_files` alike;
- `giantfm.io.parquet`: Arrow data as astropy Tables and streamed Parquet
  writes, one block at a time (pyarrow).

The training-set file is `giantfm.train.dataset.datafile`.
"""
from .tables import (FORMATS, TABLE_FORMATS, TableFormat, read_table, register_table_format,
                     table_format, write_table)

__all__ = ["read_table", "write_table", "table_format", "FORMATS", "TABLE_FORMATS",
           "TableFormat", "register_table_format"]

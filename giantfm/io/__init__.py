"""File formats: tables of stars and results, Parquet streaming, the training-set file.

- `giantfm.io.tables`: `read_table` / `write_table` for every format astropy
  knows, chosen by the file extension (atomic writes; a result's metadata kept
  in FITS too);
- `giantfm.io.parquet`: Arrow data as astropy Tables and streamed Parquet
  writes, one block at a time (pyarrow);
- `giantfm.io.dataset`: the HDF5 training-set file, its writer and its one
  reader (h5py).
"""
from .tables import FORMATS, read_table, table_format, write_table

__all__ = ["read_table", "write_table", "table_format", "FORMATS"]

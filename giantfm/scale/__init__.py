"""Predictions for all of Gaia: many files on a Dask cluster, or a HATS catalogue with lsdb.

Two entry points, both built on existing engines rather than home-made
batching:

* `predict_files` (`giantfm.scale.files`) -- a glob or list of files in the
  formats the Gaia archive distributes -> one output file per input, on a
  `dask.distributed` cluster or in this process, resumable through a JSON
  manifest (`giantfm.scale.manifest`, `read_manifest`);
* `predict_catalog` (`giantfm.scale.catalog`) -- an `lsdb` catalogue -> a lazy
  `lsdb` catalogue with the prediction columns added.

The columns both write are `PREDICTION_COLUMNS` (from `giantfm.results`),
with the units of `prediction_units`. dask, distributed, lsdb and pyarrow
are optional (``pip install 'giantfm[scale]'``) and imported only inside the
functions that use them.
"""
from ..results import PREDICTION_COLUMNS, prediction_units
from .catalog import predict_catalog
from .files import output_path, predict_files
from .manifest import MANIFEST_NAME, read_manifest

__all__ = ["predict_files", "predict_catalog", "read_manifest", "output_path",
           "MANIFEST_NAME", "PREDICTION_COLUMNS", "prediction_units"]

"""The ``giantfm`` command line: one entry point with subcommands.

::

    giantfm example                         predict the bundled example stars, print the table
    giantfm predict INPUT -o OUTPUT         labels, masses and ages for every row of a table
    giantfm predict-files INPUTS... -o DIR  the same for many files, one output each, on a
                                            dask cluster, resumable (giantfm.scale)
    giantfm info                            model card, package versions, devices found
    giantfm build-dataset ...               build the training set   (giantfm.train.dataset)
    giantfm train ...                       train a model            (giantfm.model.training)
    giantfm baseline ...                    train XGBoost baselines  (giantfm.train.baseline)
    giantfm evaluate ...                    evaluate a model         (giantfm.train.evaluate)

``giantfm SUBCOMMAND --help`` describes each one. ``predict`` reads any table
astropy reads, chosen by the file extension: FITS (``.fits``, ``.fit``,
``.fts``), ECSV (``.ecsv``), VOTable (``.vot``, ``.votable``, ``.xml``), CSV
(``.csv``: plain CSV, GaiaXPy-style CSV with array strings, or ECSV with comma
delimiter), Parquet (``.parquet``, needs pyarrow), HDF5 (``.h5``, ``.hdf5``),
each optionally gzipped (``.gz``) where astropy can read it so; the Gaia
archive's ``XP_CONTINUOUS`` products are ECSV, VOTable or CSV files. The output
format follows the output's extension in the same way (``.csv`` is written as
ECSV with a comma delimiter, so that the units travel in its ``#`` header:
``pandas.read_csv(path, comment="#")`` and
``Table.read(path, format="ascii.ecsv")`` both read it). The output has one
row per input row, in input order, with units; it is written to a temporary
file in the output's directory and renamed into place, so an interrupted run
never leaves a partial output file.

Exit status (stable, for scripts):

==== =====================================================================
0    success
1    bad input: missing or unreadable input file, or a table the model
     cannot use (missing columns, wrong coefficient count, empty table)
2    usage error: bad arguments, unknown file extension, a ``--device``
     that is not a device name
3    the output cannot be written: it exists (without ``--overwrite``),
     its directory is missing or not writable, or a format needs a
     package that is not installed
4    unavailable: the requested component (model, training code, optional
     dependency, the ``--device`` asked for) is not present here
5    internal error (``--traceback`` shows where)
130  interrupted (Ctrl-C); no partial output is left behind
==== =====================================================================

``predict-files`` uses the same statuses: 0 when every input is done (or
was done by an earlier run), 1 when any input failed (the others are still
predicted; the manifest ``giantfm_manifest.json`` in the output directory
gives each failure's reason), 2 for bad arguments or a pattern that matches
no file, 3 when the output directory cannot be made or written, 4 when dask
(``pip install 'giantfm[scale]'``) or the scheduler is not available.

Errors are one line on standard error, ``giantfm: error: <message>``;
progress and notes go to standard error too, so standard output carries only
results (``info``, ``example``).
"""
import argparse
import importlib
import importlib.util
import os
import sys
import traceback
import warnings
from pathlib import Path

from .utils import atomic_write

__all__ = ["main", "read_table", "write_table", "table_format", "EXIT_OK", "EXIT_BAD_INPUT",
           "EXIT_USAGE", "EXIT_OUTPUT", "EXIT_UNAVAILABLE", "EXIT_INTERNAL", "EXIT_INTERRUPTED"]

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_OUTPUT = 3
EXIT_UNAVAILABLE = 4
EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130

# extension -> astropy format name; ".csv" is handled by read_table/write_table
_FORMATS = {
    ".fits": "fits", ".fit": "fits", ".fts": "fits",
    ".ecsv": "ascii.ecsv",
    ".csv": "ascii.csv",
    ".vot": "votable", ".votable": "votable", ".xml": "votable",
    ".parquet": "parquet", ".pq": "parquet",
    ".h5": "hdf5", ".hdf5": "hdf5",
}
# optional packages some formats need: format -> (import name, pip name)
_FORMAT_NEEDS = {"parquet": ("pyarrow", "pyarrow"), "hdf5": ("h5py", "h5py")}
# HDF5 files can hold several tables: giantfm writes its results under this path.
HDF5_PATH = "predictions"

# Where the bundled model's card may be, relative to giantfm/data (first found is shown).
_MODEL_CARDS = ("model/model_card.md", "model_card.md", "model/model_card.json", "model_card.json")

# subcommand -> (module, what it does): implemented elsewhere, imported only when used.
_DELEGATES = {
    "build-dataset": ("giantfm.train.dataset", "build the training set (giantfm.train.dataset)"),
    "train": ("giantfm.model.training", "train a model (giantfm.model.training)"),
    "baseline": ("giantfm.train.baseline", "train the XGBoost baseline (giantfm.train.baseline)"),
    "evaluate": ("giantfm.train.evaluate", "evaluate a model on the test split "
                                           "(giantfm.train.evaluate)"),
}


class CLIError(Exception):
    """An error to report in one line with a given exit status."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def table_format(path):
    """The astropy format name for ``path``, from its extension (``.gz`` is looked through).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str
        E.g. ``'fits'``, ``'ascii.ecsv'``, ``'votable'``.

    Raises
    ------
    ValueError
        For an extension giantfm does not know, listing the known ones.
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _FORMATS:
        return _FORMATS[suffixes[-1]]
    raise ValueError(f"cannot tell the table format of {os.fspath(path)!r} from its extension; "
                     f"known extensions: {', '.join(sorted(_FORMATS))} (optionally + .gz)")


def _is_ecsv(path):
    """Whether a (possibly gzipped) text file starts with the ECSV signature."""
    from astropy.utils.data import get_readable_fileobj
    with get_readable_fileobj(os.fspath(path)) as f:
        return f.readline().startswith("# %ECSV")


def read_table(path):
    """Read a table in any format `giantfm predict` accepts (see the module docstring).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    `~astropy.table.Table`

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unknown extension, or a file that cannot be read as that format
        (the message names the file and the format).
    """
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {os.fspath(path)!r} does not exist")
    fmt = table_format(path)
    if fmt == "ascii.csv" and _is_ecsv(path):
        fmt = "ascii.ecsv"
    _require_format_package(fmt, path)
    try:
        table = Table.read(path, format=fmt)
    except Exception as exc:  # astropy raises many kinds for unreadable files
        raise ValueError(f"cannot read {os.fspath(path)!r} as {fmt}: "
                         f"{type(exc).__name__}: {exc}") from exc
    return table


def _require_format_package(fmt, path):
    if fmt in _FORMAT_NEEDS:
        module, pip_name = _FORMAT_NEEDS[fmt]
        if importlib.util.find_spec(module) is None:
            raise ImportError(f"{fmt} files ({os.fspath(path)!r}) need the package {pip_name!r}: "
                              f"pip install {pip_name}")


def _write_kwargs(fmt):
    if fmt == "ascii.csv":  # ECSV with commas: a CSV file whose '#' header carries the units
        return "ascii.ecsv", {"delimiter": ","}
    if fmt == "hdf5":
        return fmt, {"path": HDF5_PATH, "serialize_meta": True}
    return fmt, {}


def write_table(table, path, *, overwrite=False):
    """Write ``table`` to ``path`` atomically, in the format its extension names.

    The table goes to a temporary file in the same directory, which is then
    renamed onto ``path`` (`os.replace`): readers never see a half-written
    file, and an interruption leaves no partial output behind.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
    path : str or path-like
        Output file; its extension chooses the format (see `table_format`).
    overwrite : bool, optional
        Replace an existing file (default False: refuse).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        The output directory does not exist.
    ValueError
        Unknown extension.
    ImportError
        The format needs a package that is not installed.
    """
    path = Path(path)
    fmt = table_format(path)
    _require_format_package(fmt, path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"output file {os.fspath(path)!r} exists; use --overwrite "
                              "(overwrite=True) to replace it")
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"output directory {os.fspath(directory)!r} does not exist")
    write_format, kwargs = _write_kwargs(fmt)

    def write(tmp):
        with warnings.catch_warnings():
            # Known, harmless notes of astropy's writers about the dex(cm s-2) unit of
            # logg and long meta keys: the unit still round-trips through astropy
            # (serialized in the file's metadata) and long keys become HIERARCH cards.
            warnings.filterwarnings("ignore", message=".*could not be saved in native FITS")
            warnings.filterwarnings("ignore", message=".*HIERARCH card will be created")
            warnings.filterwarnings("ignore", message=".*W50: Invalid unit string 'dex")
            table.write(tmp, format=write_format, overwrite=True, **kwargs)
    atomic_write(path, write)


# ---------------------------------------------------------------------------- subcommands

def _cmd_predict(args):
    """``giantfm predict``: read, predict, write atomically."""
    import numpy as np

    try:
        table_format(args.output)
    except ValueError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    out = Path(args.output)
    # Refuse early what would fail at the end, before the (possibly long) prediction.
    if out.exists() and not args.overwrite:
        raise CLIError(f"output file {args.output!r} exists; use --overwrite to replace it",
                       EXIT_OUTPUT)
    if not out.parent.is_dir():
        raise CLIError(f"output directory {os.fspath(out.parent)!r} does not exist", EXIT_OUTPUT)
    if not os.access(out.parent, os.W_OK):
        raise CLIError(f"output directory {os.fspath(out.parent)!r} is not writable", EXIT_OUTPUT)
    try:
        _require_format_package(table_format(out), out)
    except ImportError as exc:
        raise CLIError(str(exc), EXIT_OUTPUT) from None

    _check_device(args.device)
    table = _read_input(args.input, "input")
    photometry = None if args.photometry is None else _read_input(args.photometry, "photometry")
    if len(table) == 0:
        raise CLIError(f"input file {args.input!r} has no rows", EXIT_BAD_INPUT)

    try:
        predict = _predict_function()
    except ImportError as exc:
        raise CLIError(f"prediction is not available: {exc}", EXIT_UNAVAILABLE) from None
    try:
        result = predict(table, photometry=photometry, device=args.device,
                         batch_size=args.batch_size, progress=False if args.no_progress else None)
    except (ValueError, KeyError) as exc:  # giantfm's input validation: the table's fault
        raise CLIError(f"cannot predict from {args.input!r}: {_message(exc)}",
                       EXIT_BAD_INPUT) from exc
    if len(result) != len(table):  # the contract of predict; never write a misaligned file
        raise CLIError(f"internal error: predict returned {len(result)} rows for {len(table)} "
                       "input rows", EXIT_INTERNAL)
    try:
        write_table(result, out, overwrite=args.overwrite)
    except (OSError, ImportError) as exc:
        raise CLIError(f"cannot write {args.output!r}: {exc}", EXIT_OUTPUT) from exc
    n_flagged = int(sum(result["flag"])) if "flag" in result.colnames else 0
    print(f"giantfm: wrote {len(result)} rows to {args.output} ({n_flagged} flagged)",
          file=sys.stderr)
    if n_flagged:
        reasons, counts = np.unique(np.asarray(result["reason"], dtype=str)[
            np.asarray(result["flag"], dtype=bool)], return_counts=True)
        for reason, count in sorted(zip(reasons, counts), key=lambda rc: -rc[1])[:3]:
            print(f"giantfm: note: {count} rows: {reason}", file=sys.stderr)
    return EXIT_OK


def _check_device(device):
    """Refuse a bad or absent ``--device`` before any work (usage error / unavailable)."""
    if device is None:
        return
    from .model.device import select_device  # torch lives under giantfm.model

    try:
        select_device(device)
    except ValueError as exc:
        raise CLIError(f"--device: {exc}", EXIT_USAGE) from None
    except RuntimeError as exc:
        raise CLIError(f"--device: {exc}", EXIT_UNAVAILABLE) from None


def _message(exc):
    # KeyError's str() adds quotes around its message
    return exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)


def _read_input(path, what):
    try:
        return read_table(path)
    except FileNotFoundError:
        raise CLIError(f"{what} file {path!r} does not exist", EXIT_BAD_INPUT) from None
    except ValueError as exc:
        raise CLIError(str(exc), EXIT_BAD_INPUT) from None
    except ImportError as exc:
        raise CLIError(str(exc), EXIT_UNAVAILABLE) from None


def _predict_function():
    # Imported here: the model (and torch) load only when a prediction is asked for.
    from .prediction import predict
    return predict


def _cmd_predict_files(args):
    """``giantfm predict-files``: many inputs, one output each, resumable (giantfm.scale)."""
    from . import scale

    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise CLIError(f"output directory {args.output_dir!r} is a file", EXIT_OUTPUT)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot make the output directory {args.output_dir!r}: "
                       f"{exc.strerror}", EXIT_OUTPUT) from None
    if not os.access(out, os.W_OK):
        raise CLIError(f"output directory {args.output_dir!r} is not writable", EXIT_OUTPUT)
    _check_device(args.device)
    client = "sync" if args.workers == 0 else None
    if args.scheduler is not None:
        if args.workers is not None:
            raise CLIError("give --scheduler or --workers, not both", EXIT_USAGE)
        try:
            from distributed import Client
        except ImportError:
            raise CLIError("--scheduler needs dask.distributed: pip install 'giantfm[scale]'",
                           EXIT_UNAVAILABLE) from None
        try:
            client = Client(args.scheduler, timeout="30s")
        except OSError as exc:
            raise CLIError(f"cannot reach the dask scheduler {args.scheduler!r}: {exc}",
                           EXIT_UNAVAILABLE) from None
    elif client is None and importlib.util.find_spec("distributed") is None:
        raise CLIError("running on several workers needs dask.distributed: pip install "
                       "'giantfm[scale]' (or --workers 0 to run here, one file at a time)",
                       EXIT_UNAVAILABLE)
    try:
        manifest = scale.predict_files(
            args.inputs, out, client=client, n_workers=args.workers or None,
            device=args.device, batch_size=args.batch_size, resume=not args.no_resume,
            output_format=args.format, progress=not args.no_progress)
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    except ImportError as exc:
        raise CLIError(str(exc), EXIT_UNAVAILABLE) from None
    finally:
        if args.scheduler is not None and client is not None:
            client.close()
    totals = manifest.meta["totals"]
    print(f"giantfm: {totals['files']} files: {totals['files_done']} done, "
          f"{totals['files_skipped']} already done, {totals['files_failed']} failed; "
          f"{totals['rows_out']} rows written ({totals['rows_flagged']} flagged) to "
          f"{args.output_dir}", file=sys.stderr)
    failed = manifest[manifest["status"] == "failed"]
    for row in failed[:5]:
        print(f"giantfm: failed: {row['input']}: {row['error']}", file=sys.stderr)
    if len(failed):
        if len(failed) > 5:
            print(f"giantfm: ... and {len(failed) - 5} more failures", file=sys.stderr)
        print(f"giantfm: see {os.fspath(out / scale.MANIFEST_NAME)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _cmd_example(args):
    """``giantfm example``: predict the bundled example stars and print the table."""
    from .examples import load

    _check_device(args.device)
    stars = load()
    result = _predict_function()(stars, device=args.device, progress=False)
    if "apogee_id" in stars.colnames:
        result.add_column(stars["apogee_id"], index=1 if "source_id" in result.colnames else 0)
    for name, fmt in (("teff", ".0f"), ("teff_err", ".0f"), ("logg", ".2f"), ("logg_err", ".2f"),
                      ("m_h", ".2f"), ("m_h_err", ".2f"), ("alpha_m", ".3f"),
                      ("alpha_m_err", ".3f"), ("mass", ".2f"), ("mass_err", ".2f"),
                      ("age", ".1f"), ("age_err", ".1f")):
        if name in result.colnames:
            result[name].info.format = fmt
    columns = [c for c in result.colnames if c not in ("flag", "reason") or args.reasons]
    lines = result[columns].pformat(max_lines=-1, max_width=-1)
    print("\n".join(lines))
    meta = result.meta
    print(f"\n{len(result)} example stars (Gaia DR3 XP x APOGEE DR17, test split); model "
          f"{meta.get('giantfm_model', '?')} {meta.get('giantfm_model_version', '')}, device "
          f"{meta.get('device', '?')}. Compare with the APOGEE labels: "
          "giantfm.examples.load()['apogee_teff', ...].")
    return EXIT_OK


def _cmd_info(args):
    """``giantfm info``: model card, package versions, devices."""
    from importlib import metadata, resources

    from . import __version__, conf

    print(f"giantfm {__version__}")
    print(f"python {sys.version.split()[0]} ({sys.executable})")
    for package in ("numpy", "scipy", "astropy", "specutils", "astroquery", "matplotlib",
                    "torch", "h5py", "tqdm", "xgboost-cpu", "xgboost", "pyarrow", "gaiaxpy"):
        try:
            print(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            if package not in ("xgboost", "xgboost-cpu"):
                print(f"{package} (not installed)")
    print(f"settings: device={conf.device} batch_size={conf.batch_size} "
          f"progress={conf.progress} model={conf.model}")
    print(f"devices: {_devices()}")
    data = resources.files("giantfm.data")
    for name in _MODEL_CARDS:
        card = data.joinpath(*name.split("/"))
        if card.is_file():
            print(f"\nmodel card (giantfm/data/{name}):\n")
            print(card.read_text(encoding="utf-8").rstrip())
            break
    else:
        print(f"\nmodel card: none bundled (looked for giantfm/data/{', '.join(_MODEL_CARDS)}): "
              "this installation may have no trained model")
    return EXIT_OK


def _devices():
    """The devices the model can run on, as text (asks giantfm.model, where torch lives)."""
    try:
        from .model import available_devices
    except ImportError as exc:
        return f"unknown ({_message(exc)})"
    return ", ".join(available_devices())


def _cmd_delegate(name, argv):
    module_name, _ = _DELEGATES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise CLIError(f"'giantfm {name}' is not available: {module_name} is not part of "
                           "this installation", EXIT_UNAVAILABLE) from None
        raise CLIError(f"'giantfm {name}' needs {exc.name!r}, which is not installed "
                       "(pip install 'giantfm[train]')", EXIT_UNAVAILABLE) from None
    entry = getattr(module, "main", None)
    if not callable(entry):
        raise CLIError(f"'giantfm {name}' is not available: {module_name} has no main(argv)",
                       EXIT_UNAVAILABLE)
    status = entry(list(argv))
    # A main() may return its result object (a trained model, a table): only an int is a status.
    return status if isinstance(status, int) and not isinstance(status, bool) else EXIT_OK


# ---------------------------------------------------------------------------- parser

def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser():
    """The argparse parser of ``giantfm`` (delegated subcommands parse their own options)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="giantfm",
        description="Masses, ages, Teff, log g, [M/H] and [alpha/M] of red giants from Gaia DR3 "
                    "XP spectra.",
        epilog="Exit status: 0 ok, 1 bad input, 2 usage, 3 output not writable, "
               "4 unavailable, 5 internal error, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"giantfm {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="show the Python traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("predict", help="predict labels, masses and ages for a table of stars",
                       description="Predict Teff, log g, [M/H], [alpha/M], mass and age for every "
                                   "row of INPUT and write them, with units, to OUTPUT.")
    p.add_argument("input", metavar="INPUT",
                   help="table of Gaia DR3 XP coefficients and photometry (FITS, ECSV, VOTable, "
                        "CSV, Parquet, HDF5; the archive's XP_CONTINUOUS files)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output table; format from its extension")
    p.add_argument("--photometry", metavar="TABLE",
                   help="magnitudes (phot_g_mean_mag, ...) for the same stars when INPUT lacks "
                        "them, same row order or matched on source_id")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: giantfm.conf.device)")
    p.add_argument("--batch-size", type=_positive_int, metavar="N",
                   help="stars per network call (default: chosen for the device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser("predict-files", help="predict many files, one output each, on a dask "
                                             "cluster; resumable",
                       description="Predict every row of many files (the Gaia archive's "
                                   "XP_CONTINUOUS files, FITS, Parquet, ...), one output per "
                                   "input in OUTPUT_DIR, on a local dask cluster (or the one "
                                   "--scheduler names). A manifest in OUTPUT_DIR records every "
                                   "input, its rows in and out and failures; a rerun skips the "
                                   "inputs already done.")
    p.add_argument("inputs", metavar="INPUT", nargs="+",
                   help="files, directories or quoted glob patterns ('gaia/*.csv.gz')")
    p.add_argument("-o", "--output-dir", required=True, metavar="OUTPUT_DIR",
                   help="directory for the outputs and giantfm_manifest.json (made if missing)")
    p.add_argument("--workers", type=_non_negative_int, metavar="N",
                   help="worker processes of the local cluster (default: the CPU cores, at "
                        "most 8); 0 runs here, one file after another, without dask")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running dask scheduler (tcp://host:8786) to use instead "
                        "of a local cluster")
    p.add_argument("--format", choices=("parquet", "same"), default="parquet",
                   help="output format: parquet (default, units in its metadata) or the "
                        "input's own")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps for every worker "
                                    "(default: giantfm.conf.device)")
    p.add_argument("--batch-size", type=_positive_int, metavar="N",
                   help="stars per network call (default: chosen for the device)")
    p.add_argument("--no-resume", action="store_true",
                   help="predict every input again, even those an earlier run finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_predict_files)

    p = sub.add_parser("example", help="predict the bundled example stars and print the table")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--reasons", action="store_true", help="also print the flag/reason columns")
    p.set_defaults(handler=_cmd_example)

    p = sub.add_parser("info", help="model card, package versions and devices found")
    p.set_defaults(handler=_cmd_info)

    for name, (_, text) in _DELEGATES.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv=None):
    """Run the ``giantfm`` command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status (see the module docstring). Usage errors exit
        through `SystemExit` with status 2, as argparse does.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    show_traceback = False
    while argv and argv[0] == "--traceback":  # a global option: before the subcommand
        show_traceback = True
        argv = argv[1:]
    try:
        # Delegated subcommands take all their arguments (and --help) to their own parser.
        if argv and argv[0] in _DELEGATES:
            return _cmd_delegate(argv[0], argv[1:])
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except CLIError as exc:
        print(f"giantfm: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("giantfm: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if show_traceback:
            traceback.print_exc()
        print(f"giantfm: error: internal error: {type(exc).__name__}: {exc}"
              + ("" if show_traceback else " (run with --traceback for details)"),
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

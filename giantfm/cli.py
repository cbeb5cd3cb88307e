"""The ``giantfm`` command line: one entry point with subcommands.

::

    giantfm example                         predict the bundled example stars, print the table
    giantfm predict INPUT -o OUTPUT         labels, masses and ages for every row of a table
    giantfm predict-files INPUTS... -o DIR  the same for many files, one output each, on a
                                            dask cluster, resumable (giantfm.scale)
    giantfm info                            model card, package versions, devices found
    giantfm build-dataset ...               build the training set   (giantfm.train.dataset.build)
    giantfm train ...                       train a model            (giantfm.train.trainer)
    giantfm baseline ...                    train XGBoost baselines  (giantfm.train.evaluation.baseline)
    giantfm evaluate ...                    evaluate a model         (giantfm.train.evaluation.evaluate)
    giantfm bundle ...                      bundle a trained model   (giantfm.train.bundling.bundle)
    giantfm finetune INPUT --label COL ...  teach a model your own labels (giantfm.teaching)

``giantfm SUBCOMMAND --help`` describes each one. ``predict`` reads any table
astropy reads and writes its output in the format its extension names
(`giantfm.io.tables`: FITS, ECSV, VOTable, CSV, Parquet, HDF5, gzipped inputs
too). The output has one row per input row, in input order, with units; it is
written to a temporary file in the output's directory and renamed into place,
so an interrupted run never leaves a partial output file.

This module holds the argument parsing and the handlers only: the work is done
by the functions they call.

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
import os
import sys
import traceback
from importlib import metadata, resources
from pathlib import Path

from . import examples, prediction, results, scale
from .config import conf
from .exceptions import ModelFileError
from .io.tables import read_table, require_format_package, table_format, write_table
from .metadata import CONFIG_FILE
from .utils._optional import HAS_DISTRIBUTED, install_hint, require
from .utils._version import package_version, public_version

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_BAD_INPUT", "EXIT_USAGE", "EXIT_OUTPUT",
           "EXIT_UNAVAILABLE", "EXIT_INTERNAL", "EXIT_INTERRUPTED"]

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_OUTPUT = 3
EXIT_UNAVAILABLE = 4
EXIT_INTERNAL = 5
EXIT_INTERRUPTED = 130

# Where the bundled model's card may be, relative to giantfm/data (first found is shown).
_MODEL_CARDS = ("model/model_card.md", "model_card.md", "model/model_card.json", "model_card.json")

# subcommand -> (module, what it does): implemented elsewhere, imported only when used.
_DELEGATES = {
    "build-dataset": ("giantfm.train.dataset.build", "build the training set (giantfm.train.dataset.build)"),
    "train": ("giantfm.train.trainer", "train a model (giantfm.train.trainer)"),
    "baseline": ("giantfm.train.evaluation.baseline", "train the XGBoost baseline (giantfm.train.evaluation.baseline)"),
    "evaluate": ("giantfm.train.evaluation.evaluate", "evaluate a model on the test split "
                                           "(giantfm.train.evaluation.evaluate)"),
    "bundle": ("giantfm.train.bundling.bundle", "bundle a trained model with its calibrations, or "
                                       "write its model card (giantfm.train.bundling.bundle)"),
    "finetune": ("giantfm.teaching", "teach a model labels of your own from a table "
                                     "(giantfm.teaching)"),
}


class CLIError(Exception):
    """An error to report in one line with a given exit status."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------- subcommands

def _cmd_predict(args):
    """``giantfm predict``: read, predict, write atomically."""
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
        require_format_package(out)
    except ImportError as exc:
        raise CLIError(str(exc), EXIT_OUTPUT) from None

    _check_device(args.device)
    _check_model(args.model)
    table = _read_input(args.input, "input")
    photometry = None if args.photometry is None else _read_input(args.photometry, "photometry")
    if len(table) == 0:
        raise CLIError(f"input file {args.input!r} has no rows", EXIT_BAD_INPUT)

    try:
        result = _predict_function()(table, photometry=photometry, device=args.device,
                                     batch_size=args.batch_size,
                                     progress=False if args.no_progress else None,
                                     **({} if args.model is None else {"model": args.model}))
    except ModelFileError as exc:  # the model folder's fault, not the table's
        raise CLIError(f"cannot use the model {args.model or 'bundled'!r}: {exc}",
                       EXIT_USAGE) from exc
    except ValueError as exc:  # giantfm's input validation: the table's fault
        raise CLIError(f"cannot predict from {args.input!r}: {exc}", EXIT_BAD_INPUT) from exc
    except ImportError as exc:  # torch, where the model runs, is not installed
        raise CLIError(f"prediction is not available: {exc}", EXIT_UNAVAILABLE) from None
    if len(result) != len(table):  # the contract of predict; never write a misaligned file
        raise CLIError(f"internal error: predict returned {len(result)} rows for {len(table)} "
                       "input rows", EXIT_INTERNAL)
    try:
        write_table(result, out, overwrite=args.overwrite)
    except (OSError, ImportError) as exc:
        raise CLIError(f"cannot write {args.output!r}: {exc}", EXIT_OUTPUT) from exc
    first, *notes = results.summarize(result)
    print(f"giantfm: wrote {len(result)} rows to {args.output}: {first}", file=sys.stderr)
    for note in notes:
        print(f"giantfm: note: {note}", file=sys.stderr)
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


def _check_model(model):
    """Refuse a ``--model`` folder that holds no saved model, before any work."""
    if model is not None and not (Path(model) / CONFIG_FILE).is_file():
        raise CLIError(f"--model: no saved giantfm model in {model!r} (a folder written by "
                       "giantfm finetune, giantfm train or giantfm bundle)", EXIT_UNAVAILABLE)


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
    # looked up when called (not imported by name), so that a test can stand in for predict
    return prediction.predict


def _cmd_predict_files(args):
    """``giantfm predict-files``: many inputs, one output each, resumable (giantfm.scale)."""
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
    _check_model(args.model)
    client = "sync" if args.workers == 0 else None
    if args.scheduler is not None:
        if args.workers is not None:
            raise CLIError("give --scheduler or --workers, not both", EXIT_USAGE)
        try:
            distributed = require("distributed", "--scheduler")
        except ImportError as exc:
            raise CLIError(str(exc), EXIT_UNAVAILABLE) from None
        try:
            client = distributed.Client(args.scheduler, timeout="30s")
        except OSError as exc:
            raise CLIError(f"cannot reach the dask scheduler {args.scheduler!r}: {exc}",
                           EXIT_UNAVAILABLE) from None
    elif client is None and not HAS_DISTRIBUTED:
        raise CLIError(f"running on several workers needs dask.distributed: "
                       f"{install_hint('distributed')} (or --workers 0 to run here, one file "
                       "at a time)", EXIT_UNAVAILABLE)
    try:
        manifest = scale.predict_files(
            args.inputs, out, client=client, n_workers=args.workers or None,
            device=args.device, batch_size=args.batch_size, resume=not args.no_resume,
            output_format=args.format, progress=not args.no_progress, model=args.model)
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
    """``giantfm example``: predict the bundled example stars, beside their reference labels."""
    _check_device(args.device)
    stars = examples.load()
    result = _predict_function()(stars, device=args.device, progress=False)
    table = examples.compare(stars, result)   # prints each column to its label's precision
    columns = [c for c in table.colnames if c not in ("flag", "reason") or args.reasons]
    print("\n".join(table[columns].pformat(max_lines=-1, max_width=-1)))
    meta = table.meta
    print(f"\n{len(table)} example stars (Gaia DR3 XP x APOGEE DR17, test split: the model never "
          f"saw them); model {meta.get('giantfm_model', '?')} (bundled with giantfm "
          f"{public_version(meta.get('giantfm_model_version', '?'))}); giantfm "
          f"{package_version()}; device {meta.get('device', '?')}.")
    print(f"Rows: {results.summarize(result)[0]} (giantfm example --reasons shows why).")
    scatter = meta["scatter"]
    if scatter:
        print("Prediction - reference over these stars (scatter: MAD-std, bias: median):")
        for name, s in scatter.items():
            fmt, unit = results.display_format(name) or ".4g", s["sigma"].unit.to_string()
            print(f"  {name:<8} scatter {s['sigma'].value:6{fmt}}, bias {s['bias'].value:+7{fmt}} "
                  f"{unit:<12} ({s['n']} stars, against {s['reference']})")
    return EXIT_OK


def _cmd_info(args):
    """``giantfm info``: model card, package versions, devices."""
    print(f"giantfm {package_version()}")
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
        return f"unknown ({exc})"
    return ", ".join(available_devices())


def _cmd_delegate(name, argv):
    module_name, _ = _DELEGATES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == "giantfm" or exc.name.startswith("giantfm.")):
            raise CLIError(f"'giantfm {name}' is not available: {exc.name} is not part of "
                           "this installation", EXIT_UNAVAILABLE) from None
        raise CLIError(f"'giantfm {name}' needs {exc.name!r}, which is not installed "
                       f"({install_hint(exc.name or '')})", EXIT_UNAVAILABLE) from None
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
    parser = argparse.ArgumentParser(
        prog="giantfm",
        description="Masses, ages, Teff, log g, [M/H], [alpha/M] and the evolutionary state "
                    "(p_rc, the probability of the red clump, and evstate, RC or RGB) of red "
                    "giants from Gaia DR3 XP spectra.",
        epilog="Exit status: 0 ok, 1 bad input, 2 usage, 3 output not writable, "
               "4 unavailable, 5 internal error, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"giantfm {package_version()}")
    parser.add_argument("--traceback", action="store_true",
                        help="show the Python traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("predict", help="predict labels, masses, ages and evolutionary states "
                                       "for a table of stars",
                       description="Predict Teff, log g, [M/H], [alpha/M], mass, age and the "
                                   "evolutionary state for every row of INPUT and write them, "
                                   "with units, to OUTPUT: the columns "
                                   f"source_id, {', '.join(results.PREDICTION_COLUMNS)} (p_rc: "
                                   "the probability of the red clump; evstate: RC or RGB; "
                                   "flag, flags and reason: see the data model page). A "
                                   "summary of flagged rows, masked labels and reasons goes "
                                   "to standard error.")
    p.add_argument("input", metavar="INPUT",
                   help="table of Gaia DR3 XP coefficients, with photometry where it has it "
                        "(FITS, ECSV, VOTable, CSV, Parquet, HDF5; the archive's XP_CONTINUOUS "
                        "files as they come: missing G, BP, RP are synthesised)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output table; format from its extension")
    p.add_argument("--photometry", metavar="TABLE",
                   help="magnitudes (phot_g_mean_mag, ...) for the same stars when INPUT lacks "
                        "them, same row order or matched on source_id")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: giantfm.conf.device)")
    p.add_argument("--batch-size", type=_positive_int, metavar="N",
                   help="stars per network call (default: chosen for the device)")
    p.add_argument("--model", metavar="FOLDER",
                   help="a saved model (e.g. one of giantfm finetune) instead of the bundled one")
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
    p.add_argument("--model", metavar="FOLDER",
                   help="a saved model (e.g. one of giantfm finetune) instead of the bundled one")
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

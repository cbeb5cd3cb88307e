"""pytest settings for the doctests of the documentation (``--doctest-rst``)."""
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # the plotting examples draw without a display

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS / "scripts"))

# Sphinx configuration, helper scripts, build output and generated pages are not doctests.
collect_ignore = ["conf.py"]
collect_ignore_glob = ["scripts/*", "_build/*", "_generated/*", "api/*"]

#: Pages whose examples run giantfm.predict on the bundled model and example stars.
NEEDS_MODEL = {
    "install.rst",
    "cli.rst",
    "tutorials/predict_archive.rst",
    "tutorials/predict_spectrum.rst",
    "tutorials/uncertainties_flags.rst",
    "tutorials/request.rst",
    "tutorials/validation_plots.rst",
    "tutorials/generation.rst",
    "tutorials/finetune.rst",
    "tutorials/gaia_scale.rst",
}


def pytest_collection_modifyitems(config, items):
    from model_check import bundled_model_status

    for item in items:
        try:
            page = Path(item.path).resolve().relative_to(DOCS.resolve()).as_posix()
        except ValueError:
            continue
        if page in NEEDS_MODEL:
            usable, why = bundled_model_status()
            if not usable:
                item.add_marker(pytest.mark.skip(
                    reason=f"needs the bundled model and example stars ({why})"))

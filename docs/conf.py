# Sphinx configuration of the giantfm documentation.
#
# Build (offline, warnings as errors, as CI does):
#
#     pip install -e ".[docs]"
#     python -m sphinx -W -b html -D disable_intersphinx=1 docs docs/_build/html
#
# At build time, docs/scripts/make_tables.py writes the generated tables
# (the vocabulary, the accuracy and performance tables from docs/results/)
# and the substitutions of the numbers the prose quotes (numbers.rst) into
# docs/_generated/; nothing in _generated/ is edited by hand.
import datetime
import sys
from importlib import metadata
from pathlib import Path

from sphinx_astropy.conf.v3 import *  # noqa: F401,F403  (astropy's shared settings and theme)
from sphinx_astropy.conf.v3 import exclude_patterns, extensions, intersphinx_mapping, rst_epilog

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS / "scripts"))

project = "giantfm"
author = "The giantfm developers"
copyright = f"{datetime.date.today().year}, {author}"
try:
    release = metadata.version("giantfm")
except metadata.PackageNotFoundError:  # building from a source tree that is not installed
    import giantfm
    release = giantfm.__version__
version = release.split("+")[0]

html_theme_options = {
    "github_url": "https://github.com/giantfm/giantfm",
    "use_edit_page_button": False,
}
html_title = f"{project} {version}"
html_static_path = []

extensions = list(extensions)
# _generated/ holds pages included by others (see make_tables.py), not pages of their own.
exclude_patterns = list(exclude_patterns) + ["_build", "results", "scripts", "_generated"]

# Offline builds: CI passes -D disable_intersphinx=1; these are the targets when online.
intersphinx_mapping = dict(intersphinx_mapping)
intersphinx_mapping.update({
    "specutils": ("https://specutils.readthedocs.io/en/stable/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
})

# API pages are generated into docs/api/ by sphinx-automodapi.
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
numpydoc_show_class_members = False

# matplotlib plot directive: figures made when the docs are built.
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.figsize": (6.0, 4.5), "savefig.bbox": "tight"}

rst_epilog += """
.. |giantfm| replace:: giantfm
"""
# Numbers quoted in the prose are substitutions (``|v_teff_native|``) that make_tables.py
# generates from docs/results/ into _generated/numbers.rst at every build; every page
# includes them, so no page types a measured number by hand (tests/test_docs_numbers.py).
rst_prolog = ".. include:: /_generated/numbers.rst\n"


def _generate_tables(app):
    """Write docs/_generated/*.rst from the package and from docs/results/ before reading."""
    import make_tables
    from model_check import bundled_model_status

    out = DOCS / "_generated"
    make_tables.main(["--results", str(DOCS / "results"), "--out", str(out)])
    # Figures that run giantfm.predict are built only where the bundled model runs
    # (the plot directive would fail the build otherwise); the page says so.
    usable, why = bundled_model_status()
    if usable:
        text = (DOCS / "tutorials" / "validation_figures.txt").read_text(encoding="utf-8")
    else:
        why = why.splitlines()[0].replace("`", "'") if why else "unknown"
        text = (".. note::\n\n   The figures of this page are drawn when the documentation "
                f"is built with the bundled model; this build has none (``{why}``).\n")
    make_tables._write(out / "validation_figures.rst", text)
    # docs/datasheet.rst is written by the training-set builder's owner; list it once it exists.
    if (DOCS / "datasheet.rst").is_file():
        text = ".. toctree::\n   :maxdepth: 1\n\n   datasheet\n"
    else:
        text = ".. note::\n\n   The datasheet is not part of this build yet.\n"
    make_tables._write(out / "datasheet_toctree.rst", text)


def setup(app):
    # before sphinx-automodapi (priority 500) scans the sources for automodapi directives
    app.connect("builder-inited", _generate_tables, priority=100)

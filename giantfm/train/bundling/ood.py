"""Calibrating the ``ood_score`` of a model: what its training stars look like to it.

`giantfm.results.add_ood_score` scores each star by three measures, each in
units of a scale: the disagreement of its spectrum with its G and with its
BP - RP (`giantfm.validation.photometric_consistency`), and the Mahalanobis
distance of its embedding from the training stars'. `calibrate_ood` measures
what a model needs for that, on a dataset file:

* the embeddings' mean and (ridge-regularised) precision matrix, over training
  XP stars as the network is trained on them: as stored, and as faint copies
  at random magnitudes (`giantfm.train.dataset.augment.FaintCopies`);
* the scale of each measure: its ``quantile`` (99.7 %) over the *validation*
  giants, as stored and as faint copies (never the test split), so that a
  validation giant exceeds the scale of a given measure 0.3 % of the time and
  any of them about 1 %.

`giantfm.train.bundling.bundle` records the result as the model's
`~giantfm.metadata.OODCalibration` (``metadata.ood``).
"""
import numpy as np

from ...metadata import OODCalibration
from ..dataset.augment import FaintCopies
from ..dataset.datafile import load_dataset
from ..evaluation.scoring import experiment_inputs

__all__ = ["calibrate_ood", "star_inputs", "OOD_QUANTILE", "RIDGE"]

#: The percentile of the validation giants' measures that scales each.
OOD_QUANTILE = 99.7
#: Added to the diagonal of the embeddings' covariance, relative to its mean variance.
RIDGE = 1e-3


def star_inputs(batch, inputs, rows, target_g, rng, copies=None, truncate=True):
    """What `giantfm.predict` gives the network for the stars ``rows`` at ``target_g``.

    Tokenised from the raw inputs (`FaintCopies.copies`: at a star's own G
    the star itself; ``truncate`` as `giantfm.predict`), XP coefficients and
    colours only, with their photometric consistency.
    """
    copies = FaintCopies(batch, inputs, p_native=0.0) if copies is None else copies
    made = copies.copies(rows, target_g, rng, truncate=truncate)
    return experiment_inputs(made, "xp_colours")


def _sample(batch, inputs, giant, n, rng, p_native, truncate):
    """Up to ``n`` XP stars (giants if ``giant`` given), a share at their own G, the rest faint."""
    copies = FaintCopies(batch, inputs, p_native=p_native)
    pool = np.flatnonzero(copies.has_xp & (True if giant is None else giant))
    rows = rng.choice(pool, size=min(n, len(pool)), replace=False)
    target = copies.draw_g(rows, rng)
    target = np.where(np.isfinite(target), target, copies.mags["g"][rows])
    return star_inputs(batch, inputs, rows, target, rng, copies, truncate)


def calibrate_ood(model, dataset_path, *, n_reference=20000, n_validation=6000, seed=0,
                  quantile=OOD_QUANTILE, batch_size=None):
    """The OOD calibration of ``model`` (see the module docstring).

    Parameters
    ----------
    model : `giantfm.model.TrainedModel`
    dataset_path : str or path-like
        The dataset the model was trained on (with raw XP inputs).
    n_reference, n_validation : int
        Training stars for the embedding statistics; validation giants for the scales.
    seed : int
    quantile : float
        Percentile of the validation measures that becomes each scale.

    Returns
    -------
    `~giantfm.metadata.OODCalibration`
        ``embedding_mean`` (d,), ``embedding_precision`` (d, d), ``scales``
        (``g``, ``colour``, ``embedding``), ``quantile``, and the numbers of
        stars used.
    """
    from ...results import embedding_distance

    rng = np.random.default_rng(seed)
    data = load_dataset(dataset_path)
    truncate = model.metadata.truncate
    reference = _sample(data["train"], data["inputs"]["train"], None, n_reference, rng, 0.3,
                        truncate)
    _, _, embedded = model.request(reference, ["teff"], batch_size=batch_size, progress=False,
                                   embedding=True)
    embedded = embedded[np.isfinite(embedded).all(axis=1)].astype(np.float64)
    mean = embedded.mean(axis=0)
    covariance = np.cov(embedded, rowvar=False)
    covariance += RIDGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    # the scales are measured next, with this distance: a placeholder of 1 each until then
    ood = OODCalibration(mean, np.linalg.inv(covariance), {"g": 1.0, "colour": 1.0,
                                                           "embedding": 1.0}, quantile)

    giant = np.asarray(data["labels"]["val"]["giant"], dtype=bool)
    validation = _sample(data["val"], data["inputs"]["val"], giant, n_validation, rng, 0.3,
                         truncate)
    _, _, embedded = model.request(validation, ["teff"], batch_size=batch_size, progress=False,
                                   embedding=True)
    ok = validation.ok
    distance = embedding_distance(embedded[ok], ood)
    consistency = np.abs(validation.consistency[ok])
    ood.scales = {
        "g": float(np.nanpercentile(consistency[:, 0], quantile)),
        "colour": float(np.nanpercentile(consistency[:, 1], quantile)),
        "embedding": float(np.nanpercentile(distance, quantile))}
    ood.n_reference, ood.n_validation, ood.seed = int(len(reference)), int(ok.sum()), seed
    return ood

"""The user-facing verbs: `predict` labels of giants, and `request` any token from any other.

Each verb runs the flow inputs -> tokens -> network -> results: the inputs
become a `~giantfm.tokens.TokenBatch` (`giantfm.tokens`), the network answers
in token scale (`ask`, with the model of `get_model`), and `giantfm.results`
turns the answers into an astropy `~astropy.table.QTable` with units, keeping
the input's rows, order and ``source_id``.
"""
import numpy as np

from . import results, tokens, vocab
from .config import conf, resolve_batch_size
from .labelmodel import LABEL_MODEL_DIR, chain_answers, load_label_model

__all__ = ["predict", "request", "ask", "answer_labels", "label_model_of", "get_model",
           "PREDICTED_LABELS"]

#: The labels `predict` returns, in this order.
PREDICTED_LABELS = vocab.LABEL_NAMES

_MODELS = {}


def get_model(device=None, model=None):
    """The model the verbs use: loaded on first use and cached per device.

    Parameters
    ----------
    device : str, optional
        Defaults to ``giantfm.conf.device`` ('auto': CUDA when available, else CPU).
    model : str, path or `giantfm.model.TrainedModel`, optional
        Defaults to ``giantfm.conf.model`` ('bundled': the model shipped in the package).
    """
    from .model import load_model  # torch is imported here, at first use only

    if model is not None and not isinstance(model, (str, bytes)) and hasattr(model, "request"):
        return model
    name = conf.model if model is None else model
    device = conf.device if device is None else device
    key = (str(name), None if device == "auto" else device)
    if key not in _MODELS:
        _MODELS[key] = load_model(None if name == "bundled" else name, device=key[1])
    return _MODELS[key]


def ask(batch, names, *, device=None, model=None, batch_size=None, progress=None,
        embedding=False):
    """The network's answers for the tokens ``names`` of every star of ``batch``.

    Parameters
    ----------
    batch : `~giantfm.tokens.TokenBatch`
    names : sequence of str
        Token names to predict.
    device, model, batch_size, progress
        See `predict`.
    embedding : bool, optional
        Also return each star's embedding (see `giantfm.model.TrainedModel.request`).

    Returns
    -------
    net : the model that answered (see `get_model`)
    mean, std : float64 arrays (n_stars, len(names))
        Token-scale means and standard deviations; NaN for unusable stars.
    embedded : float32 array (n_stars, d), only with ``embedding``
    """
    net = get_model(device=device, model=model)
    answers = net.request(batch, list(names), batch_size=resolve_batch_size(batch_size),
                          progress=progress, embedding=embedding)
    return (net, *(np.asarray(a) for a in answers))


def request(inputs, outputs, *, photometry=None, device=None, batch_size=None, progress=None,
            truncate=True, model=None):
    """Any tokens in, any tokens out: the general form of `predict`.

    Parameters
    ----------
    inputs : table, `specutils.Spectrum`, dict or `~giantfm.tokens.TokenBatch`
        Anything `giantfm.tokens.tokenize` accepts (a Gaia XP table, a
        flattened table, a Spectrum, a path), a `TokenBatch`, or a mapping of
        token names to values (`giantfm.tokens.from_mapping`: Quantities are
        converted to the vocabulary unit; ``name_err`` entries give errors), e.g.
        ``{'teff': [4500, 4800] * u.K, 'logg': [2.4, 2.9], 'm_h': [0.0, -0.3]}``.
    outputs : str or sequence of str
        Token names to predict (see `giantfm.vocab.vocabulary_table`).
    photometry, truncate
        Passed to `giantfm.tokens.tokenize` for table and spectrum inputs.
    device, batch_size, progress, model
        See `predict`.

    Returns
    -------
    `~astropy.table.QTable`
        One row per input star, in input order: ``source_id`` when known,
        each output and ``<name>_err`` in vocabulary units (masked where not
        predicted), ``flag`` and ``reason``.
    """
    names = [outputs] if isinstance(outputs, str) else list(outputs)
    if not names:
        raise ValueError("outputs is empty: name at least one token to predict")
    vocab.token_ids(names)  # unknown names raise here, before any work
    batch = _as_batch(inputs, photometry=photometry, truncate=truncate)
    net, mean, std = ask(batch, names, device=device, model=model, batch_size=batch_size,
                         progress=progress)
    return results.results_table(batch, names, mean, std, _meta(net, batch))


def predict(data, *, photometry=None, device=None, batch_size=None, progress=None, truncate=None,
            model=None):
    """Teff, log g, [M/H], [alpha/M], mass and age of red giants from Gaia XP spectra.

    Parameters
    ----------
    data : `~astropy.table.Table`, `specutils.Spectrum`, str or path
        A Gaia DR3 ``xp_continuous_mean_spectrum`` table (array columns
        ``bp_coefficients``... as the archive or astroquery return it, or the
        flattened ``bp_coeff_0..54`` form) with ``phot_g_mean_mag`` (needed to
        normalise the coefficients) and, when present, the BP, RP and 2MASS
        magnitudes; a `specutils.Spectrum` (one star or a 2-D batch); or the
        path of such a table.
    photometry : `~astropy.table.Table`, optional
        Magnitudes for the same stars when ``data`` lacks them (same row
        order, or matched on ``source_id``).
    device : str, optional
        'cpu', 'cuda', 'cuda:1', 'mps'; defaults to ``giantfm.conf.device``.
    batch_size : int, optional
        Stars per network call; defaults to ``giantfm.conf.batch_size``
        (0: chosen for the device).
    progress : bool or str, optional
        Progress bar (needs tqdm): True or 'on', False or 'off', or 'auto'
        (shown once the call has run 2 s); default ``giantfm.conf.progress``
        ('auto').
    truncate : bool, optional
        Leave out coefficients beyond ``bp/rp_n_relevant_bases``. Default: what
        the model was measured to do best with (``metadata['truncate']``; True
        for models that record nothing). The bundled model reads every
        coefficient with its error: at G 16.5 that gave 4-16 % smaller errors
        than truncating (the accuracy page).
    model : str, path or `giantfm.model.TrainedModel`, optional
        Another model than the bundled one.

    Returns
    -------
    `~astropy.table.QTable`
        One row per input star, in input order: ``source_id`` (when known), ``teff`` [K],
        ``logg`` [dex(cm s-2)], ``m_h`` [dex], ``alpha_m`` [dex], ``mass`` [solMass],
        ``age`` [Gyr], each with ``<name>_err`` (1-sigma, the network's predictive
        uncertainty, calibrated on held-out stars); ``ood_score`` (how unlike the training
        stars the inputs are, with 1 at the 99.7th percentile of the validation giants and
        their faint copies, `giantfm.results.add_ood_score`; masked where nothing was
        predicted); ``flag`` (True where a row, or its mass and age, was not predicted, or
        ``ood_score`` > 1) and ``reason`` (why, plus notes that did not stop the prediction,
        such as an unreadable 2MASS magnitude; the reasons are listed on the flags page of
        the documentation and in ``giantfm.flags.REASONS``). Rows that could not be
        predicted are masked; no row is dropped or reordered. Mass and age combine the
        network's own answer with its other labels put through the label model (weights in
        ``meta['chain']``). They are masked for stars whose predicted labels fall outside
        the calibration domain of that label model (recorded with the model;
        ``meta['label_domain']``), and their errors include its scatter against
        asteroseismology (``meta['label_floor']``), so they are uncertainties on the
        asteroseismic (APOKASC-2) scale. ``meta`` also records the model, its version, the
        device and the inputs used.
    """
    net = get_model(device=device, model=model)
    metadata = getattr(net, "metadata", {}) or {}
    if truncate is None:
        truncate = metadata.get("truncate", True)
    batch = _as_batch(data, photometry=photometry, truncate=truncate)
    mean, std, embedded = answer_labels(net, batch, batch_size=batch_size, progress=progress)
    result = results.results_table(batch, PREDICTED_LABELS, mean, std, _meta(net, batch))
    results.mask_outside_label_domain(result, metadata.get("label_domain", results.GIANT_DOMAIN))
    results.add_label_floor(result, metadata.get("label_floor"))
    results.add_ood_score(result, batch, embedded, metadata.get("ood"))
    if metadata.get("chain"):
        result.meta["chain"] = dict(metadata["chain"])
    return result


def answer_labels(net, batch, *, batch_size=None, progress=None):
    """The network's answers for `PREDICTED_LABELS` as `predict` gives them, in token scale.

    Mass and age are the combination of the network's own and its labels put
    through its label model (`giantfm.labelmodel.chain_answers`) when the model
    records how (``metadata['chain']``, with its label model saved beside it),
    and the uncertainties are scaled as the model records
    (``metadata['uncertainty_scale']``, `giantfm.train.calibration`).

    Returns
    -------
    mean, std : arrays (n_stars, 6)
    embedded : array (n_stars, d) or None
        The stars' embeddings when the model has an ``ood`` calibration.
    """
    metadata = getattr(net, "metadata", {}) or {}
    _, mean, std, *embedded = ask(batch, PREDICTED_LABELS, model=net, batch_size=batch_size,
                                  progress=progress, embedding=bool(metadata.get("ood")))
    mean, std = finish_answers(net, mean, std)
    return mean, std, embedded[0] if embedded else None


def finish_answers(net, mean, std, chain_weights=None):
    """The network's own answers for `PREDICTED_LABELS` turned into what `predict` answers.

    Mass and age are chained (`giantfm.labelmodel.chain_answers`) with the
    model's ``metadata['chain']`` weights, or with ``chain_weights`` (``{'mass':
    w, 'age': w}``: 0 keeps the network's own, 1 takes the label model's), and
    the uncertainties scaled by ``metadata['uncertainty_scale']``. ``mean`` and
    ``std`` (token scale, as `ask` gives them) are not changed; copies are returned.
    """
    metadata = getattr(net, "metadata", {}) or {}
    mean, std = np.array(mean, dtype=float), np.array(std, dtype=float)
    chain = metadata.get("chain")
    if chain:
        weights = chain["weights"] if chain_weights is None else chain_weights
        mean, std = chain_answers(label_model_of(net), PREDICTED_LABELS, mean, std,
                                  {"weights": weights})
    for name, factor in (metadata.get("uncertainty_scale") or {}).items():
        std[:, PREDICTED_LABELS.index(name)] *= factor
    return mean, std


_LABEL_MODELS = {}


def label_model_of(net):
    """The label model saved with ``net`` (loaded once per process; xgboost imported here)."""
    path = getattr(net, "path", None)
    if path is None:
        raise ValueError("this model records a chain (metadata['chain']) but was not loaded "
                         "from a folder, so it has no label model beside it")
    if path not in _LABEL_MODELS:
        _LABEL_MODELS[path] = load_label_model(path / LABEL_MODEL_DIR)
    return _LABEL_MODELS[path]


def _meta(net, batch):
    return {**results.model_meta(net), "device": str(getattr(net, "device", "unknown")),
            "inputs": results.describe_inputs(batch)}


def _as_batch(inputs, *, photometry, truncate):
    if isinstance(inputs, tokens.TokenBatch):
        return inputs
    if isinstance(inputs, dict) and all(str(key).removesuffix("_err") in vocab.NAMES
                                        for key in inputs):
        return tokens.from_mapping(inputs)   # {token name: values}; other dicts are tables
    return tokens.tokenize(inputs, photometry=photometry, truncate=truncate)

"""The user-facing verbs: `predict` labels of giants, and `request` any token from any other.

Each verb runs the flow inputs -> tokens -> network -> results: the inputs
become a `~giantfm.tokens.TokenBatch` (`giantfm.tokens`), the network answers
in token scale (`answer`, with the model of `get_model`), and `giantfm.results`
turns the answers into an astropy `~astropy.table.QTable` with units, keeping
the input's rows, order and ``source_id``, and puts it through the checks
every verb shares (`giantfm.results.finish`). What a model needs for each step
it records in its `~giantfm.metadata.ModelMetadata`.
"""
import dataclasses

import numpy as np

from . import results, tokens, vocab
from .config import conf, resolve_batch_size
from .labelmodel import LABEL_MODEL_DIR, chain_answers, load_label_model

__all__ = ["predict", "request", "ask", "answer", "finish_answers",
           "label_model_of", "own_labels", "get_model", "as_batch", "PREDICTED_LABELS"]

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
    """The network's own answers for the tokens ``names`` of every star of ``batch``.

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


def answer(net, batch, names, *, batch_size=None, progress=None):
    """What the verbs answer for ``names``: the network's answers, finished for the labels.

    Asks the network once for ``names`` plus what finishing them needs: every
    label of `PREDICTED_LABELS` when any is asked (mass and age are chained
    through the label model, which reads the other four; the domain of mass
    and age is tested on them), and the stars' embeddings when the model has an
    OOD calibration. The label answers are then finished as the model records
    (`finish_answers`).

    Returns
    -------
    asked : list of str
        ``names`` first, then the tokens added.
    mean, std : arrays (n_stars, len(asked))
    embedded : array (n_stars, d) or None
    """
    asked = list(names)
    if any(name in PREDICTED_LABELS for name in asked):
        asked += [name for name in PREDICTED_LABELS if name not in asked and net.knows(name)]
    metadata = net.metadata
    _, mean, std, *embedded = ask(batch, asked, model=net, batch_size=batch_size,
                                  progress=progress, embedding=metadata.ood is not None)
    mean, std = finish_answers(net, asked, mean, std)
    return asked, mean, std, embedded[0] if embedded else None


def _answer_table(net, batch, names, *, batch_size, progress):
    """The verbs' one path: answers -> results table -> the shared checks, with only
    the columns of ``names`` (and the status columns) kept."""
    asked, mean, std, embedded = answer(net, batch, names, batch_size=batch_size,
                                        progress=progress)
    meta = results.result_meta(net, batch)
    result = results.finish(results.results_table(batch, asked, mean, std, meta, net.tokens),
                            batch, net.metadata, embedding=embedded)
    result.remove_columns([c for name in asked[len(names):]
                           for c in results.label_columns(name, net.tokens)])
    if net.metadata.chain is not None and any(n in vocab.MASS_AGE_NAMES for n in names):
        result.meta["chain"] = dataclasses.asdict(net.metadata.chain)
    return result


def request(inputs, outputs, *, photometry=None, device=None, batch_size=None, progress=None,
            truncate=None, model=None):
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
        Token names to predict (see `giantfm.vocab.vocabulary_table`; with a
        model taught labels of its own, `giantfm.finetune`, those too).
    photometry, truncate
        Passed to `giantfm.tokens.tokenize` for table and spectrum inputs;
        ``truncate=None`` follows the model, as in `predict`.
    device, batch_size, progress, model
        See `predict`.

    Returns
    -------
    `~astropy.table.QTable`
        One row per input star, in input order: ``source_id`` when known,
        each output and ``<name>_err`` in vocabulary units (masked where not
        predicted), ``ood_score``, ``flag``, ``flags`` and ``reason``. Labels
        are answered as `predict` answers them (mass and age chained,
        uncertainties calibrated) and go through the same checks: mass and
        age are masked outside the label domain, tested on the labels given
        as inputs where there are any (a main-sequence dwarf given as Teff,
        log g and [M/H] gets no mass), and labels given as inputs outside the
        training labels flag the row.

    Examples
    --------
    >>> import giantfm
    >>> dwarf = giantfm.request({"teff": [5800], "logg": [4.4], "m_h": [0.0]}, ["mass", "age"])
    >>> bool(dwarf["mass"].mask[0])
    True
    >>> print(dwarf["reason"][0])  # doctest: +NORMALIZE_WHITESPACE
    outside the label model's domain (teff 5800 > 5268, logg 4.4 > 3.302): mass, age and
    evolutionary state masked
    """
    names = [outputs] if isinstance(outputs, str) else list(outputs)
    if not names:
        raise ValueError("outputs is empty: name at least one token to predict")
    net = get_model(device=device, model=model)
    net.tokens.token_ids(names)  # unknown names raise here, before any work
    batch = as_batch(inputs, net, photometry=photometry, truncate=truncate)
    return _answer_table(net, batch, names, batch_size=batch_size, progress=progress)


def predict(data, *, photometry=None, device=None, batch_size=None, progress=None, truncate=None,
            model=None):
    """Teff, log g, [M/H], [alpha/M], mass and age of red giants from Gaia XP spectra.

    Parameters
    ----------
    data : `~astropy.table.Table`, `specutils.Spectrum`, str or path
        A Gaia DR3 ``xp_continuous_mean_spectrum`` table (array columns
        ``bp_coefficients``... as the archive or astroquery return it, or the
        flattened ``bp_coeff_0..54`` form), with the G, BP, RP and 2MASS
        magnitudes where it has them (a missing G, BP or RP is synthesised
        from the coefficients, as Gaia's own XP files carry none); a
        `specutils.Spectrum` (one star or a 2-D batch); or the path of such
        a table, in any format of `giantfm.io.tables.TABLE_FORMATS`.
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
        Leave out coefficients beyond ``bp/rp_n_relevant_bases``. None
        (default): what the model was measured to do best with
        (`giantfm.metadata.ModelMetadata.truncate`). The bundled model reads
        every coefficient with its error: when faint that gave smaller errors
        than truncating (the accuracy page).
    model : str, path or `giantfm.model.TrainedModel`, optional
        Another model than the bundled one.

    Returns
    -------
    `~astropy.table.QTable`
        One row per input star, in input order: ``source_id`` (when known), ``teff`` [K],
        ``logg`` [dex(cm s-2)], ``m_h`` [dex], ``alpha_m`` [dex], ``mass`` [solMass],
        ``age`` [Gyr], each with ``<name>_err``; ``p_rc``, the probability that the
        star is in the red clump (core-helium burning), and ``evstate`` ('RC' or 'RGB');
        ``ood_score``; ``flag``; ``flags``; ``reason`` (the columns:
        `giantfm.results.PREDICTION_COLUMNS`). It prints each label to its precision
        and ``reason`` short (`giantfm.results.Result`: display only).

        * ``<name>_err`` is the 1-sigma uncertainty: the network's predictive
          uncertainty for that star, rescaled by a factor per label measured on
          held-out stars (``uncertainty_scale`` of the model's metadata); for mass
          and age it also includes the label model's scatter against
          asteroseismology (``meta['label_floor']``), so that they are
          uncertainties on the asteroseismic (APOKASC-2) scale.
        * Mass and age combine the network's own answer with its other labels put
          through the label model (weights in ``meta['chain']``). They are masked
          for stars whose labels fall outside the calibration domain of that label
          model (``meta['label_domain']``); the other labels stay usable.
        * ``ood_score``: how unlike the training stars the inputs are, with 1 at
          the 99.7th percentile of the validation giants and their faint copies
          (`giantfm.results.add_ood_score`); masked where nothing was predicted.
        * ``flag``: True where the row should not be used: nothing was predicted,
          or ``ood_score`` > 1. A label is usable where it is not masked and
          ``flag`` is False.
        * ``flags``: the bitmask of every reason that applies
          (`giantfm.decode_flags`), and ``reason``: their texts, such as an
          unreadable 2MASS magnitude left out, photometry synthesised from the
          coefficients, or the mass-age limits a star breaks (the reasons are
          listed on the flags page of the documentation and in
          ``giantfm.flags.REASONS``).

        Rows that could not be predicted are masked; no row is dropped or
        reordered. ``meta`` also records the model, its version, the device
        and the inputs the model read.

        A model taught labels of its own (`giantfm.finetune`) also answers
        them, after giantfm's labels, each with ``<name>_err`` in its unit
        (calibrated on the fine-tune's validation stars).
    """
    net = get_model(device=device, model=model)
    batch = as_batch(data, net, photometry=photometry, truncate=truncate)
    # a model made before a label existed (p_rc: vocabulary version 2) answers without it;
    # one taught labels of its own (giantfm.finetune) answers them too
    names = [name for name in PREDICTED_LABELS if net.knows(name)] + own_labels(net)
    return _answer_table(net, batch, names, batch_size=batch_size, progress=progress)


def finish_answers(net, names, mean, std, chain_weights=None):
    """The network's own answers for ``names`` turned into what the verbs answer.

    Where ``names`` hold Teff, log g, [M/H], [alpha/M], mass and age
    (`giantfm.vocab.VALUE_LABEL_NAMES`) and the model records a chain, mass and
    age are chained (`giantfm.labelmodel.chain_answers`) with
    its weights, or with ``chain_weights`` (``{'mass': w, 'age': w}``: 0 keeps
    the network's own, 1 takes the label model's); every token the model
    records an uncertainty scale for has its standard deviation scaled.
    ``mean`` and ``std`` (token scale, as `ask` gives them) are not changed;
    copies are returned.
    """
    metadata = net.metadata
    names = list(names)
    mean, std = np.array(mean, dtype=float), np.array(std, dtype=float)
    if metadata.chain is not None and all(name in names for name in vocab.VALUE_LABEL_NAMES):
        weights = metadata.chain.weights if chain_weights is None else chain_weights
        mean, std = chain_answers(label_model_of(net), names, mean, std, {"weights": weights})
    for name, factor in metadata.uncertainty_scale.items():
        if name in names:
            std[:, names.index(name)] *= factor
    return mean, std


_LABEL_MODELS = {}


def own_labels(net):
    """The labels ``net`` was taught beyond giantfm's vocabulary (`giantfm.finetune`)."""
    return list(net.tokens.names[vocab.N_TOKENS:])


def label_model_of(net):
    """The label model saved with ``net`` (loaded once per process; xgboost imported here)."""
    path = getattr(net, "path", None)
    if path is None:
        raise ValueError("this model records a chain (its metadata's chain) but was not loaded "
                         "from a folder, so it has no label model beside it")
    if path not in _LABEL_MODELS:
        _LABEL_MODELS[path] = load_label_model(path / LABEL_MODEL_DIR)
    return _LABEL_MODELS[path]


def as_batch(inputs, net, *, photometry=None, truncate=None):
    """The verbs' one reading of their inputs: ``inputs`` as a `~giantfm.tokens.TokenBatch`.

    Parameters
    ----------
    inputs : table, path, `specutils.Spectrum`, dict or `~giantfm.tokens.TokenBatch`
        What `request` accepts: a `TokenBatch` is returned as it is, a mapping
        of token names to values goes through `giantfm.tokens.from_mapping`,
        anything else (a table, other dicts, a path, a Spectrum) through
        `giantfm.tokens.tokenize`.
    net : `giantfm.model.TrainedModel`
        The model that will read the batch (its choice of ``truncate``).
    photometry : table, optional
        Passed to `giantfm.tokens.tokenize`.
    truncate : bool, optional
        Passed to `giantfm.tokens.tokenize`; None: the model's choice
        (`giantfm.metadata.ModelMetadata.truncation`).

    Returns
    -------
    `~giantfm.tokens.TokenBatch`
        One row per input star, in input order.
    """
    truncate = net.metadata.truncation(truncate)
    if isinstance(inputs, tokens.TokenBatch):
        return inputs
    if isinstance(inputs, dict) and all(str(key).removesuffix("_err") in vocab.NAMES
                                        for key in inputs):
        return tokens.from_mapping(inputs)   # {token name: values}; other dicts are tables
    return tokens.tokenize(inputs, photometry=photometry, truncate=truncate)

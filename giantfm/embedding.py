"""Stars in the network's own space: `embed` them, and find `similar` ones.

The encoder reads a star's tokens (XP coefficients, colours, any labels given)
and summarises them in one vector, its output at the register token, from which
every answer of the network is decoded (`giantfm.model.TrainedModel.request`).
That vector is the star's *embedding*: ``d_model`` numbers (64 for the bundled
model) without a unit, in which stars the network finds alike lie close
together. `embed` returns it as a table column; `similar` finds the nearest
stars of a catalogue to each star of a query, by Euclidean distance between
embeddings.

Embeddings are the model's: two models' embeddings (or two versions of one
model) are not comparable, and `similar` refuses to mix them.
"""
import numpy as np
from astropy import units as u
from astropy.table import MaskedColumn, Table
from astropy.utils.masked import Masked

from . import results
from .flags import REASONS, flag_bits
from .flags import reason as reason_text
from .prediction import as_batch, ask, get_model

__all__ = ["embed", "similar", "EMBEDDING_COLUMN"]

#: The column of an embedding table (`embed`) that holds the embeddings.
EMBEDDING_COLUMN = "embedding"

#: The ``flags`` bits of the reasons that leave a row without any answer (no embedding).
_ROW_BITS = sum(r.value for r in REASONS.values() if r.effect == "row")


def embed(data, *, model=None, device=None, batch_size=None, progress=None, photometry=None,
          truncate=None):
    """Each star's embedding: the network's summary of its inputs, as a table column.

    The embedding is the encoder's output at the register token, the vector
    every answer of the network is decoded from (see the module docstring).
    Stars the network finds alike have close embeddings; `similar` finds
    them.

    Parameters
    ----------
    data : table, path, `specutils.Spectrum`, dict or `~giantfm.tokens.TokenBatch`
        Anything `giantfm.predict` reads (a Gaia XP table in any supported
        layout, the path of one, a Spectrum), or what `giantfm.request`
        reads (a mapping of token names to values, a TokenBatch).
    model : str, path or `giantfm.model.TrainedModel`, optional
        Another model than ``giantfm.conf.model`` (the bundled one).
    device, batch_size, progress, photometry, truncate
        As for `giantfm.predict`.

    Returns
    -------
    `~astropy.table.QTable`
        One row per input star, in input order: ``source_id`` (when known);
        ``embedding``, a dimensionless (n_stars, d) float32 column; and
        ``ood_score``, ``flag``, ``flags`` and ``reason`` as `giantfm.predict`
        gives them (`giantfm.results.finish`). A star the network cannot read
        (no XP, say) has its whole embedding masked and says why; no row is
        dropped or reordered. A star unlike the training stars keeps its
        embedding and is flagged (``ood_score`` > 1). ``meta`` holds the
        model (``giantfm_model``, ``giantfm_model_version``), ``embedding_dim``
        (d, the model's ``d_model``), the device and the inputs the model read.

    Examples
    --------
    >>> import giantfm
    >>> table = giantfm.embed(giantfm.examples.load()[:3], progress=False)
    >>> table["embedding"].shape == (3, table.meta["embedding_dim"])
    True
    """
    net = get_model(device=device, model=model)
    batch = as_batch(data, net, photometry=photometry, truncate=truncate)
    # The embedding comes with an answer of the network, which asks for at least one token
    # (TrainedModel.request): any one does, and its answer is not used. The status is
    # the stars' own, and not_read where the network gave no (finite) embedding.
    _, _, _, embedded = ask(batch, net.input_names[:1], model=net, batch_size=batch_size,
                            progress=progress, embedding=True)
    result = results.Result()
    if (batch.source_id >= 0).any():
        result["source_id"] = batch.source_id
    bad = results.add_status(result, batch, np.all(np.isfinite(embedded), axis=1))
    values = np.where(bad[:, None], np.nan, embedded).astype(np.float32, copy=False)
    result.add_column(Masked(values << u.dimensionless_unscaled,
                             mask=np.broadcast_to(bad[:, None], values.shape).copy()),
                      name=EMBEDDING_COLUMN, index=result.colnames.index("flag"))
    result[EMBEDDING_COLUMN].info.description = (
        "the encoder's output at the register token (giantfm.embed); compare by Euclidean "
        "distance (giantfm.similar)")
    result.meta.update(results.result_meta(net, batch, embedding_dim=embedded.shape[1]))
    return results.finish(result, batch, net.metadata, embedding=embedded)


def similar(query, catalogue, k=10, *, model=None, device=None, batch_size=None, progress=None,
            truncate=None):
    """The ``k`` stars of ``catalogue`` nearest to each ``query`` star in embedding space.

    Distances are Euclidean between embeddings (`embed`); the search is
    exact (a k-d tree, `scipy.spatial.cKDTree`).

    Parameters
    ----------
    query, catalogue : `~astropy.table.Table`, or anything `embed` reads
        Embedding tables (from `embed`: a 2-D ``embedding`` column), or
        inputs to embed: a table without an ``embedding`` column, a path, a
        Spectrum, a mapping of token names. Inputs are embedded here, with
        ``model`` (default ``giantfm.conf.model``), on ``device``; to give
        them photometry, embed them first (`embed`). To search one catalogue
        many times, embed it once and pass the table.
    k : int, optional
        Neighbours per query star, at most the number of catalogue rows
        that have an embedding.
    model : str, path or `giantfm.model.TrainedModel`, optional
        The model that embeds inputs; given with embedding tables, it must
        be the model that made them.
    device, batch_size, progress, truncate
        As for `embed` (used only for inputs embedded here).

    Returns
    -------
    `~astropy.table.QTable`
        One row per query star, in query order: ``source_id`` (when the query
        has it); ``neighbour_index`` (n_query, k) int64, the catalogue rows of
        the neighbours, nearest first; ``neighbour_source_id`` (n_query, k),
        their ``source_id`` (when the catalogue has it); ``distance``
        (n_query, k), dimensionless; and the query's ``ood_score`` (when it
        has one), ``flag``, ``flags`` and ``reason``. A query star without an
        embedding has these columns masked and says why. Catalogue rows
        without an embedding are left out of the search (never returned);
        ``meta['catalogue_rows_left_out']`` counts them. ``meta`` also holds
        the model, ``embedding_dim``, ``k``, ``metric`` and
        ``catalogue_rows``.

    Raises
    ------
    ValueError
        ``k`` below 1 or above the catalogue's usable rows; an ``embedding``
        column that is not 2-D or not dimensionless; embeddings of different
        models or dimensions.
    TypeError
        ``k`` not an integer; an ``embedding`` column that is not numeric.

    Examples
    --------
    >>> import giantfm
    >>> stars = giantfm.embed(giantfm.examples.load(), progress=False)
    >>> found = giantfm.similar(stars[:2], stars, k=3)
    >>> found["neighbour_index"][:, 0].tolist(), float(found["distance"][0, 0].value)
    ([0, 1], 0.0)
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be a positive integer, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be a positive integer, got k={k}")
    net = None
    if model is not None or not (_is_embedding_table(query) and _is_embedding_table(catalogue)):
        net = get_model(device=device, model=model)
    tables = {}
    for role, data in (("query", query), ("catalogue", catalogue)):
        if not _is_embedding_table(data):
            try:
                data = embed(data, model=net, batch_size=batch_size, progress=progress,
                             truncate=truncate)
            except ValueError as err:
                raise ValueError(f"{role} has no {EMBEDDING_COLUMN!r} column and cannot be "
                                 f"embedded: {err}") from err
        tables[role] = data
    query, catalogue = tables["query"], tables["catalogue"]
    name, version = _same_model(query, catalogue, net)
    q_values, q_ok = _embeddings(query, "query")
    c_values, c_ok = _embeddings(catalogue, "catalogue")
    if q_values.shape[1] != c_values.shape[1]:
        raise ValueError(f"the query's embeddings have {q_values.shape[1]} dimensions and the "
                         f"catalogue's {c_values.shape[1]}: they come from different models")
    usable = np.flatnonzero(c_ok)
    if k > len(usable):
        left = len(catalogue) - len(usable)
        raise ValueError(f"k={k} is more than the {len(usable)} catalogue rows with an "
                         f"embedding (of {len(catalogue)}" + (f"; {left} have none)"
                                                              if left else ")"))
    n = len(query)
    index = np.full((n, k), -1, dtype=np.int64)
    distance = np.full((n, k), np.nan)
    if q_ok.any():
        from scipy.spatial import cKDTree   # ~0.5 s to import: only when searching

        # scipy's k-d tree: exact, well kept and already a dependency. Real embeddings lie
        # near a low-dimensional surface, where it was faster than exact brute force
        # (chunked matrix products); on structureless 64-d Gaussian points brute force is
        # the faster. benchmarks/bench_similar.py times both, and the tree to 10^6 stars.
        tree = cKDTree(c_values if len(usable) == len(c_values) else c_values[usable])
        found_distance, found = tree.query(q_values[q_ok], k=k)
        index[q_ok] = usable[np.reshape(found, (-1, k))]
        distance[q_ok] = np.reshape(found_distance, (-1, k))
    missing = np.broadcast_to(~q_ok[:, None], (n, k))

    result = results.Result()
    if "source_id" in query.colnames:
        result["source_id"] = query["source_id"]
    result["neighbour_index"] = MaskedColumn(index, mask=missing.copy())
    result["neighbour_index"].info.description = "catalogue rows of the neighbours, nearest first"
    if "source_id" in catalogue.colnames:
        ids = np.asarray(np.ma.getdata(catalogue["source_id"]), dtype=np.int64)
        result["neighbour_source_id"] = MaskedColumn(np.where(missing, -1, ids[index]),
                                                     mask=missing.copy())
        result["neighbour_source_id"].info.description = "source_id of the neighbours"
    result["distance"] = Masked(distance << u.dimensionless_unscaled, mask=missing.copy())
    result["distance"].info.description = "Euclidean distance between the embeddings"
    _add_status(result, query, q_ok)
    result.meta.update({"giantfm_model": name, "giantfm_model_version": version,
                        "embedding_dim": int(q_values.shape[1]), "k": int(k),
                        "metric": "euclidean", "catalogue_rows": len(catalogue),
                        "catalogue_rows_left_out": int(len(catalogue) - len(usable))})
    return result


def _is_embedding_table(data):
    return isinstance(data, Table) and EMBEDDING_COLUMN in data.colnames


def _model_of(table):
    """The model name and version an embedding table records (None where it does not)."""
    return table.meta.get("giantfm_model"), table.meta.get("giantfm_model_version")


_WHOSE = {"query": "the query's embeddings are of", "catalogue": "the catalogue's are of",
          "model": "the model given is"}


def _same_model(query, catalogue, net):
    """The model both tables' embeddings are of, refusing two different ones by name."""
    made = {"query": _model_of(query), "catalogue": _model_of(catalogue)}
    if net is not None:
        made["model"] = (net.metadata.name, net.metadata.version)
    known = {role: m for role, m in made.items() if m[0] is not None}
    if len(known) > 1:
        (role_a, (name_a, version_a)), *others = known.items()
        for role_b, (name_b, version_b) in others:
            differ = [what for what, a, b in (("names", name_a, name_b),
                                              ("versions", version_a, version_b)) if a != b]
            if differ:
                raise ValueError(
                    f"{_WHOSE[role_a]} model {name_a} version {version_a} and {_WHOSE[role_b]} "
                    f"model {name_b} version {version_b}: their {' and '.join(differ)} "
                    "differ, and embeddings of different models are not comparable (embed "
                    "both with one model)")
    return next(iter(known.values()), (None, None))


def _embeddings(table, role):
    """The ``embedding`` column of ``table`` as float64 (n, d), and which rows have one."""
    column = table[EMBEDDING_COLUMN]
    mask = None
    if isinstance(column, Masked):
        column, mask = column.unmasked, column.mask
    elif np.ma.isMaskedArray(column):
        column, mask = np.ma.getdata(column), np.ma.getmaskarray(column)
    unit = getattr(column, "unit", None)
    if unit is not None and u.Unit(unit) != u.dimensionless_unscaled:
        raise ValueError(f"{role}[{EMBEDDING_COLUMN!r}] has unit {unit}; embeddings are "
                         "dimensionless")
    values = np.asarray(getattr(column, "value", column))
    if values.ndim != 2:
        raise ValueError(f"{role}[{EMBEDDING_COLUMN!r}] must be 2-D, one row of d numbers per "
                         f"star (as giantfm.embed makes it), got shape {values.shape}")
    if values.dtype.kind not in "fiu":
        raise TypeError(f"{role}[{EMBEDDING_COLUMN!r}] must hold numbers, got dtype "
                        f"{values.dtype}")
    values = values.astype(np.float64, copy=False)
    ok = np.all(np.isfinite(values), axis=1)
    if mask is not None:
        ok &= ~np.asarray(mask).reshape(len(values), -1).any(axis=1)
    return values, ok


def _add_status(result, query, ok):
    """The query's status columns (those it has), and a reason for rows without an embedding."""
    if "ood_score" in query.colnames:
        result["ood_score"] = query["ood_score"]
    reason = np.asarray(query["reason"], dtype=str) if "reason" in query.colnames \
        else np.full(len(query), "")
    # the query's bits: its flags (giantfm.embed's), else recovered from a reason read back
    bits = np.asarray(query["flags"], dtype=np.int64) if "flags" in query.colnames \
        else flag_bits(reason)
    # a row without an embedding says why: the query's own reason, else this one
    silent = ~ok & ((bits & _ROW_BITS) == 0)
    add = np.where(silent, reason_text("no_embedding"), "")
    result["flag"] = ~ok
    result["flags"] = np.where(silent, bits | REASONS["no_embedding"].value, bits)
    result["reason"] = results.join_reasons(reason, add).astype(str)
    results.set_flags(result)

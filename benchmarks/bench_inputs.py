"""Throughput of giantfm's input layer, beside GaiaXPy where GaiaXPy does the same.

Prints spectra (stars) per second, medians of ``--repeats`` runs, for:

* coefficients -> sampled flux (`giantfm.xp.coefficients_to_flux`), default grid,
  with errors, for ``--n`` stars; GaiaXPy's ``calibrate`` on ``--n-gaiaxpy`` of
  the same stars (GaiaXPy needs correlations: zero ones give the same
  uncorrelated propagation), and the ratio, measured in one process;
* the same with full coefficient correlations (no GaiaXPy counterpart timed);
* sampled flux -> coefficients (`giantfm.xp.flux_to_coefficients`): all stars
  sharing one error row (one solve for all), and per-star errors (one 110x110
  solve a star) on ``--n-per-star`` stars; GaiaXPy has no inverse;
* tokenisation: `giantfm.tokens.from_arrays` for ``--n`` stars, and
  `giantfm.tokens.tokenize` on an astropy Table of them.

Inputs are the 2,000 real DR3 sources of ``../shared/data/xp/xp_continuous_first2000.fits``
repeated to ``--n`` stars (correlations from the shared DataLink sample).
Run from the project root: ``python benchmarks/bench_inputs.py [--save PATH]``;
``--save docs/results/bench_inputs.ecsv`` also writes the figures as an ECSV
table (``meta['title']``, ``meta['machine']``: CPU model, cores, load average),
which ``docs/scripts/make_tables.py`` turns into a table of the performance page.
"""
import argparse
import time
from pathlib import Path

from importlib.metadata import version

import numpy as np
from astropy.table import Table

from giantfm import tokens
from giantfm.utils._gaiaxpy import quiet_gaiaxpy
from giantfm.xp.sampling import coefficients_to_flux, flux_to_coefficients
from results import machine_description, save_table

SHARED_XP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "xp"


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _load(n):
    t = Table.read(SHARED_XP / "xp_continuous_first2000.fits")
    coeff = {f"{b}{k}": np.column_stack([np.asarray(t[f"{p}{b}_coeff_{i}"], float)
                                         for i in range(55)])
             for b in ("bp", "rp") for k, p in (("", ""), ("_err", "e_"))}
    ok = np.all([np.isfinite(v).all(axis=1) for v in coeff.values()], axis=0)
    rows = np.resize(np.flatnonzero(ok), n)
    out = {k: v[rows] for k, v in coeff.items()}
    out["source_id"] = np.asarray(t["source_id"], np.int64)[rows]
    out["bp_n_relevant"] = np.asarray(t["bp_n_relevant_bases"], float)[rows]
    out["rp_n_relevant"] = np.asarray(t["rp_n_relevant_bases"], float)[rows]
    dl = Table.read(SHARED_XP / "datalink_XP_CONTINUOUS_5937083312263887616.ecsv",
                    format="ascii.ecsv")
    for band in ("bp", "rp"):
        out[f"{band}_corr"] = np.asarray(dl[f"{band}_coefficient_correlations"][0], float)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--n-gaiaxpy", type=int, default=2_000)
    parser.add_argument("--n-per-star", type=int, default=5_000)
    parser.add_argument("--n-corr", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--save", default=None, metavar="PATH",
                        help="also write the figures to this ECSV file")
    args = parser.parse_args(argv)
    n, reps = args.n, args.repeats
    data = _load(n)
    machine = machine_description()
    print(f"machine: {machine}; repeats: {reps} (medians)")
    rows = []

    def report(label, operation, stars, seconds, **baseline):
        """Print one figure and keep it as a row of the saved table."""
        rate = stars / seconds
        print(f"{label:43s}{rate:12,.0f} {'stars' if 'tokens' in label else 'spectra'}/s "
              f"({stars:,} stars)")
        rows.append({"operation": operation, "stars": stars, "spectra_per_s": round(rate),
                     **baseline})
        return rate

    # coefficients -> flux
    t_ours = _median_time(lambda: coefficients_to_flux(
        data["bp"], data["rp"], data["bp_err"], data["rp_err"]), reps)
    rate_ours = report("coefficients->flux (default grid, errors):", "coefficients -> flux "
                       "(default grid, errors, no correlations)", n, t_ours)
    m = args.n_corr
    corr = {b: np.broadcast_to(data[f"{b}_corr"], (m, 1485)) for b in ("bp", "rp")}
    t_corr = _median_time(lambda: coefficients_to_flux(
        data["bp"][:m], data["rp"][:m], data["bp_err"][:m], data["rp_err"][:m],
        corr["bp"], corr["rp"]), reps)
    report("coefficients->flux (with correlations):", "coefficients -> flux "
           "(default grid, errors, full correlations)", m, t_corr)
    notes = [f"{n:,} stars: the 2,000 DR3 sources of xp_continuous_first2000.fits repeated; "
             f"medians of {reps} runs"]
    try:
        import pandas as pd
        with quiet_gaiaxpy():
            from gaiaxpy import calibrate
    except ImportError:
        print("GaiaXPy not installed: no comparison")
    else:
        k = args.n_gaiaxpy
        frame = pd.DataFrame({
            "source_id": data["source_id"][:k],
            **{f"{b}_{name}": list(data[f"{b}{key}"][:k]) for b in ("bp", "rp")
               for name, key in (("coefficients", ""), ("coefficient_errors", "_err"))},
            **{f"{b}_coefficient_correlations": [np.zeros(1485)] * k for b in ("bp", "rp")},
            **{f"{b}_n_parameters": np.full(k, 55) for b in ("bp", "rp")},
            **{f"{b}_standard_deviation": np.ones(k) for b in ("bp", "rp")}})
        with quiet_gaiaxpy():
            t_gx = _median_time(lambda: calibrate(frame, save_file=False), reps)
            ref, _ = calibrate(frame, save_file=False)
        ours, _ = coefficients_to_flux(data["bp"][:k], data["rp"][:k])
        worst = np.max(np.abs(ours - np.stack(ref["flux"].to_numpy()))
                       / np.abs(ours).max(axis=1, keepdims=True))
        rate_gx = k / t_gx
        print(f"GaiaXPy calibrate (same input):            {rate_gx:12,.0f} spectra/s "
              f"({k:,} stars; max |diff| / max|flux| = {worst:.1e})")
        print(f"  ratio giantfm / GaiaXPy:                 {rate_ours / rate_gx:12,.0f} x")
        rows[0].update(baseline=f"GaiaXPy calibrate ({k:,} stars)",
                       baseline_per_s=round(rate_gx), ratio=round(rate_ours / rate_gx, 1))
        notes.append(f"GaiaXPy {version('gaiaxpy')} calibrate on the first {k:,} of the stars "
                     f"(zero correlations), same process; max |giantfm - GaiaXPy| / max|flux| "
                     f"= {worst:.1e}")

    # flux -> coefficients
    flux, flux_err = coefficients_to_flux(data["bp"], data["rp"], data["bp_err"],
                                          data["rp_err"])
    shared_err = np.median(flux_err, axis=0)
    t_shared = _median_time(lambda: flux_to_coefficients(flux, shared_err), reps)
    report("flux->coefficients (one error row):", "flux -> coefficients (one error row)",
           n, t_shared)
    p = args.n_per_star
    t_star = _median_time(lambda: flux_to_coefficients(flux[:p], flux_err[:p]), reps)
    report("flux->coefficients (per-star errors):", "flux -> coefficients (per-star errors)",
           p, t_star)

    # tokenisation
    mags = {"g": np.full(n, 15.0), "bp": np.full(n, 15.4), "rp": np.full(n, 14.4),
            "j": np.full(n, 13.2), "h": np.full(n, 12.6), "k": np.full(n, 12.5)}
    kw = dict(bp=data["bp"], rp=data["rp"], bp_err=data["bp_err"], rp_err=data["rp_err"],
              mags=mags, bp_n_relevant=data["bp_n_relevant"],
              rp_n_relevant=data["rp_n_relevant"], source_id=data["source_id"])
    t_tok = _median_time(lambda: tokens.from_arrays(**kw), reps)
    report("tokens.from_arrays:", "tokens.from_arrays", n, t_tok)
    if hasattr(tokens, "tokenize"):
        table = Table({"source_id": data["source_id"], "bp_coefficients": data["bp"],
                       "rp_coefficients": data["rp"], "bp_coefficient_errors": data["bp_err"],
                       "rp_coefficient_errors": data["rp_err"],
                       "bp_n_relevant_bases": data["bp_n_relevant"],
                       "rp_n_relevant_bases": data["rp_n_relevant"],
                       "phot_g_mean_mag": mags["g"], "phot_bp_mean_mag": mags["bp"],
                       "phot_rp_mean_mag": mags["rp"], "j_m": mags["j"], "h_m": mags["h"],
                       "ks_m": mags["k"]})
        t_tab = _median_time(lambda: tokens.tokenize(table), reps)
        report("tokens.tokenize (astropy Table):", "tokens.tokenize (astropy Table)", n, t_tab)
    if args.save:
        save_table(rows, args.save, title="Input layer: XP coefficients, sampled flux, tokens",
                   machine=machine, notes="; ".join(notes))


if __name__ == "__main__":
    main()

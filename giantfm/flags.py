"""Every reason giantfm gives for a row: the one list, from which the docs' flags page is made.

A result row's ``reason`` column joins, with ``"; "``, the texts of all the
reasons that apply to the star; ``flag`` is True when any of them says the
labels should not be used as they stand (``Reason.flags``). Each reason has a
stable ``code``, the step of the flow that finds it and what it does to the
row (``effect``):

* ``'row'``: nothing is predicted, every output is masked;
* ``'mass_age'``: mass and age are masked, the other labels kept;
* ``'input'``: an input value was left out (or its error replaced) and the
  star predicted from the rest;
* ``'none'``: the prediction stands, with a warning (``flags`` says whether
  to trust it).

Code that gives a reason calls `reason` with the code and the values it
names, so the texts users read and the page that documents them cannot
drift apart.
"""
from dataclasses import dataclass

__all__ = ["Reason", "REASONS", "reason", "reasons_table"]


@dataclass(frozen=True)
class Reason:
    """One reason a row can carry."""

    code: str
    template: str
    effect: str
    flags: bool
    step: str
    description: str

    def format(self, **values):
        """The text of this reason with ``values`` filled in."""
        return self.template.format(**values)


_ALL = (
    # ------------------------------------------------------------------ inputs
    Reason("no_xp", "no XP coefficients (both bands missing, NaN or masked)", "row", True,
           "inputs", "Neither band has a coefficient: nothing to predict from."),
    Reason("not_in_archive",
           "not in gaiadr3.xp_continuous_mean_spectrum (no XP spectrum in the archive)", "row",
           True, "inputs", "`giantfm.fetch_xp` asked the Gaia archive for a source it has no "
           "XP spectrum of."),
    Reason("spectrum_not_fitted", "spectrum cannot be fitted: {detail}", "row", True, "inputs",
           "A `specutils.Spectrum` row has too few good samples to determine coefficients."),
    Reason("no_g", "no G magnitude: XP coefficients cannot be normalised", "row", True,
           "inputs", "The coefficients are divided by the G-band flux; without G (missing, "
           "or left out as below) they cannot be read."),
    Reason("bad_value", "ignored {column} = {value}: {why}", "input", False, "inputs",
           "A magnitude, label or coefficient that cannot be a measurement: not finite, a "
           "survey's missing-value sentinel (99, -99, 999, 9999, -9999, ...), or outside "
           "the range of real values (magnitudes -2 to 25, Teff 1000-100000 K, ...). The token "
           "is left out and the star predicted from the rest (a bad G leaves out the "
           "coefficients: see ``no_g``)."),
    Reason("bad_error", "replaced {count} {what} error(s) of {column} ({value}) with "
           "{replacement}", "input", False, "inputs",
           "Errors must be finite and positive (a label's may be 0: known exactly); a bad "
           "coefficient or magnitude error is replaced by the typical Gaia DR3 error of such "
           "a star (`giantfm.xp.noise`, which missing errors get silently), a bad label "
           "error by none (unknown)."),
    Reason("not_a_spectrum", "the {band} spectrum is not a star's: {detail}", "row", True,
           "inputs", "All coefficients of a band zero, or its zeroth coefficient (the "
           "integral of the spectrum) not positive: no star has such a spectrum."),
    Reason("no_tokens", "no usable tokens (all inputs missing or non-finite)", "row", True,
           "tokens", "Every input of the star was missing or left out."),
    # ------------------------------------------------------------------ network
    Reason("not_read", "no prediction: none of the star's tokens is an input of this model, "
           "or the network returned a non-finite value", "row", True, "network",
           "The star has tokens, but none the model reads (only high-order coefficients, "
           "say)."),
    # ------------------------------------------------------------------ results
    Reason("outside_label_domain", "outside the mass-age label domain (predicted {domain} "
           "not met): mass and age masked", "mass_age", True, "results",
           "The mass and age labels the model learnt come from a label model calibrated on "
           "asteroseismic giants in this domain; elsewhere they would be extrapolations."),
    Reason("out_of_distribution", "unlike the training stars (ood_score {score:.3g} > 1: "
           "{detail})", "none", True, "results",
           "The star's inputs are unlike any the model was trained on (see the "
           "``ood_score`` column): its labels are extrapolations, kept but flagged."),
    Reason("outside_training_labels", "{detail}", "none", True, "results",
           "`giantfm.generate_spectrum` was asked for labels outside those of the "
           "training set: the spectrum is an extrapolation."),
)

#: Every reason, by code.
REASONS = {r.code: r for r in _ALL}


def reason(code, **values):
    """The text of the reason ``code`` (a key of `REASONS`) with ``values`` filled in."""
    if code not in REASONS:
        raise ValueError(f"unknown reason code {code!r}; the codes are {', '.join(REASONS)}")
    return REASONS[code].format(**values)


def reasons_table():
    """`REASONS` as an astropy `~astropy.table.Table` (for the documentation's flags page)."""
    from astropy.table import Table
    return Table({"code": [r.code for r in _ALL], "step": [r.step for r in _ALL],
                  "effect": [r.effect for r in _ALL], "flags": [r.flags for r in _ALL],
                  "text": [r.template for r in _ALL],
                  "description": [r.description for r in _ALL]})

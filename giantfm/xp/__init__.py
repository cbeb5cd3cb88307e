"""Gaia DR3 XP spectra: readers, the DR3 basis, specutils spectra and archive retrieval.

* `read_xp`: archive / GaiaXPy / flattened tables, files, ``Gaia.load_data``
  results and `specutils.Spectrum` objects -> `XPCoefficients`, one reader
  per input layout (`giantfm.xp.readers`; a new one is registered with
  `register_column_layout` or `register_reader`);
* `coefficients_to_flux`, `flux_to_coefficients`: coefficients <-> sampled
  absolute spectra with the shipped DR3 design matrices;
* `spectrum_to_coefficients`: specutils spectra -> coefficients;
* `synthetic_photometry`, `synthetic_g`: Gaia G, BP and RP magnitudes synthesised
  from the coefficients;
* `project_coefficients`: the fixed projection onto what a sampled spectrum
  determines, applied to every XP input before it becomes tokens;
* `giantfm.xp.recover`: coefficients (with errors) recovered from the sampled
  spectra of the training library;
* `fetch_xp`: retrieval from the Gaia archive through astroquery;
* `archive_table`: coefficients (or a Spectrum's fitted ones) -> a table in
  the Gaia archive's layout.

Nothing here imports specutils or astroquery until it is used.
"""
from .fetch import fetch_xp
from .coefficients import PHOTOMETRY_ALIASES, XPCoefficients
from .readers import read_photometry, read_xp, register_column_layout, register_reader
from .projection import project_coefficients
from .sampling import coefficients_to_flux, flux_to_coefficients
from .photometry import synthetic_g, synthetic_photometry
from .spectrum import spectrum_to_coefficients
from .archive import archive_table

__all__ = ["read_xp", "read_photometry", "register_column_layout", "register_reader",
           "XPCoefficients", "PHOTOMETRY_ALIASES",
           "coefficients_to_flux", "flux_to_coefficients", "spectrum_to_coefficients",
           "synthetic_g", "synthetic_photometry", "fetch_xp", "project_coefficients",
           "archive_table"]

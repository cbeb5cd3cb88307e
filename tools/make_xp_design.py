"""Extract the Gaia DR3 XP design arrays that giantfm ships from GaiaXPy 2.1.5.

This one-off script writes ``giantfm/data/xp_dr3_design.npz``: everything that
``gaiaxpy.calibrate`` uses to turn DR3 XP coefficients into absolute sampled
spectra (W m^-2 nm^-1), read through GaiaXPy's own configuration loaders so that
the arrays are bit-for-bit what GaiaXPy computes with:

* the tabulated design matrices and BP/RP merge weights on the default grid
  (336-1020 nm, 2 nm; ``config/filters/XpFilter_v375wiv142r.xml``), which
  ``calibrate(sampling=None)`` uses;
* the external-calibration instrument model of each band (dispersion function,
  response curve, inverse-bases and transformation matrices:
  ``config/bpC03_v375wi_*.csv``, ``config/rpC03_v142r_*.csv``), from which
  ``calibrate(sampling=...)`` evaluates the design matrices on a user grid;
* the Gaia DR3 (Vega) G, BP and RP passbands as linear functionals of the
  coefficients, with their zero points
  (``config/filters/XpFilter_GaiaDr3Vega_v375wiv142r.xml``), with which
  ``gaiaxpy.generate`` synthesises that photometry;
* the constants that enter (h c, telescope pupil area, band wavelength ranges).

GaiaXPy is BSD-3 licensed (Copyright (c) DPAC, CU5, DPCI); its licence is in
``licenses/GaiaXPy_LICENSE.txt``. Run from the project root::

    python tools/make_xp_design.py

The output is written atomically; running it twice gives identical arrays.
"""
import hashlib
from importlib.metadata import version
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from giantfm.utils import atomic_write

BP_MODEL, RP_MODEL = "v375wi", "v142r"
OUTPUT = Path(__file__).resolve().parents[1] / "giantfm" / "data" / "xp_dr3_design.npz"


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    from gaiaxpy.calibrator.external_instrument_model import ExternalInstrumentModel
    from gaiaxpy.config.paths import config_path, filters_path
    from gaiaxpy.core import nature, satellite
    from gaiaxpy.core.config import load_xpmerge_from_xml, load_xpsampling_from_xml

    if version("gaiaxpy") != "2.1.5":
        raise RuntimeError(f"expected GaiaXPy 2.1.5, found {version('gaiaxpy')}")
    arrays = {}
    grid, merge = load_xpmerge_from_xml(bp_model=BP_MODEL, rp_model=RP_MODEL)
    sampled = load_xpsampling_from_xml(bp_model=BP_MODEL, rp_model=RP_MODEL)
    arrays["default_wavelength"] = np.asarray(grid, dtype=np.float64)
    sources = [Path(filters_path) / f"XpFilter_{BP_MODEL}{RP_MODEL}.xml"]
    for band, model in (("bp", BP_MODEL), ("rp", RP_MODEL)):
        arrays[f"default_{band}_design"] = np.asarray(sampled[band], dtype=np.float64)
        arrays[f"default_{band}_weight"] = np.asarray(merge[band], dtype=np.float64)
        files = [Path(config_path) / f"{band}C03_{model}_{kind}.csv"
                 for kind in ("dispersion", "response", "bases")]
        sources += files
        eim = ExternalInstrumentModel.from_config_csv(*map(str, files))
        bases = eim.bases
        arrays[f"{band}_dispersion_wavelength"] = eim.dispersion["wavelength"]
        arrays[f"{band}_dispersion_pwl"] = eim.dispersion["pseudo-wavelength"]
        arrays[f"{band}_response_wavelength"] = eim.response["wavelength"]
        arrays[f"{band}_response"] = eim.response["response"]
        arrays[f"{band}_inverse_bases"] = np.asarray(bases["inverseBasesCoefficients"], float)
        arrays[f"{band}_transformation"] = np.asarray(bases["transformationMatrix"], float)
        arrays[f"{band}_pwl_range"] = np.array([bases["pwlRangeMin"], bases["pwlRangeMax"]], float)
        arrays[f"{band}_norm_range"] = np.array([bases["normRangeMin"], bases["normRangeMax"]],
                                                float)
    # The Gaia DR3 (Vega) G, BP and RP passbands as linear functionals of the coefficients,
    # as gaiaxpy.generate(..., PhotometricSystem.Gaia_DR3_Vega) applies them (band flux in
    # W m^-2 nm^-1 = bp @ filter_bp + rp @ filter_rp; mag = -2.5 log10(flux) + zero point).
    passbands = Path(filters_path) / "XpFilter_GaiaDr3Vega_v375wiv142r.xml"
    sources.append(passbands)
    root = ElementTree.parse(passbands).getroot()
    names = [item.text for item in root.find("bands")]
    for band in ("bp", "rp"):
        values = [float(v.text) for v in root.find(f"XpSampling/{band}SampledBases")]
        arrays[f"passband_{band}"] = np.array(values).reshape(len(names), -1)
    arrays["passband_names"] = np.array(names)
    arrays["passband_zero_points"] = np.array([float(v.text) for v in root.find("zeropoints")])
    arrays["hc"] = np.float64(1.0e9 * nature.C * nature.PLANCK)
    arrays["telescope_pupil_area"] = np.float64(satellite.TELESCOPE_PUPIL_AREA)
    arrays["bp_wavelength_range"] = np.array(satellite.BP_WL, dtype=float)
    arrays["rp_wavelength_range"] = np.array(satellite.RP_WL, dtype=float)
    arrays["provenance"] = np.array(
        "Gaia DR3 XP design arrays extracted from GaiaXPy 2.1.5 (BSD-3, Copyright (c) DPAC, CU5, "
        "DPCI) by tools/make_xp_design.py; sources (sha256): "
        + "; ".join(f"gaiaxpy/config/{Path(p).relative_to(config_path)} {_sha256(p)}"
                    for p in sources))

    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(OUTPUT, lambda tmp: np.savez_compressed(tmp, **arrays))
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

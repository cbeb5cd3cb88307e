"""fetch_xp against the live Gaia archive (run with ``pytest --remote-data``)."""
import numpy as np
import pytest
from astropy.utils.exceptions import AstropyUserWarning

DATALINK_ID = 5937083312263887616


@pytest.mark.remote_data
def test_fetch_known_source_and_a_missing_one(xp_data):
    import giantfm
    from giantfm.xp.readers import read_xp

    # 1 is not a Gaia DR3 source: it comes back masked, with a reason and a warning
    with pytest.warns(AstropyUserWarning, match="1 of 2 requested sources"):
        table = giantfm.fetch_xp([1, DATALINK_ID])
    assert table["source_id"].tolist() == [1, DATALINK_ID]
    assert table["reason"][0] and not table["reason"][1]
    live = read_xp(table)
    recorded = read_xp(xp_data / f"datalink_XP_CONTINUOUS_{DATALINK_ID}.ecsv")
    np.testing.assert_allclose(live.bp[1], recorded.bp[0], rtol=1e-6)
    np.testing.assert_allclose(live.rp_err[1], recorded.rp_err[0], rtol=1e-6)
    assert 3 < table["phot_g_mean_mag"][1] < 21
    batch = giantfm.tokenize(table)
    assert batch.ok.tolist() == [False, True]

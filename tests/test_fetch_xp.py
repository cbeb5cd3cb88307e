"""fetch_xp offline: the astroquery client replaced by one serving the shared DataLink samples.

``import astroquery.gaia`` contacts the archive, so these tests replace the
client fetch_xp asks for (``giantfm.xp.fetch._gaia``) by a stand-in whose
``load_data`` has astroquery 0.4.11's signature and returns what it returns:
``{file name: [Table]}``, one file per source (``data_structure='INDIVIDUAL'``).
"""
import numpy as np
import pytest
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

import giantfm
from giantfm.xp import fetch
from giantfm.xp.readers import read_xp
from giantfm.tokens import tokenize

DATALINK_ID = 5937083312263887616


class FakeJob:
    def __init__(self, table):
        self.table = table

    def get_results(self):
        return self.table


class FakeGaia:
    """Serves the shared DataLink sample for its source id, nothing for any other."""

    def __init__(self, xp_data, fmt="xml"):
        self.product = Table.read(xp_data / f"datalink_XP_CONTINUOUS_{DATALINK_ID}.{fmt}")
        self.calls = []
        self.queries = []

    # astroquery 0.4.11's signature (band and output_file deprecated there)
    def load_data(self, ids, *, data_release=None, data_structure="INDIVIDUAL",
                  retrieval_type="ALL", linking_parameter="SOURCE_ID", valid_data=False,
                  band=None, avoid_datatype_check=False, format="votable", dump_to_file=False,
                  overwrite_output_file=False, verbose=False, output_file=None):
        assert len(ids) <= fetch.MAX_IDS_PER_CALL
        self.calls.append(dict(ids=list(ids), data_release=data_release,
                               data_structure=data_structure, retrieval_type=retrieval_type,
                               format=format))
        return {f"XP_CONTINUOUS-Gaia DR3 {i}.xml": [self.product.copy()]
                for i in ids if i == DATALINK_ID}

    def launch_job_async(self, query, *, upload_resource=None, upload_table_name=None,
                         verbose=False):
        self.queries.append((query, upload_table_name, list(upload_resource["source_id"])))
        ids = [i for i in upload_resource["source_id"] if i == DATALINK_ID]
        # Gaia archive values of this source (the XP sample's G is not in the file:
        # any magnitudes serve to test the join)
        return FakeJob(Table({"SOURCE_ID": ids, "phot_g_mean_mag": [14.1] * len(ids),
                              "phot_bp_mean_mag": [14.5] * len(ids),
                              "phot_rp_mean_mag": [13.5] * len(ids), "j_m": [12.3] * len(ids),
                              "h_m": [11.9] * len(ids), "ks_m": [11.8] * len(ids)}))


@pytest.fixture
def fake_gaia(xp_data, monkeypatch):
    gaia = FakeGaia(xp_data)
    monkeypatch.setattr(fetch, "_gaia", lambda: gaia)
    return gaia


def test_found_source_matches_the_datalink_product(fake_gaia, xp_data):
    table = giantfm.fetch_xp([DATALINK_ID], photometry=False)
    assert table["source_id"].tolist() == [DATALINK_ID] and table["reason"].tolist() == [""]
    ref = read_xp(xp_data / f"datalink_XP_CONTINUOUS_{DATALINK_ID}.ecsv")
    got = read_xp(table)
    for name in ("bp", "rp", "bp_err", "rp_corr", "bp_n_relevant"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-7)
    call, = fake_gaia.calls
    assert call["retrieval_type"] == "XP_CONTINUOUS" and call["data_release"] == "Gaia DR3"
    assert call["data_structure"] == "INDIVIDUAL"  # astroquery's default: not hard-coded


def test_order_duplicates_missing_and_chunking(fake_gaia):
    ids = [11, DATALINK_ID, 7, DATALINK_ID, 5]
    with pytest.warns(AstropyUserWarning, match=r"3 of 5 requested sources have no Gaia DR3 XP "
                                                r"spectrum.*\[5, 7, 11\]"):
        table = giantfm.fetch_xp(ids, photometry=False, chunk_size=2)
    assert table["source_id"].tolist() == ids
    assert [bool(r) for r in table["reason"]] == [True, False, True, False, True]
    assert table["bp_coefficients"].mask[[0, 2, 4]].all()
    assert not table["bp_coefficients"].mask[[1, 3]].any()
    assert [len(c["ids"]) for c in fake_gaia.calls] == [2, 2]  # 4 unique ids, 2 per call
    xp = read_xp(table)
    assert "not in gaiadr3.xp_continuous_mean_spectrum" in xp.reason[0]
    np.testing.assert_array_equal(xp.bp[1], xp.bp[3])


def test_photometry_is_joined_and_tokens_follow(fake_gaia):
    with pytest.warns(AstropyUserWarning, match="1 of 2"):
        table = giantfm.fetch_xp([DATALINK_ID, 3])
    assert table["phot_g_mean_mag"][0] == 14.1 and table["phot_g_mean_mag"].mask[1]
    assert table["ks_m"][0] == 11.8
    query, name, uploaded = fake_gaia.queries[0]
    assert name == "ids" and "gaiadr3.gaia_source" in query and sorted(uploaded) == [3, DATALINK_ID]
    batch = tokenize(table, truncate=True)
    assert batch.ok.tolist() == [True, False]
    assert "not in gaiadr3" in batch.reason[1] and batch.n_tokens[1] == 0
    nrel = int(table["bp_n_relevant_bases"][0]) + int(table["rp_n_relevant_bases"][0])
    assert batch.n_tokens[0] == nrel + 5  # truncated coefficients + 5 colours


def test_result_can_be_saved_and_read_back(fake_gaia, tmp_path):
    with pytest.warns(AstropyUserWarning):
        table = giantfm.fetch_xp([2, DATALINK_ID], photometry=False)
    for name in ("xp.fits", "xp.ecsv"):
        table.write(tmp_path / name)
        back = read_xp(tmp_path / name)
        np.testing.assert_array_equal(back.bp, read_xp(table).bp)
        assert back.reason[0] and not back.reason[1]


def test_user_arguments_reach_load_data_and_unknown_ones_are_refused(fake_gaia):
    giantfm.fetch_xp(DATALINK_ID, photometry=False, data_structure="RAW", format="ecsv")
    assert fake_gaia.calls[-1]["data_structure"] == "RAW"
    assert fake_gaia.calls[-1]["format"] == "ecsv"
    with pytest.raises(TypeError, match="does not take \\['colour'\\]"):
        giantfm.fetch_xp(DATALINK_ID, colour="red")


def test_renamed_signature_is_respected(xp_data, monkeypatch):
    """A load_data without ``data_structure`` (as after astroquery's renaming) still works."""
    gaia = FakeGaia(xp_data, fmt="ecsv")

    def load_data(ids, *, retrieval_type, data_release=None, verbose=False):
        return FakeGaia.load_data(gaia, ids, retrieval_type=retrieval_type,
                                  data_release=data_release)
    gaia.load_data = load_data
    monkeypatch.setattr(fetch, "_gaia", lambda: gaia)
    table = giantfm.fetch_xp([str(DATALINK_ID)], photometry=False)
    assert table["reason"].tolist() == [""]


def test_bad_ids_and_chunk_sizes(fake_gaia):
    with pytest.raises(ValueError, match="source_ids is empty"):
        giantfm.fetch_xp([])
    with pytest.raises(ValueError, match="must be Gaia source ids"):
        giantfm.fetch_xp(["abc"])
    with pytest.raises(ValueError, match="must be integers; got \\[1.5\\]"):
        giantfm.fetch_xp([1.5])
    with pytest.raises(ValueError, match="must be positive"):
        giantfm.fetch_xp([-4])
    with pytest.raises(ValueError, match="chunk_size must be between 1 and 5000"):
        giantfm.fetch_xp([1], chunk_size=6000)
    assert fake_gaia.calls == []


def test_nothing_found_still_gives_one_masked_row_per_id(fake_gaia):
    with pytest.warns(AstropyUserWarning, match="2 of 2 requested sources"):
        table = giantfm.fetch_xp([8, 9], photometry=False)
    assert table["source_id"].tolist() == [8, 9] and all(table["reason"])
    batch = tokenize(table)
    assert len(batch) == 2 and not batch.ok.any()
    assert all("not in gaiadr3.xp_continuous_mean_spectrum" in r for r in batch.reason)


def test_without_network_says_it_cannot_reach_the_archive(xp_data, monkeypatch):
    import socket

    class Offline(FakeGaia):
        def load_data(self, ids, **kwargs):
            raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(fetch, "_gaia", lambda: Offline(xp_data))
    with pytest.raises(ConnectionError, match="cannot reach the Gaia archive") as info:
        fetch.fetch_xp([DATALINK_ID])
    assert info.value.__cause__ is None and "network" in str(info.value)

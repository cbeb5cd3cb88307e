"""What a new user meets first: the README, the example file, a printed result, its files."""
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.table import QTable

import giantfm
from giantfm import results, vocab
from giantfm.io.tables import read_table, write_table

ROOT = Path(__file__).resolve().parents[1]


def test_readme_names_every_result_column_and_the_data_model_page():
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    for column in ("source_id",) + results.PREDICTION_COLUMNS:
        name = column[:-4] if column.endswith("_err") else column
        assert f"``{name}``" in text, column
    assert "docs/data_model.rst" in text
    assert "my_xp_table" not in text        # no file that does not exist
    assert "giantfm.examples.path()" in text


def test_the_example_file_is_a_path_that_predict_reads():
    path = giantfm.examples.path()
    assert path.is_file() and path.suffix == ".ecsv"
    assert len(read_table(path)) == len(giantfm.examples.load())


def test_status_columns_have_one_home():
    from giantfm import teaching
    assert results.PREDICTION_COLUMNS[-len(results.STATUS_COLUMNS):] == results.STATUS_COLUMNS
    assert set(teaching._RESERVED) == {"source_id", results.EVSTATE_COLUMN,
                                       *results.STATUS_COLUMNS}
    assert vocab.STATE_NAMES == (vocab.P_RC,) and vocab.P_RC in vocab.LABEL_NAMES


@pytest.fixture(scope="module")
def result():
    pytest.importorskip("torch", reason="prediction needs torch")
    return giantfm.predict(giantfm.examples.load(), progress=False)


def test_a_result_prints_readably(result):
    assert isinstance(result, QTable) and isinstance(result, results.Result)
    lines = result.pformat(max_width=-1, max_lines=-1)
    header = lines[0].split()
    assert header[:3] == ["source_id", "teff", "teff_err"] and header[-1] == "reason"
    body = "\n".join(lines[3:])
    # no value printed with more digits than its label's precision
    assert not re.search(r"\d\.\d{5,}", body), body[:500]
    teff = lines[3].split()[1]
    assert re.fullmatch(r"\d{4}", teff)
    # a reason is cut short for display; the data keep it whole
    longest = max(len(r) for r in result["reason"])
    assert longest > results.REASON_WIDTH
    assert max(len(line) for line in lines) < 250
    assert "..." in body
    # display only: the columns carry no format, and one set by the user wins
    assert all(result[c].info.format is None for c in result.colnames)
    mine = result["teff", "reason"].copy()
    mine["teff"].info.format = ".1f"
    assert re.fullmatch(r"\d{4}\.\d", mine.pformat()[3].split()[0])
    # the default 80-column print shows more than source_id
    assert len(result.pformat(max_width=80)[0].split()) > 3


@pytest.mark.parametrize("ext", [".ecsv", ".fits", ".csv"])
def test_files_keep_full_precision_and_full_reasons(result, tmp_path, ext):
    path = tmp_path / f"labels{ext}"
    write_table(result, path)
    back = read_table(path)
    for column in ("teff", "logg", "mass_err", "p_rc", "ood_score"):
        written = np.asarray(getattr(back[column], "filled", lambda v: back[column])(np.nan),
                             dtype=float)
        expected = np.asarray(result[column].unmasked.value, dtype=float)
        mask = np.asarray(result[column].mask)
        np.testing.assert_array_equal(written[~mask], expected[~mask], column)
    # (an empty reason may come back masked)
    assert list(np.ma.filled(np.ma.asarray(back["reason"]).astype(str), "")) \
        == list(result["reason"])
    assert all(back[c].info.format is None for c in back.colnames if c != "evstate")


def test_display_formats_come_from_the_vocabulary():
    assert results.display_format("teff") == vocab.VOCABULARY.token("teff").format == ".0f"
    assert results.display_format("logg_err") == vocab.VOCABULARY.token("logg").format
    assert results.display_format(vocab.P_RC) == ".3f"
    assert results.display_format("ood_score") == ".2f"
    assert results.display_format("source_id") is None
    short = results.display_format("reason")
    assert short("x" * 100) == "x" * (results.REASON_WIDTH - 3) + "..."
    assert short("short") == "short"
    token = vocab.token_from_dict(vocab.token_to_dict(vocab.VOCABULARY.token("mass")))
    assert token == vocab.VOCABULARY.token("mass")


def test_summary_counts_flagged_rows_and_masked_labels_apart(result):
    first, *notes = results.summarize(result)
    n_flagged = int(np.count_nonzero(result["flag"]))
    n_mass = int(np.count_nonzero(result["mass"].mask))
    assert first.startswith(f"{n_flagged} flagged; masked: ")
    assert f"mass, age, p_rc in {n_mass} rows" in first
    domain = [line for line in notes if line.startswith("outside_label_domain")]
    assert len(domain) == 1 and "e.g. outside the label model's domain (" in domain[0]


def test_embed_and_predict_share_their_meta(result):
    embedded = giantfm.embed(giantfm.examples.load()[:3], progress=False)
    assert list(embedded.meta)[:5] == ["giantfm_model", "giantfm_model_version",
                                       "embedding_dim", "device", "inputs"]
    assert list(result.meta)[:4] == ["giantfm_model", "giantfm_model_version", "device",
                                     "inputs"]
    assert embedded.colnames == ["source_id", "embedding", "ood_score", "flag", "flags",
                                 "reason"]

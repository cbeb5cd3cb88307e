"""The one registry of reasons: stable bits, texts read back that map to their bits,
decode_flags, reason_texts."""
import numpy as np
import pytest

import giantfm
from giantfm import flags
from giantfm.flags import (FLAG_MASK, REASONS, SEPARATOR, decode_flags, flag_bits, reason,
                           reason_texts)


def test_bits_and_prefixes_are_unique():
    bits = [r.bit for r in REASONS.values()]
    assert len(set(bits)) == len(bits) and min(bits) >= 0
    prefixes = [r.prefix for r in REASONS.values()]
    # every text starts with words of its own, which no other reason's text starts with
    assert all(prefixes)
    for a in REASONS.values():
        for b in REASONS.values():
            assert a is b or not b.prefix.startswith(a.prefix), (a.code, b.code)
        assert SEPARATOR not in a.template


def test_each_reason_text_read_back_maps_to_its_bit():
    """flag_bits recovers the bits of texts read back from a file (the flow carries bits)."""
    values = {"column": "j_m", "value": "99", "why": "not finite", "count": 1, "what": "x",
              "replacement": "y", "band": "BP", "other": "RP",
              "detail": "d; with a separator inside", "bands": "phot_g_mean_mag",
              "limits": "logg 4.4 > 3.29", "score": 2.0}
    texts = [reason(code, **values) for code in REASONS]
    for code, text in zip(REASONS, texts):
        assert flag_bits(text) == REASONS[code].value, code
    joined = SEPARATOR.join(texts)
    assert flag_bits(joined) == sum(r.value for r in REASONS.values())
    assert decode_flags(flag_bits(joined)) == sorted(REASONS, key=lambda c: REASONS[c].bit)
    assert flag_bits("") == 0
    column = flag_bits(np.array([texts[0], "", joined, texts[0]], dtype=object))
    assert column.dtype == np.int64 and column.tolist()[1] == 0 and column[0] == column[3]


def test_flag_mask_is_the_reasons_that_flag():
    assert FLAG_MASK & REASONS["out_of_distribution"].value
    assert FLAG_MASK & REASONS["no_xp"].value
    # mass and age outside their domain, a note on an input, synthetic photometry: usable rows
    for code in ("outside_label_domain", "bad_value", "bad_error", "synthetic_photometry"):
        assert not FLAG_MASK & REASONS[code].value, code


def test_decode_flags_values_arrays_and_errors():
    assert decode_flags(0) == []
    assert decode_flags(np.int64(REASONS["no_g"].value)) == ["no_g"]
    assert decode_flags([0, REASONS["bad_value"].value]) == [[], ["bad_value"]]
    assert giantfm.decode_flags is decode_flags
    with pytest.raises(ValueError, match=">= 0"):
        decode_flags(-1)
    with pytest.raises(ValueError, match=r"bit\(s\) that no reason has: \[40\]"):
        decode_flags(1 << 40)


def test_reasons_table_lists_bits():
    table = flags.reasons_table()
    assert list(table["bit"]) == sorted(table["bit"])
    assert all(table["value"] == 2 ** table["bit"])
    assert set(table["code"]) == set(REASONS)
    assert sum(table["value"][table["sets_flag"]]) == flags.FLAG_MASK


def test_reason_texts_splits_a_reason_by_code():
    domain = reason("outside_label_domain", limits="logg 4.4 > 3.29")
    synthetic = reason("synthetic_photometry", bands="phot_g_mean_mag")
    found = reason_texts(SEPARATOR.join([synthetic, "a text of no reason", domain]))
    assert found == {"synthetic_photometry": synthetic, "outside_label_domain": domain}
    assert reason_texts("") == {}

import pytest

from bidsport.labels import LabelError, sanitize_label


@pytest.mark.parametrize(
    "raw, label",
    [
        ("P-001/a", "P001a"),
        ("sub 01", "sub01"),
        ("Zürich", "Zurich"),
        ("../../etc", "etc"),
        ("a\tb\nc", "abc"),
        ("straße", "strau00dfe"),  # no ASCII form: kept distinct, not dropped
        ("患者1", "u60a3u80051"),
    ],
)
def test_sanitize_label(raw, label):
    assert sanitize_label(raw) == label


@pytest.mark.parametrize("raw", ["", "---", "/", "..", None, "\x00"])
def test_sanitize_label_refuses_values_without_letters(raw):
    with pytest.raises(LabelError):
        sanitize_label(raw)


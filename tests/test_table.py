import pandas as pd
import pytest

from bidsport.table import TableError, load_series_table, parse_date, parse_time

HEADER = "subject_code\tseries_instance_uid\tdicom_path\tdirectory_type\tstudy_date\tseries_time\tstack_index\n"


def write(tmp_path, body, name="series.tsv"):
    (tmp_path / "dicom" / "a").mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_good_table_loads(tmp_path):
    path = write(tmp_path, "P1\t1.2.3\ta\tanat\t2024-01-02\t101010\t\n")
    table = load_series_table(path, tmp_path / "dicom")
    assert list(table.rows["subject_code"]) == ["P1"]
    assert table.rows["_line"].tolist() == [2]


def test_all_problems_are_reported_together_with_line_and_column(tmp_path):
    path = write(
        tmp_path,
        "P1\t1.2.3\ta\tanat\t2024-02-30\t101010\t\n"  # line 2: impossible date
        "P2\t1.2.3\ta\tbrain\t\t25:00:00\t\n"  # line 3: duplicate key, bad intent, bad time
        "\t1.2.4\tmissing\tanat\t\t\t\n",  # line 4: empty subject, missing folder
    )
    with pytest.raises(TableError) as err:
        load_series_table(path, tmp_path / "dicom")
    text = str(err.value)
    assert f"{path}:2: column 'study_date'" in text
    assert f"{path}:3: column 'directory_type': 'brain' is not one of" in text
    assert f"{path}:3: column 'series_time'" in text
    assert "duplicate (series_instance_uid, stack_index)" in text and "first seen on line 2" in text
    assert f"{path}:4: column 'subject_code': required value is empty" in text
    assert f"{path}:4: column 'dicom_path': does not exist" in text
    assert len(err.value.problems) >= 6


def test_missing_required_column(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("subject_code\tdicom_path\nP1\ta\n", encoding="utf-8")
    with pytest.raises(TableError, match="missing required column 'series_instance_uid'"):
        load_series_table(path, tmp_path)


def test_lenient_mode_skips_and_lists_bad_rows(tmp_path):
    path = write(tmp_path, "P1\t1.2.3\ta\tanat\t\t\t\nP2\t1.2.4\ta\tnope\t\t\t\n")
    table = load_series_table(path, tmp_path / "dicom", lenient=True)
    assert table.rows["subject_code"].tolist() == ["P1"]
    assert table.skipped[0]["line"] == 3 and "directory_type" in table.skipped[0]["reason"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet(tmp_path, suffix):
    (tmp_path / "dicom" / "a").mkdir(parents=True)
    frame = pd.DataFrame(
        {"subject_code": ["P1"], "series_instance_uid": ["1.2.3"], "dicom_path": ["a"], "directory_type": ["anat"], "series_number": [3]}
    )
    path = tmp_path / f"t{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    table = load_series_table(path, tmp_path / "dicom")
    assert table.rows.loc[0, "series_number"] == "3"


def test_date_and_time_parsers():
    assert parse_date("20240102") == parse_date("2024-01-02")
    assert parse_time("10:11:12.5") == pytest.approx(36672.5)
    with pytest.raises(ValueError):
        parse_time("246000")


def test_latin1_table_is_a_clear_error(tmp_path):
    (tmp_path / "dicom" / "a").mkdir(parents=True)
    path = tmp_path / "latin1.tsv"
    path.write_bytes((HEADER + "Zürich\t1.2.3\ta\tanat\t\t\t\n").encode("latin-1"))
    with pytest.raises(TableError, match=r"latin1.tsv: cannot read the table: 'utf-8' codec can't decode"):
        load_series_table(path, tmp_path / "dicom")


def test_a_series_listed_twice_from_two_folders_is_a_duplicate(tmp_path):
    (tmp_path / "dicom" / "b").mkdir(parents=True)
    path = write(tmp_path, "P1\t1.2.3\ta\tanat\t\t\t\nP1\t1.2.3\tb\tanat\t\t\t\n")
    with pytest.raises(TableError, match="line 3.*duplicate|duplicate.*first seen on line 2"):
        load_series_table(path, tmp_path / "dicom")


def test_stack_columns_are_checked_against_the_schema(tmp_path):
    path = tmp_path / "stacks.tsv"
    (tmp_path / "dicom" / "a").mkdir(parents=True)
    path.write_text(
        "subject_code\tseries_instance_uid\tstack_index\tdicom_path\tdirectory_type\tstack_echo_time\tstack_echo_numbers\n"
        "P1\t1.2.3\t0\ta\tfmap\t4.92\t1\n"
        "P1\t1.2.3\t1\ta\tfmap\t7,38\t1\\2\n",  # a decimal comma is not a number
        encoding="utf-8",
    )
    with pytest.raises(TableError) as err:
        load_series_table(path, tmp_path / "dicom")
    assert f"{path}:3: column 'stack_echo_time'" in str(err.value) and len(err.value.problems) == 1

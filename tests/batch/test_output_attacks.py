"""An output's neighbours planted by someone else, and outputs built to exhaust memory: refused in one sentence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from digits.batch import COLUMNS, Output, OutputError
from helpers import DIGITS, assert_one_line_error, run_cli


def test_a_lock_planted_as_a_link_is_refused_and_its_target_never_created(tmp_path, pictures):
    target = tmp_path / "elsewhere" / "created-by-digits"
    target.parent.mkdir()
    (tmp_path / ".results.csv.lock").symlink_to(target)
    result = run_cli("predict", str(pictures[0]), "--out", str(tmp_path / "results.csv"), cwd=tmp_path)
    assert_one_line_error(result, "is a symbolic link; remove it")
    assert not target.exists() and not (tmp_path / "results.csv").exists()


@pytest.mark.parametrize("planted", ["link", "file"])
def test_parts_that_are_not_a_folder_of_their_own_are_refused_before_any_picture(tmp_path, pictures, planted):
    parts, elsewhere = tmp_path / ".results.csv.parts", tmp_path / "elsewhere"
    elsewhere.mkdir()
    if planted == "link":
        parts.symlink_to(elsewhere)
    else:
        parts.write_text("not a folder")
    result = run_cli("predict", str(pictures[0]), "--out", str(tmp_path / "results.csv"), cwd=tmp_path)
    assert_one_line_error(result, "is not a folder of its own; remove it")
    assert not list(elsewhere.iterdir()) and not (tmp_path / "results.csv").exists()
    assert not (tmp_path / ".results.csv.lock").exists()  # let go: the next command may write it


@pytest.mark.parametrize("planted", ["fifo", "link"])
def test_a_part_that_is_not_a_regular_file_is_refused_not_waited_on_or_followed(tmp_path, pictures, planted):
    parts = tmp_path / ".results.csv.parts"
    parts.mkdir(mode=0o700)
    if planted == "fifo":
        os.mkfifo(parts / "000000000.csv")
    else:
        (tmp_path / "elsewhere.csv").write_text("precious")
        (parts / "000000000.csv").symlink_to(tmp_path / "elsewhere.csv")
    result = run_cli("predict", str(pictures[0]), "--out", str(tmp_path / "results.csv"), cwd=tmp_path)
    assert_one_line_error(result, "not a regular file, so no part digits wrote")
    assert planted == "fifo" or (tmp_path / "elsewhere.csv").read_text() == "precious"


def test_a_model_whose_name_is_not_utf8_is_stored_escaped_in_parquet_and_resumes(tmp_path, pictures):
    pytest.importorskip("pyarrow")
    from digits.read.model import shipped_file

    model = tmp_path / os.fsdecode(b"m\xff.onnx")
    shutil.copy(shipped_file("reader.onnx"), model)
    shutil.copy(shipped_file("reader.json"), model.with_suffix(".json"))
    command = ["predict", str(pictures[0]), "--model", str(model), "--out", "w.parquet", "--workers", "1"]
    first = run_cli(*command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0 and "unexpected" not in again.stderr, again.stderr


def test_a_small_parquet_file_of_huge_rows_is_refused_before_they_are_read(tmp_path, monkeypatch):
    """Compressed, a 2 MiB path takes a few kilobytes: its row group's size in the footer gives it away."""
    import pyarrow
    import pyarrow.parquet

    from digits.batch import output

    monkeypatch.setattr(output, "_LONGEST_LINE", 2**20)
    out = tmp_path / "bomb.parquet"
    row = dict.fromkeys(COLUMNS) | {"path": "a" * 2 * 2**20, "status": "error", "model": "reader.onnx"}
    schema = output._pyarrow()[2]
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist([row], schema), out, compression="zstd")
    assert out.stat().st_size < 64 * 2**10
    with pytest.raises(OutputError, match="more than digits writes"):
        Output(out).done("reader.onnx", "predict")


def test_a_long_value_named_by_every_row_of_a_dictionary_is_refused_before_it_is_copied_into_each(
    tmp_path, monkeypatch
):
    """An attacker's file of 6 KB: one 4 MB `boxes` value stored once in a dictionary page, and a million rows
    naming it; the footer's sizes were true, and a batch of 1,024 rows decoded to 4 GB (8.3 GB at the peak)."""
    import pyarrow
    import pyarrow.parquet

    from digits.batch import output

    monkeypatch.setattr(output, "_LONGEST_LINE", 2**20)  # the same attack, a thousand times smaller
    out = tmp_path / "bomb.parquet"
    row = dict.fromkeys(COLUMNS) | {"status": "ok", "model": "reader.onnx", "boxes": "[[" + "x" * 200_000}
    rows = [row | {"path": f"p{i}.png"} for i in range(2_000)]  # 400 MB once decoded
    table = pyarrow.Table.from_pylist(rows, output._pyarrow()[2])
    pyarrow.parquet.write_table(table, out, compression="zstd", dictionary_pagesize_limit=2**20)
    assert out.stat().st_size < 256 * 2**10
    with pytest.raises(OutputError, match="bytes of text, more than digits writes"):
        Output(out).done("reader.onnx", "predict")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_an_output_with_a_blank_line_or_a_byte_order_mark_an_editor_added_resumes(tmp_path, suffix):
    """Both stopped the resume: a JSON Lines file's blank line (said to be line 2 of a file where it was line 4),
    a byte-order mark before a CSV file's header (said not to be the header) or a JSON Lines file's first row."""
    out = tmp_path / f"edited{suffix}"
    row = dict.fromkeys(COLUMNS) | {"status": "ok", "text": "1", "model": "reader.onnx", "boxes": "[]"}
    with Output(out) as written:
        written.write_chunk([row | {"path": f"p{i}.png"} for i in range(3)])
        written.finish()
    out.write_bytes(b"\xef\xbb\xbf" + out.read_bytes() + b"\n")
    assert sorted(Output(out).done("reader.onnx", "read")) == ["p0.png", "p1.png", "p2.png"]


def test_a_line_of_json_lines_that_is_no_json_is_named_by_its_number_in_the_file(tmp_path):
    out = tmp_path / "broken.jsonl"
    row = dict.fromkeys(COLUMNS) | {"path": "p.png", "status": "ok", "text": "1", "model": "reader.onnx", "boxes": "[]"}
    out.write_text(json.dumps(row) + "\n\n" + "{not json\n")
    with pytest.raises(OutputError, match="line 3 is not JSON"):
        Output(out).done("reader.onnx", "read")


def test_a_reader_that_goes_away_ends_the_command_quietly_with_exit_code_1(tmp_path, pictures):
    """`digits predict pics | head -1`, made certain: the pipe's reading end is closed before the first answer."""
    reading, writing = os.pipe()
    os.close(reading)
    try:
        result = subprocess.run(
            [DIGITS, "predict", str(pictures[0].parent)],
            cwd=tmp_path,
            stdout=writing,
            stderr=subprocess.PIPE,
            timeout=300,
        )
    finally:
        os.close(writing)
    assert result.returncode == 1 and result.stderr == b""  # as cli.md and batch.md say


def test_parts_planted_as_a_link_after_the_output_opened_are_refused_at_the_first_chunk(tmp_path):
    out, elsewhere = tmp_path / "results.csv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    output = Output(out)
    (tmp_path / ".results.csv.parts").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="is not a folder of its own"):
        output.write_chunk([dict.fromkeys(COLUMNS) | {"path": "a.png", "status": "error"}])
    output.close()
    assert not list(elsewhere.iterdir())


def test_an_output_name_too_long_for_its_parts_is_one_sentence_and_leaves_no_lock(tmp_path):
    name = (
        "r" * (255 - len(".") - len(".lock") - len(".csv")) + ".csv"
    )  # its lock fits the file system, its parts do not
    with pytest.raises(OutputError, match="cannot be used"):
        Output(tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_a_parquet_value_longer_than_any_digits_writes_is_refused(tmp_path, monkeypatch):
    """A footer can understate a row group: each value is checked as its batch is read."""
    import pyarrow
    import pyarrow.parquet

    from digits.batch import output

    monkeypatch.setattr(output, "_LONGEST_CELL", 1000)
    out = tmp_path / "long.parquet"
    row = dict.fromkeys(COLUMNS) | {"path": "a" * 2000, "status": "error", "model": "reader.onnx"}
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist([row], output._pyarrow()[2]), out)
    with pytest.raises(OutputError, match="a value is longer than any digits writes"):
        Output(out).done("reader.onnx", "predict")


def test_a_parquet_output_of_pages_with_many_digits_resumes(tmp_path, monkeypatch):
    """Rows whose boxes are long (a page of hundreds of digits) go in row groups small enough to be read back."""
    from digits.batch import output

    monkeypatch.setattr(output, "_LONGEST_LINE", 2**20)  # a group of 1 MiB at most, as of 64 MiB in use
    monkeypatch.setattr(output, "_PARQUET_GROUP_TEXT", 2**19)
    out = tmp_path / "pages.parquet"
    boxes = json.dumps([{"line": [[i, i, i + 9, i + 9] for i in range(8_000)]}])  # 100 KB, as `read` writes
    row = dict.fromkeys(COLUMNS) | {"status": "ok", "text": "1", "model": "reader.onnx", "boxes": boxes}
    with Output(out) as written:
        written.write_chunk([row | {"path": f"page{i}.png"} for i in range(64)])  # 6.4 MB: 64 KiB a row and more
        written.finish()
    assert len(Output(out).done("reader.onnx", "read")) == 64


def test_a_part_numbered_the_last_there_is_is_refused_before_any_picture(tmp_path):
    parts = tmp_path / ".r.csv.parts"
    parts.mkdir(mode=0o700)
    (parts / "999999999.csv").write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(OutputError, match="holds a part numbered 999999999, the last there is; move it away"):
        Output(tmp_path / "r.csv")
    assert not list(tmp_path.glob(".r.csv.lock"))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_an_output_whose_row_names_no_model_is_refused_in_one_sentence(tmp_path, suffix):
    """Every row digits writes names its model; one edited to name none went to the resume's model check as None."""
    out = tmp_path / f"edited{suffix}"
    row = dict.fromkeys(COLUMNS) | {"path": "p.png", "status": "ok", "text": "1", "model": None, "boxes": "[]"}
    with Output(out) as written:
        written.write_chunk([row])
        written.finish()
    with pytest.raises(OutputError, match=r"not a batch output .*\(row 1: it has no model\)"):
        Output(out).done("reader.onnx", "read")

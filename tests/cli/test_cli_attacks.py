"""The CLI's output against hostile names and closed streams; `--explain` against a protected file.

Before: a file name with a newline forged a result line, a terminal escape
in a name reached the terminal, `digits read x.png >&-` ended in a
traceback, and `--explain` replaced a read-only file.
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from PIL import Image, ImageDraw

from digits.atomic import WriteError, write_bytes
from digits.cli.terminal import one_line, shown
from helpers import DIGITS, assert_one_line_error, run_cli


def digit_picture(path) -> None:
    image = Image.new("L", (100, 100), 255)
    ImageDraw.Draw(image).line([(50, 10), (50, 90)], fill=0, width=8)
    image.save(path, format="PNG")


def test_names_that_print_safely_are_left_alone_and_others_escaped():
    assert shown("photos/été 7.png") == "photos/été 7.png"
    assert shown("a\nb.png") == "'a\\nb.png'"
    assert shown("x\x1b[2J.png") == "'x\\x1b[2J.png'"
    assert shown("\u202egnp.exe") == "'\\u202egnp.exe'"  # a right-to-left override
    assert shown(os.fsdecode(b"\xff.png")) == "'\\udcff.png'"  # undecodable bytes, which print cannot encode
    assert one_line("error in a\nb.png: bad") == "error in a\\nb.png: bad"


def test_a_name_with_a_newline_cannot_forge_a_result_line(tmp_path):
    name = "x.png\nforged.png: 7 (99.9%)"
    digit_picture(tmp_path / name)
    result = run_cli("predict", name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith("'x.png\\nforged.png: 7 (99.9%)': ")


def test_a_terminal_escape_in_a_name_never_reaches_the_terminal(tmp_path):
    name = "\x1b]0;owned\x07\x1b[2Jnotes.png"
    (tmp_path / name).write_text("not a picture")
    result = run_cli("read", name, cwd=tmp_path)
    assert_one_line_error(result, "\\x1b[2Jnotes.png")
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr


def test_a_name_the_output_encoding_cannot_hold_is_written_escaped_not_a_crash(tmp_path, mnist):
    Image.fromarray(255 - mnist[1][0][0]).save(tmp_path / "é.png")
    result = run_cli("predict", "é.png", cwd=tmp_path, env=os.environ | {"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("\\xe9.png: 7 ")


def test_a_run_folders_name_is_escaped_in_the_lines_of_evaluate_and_export(tiny_run, tmp_path):
    """Those result lines printed run folders raw; `runs` and `compare` already escaped them."""
    import shutil

    pytest.importorskip("tensorflow", reason="evaluate and export need the train extra")
    run = tmp_path / "esc\x1b[31mRED\x1b]0;TITLE\x07\nforged"
    shutil.copytree(tiny_run, run, symlinks=True)
    for command in (["evaluate", str(run)], ["export", str(run)]):
        result = run_cli(*command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout, command
        assert all(line.startswith(("'", "  ")) for line in result.stdout.splitlines()), result.stdout


def test_a_table_on_a_terminal_keeps_its_styling_and_escapes_names(capsys, monkeypatch):
    """echo's last guard escaped rich's own bold headers: `digits runs` printed `\\x1b[1m` on a terminal."""
    import sys

    from digits.cli.tables import print_table

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    print_table([{"name": "a\x1b[2Jb"}], [("name", "run")])
    out = capsys.readouterr().out
    assert "\x1b[1m" in out and "\\x1b[1m" not in out  # the header's bold, as the terminal's escape
    assert "a\x1b[2Jb" not in out and "'a\\x1b[2Jb'" in out  # the name, escaped by shown()


def test_echo_escapes_control_characters_but_keeps_line_breaks(capsys):
    from digits.cli.terminal import echo

    echo("first\x1b[2J line\nsecond\tline")
    assert capsys.readouterr().out == "first\\x1b[2J line\nsecond\\tline\n"


def test_with_stdout_closed_the_command_ends_without_a_traceback(tmp_path):
    digit_picture(tmp_path / "one.png")
    result = subprocess.run(["sh", "-c", '"$0" read one.png >&-', DIGITS], cwd=tmp_path, capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")


def test_with_stderr_closed_an_error_does_not_land_on_stdout(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    result = subprocess.run(
        ["sh", "-c", '"$0" read notes.png 2>&-', DIGITS], cwd=tmp_path, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout) == (2, "")


def test_explain_never_replaces_a_read_only_file(tmp_path):
    digit_picture(tmp_path / "one.png")
    protected = tmp_path / "steps.png"
    protected.write_bytes(b"kept")
    protected.chmod(0o444)
    result = run_cli("predict", "one.png", "--explain", "steps.png", cwd=tmp_path)
    assert_one_line_error(result, "steps.png", "read-only")
    assert protected.read_bytes() == b"kept" and stat.S_IMODE(protected.stat().st_mode) == 0o444


@pytest.mark.parametrize("follow_symlinks", [True, False])
def test_an_atomic_write_refuses_a_read_only_file(tmp_path, follow_symlinks):
    protected = tmp_path / "kept.txt"
    protected.write_bytes(b"kept")
    protected.chmod(0o444)
    with pytest.raises(WriteError, match="read-only"):
        write_bytes(protected, b"new", follow_symlinks=follow_symlinks)
    assert protected.read_bytes() == b"kept"

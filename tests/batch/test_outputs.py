"""--out: CSV, JSON Lines and Parquet read back; resume after a kill, a bad file, a changed file."""

import contextlib
import csv
import json
import os
import shutil
import signal
import sys
import time

import onnx
import pytest

from digits.batch import COLUMNS, Output, OutputError
from digits.batch.output import KILL_AFTER_CHUNK
from helpers import assert_one_line_error, run_cli


def read_back(path):
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import pyarrow.parquet

    return pyarrow.parquet.read_table(path).to_pylist()


def answers(rows):
    """What a row says about its picture, whatever the format (CSV holds strings)."""
    return [(str(r["path"]), r["status"], str(r["text"]), str(r["confidence"])[:6]) for r in rows]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_each_format_reads_back_in_input_order(tmp_path, pictures, suffix):
    out = tmp_path / f"results{suffix}"
    result = run_cli("read", str(pictures[0].parent), "--out", str(out), "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{out}: 10 pictures read"
    rows = read_back(out)
    assert list(rows[0]) == list(COLUMNS)
    assert [r["path"] for r in rows] == [str(p) for p in pictures]
    assert {r["status"] for r in rows} <= {"ok", "unsure", "no digits found"} and all(
        r["model"].startswith("reader.onnx sha256:") and " threshold 0.5 temperature " in r["model"] for r in rows
    )
    assert not list(tmp_path.glob(".results*.parts")), "the parts are merged and removed"


def test_predict_rows_hold_the_digit(tmp_path, pictures, mnist):
    out = tmp_path / "digits.jsonl"
    assert run_cli("predict", *map(str, pictures), "--out", str(out), cwd=tmp_path).returncode == 0
    rows = read_back(out)
    labels = mnist[1][1][:10]
    assert sum(r["digit"] == label for r, label in zip(rows, labels, strict=True)) >= 9
    assert all(json.loads(r["boxes"])[0][2] > 0 for r in rows)


def test_a_bad_file_whose_name_is_not_utf8_is_an_escaped_error_row_in_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    bad = tmp_path / os.fsdecode(b"x\xe9.png")
    bad.write_text("not a picture")
    out = tmp_path / "names.parquet"
    result = run_cli("predict", str(bad), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (row,) = read_back(out)
    assert row["path"] == str(tmp_path / "x\\xe9.png") and row["status"] == "error"
    assert "x\\xe9.png" in row["error"] and "not an image" in row["error"]


def test_a_picture_whose_name_is_not_utf8_is_not_read_again_on_resume_in_parquet(tmp_path, pictures):
    pytest.importorskip("pyarrow")
    odd = pictures[0].rename(pictures[0].with_name(os.fsdecode(b"y\xe9.png")))
    out = tmp_path / "names.parquet"
    assert run_cli("predict", str(odd), "--out", str(out), cwd=tmp_path).returncode == 0
    again = run_cli("predict", str(odd), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0 and "0 pictures read, 1 already there" in again.stdout, again.stdout
    assert len(read_back(out)) == 1


def test_a_name_that_is_not_utf8_and_one_spelling_its_escape_are_two_rows_in_parquet(tmp_path, pictures):
    pytest.importorskip("pyarrow")
    folder = tmp_path / "names"
    folder.mkdir()
    raw = folder / os.fsdecode(b"b\xff.png")
    spelled = folder / "b\\xff.png"  # the four characters backslash, x, f, f
    raw.write_bytes(pictures[0].read_bytes())
    spelled.write_bytes(pictures[1].read_bytes())
    out = tmp_path / "names.parquet"
    assert run_cli("predict", str(folder), "--out", str(out), cwd=tmp_path).returncode == 0
    paths = sorted(row["path"] for row in read_back(out))
    assert paths == sorted([str(folder / "b\\xff.png"), str(folder / "b\\\\xff.png")])
    again = run_cli("predict", str(folder), "--out", str(out), cwd=tmp_path)
    assert "0 pictures read, 2 already there" in again.stdout, again.stdout
    assert len(read_back(out)) == 2


def test_a_lock_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path, pictures):
    os.mkfifo(tmp_path / ".results.csv.lock")
    result = run_cli("predict", str(pictures[0]), "--out", str(tmp_path / "results.csv"), cwd=tmp_path, timeout=120)
    assert_one_line_error(result, "is not a plain file")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_an_output_without_line_breaks_is_refused_a_line_at_a_time(tmp_path, pictures, suffix, monkeypatch):
    from digits.batch import output

    monkeypatch.setattr(output, "_LONGEST_LINE", 1000)
    out = tmp_path / f"long{suffix}"
    out.write_text("x" * 5000)
    with pytest.raises(OutputError, match="a line is longer than any row digits writes"):
        Output(out).done("model", "predict")


def test_parts_sit_beside_the_real_file_whatever_name_reaches_it(tmp_path, pictures):
    real = tmp_path / "real.csv"
    real.write_text("")
    (tmp_path / "link.csv").symlink_to(real)
    output = Output(tmp_path / "link.csv")
    assert output.parts == tmp_path / ".real.csv.parts"
    output.close()


def test_a_second_command_on_the_same_output_is_refused_while_the_first_writes_it(tmp_path, pictures):
    out = tmp_path / "results.csv"
    first = Output(out)  # holds the output's lock, as a command does while it reads
    second = run_cli("predict", str(pictures[0]), "--out", str(out), cwd=tmp_path)
    assert_one_line_error(second, f"{out}: another command is writing it now")
    assert not out.exists()
    first.close()
    assert run_cli("predict", str(pictures[0]), "--out", str(out), cwd=tmp_path).returncode == 0
    assert len(read_back(out)) == 1 and not list(tmp_path.glob(".results.csv.*")), "no lock or parts left"


def test_an_output_is_locked_through_a_link_too_and_a_closed_one_is_not_written(tmp_path, pictures):
    from digits.batch import job_for, write

    out = tmp_path / "results.csv"
    (tmp_path / "link.csv").symlink_to(out)
    with Output(out) as first, pytest.raises(OutputError, match="another command is writing it now"):
        Output(tmp_path / "link.csv")
    assert first.closed and not list(tmp_path.glob(".results.csv.*"))
    with pytest.raises(OutputError, match="this Output is closed"):
        write([str(pictures[0])], first, job_for("predict"))
    dropped = Output(out)
    del dropped  # dropped unclosed, an Output lets go of its lock as well, and removes its lock file
    assert not list(tmp_path.glob(".results.csv.*"))
    Output(out).close()


def test_a_forked_child_leaving_does_not_remove_the_lock_its_parent_holds(tmp_path):
    """The finalizer that removes an unclosed Output's lock file also runs when a forked child exits."""
    out = tmp_path / "results.csv"
    with Output(out) as output:
        child = os.fork()
        if child == 0:  # the child runs the finalizer it inherited, as its interpreter's exit would
            output._release()
            os._exit(0)
        os.waitpid(child, 0)
        assert (tmp_path / ".results.csv.lock").exists()
        with pytest.raises(OutputError, match="another command is writing it now"):
            Output(out)


def test_a_pool_stopped_mid_run_ends_its_workers_at_once(tmp_path, pictures):
    """Ctrl-C, SIGTERM or a failing caller: the workers are ended, not waited for (a second Ctrl-C hung that wait)."""
    import multiprocessing

    from digits.batch import job_for, write

    class Stop(Exception):
        pass

    def stop(results, rows):
        raise Stop

    with pytest.raises(Stop):
        write([str(p) for p in pictures] * 8, None, job_for("read"), workers=2, chunk_size=1, on_chunk=stop)
    assert not multiprocessing.active_children()


def test_kill_then_resume_gives_every_picture_once(tmp_path, pictures):
    folder = str(pictures[0].parent)
    whole = tmp_path / "whole.csv"
    assert run_cli("read", folder, "--out", str(whole), "--workers", "1", cwd=tmp_path).returncode == 0
    out = tmp_path / "resumed.csv"
    killed = run_cli(
        "read", folder, "--out", str(out), "--workers", "1", cwd=tmp_path, env=os.environ | {KILL_AFTER_CHUNK: "1"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists() and len(list((tmp_path / ".resumed.csv.parts").iterdir())) == 2
    again = run_cli("read", folder, "--out", str(out), "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith("pictures read, 6 already there")  # chunks of 3: two were written
    assert answers(read_back(out)) == answers(read_back(whole))


def test_workers_end_with_a_killed_command(tmp_path, pictures):
    """SIGKILL after the first chunk with --workers 2: no worker outlives the command, none writes to the terminal
    after it (multiprocessing's resource tracker warned about the pool's semaphores), and the rest resumes."""
    import subprocess

    import psutil

    from helpers import DIGITS

    out = tmp_path / "results.csv"
    command = [DIGITS, "read", str(pictures[0].parent), "--out", str(out), "--workers", "2"]
    stderr = (tmp_path / "stderr.txt").open("w")
    run = subprocess.Popen(
        command, cwd=tmp_path, env=os.environ | {KILL_AFTER_CHUNK: "0"}, stdout=subprocess.DEVNULL, stderr=stderr
    )
    workers = set()
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(run.pid)
        while run.poll() is None:  # the workers live from before the first chunk until the command dies
            workers |= set(parent.children(recursive=True))
            time.sleep(0.05)
    assert run.wait() == -signal.SIGKILL and workers
    _, alive = psutil.wait_procs(workers, timeout=120)
    assert not alive, "every worker exits once its command is gone"
    stderr.close()
    assert (tmp_path / "stderr.txt").read_text() == ""
    again = run_cli("read", str(pictures[0].parent), "--out", str(out), "--workers", "2", cwd=tmp_path)
    assert again.returncode == 0 and len(read_back(out)) == 10


@pytest.mark.parametrize("stop, code", [("INT", 130), ("TERM", 143)])
def test_ctrl_c_or_sigterm_with_workers_ends_them_at_once_and_keeps_what_was_written(tmp_path, pictures, stop, code):
    """A signal after the first chunk: the command exits at once (it used to wait for the chunks in flight,
    and a second Ctrl-C in that wait hung it), no worker outlives it, and the next run reads the rest."""
    import subprocess

    import psutil

    from helpers import DIGITS

    out = tmp_path / "results.csv"
    command = [DIGITS, "read", str(pictures[0].parent), "--out", str(out), "--workers", "2"]
    run = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=os.environ | {KILL_AFTER_CHUNK: f"0:{stop}"},
        stdout=subprocess.DEVNULL,
        # As from a terminal: a test run in the background (`make test &`) hands its children SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    workers = set()
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(run.pid)
        while run.poll() is None:
            workers |= set(parent.children(recursive=True))
            time.sleep(0.05)
    assert run.wait(timeout=120) == code
    assert workers, "the command's workers were never seen"
    _, alive = psutil.wait_procs(workers, timeout=120)  # the resource tracker ends when it sees its command gone
    assert not alive
    assert len(list((tmp_path / ".results.csv.parts").iterdir())) >= 1
    again = run_cli("read", str(pictures[0].parent), "--out", str(out), "--workers", "2", cwd=tmp_path)
    assert again.returncode == 0 and len(read_back(out)) == 10


def test_bad_file_in_the_middle_is_an_error_row(tmp_path, pictures, mnist, draw):
    pictures[4].write_text("not a picture")
    out = tmp_path / "results.csv"
    result = run_cli("read", str(pictures[0].parent), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.strip() == f"{out}: 9 pictures read; 1 could not be read (see their error column)"
    rows = read_back(out)
    assert len(rows) == 10 and rows[4]["status"] == "error" and "not an image" in rows[4]["error"]
    assert all(r["status"] != "error" for i, r in enumerate(rows) if i != 4)
    again = run_cli("read", str(pictures[0].parent), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 2, "the failure still counts"
    assert (
        again.stdout.strip() == f"{out}: 0 pictures read, 9 already there; 1 could not be read (see their error column)"
    )
    draw(mnist[1][0][0], pictures[4], 100)  # the file is mended: the next run reads it, and its row replaces the error
    mended = run_cli("read", str(pictures[0].parent), "--out", str(out), cwd=tmp_path)
    assert mended.returncode == 0 and mended.stdout.strip() == f"{out}: 1 picture read, 9 already there"
    rows = read_back(out)
    assert len(rows) == 10 and all(r["status"] != "error" for r in rows)


def test_a_bug_in_digits_is_exit_code_1_and_its_pictures_are_retried(tmp_path, pictures, monkeypatch):
    """A picture that meets a bug (not a fault of its file) is a row with its error, the command exits 1, as every
    bug in digits does, and the next run reads it again."""
    from typer.testing import CliRunner

    from digits.cli import app

    def broken(image):
        raise RuntimeError("a bug")

    monkeypatch.setattr("digits.batch.work.segment_page", broken)
    out = tmp_path / "results.csv"
    folder = str(pictures[0].parent)
    result = CliRunner().invoke(app, ["read", folder, "--out", str(out), "--workers", "1"])
    assert result.exit_code == 1, result.output
    assert "10 pictures met a bug in digits" in result.output
    rows = read_back(out)
    assert all(
        r["status"] == "error" and "unexpected RuntimeError while reading it (a bug)" in r["error"] for r in rows
    )
    monkeypatch.undo()
    again = CliRunner().invoke(app, ["read", folder, "--out", str(out), "--workers", "1"])
    assert again.exit_code == 0 and f"{out}: 10 pictures read" in again.output
    assert all(r["status"] != "error" for r in read_back(out))


def test_changed_file_is_read_again(tmp_path, pictures, mnist, draw):
    out = tmp_path / "results.jsonl"
    folder = str(pictures[0].parent)
    assert run_cli("predict", folder, "--out", str(out), cwd=tmp_path).returncode == 0
    before = {r["path"]: r for r in read_back(out)}
    (x_test, y_test) = mnist[1]
    other = next(i for i in range(10, 100) if y_test[i] != before[str(pictures[3])]["digit"])
    draw(x_test[other], pictures[3], 100)
    again = run_cli("predict", folder, "--out", str(out), cwd=tmp_path)
    assert again.stdout.strip() == f"{out}: 1 picture read, 9 already there"
    after = {r["path"]: r for r in read_back(out)}
    assert len(read_back(out)) == 10 and after[str(pictures[3])]["digit"] == y_test[other]
    assert after[str(pictures[3])]["size"] == pictures[3].stat().st_size


def test_output_must_be_a_known_format(tmp_path, pictures):
    assert_one_line_error(
        run_cli("read", str(pictures[0]), "--out", "x.txt", cwd=tmp_path),
        "x.txt: the output must end in .csv, .jsonl or .parquet",
    )
    assert_one_line_error(
        run_cli("read", str(pictures[0]), "--out", ".csv", cwd=tmp_path),
        ".csv: a name is needed before the suffix, such as results.csv",
    )


def test_output_in_a_missing_folder_is_one_line(tmp_path, pictures):
    assert_one_line_error(
        run_cli("read", str(pictures[0]), "--out", "no/such/x.csv", cwd=tmp_path), "the folder no/such does not exist"
    )


@pytest.mark.parametrize("name", ["x.csv/", "x.csv/.", "x.csv/.."])
def test_an_output_ending_in_a_slash_names_a_folder_and_writes_nothing(tmp_path, pictures, name):
    assert_one_line_error(run_cli("read", str(pictures[0]), "--out", name, cwd=tmp_path), f"{name}: names a folder")
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("name", ["results", "results.csv"])
def test_an_output_that_is_a_folder_is_said_to_be_one(tmp_path, pictures, name):
    (tmp_path / name).mkdir()
    assert_one_line_error(run_cli("read", str(pictures[0]), "--out", name, cwd=tmp_path), f"{name}: names a folder")


def test_json_with_an_output_file_is_refused(tmp_path, pictures):
    result = run_cli("read", str(pictures[0]), "--json", "--out", "r.csv", cwd=tmp_path)
    assert_one_line_error(result, "--json prints answers, --out writes them")
    assert not (tmp_path / "r.csv").exists()


def test_workers_with_a_dask_cluster_is_refused_before_the_cluster_is_asked(tmp_path, pictures):
    """Which would win was said nowhere: the cluster's workers read, so a count of local ones is a mistake."""
    result = run_cli("read", str(pictures[0]), "--workers", "2", "--dask", "tcp://127.0.0.1:9", cwd=tmp_path)
    assert_one_line_error(result, "--workers sets this machine's processes, --dask reads on the cluster's workers")


def test_an_empty_output_name_is_refused(tmp_path, pictures):
    assert_one_line_error(run_cli("read", str(pictures[0]), "--out", "", cwd=tmp_path), "the output's name is empty")


def test_parquet_without_pyarrow_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(OutputError, match=r"^writing Parquet needs pyarrow: pip install 'digits\[batch\]'"):
        Output(tmp_path / "x.parquet")


def test_names_with_line_breaks_and_escapes_are_printed_escaped(tmp_path, pictures):
    odd = pictures[0].with_name("two\nlines\x1b[31m.png")
    pictures[0].rename(odd)
    result = run_cli("read", str(odd), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "\x1b" not in result.stdout
    assert "two\\nlines\\x1b[31m.png" in result.stdout


def test_a_file_that_is_not_an_output_is_never_replaced(tmp_path, pictures):
    """A one-line text file has a "header" and no rows: it is still not ours to overwrite."""
    notes = tmp_path / "notes.csv"
    notes.write_text("name,age\n")
    assert_one_line_error(run_cli("predict", str(pictures[0]), "--out", str(notes), cwd=tmp_path), "its header is not")
    assert notes.read_text() == "name,age\n"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_an_output_of_the_wrong_types_fails_before_any_picture_is_read(tmp_path, pictures, suffix):
    out = tmp_path / f"mine{suffix}"
    row = dict.fromkeys(COLUMNS) | {"path": 1, "status": "ok"}  # a number where a path belongs
    if suffix == ".jsonl":
        out.write_text(json.dumps(row) + "\n")
    else:
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.Table.from_pylist([row]), out)
    before = out.read_bytes()
    assert_one_line_error(run_cli("predict", str(pictures[0]), "--out", str(out), cwd=tmp_path), "not a")
    assert out.read_bytes() == before and not list(tmp_path.glob(".mine*.parts"))


def test_resuming_with_another_command_or_model_is_refused(tmp_path, pictures, tiny_run):
    out = tmp_path / "answers.csv"
    assert run_cli("predict", str(pictures[0]), "--out", str(out), cwd=tmp_path).returncode == 0
    before = out.read_bytes()
    other_command = run_cli("read", str(pictures[0]), str(pictures[1]), "--out", str(out), cwd=tmp_path)
    assert_one_line_error(other_command, "holds answers of `digits predict`")
    other_model = run_cli("predict", str(pictures[1]), "--out", str(out), "--model", str(tiny_run), cwd=tmp_path)
    assert_one_line_error(other_model, 'holds answers of the model "reader.onnx sha256:')
    other_threshold = run_cli("predict", str(pictures[1]), "--out", str(out), "--threshold", "0.9", cwd=tmp_path)
    assert_one_line_error(other_threshold, "threshold 0.5 temperature")
    # Written exactly: thresholds that differ past six digits are two thresholds.
    close = run_cli("predict", str(pictures[1]), "--out", str(out), "--threshold", "0.5000001", cwd=tmp_path)
    assert_one_line_error(close, "threshold 0.5 temperature")
    assert out.read_bytes() == before


def test_two_runs_of_one_folder_name_are_told_apart_by_their_model(tmp_path, pictures, tiny_run):
    """The rows name a run's model by its folder and its SHA-256: another run in a folder of the same name
    (or a shipped model replaced by an upgrade) does not resume the output."""
    out = tmp_path / "twins.csv"
    assert (
        run_cli("predict", str(pictures[0]), "--out", str(out), "--model", str(tiny_run), cwd=tmp_path).returncode == 0
    )
    twin = tmp_path / "elsewhere" / tiny_run.name
    shutil.copytree(tiny_run, twin)
    model = onnx.load(twin / "model.onnx")
    model.doc_string = "another model"
    onnx.save(model, twin / "model.onnx")
    before = out.read_bytes()
    resumed = run_cli("predict", str(pictures[1]), "--out", str(out), "--model", str(twin), cwd=tmp_path)
    assert_one_line_error(resumed, f'holds answers of the model "{tiny_run.name}/model.onnx sha256:')
    assert out.read_bytes() == before


def test_one_run_named_through_a_link_or_its_model_file_resumes_its_own_output(tmp_path, pictures, tiny_run):
    """`--model runs/latest` (a link to the run) was refused on an output `--model runs/<run>` wrote, though the
    SHA-256 was the same: the rows' model names the file for people, the bytes say which model answered."""
    out = tmp_path / "same.csv"
    base = ["predict", "--out", str(out), "--threshold", "0.5"]
    assert run_cli(*base, str(pictures[0]), "--model", str(tiny_run), cwd=tmp_path).returncode == 0
    (tmp_path / "latest").symlink_to(tiny_run)
    for model in (tmp_path / "latest", tiny_run / "model.onnx"):
        resumed = run_cli(*base, str(pictures[0]), str(pictures[1]), "--model", str(model), cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
    assert sorted(os.path.basename(row["path"]) for row in read_back(out)) == ["00.png", "01.png"]


def test_a_run_is_named_by_its_folder_in_the_rows(tmp_path, pictures, tiny_run):
    """Every run's model file is model.onnx: the rows name the run, so two runs' answers are never mixed."""
    out = tmp_path / "run.jsonl"
    assert (
        run_cli("predict", str(pictures[0]), "--out", str(out), "--model", str(tiny_run), cwd=tmp_path).returncode == 0
    )
    assert read_back(out)[0]["model"].startswith(f"{tiny_run.name}/model.onnx sha256:")


@pytest.mark.parametrize(
    "found, left",
    [
        # atomic_path's temporary file, empty when a kill came before its rename: not read back, and removed.
        (".000000000.jsonl.abcdefgh.tmp.jsonl", []),
        # A user's file in a folder that bears the parts' name: only digits' own files go.
        ("notes.txt", ["notes.txt"]),
    ],
)
def test_the_end_of_a_run_removes_its_own_files_from_the_parts_folder(tmp_path, pictures, found, left):
    out = tmp_path / "e.jsonl"
    parts = tmp_path / ".e.jsonl.parts"
    parts.mkdir()
    (parts / found).write_text("")
    result = run_cli("predict", str(pictures[0]), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_back(out)) == 1
    assert (sorted(p.name for p in parts.iterdir()) if parts.exists() else []) == left


def test_the_rows_name_the_model_that_was_loaded_even_if_its_file_is_replaced_later(tmp_path, tiny_run):
    """The SHA-256 in the rows is of the bytes the reader loaded, not of a second read of the file."""
    import hashlib

    from digits.batch import job_for

    model = tmp_path / "mine.onnx"
    shutil.copy(tiny_run / "model.onnx", model)
    loaded = hashlib.sha256(model.read_bytes()).hexdigest()[:12]
    job = job_for("predict", model)
    replaced = onnx.load(model)
    replaced.doc_string = "another model"
    onnx.save(replaced, model)
    assert job.model_name.startswith(f"mine.onnx sha256:{loaded} threshold 0.5 temperature ")


def test_a_run_after_a_kill_in_the_last_cleanup_writes_its_parts_after_those_left(tmp_path, pictures, monkeypatch):
    """`finish` replaced the output and had removed two of four parts when it was killed: the next run's part
    comes after the two left, so a picture read again there is its last row (numbered by their count, it had
    replaced one of them, and sorted before the other's older row)."""
    from pathlib import Path

    folder, out = pictures[0].parent, tmp_path / "r.csv"
    late = folder / "late.png"  # missing at first: its row is an error
    names = [str(p) for p in pictures] + [str(late)]
    killed = run_cli(
        "read", *names, "--out", str(out), "--workers", "1", cwd=tmp_path, env=os.environ | {KILL_AFTER_CHUNK: "3"}
    )
    assert killed.returncode == -signal.SIGKILL
    parts = tmp_path / ".r.csv.parts"
    assert len(list(parts.iterdir())) == 4  # chunks of 3

    removed, unlink = [], Path.unlink

    def killed_after_two(self, *args, **kwargs):
        if self.parent == parts and len(removed) == 2:
            raise SystemExit("killed")
        removed.append(self)
        unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", killed_after_two)
    with pytest.raises(SystemExit), Output(out) as output:
        output.finish()
    monkeypatch.undo()
    assert sorted(p.name for p in parts.iterdir()) == ["000000002.csv", "000000003.csv"]

    shutil.copy(pictures[3], late)
    again = run_cli("read", *names, "--out", str(out), "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith("1 picture read, 10 already there")
    rows = read_back(out)
    assert [r["path"] for r in rows].count(str(late)) == 1
    assert next(r for r in rows if r["path"] == str(late))["status"] != "error"

"""Folders, globs, @lists and stdin become one ordered list of picture paths, each once."""

import io
import json
import os
import socket
import subprocess
import sys

import pytest

from digits.batch import InputError, expand
from helpers import DIGITS, assert_one_line_error, run_cli


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ["a/2.png", "a/1.JPG", "a/notes.txt", "a/sub/3.png", "a/sub/deeper/4.webp", "b.png"]:
        os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
        open(name, "wb").close()
    return tmp_path


def test_folder_lists_its_pictures_by_name(tree):
    assert expand(["a"]) == ["a/1.JPG", "a/2.png"]


def test_a_folder_holds_every_suffix_pillow_gives_a_readable_format(tmp_path):
    """`.jfif` and `.apng` were left out of a folder's pictures by a hand-kept list, though they load."""
    for name in ["a.jfif", "b.apng", "c.pgm", "d.tga", "e.psd", "f.txt"]:
        (tmp_path / name).touch()
    assert [os.path.basename(p) for p in expand([str(tmp_path)])] == ["a.jfif", "b.apng", "c.pgm", "d.tga"]


def test_recursive_folder_goes_depth_first(tree):
    assert expand(["a"], recursive=True) == ["a/1.JPG", "a/2.png", "a/sub/3.png", "a/sub/deeper/4.webp"]


def test_a_link_that_loops_or_runs_through_a_file_is_listed_to_be_read_not_fatal(tree):
    """Asking whether it was a folder raised, and one such link in a folder stopped the whole batch unread."""
    os.symlink("loop.png", "a/loop.png")
    os.symlink("2.png/x", "a/through.png")
    assert expand(["a"], recursive=True) == [
        "a/1.JPG",
        "a/2.png",
        "a/loop.png",
        "a/through.png",
        "a/sub/3.png",
        "a/sub/deeper/4.webp",
    ]


def test_a_sub_folder_gone_while_the_tree_is_walked_is_passed_over(tree, monkeypatch):
    """Removed between its parent's listing and its own (8 of 15 runs of an attacker's race), it stopped the batch;
    the folder named on the command line, gone, is still one sentence."""
    from digits.batch import inputs

    scandir = os.scandir

    def gone(path):
        if path in ("a/sub", "b"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return scandir(path)

    monkeypatch.setattr(inputs.os, "scandir", gone)
    assert expand(["a"], recursive=True) == ["a/1.JPG", "a/2.png"]
    os.remove("b.png")
    os.mkdir("b")
    with pytest.raises(InputError, match="b: the folder cannot be listed"):
        expand(["b"], recursive=True)


def test_glob_and_double_star(tree):
    assert expand(["a/*.png"]) == ["a/2.png"]
    assert expand(["a/**/*.png"]) == ["a/2.png", "a/sub/3.png"]


def test_glob_without_match_is_an_error(tree):
    with pytest.raises(InputError, match="no file matches"):
        expand(["a/*.tiff"])


def test_list_file_and_stdin_each_path_once(tree):
    (tree / "list.txt").write_text("b.png\n\na/2.png\r\nmissing.png\n")
    assert expand(["@list.txt", "b.png", "-"], stdin=io.StringIO("a/sub/3.png\nb.png\n")) == [
        "b.png",
        "a/2.png",
        "missing.png",
        "a/sub/3.png",
    ]


def test_a_list_ends_lines_at_newlines_only_and_drops_a_byte_order_mark(tree):
    (tree / "list.txt").write_bytes(b"\xef\xbb\xbfb.png\r\nname\rwith a carriage return.png\nends in a CR\r\r\n")
    assert expand(["@list.txt"]) == ["b.png", "name\rwith a carriage return.png", "ends in a CR\r"]
    assert expand(["-"], stdin=io.StringIO("\ufeffb.png\n")) == ["b.png"]


@pytest.mark.parametrize("one_path", ["a", b"a", os.path.curdir])
def test_one_path_where_a_list_is_due_is_a_type_error_not_read_letter_by_letter(tree, one_path):
    from pathlib import Path

    from digits import batch

    for call in (
        lambda p: expand(p),
        lambda p: list(batch.read(p)),
        lambda p: batch.write(p, None, batch.job_for("read")),
    ):
        with pytest.raises(TypeError, match="a list of paths"):
            call(one_path)
        with pytest.raises(TypeError, match="a list of paths"):
            call(Path("a"))


def test_missing_list_file_is_one_line(tree):
    assert_one_line_error(run_cli("read", "@nope.txt", cwd=tree), "nope.txt: the list of pictures cannot be read")


def test_plain_names_pass_through(tree):
    """A missing file is not dropped: it becomes its own error row (or line)."""
    assert expand(["nope.png", "b.png"]) == ["nope.png", "b.png"]


def test_stdin_and_folder_on_the_command_line(pictures):
    folder = pictures[0].parent
    listed = run_cli("read", "-", cwd=folder, input="00.png\n01.png\n")
    assert listed.returncode == 0, listed.stderr
    assert [line.split(":")[0] for line in listed.stdout.splitlines()] == ["00.png", "01.png"]
    whole = run_cli("predict", str(folder), "--json", cwd=folder)
    assert whole.returncode == 0 and whole.stderr == "", whole.stderr  # no progress bar off a terminal
    assert len(whole.stdout.splitlines()) == 10


def test_double_star_does_not_follow_links_to_folders(tree):
    """A link loop under `**` is walked once (glob.glob follows it, 40 levels deep or for ever)."""
    os.symlink("..", "a/sub/loop")
    os.symlink(".", "a/self")
    assert expand(["a/**/*.png"]) == ["a/2.png", "a/sub/3.png"]
    assert expand(["./a/*.png"]) == ["./a/2.png"], "the folders before the wildcard stay as typed"


def test_hidden_files_match_only_a_pattern_that_names_them(tree):
    open("a/.hidden.png", "wb").close()
    assert expand(["a/*.png"]) == ["a/2.png"]
    assert expand(["a/.*.png"]) == ["a/.hidden.png"]


@pytest.mark.parametrize(
    "content, fragment",
    [("x" * 5000 + "\n", "line 1 is longer than any path"), ("b.png\nbad\0name.png\n", "line 2 holds a NUL byte")],
)
def test_a_list_that_is_not_paths_is_one_line(tree, content, fragment):
    """/dev/zero as a list is one endless line: it must fail in bounded memory, not grow until killed."""
    (tree / "list.txt").write_text(content)
    with pytest.raises(InputError, match=fragment):
        expand(["@list.txt"])
    assert_one_line_error(run_cli("read", "-", cwd=tree, input=content), fragment)


def test_double_star_at_the_end_or_inside_a_name_matches_as_glob_did(tree):
    assert expand(["a/**"]) == ["a/1.JPG", "a/2.png", "a/notes.txt", "a/sub/3.png", "a/sub/deeper/4.webp"]
    assert expand(["a/**.png"]) == ["a/2.png"], "** within a name is *"
    assert expand(["a/***.png"]) == expand(["a/2*****png"]) == ["a/2.png"], "and so are three or more stars"
    with pytest.raises(InputError, match="no file matches"):
        expand(["a/*/"])  # a pattern ending in / names folders only


def test_workers_never_outnumber_the_cores(monkeypatch):
    from digits.batch import plan

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert plan(3000, 100_000, None)[0] == 2
    assert plan(3000, None, None)[0] == 2 and plan(3000, 1, None)[0] == 1


def test_a_dask_address_without_a_port_fails_at_once(tree):
    pytest.importorskip("distributed")
    from digits.batch import ClusterError, job_for, write

    with pytest.raises(ClusterError, match="garbage is not a scheduler address"):
        write(["b.png"], None, job_for("predict"), dask="garbage")
    with pytest.raises(ClusterError, match="'' is not a scheduler address"):  # not read here instead, without a word
        write(["b.png"], None, job_for("predict"), dask="")
    for port in ("-5", "0", "99999"):  # -5 was passed to the socket, then said to accept and never answer
        with pytest.raises(ClusterError, match=f"port {port} is not one from 1 to 65535"):
            write(["b.png"], None, job_for("predict"), dask=f"tcp://127.0.0.1:{port}")


@pytest.fixture
def server():
    """A loopback server that accepts connections and answers each with `reply` (None: never answers)."""
    import threading

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    held = []

    def start(reply):
        def serve():
            while True:
                try:
                    connection, _ = listening.accept()
                except OSError:
                    return
                held.append(connection)
                if reply is not None:
                    connection.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        return f"tcp://127.0.0.1:{listening.getsockname()[1]}"

    yield start
    listening.close()
    for connection in held:
        connection.close()


def test_a_port_that_never_answers_fails_within_the_deadline(tree, server, monkeypatch):
    pytest.importorskip("distributed")
    from digits.batch import ClusterError, engine, job_for, write

    monkeypatch.setattr(engine, "SCHEDULER_ANSWER_SECONDS", 0.5)
    with pytest.raises(ClusterError, match="gave no answer in"):
        write(["b.png"], None, job_for("predict"), dask=server(None))


@pytest.mark.parametrize("host", ["256.1.1.1", "no-such-host.invalid"])
def test_a_host_no_resolver_knows_is_not_said_to_have_accepted_a_connection(tree, host):
    """It went on to Dask's connection, whose deadline was then said to be a port that accepted and never answered."""
    pytest.importorskip("distributed")
    from digits.batch import ClusterError, job_for, write

    with pytest.raises(ClusterError, match=rf"^cannot reach the Dask scheduler at tcp://{host}:8786 \(.+\)\.$"):
        write(["b.png"], None, job_for("predict"), dask=f"tcp://{host}:8786")


def test_a_port_that_speaks_another_protocol_fails_in_one_sentence(tree, server):
    pytest.importorskip("distributed")
    from digits.batch import ClusterError, job_for, write

    with pytest.raises(ClusterError, match="answers in another protocol"):
        write(["b.png"], None, job_for("predict"), dask=server(b"HTTP/1.1 400 Bad Request\r\n\r\n"))


@pytest.mark.parametrize("address", ["inproc://x", "ws://127.0.0.1:1"])
def test_a_scheme_other_than_tcp_or_tls_is_refused(tree, address):
    pytest.importorskip("distributed")
    from digits.batch import ClusterError, job_for, write

    with pytest.raises(ClusterError, match="over tcp:// or tls://"):
        write(["b.png"], None, job_for("predict"), dask=address)


def test_tls_without_certificates_says_what_to_set(tree):
    pytest.importorskip("distributed")
    from digits.batch import ClusterError, job_for, write

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        with pytest.raises(ClusterError, match="needs Dask's TLS settings"):
            write(["b.png"], None, job_for("predict"), dask=f"tls://127.0.0.1:{listening.getsockname()[1]}")


def test_a_dask_address_where_nothing_listens_fails_at_once(tree):
    pytest.importorskip("distributed")
    from digits.batch import ClusterError, job_for, write

    with socket.socket() as closed:  # a port that was just free: nothing listens on it
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ClusterError, match="nothing listens on that port"):
        write(["b.png"], None, job_for("predict"), dask=f"tcp://127.0.0.1:{port}")


def test_a_list_that_is_a_fifo_with_no_writer_is_empty_not_a_hang(tree):
    os.mkfifo("list.fifo")
    assert expand(["@list.fifo", "b.png"]) == ["b.png"]


def test_a_folder_with_no_pictures_is_named_in_the_error(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not a picture")
    assert_one_line_error(
        run_cli("read", "notes", cwd=tmp_path),
        "no pictures to read in notes (in a folder, pictures are found by their suffix",
    )


def test_an_empty_standard_input_and_an_escaping_name_are_said_plainly(tmp_path):
    (tmp_path / "a\x1b[2Jb").mkdir()
    result = run_cli("read", "-", "a\x1b[2Jb", cwd=tmp_path, input="")
    assert_one_line_error(result, "no pictures to read in the standard input, 'a\\x1b[2Jb' (")
    assert "\x1b" not in result.stderr


def test_an_empty_list_is_said_to_name_no_picture(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    for args, given in ((["-"], "the standard input"), (["@empty.txt"], "@empty.txt")):
        assert_one_line_error(
            run_cli("read", *args, cwd=tmp_path, input=""),
            f"no pictures to read in {given} (a list names pictures one per line, and this one names none).",
        )


def test_a_folder_tree_deeper_than_pythons_recursion_is_walked(tree):
    deep = "deep"
    os.mkdir(deep)
    for _ in range(1100):  # os.makedirs itself recurses, a frame per level
        deep = os.path.join(deep, "d")
        os.mkdir(deep)
    open(os.path.join(deep, "x.png"), "wb").close()
    try:
        assert expand(["deep"], recursive=True) == [os.path.join(deep, "x.png")]
        if sys.version_info >= (3, 12):  # pathlib's `**` walks without recursion since 3.12
            assert expand(["deep/**/*.png"]) == [os.path.join(deep, "x.png")]
        else:
            with pytest.raises(InputError, match="too deep for a glob"):
                expand(["deep/**/*.png"])
    finally:  # from the bottom up: shutil.rmtree, and so pytest's clean-up, recurses a frame per level too
        os.remove(os.path.join(deep, "x.png"))
        while deep:
            os.rmdir(deep)
            deep = os.path.dirname(deep)


def test_a_folder_given_as_a_list_is_one_sentence_and_no_open_descriptor(tree):
    def open_on_the_folder() -> int:  # only these: other threads may open and close their own meanwhile
        folder = os.path.realpath("a")
        return sum(_target(f"/proc/self/fd/{fd}") == folder for fd in os.listdir("/proc/self/fd"))

    with pytest.raises(InputError, match="the list of pictures cannot be read"):
        expand(["@a"])
    assert open_on_the_folder() == 0


def _target(link: str) -> str | None:
    try:
        return os.readlink(link)
    except OSError:  # closed since it was listed
        return None


def test_the_scheduler_probe_works_from_inside_an_event_loop(tree, monkeypatch):
    """A notebook runs in an event loop: asyncio.run there raised, and read as 'another protocol'."""
    pytest.importorskip("distributed")
    import asyncio

    from digits.batch import ClusterError, engine

    monkeypatch.setattr(engine, "SCHEDULER_ANSWER_SECONDS", 0.5)
    with socket.socket() as listening:  # accepts (the kernel does) and never answers: no scheduler
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"tcp://127.0.0.1:{listening.getsockname()[1]}"

        async def inside_a_loop():
            engine._answers_as_scheduler(address)

        with pytest.raises(ClusterError) as refused:
            asyncio.run(inside_a_loop())
    assert "another protocol" not in str(refused.value), str(refused.value)


def test_an_empty_name_is_refused_not_written_as_a_row_no_resume_could_read(tree):
    with pytest.raises(InputError, match="an empty name is no picture"):
        expand(["a/2.png", ""])
    assert_one_line_error(run_cli("read", "", "--out", "out.csv", cwd=tree), "an empty name is no picture")
    assert not (tree / "out.csv").exists()


def test_the_python_api_takes_pathlib_paths_and_refuses_bytes(tree):
    from pathlib import Path

    from digits import batch

    assert expand([Path("a"), Path("b.png")]) == ["a/1.JPG", "a/2.png", "b.png"]
    for call in (lambda: expand([b"b.png"]), lambda: batch.read([b"b.png"])):
        with pytest.raises(TypeError, match="a picture's path is a str or a pathlib.Path, not bytes"):
            call()
    # A picture's data given by mistake is not repeated in the message: it may run to megabytes.
    picture = b"\x89PNG\r\n\x1a\n" + bytes(100_000)
    for call in (lambda: batch.read([picture]), lambda: batch.read(picture), lambda: expand(picture)):
        with pytest.raises(TypeError) as refused:
            call()
        assert len(str(refused.value)) < 200


def test_batch_read_checks_its_model_and_settings_when_called_not_at_the_first_row(tree):
    from digits import batch
    from digits.errors import ModelError

    with pytest.raises(ModelError, match="no such run folder or model file"):
        batch.read(["b.png"], model="nope")  # a generator would have said nothing until iterated
    for settings in ({"workers": 0}, {"workers": -1}, {"chunk_size": 0}):
        with pytest.raises(ValueError, match="a whole number from 1, or None"):
            batch.read(["b.png"], **settings)
    for settings in ({"workers": 1.5}, {"workers": "2"}, {"chunk_size": True}):
        with pytest.raises(TypeError, match="a whole number from 1, or None"):
            batch.read(["b.png"], **settings)
    import numpy as np

    assert [row["path"] for row in batch.read(["b.png"], workers=np.int64(1))] == ["b.png"]  # NumPy's integers too
    with pytest.raises(ValueError, match="chunk_size is 0"):
        batch.bag(["b.png"], chunk_size=0)  # a bag of partitions of 0 computed to no rows, silently
    with pytest.raises(ValueError, match="workers is 0"):
        batch.write(["b.png"], None, batch.job_for("read"), workers=0)


def test_standard_input_takes_names_that_are_not_utf8_under_a_utf8_locale(pictures):
    """As a list file does: the name goes on escaped, and the picture is read (a strict decoder failed the batch)."""
    folder = pictures[0].parent
    os.link(pictures[1], os.fsencode(folder) + b"/\xff.png")
    listed = subprocess.run(
        [DIGITS, "predict", "-", "--json"],
        cwd=folder,
        input=b"\xff.png\n00.png\n",
        capture_output=True,
        env=os.environ | {"PYTHONIOENCODING": "utf-8"},  # stdin's decoder strict, as in an en_US.UTF-8 locale
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["digit"] for line in listed.stdout.splitlines()] == [
        json.loads(line)["digit"]
        for line in run_cli("predict", "01.png", "00.png", "--json", cwd=folder).stdout.splitlines()
    ]


def test_a_glob_of_more_than_two_double_stars_is_refused_not_walked_for_minutes(tree):
    with pytest.raises(InputError, match=r"more than 2 '\*\*'"):
        expand(["a/**/sub/**/deeper/**/*.webp"])
    assert expand(["a/**/deeper/**/*.webp"]) == ["a/sub/deeper/4.webp"]

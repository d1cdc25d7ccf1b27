"""Atomic writes replace only regular files: symlinks are followed, devices, FIFOs and folders refused."""

import os
import stat

import pytest

from digits.atomic import WriteError, write_bytes


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    (tmp_path / "real.txt").write_bytes(b"old")
    (tmp_path / "link.txt").symlink_to("real.txt")
    write_bytes(tmp_path / "link.txt", b"new")
    assert (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "real.txt").read_bytes() == b"new"


def test_a_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "link.txt").symlink_to("made.txt")
    write_bytes(tmp_path / "link.txt", b"new")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "made.txt").read_bytes() == b"new"


def test_a_symlink_loop_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(WriteError, match="cannot write .*a: Too many levels of symbolic links"):
        write_bytes(tmp_path / "a", b"x")


def test_a_fifo_is_refused_and_left_alone(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(WriteError, match="it is a FIFO, not a regular file"):
        write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(WriteError, match="it is a folder, not a regular file"):
        write_bytes(tmp_path / "out.png", b"x")
    assert (tmp_path / "out.png").is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_is_refused_and_left_alone(tmp_path):
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (tmp_path / "to-device").symlink_to(device)
    for path in (device, tmp_path / "to-device"):
        with pytest.raises(WriteError, match="it is a character device, not a regular file"):
            write_bytes(path, b"x")
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file is left"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        write_bytes(tmp_path / "new.txt", b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "kept.txt"
    path.write_bytes(b"old")
    path.chmod(0o640)
    write_bytes(path, b"new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_bytes() == b"new"


def test_a_name_near_the_file_systems_limit_still_gets_its_temporary_twin(tmp_path):
    """The temporary file's name adds a dot, a random part and a suffix: a 250-character name overflowed."""
    for name in ("n" * 246 + ".png", "数字" * 40 + ".png"):  # 250 bytes; 244 bytes in 84 characters
        target = tmp_path / name
        write_bytes(target, b"picture")
        assert target.read_bytes() == b"picture" and [p.name for p in tmp_path.iterdir()] == [target.name]
        target.unlink()


def test_a_folder_that_takes_no_new_file_is_refused_before_writing(tmp_path, monkeypatch):
    """Root may write anywhere, so the folder's permission is simulated where it is asked."""
    from digits import atomic

    monkeypatch.setattr(atomic.os, "access", lambda path, mode: os.fspath(path) != os.fspath(tmp_path))
    with pytest.raises(WriteError, match=f"no permission to create files in {tmp_path}; choose another folder"):
        atomic.writable_target(tmp_path / "new.png")
    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(WriteError, match="no permission to create files in"):
        write_bytes(tmp_path / "old.png", b"new")
    assert (tmp_path / "old.png").read_bytes() == b"old"


def test_a_file_of_another_user_is_not_called_read_only(tmp_path, monkeypatch):
    from digits import atomic

    (tmp_path / "theirs.csv").write_bytes(b"x")
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: os.fspath(path) != os.fspath(tmp_path / "theirs.csv"))
    with pytest.raises(WriteError, match="theirs.csv: no permission to write this file; choose another path"):
        atomic.writable_target(tmp_path / "theirs.csv")

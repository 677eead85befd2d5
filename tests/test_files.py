"""atomic_write: the new file appears whole, or the old one stays, with no temporary left;
plain_mode: the permissions a staged file or folder gets before it is renamed into place."""

import os

import pytest

from mmocgan_tf.files import atomic_write, plain_mode


def test_the_file_appears_only_when_the_block_ends(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old\n")
    with atomic_write(path, newline="") as handle:
        handle.write("a,b\r\n")
        assert path.read_text() == "old\n"  # not yet replaced
    assert path.read_bytes() == b"a,b\r\n"  # newline="" keeps what was written
    assert os.listdir(tmp_path) == ["out.csv"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("good\n")
    with pytest.raises(RuntimeError), atomic_write(path) as handle:
        handle.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "good\n" and os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_permissions_follow_the_umask_like_a_plain_open(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        with atomic_write(tmp_path / "f.txt") as handle:
            handle.write("x")
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "f.txt").st_mode & 0o777 == mode


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_plain_mode_is_what_open_and_mkdir_give(tmp_path, umask):
    """What a staged file or folder (tempfile's 0600 / 0700) is given before its rename."""
    previous = os.umask(umask)
    try:
        (tmp_path / "f").write_text("x")
        os.mkdir(tmp_path / "d")
        assert plain_mode() == os.stat(tmp_path / "f").st_mode & 0o777
        assert plain_mode(folder=True) == os.stat(tmp_path / "d").st_mode & 0o777
    finally:
        os.umask(previous)

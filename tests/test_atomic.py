import os
import stat

import pytest

from musclestate._atomic import atomic_dir, atomic_file, write_text_atomic


def test_atomic_file_gets_umask_permissions_and_appears_only_on_success(tmp_path):
    old = os.umask(0o022)
    try:
        dest = write_text_atomic(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert dest.read_text() == "hello"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "b.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    dest = tmp_path / "out"
    with atomic_dir(dest) as tmp:
        (tmp / "x").write_text("1")
    assert (dest / "x").read_text() == "1"
    with pytest.raises(FileExistsError):
        with atomic_dir(dest):
            pass
    with pytest.raises(RuntimeError), atomic_dir(dest, overwrite=True) as tmp:
        (tmp / "y").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in dest.iterdir()) == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

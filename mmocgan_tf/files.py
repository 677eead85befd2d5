"""Writing a file so that no reader, and no crash, ever sees half of it.

Every file the package writes in place (result tables, scored rows, models.config) goes
through atomic_write: the text goes to a hidden temporary sibling, which replaces the target
only once it is complete and on disk. An interrupted or failed write leaves the old file (or
none) and no temporary behind.
"""

import contextlib
import os
import tempfile

__all__ = ["atomic_write", "plain_mode"]


@contextlib.contextmanager
def atomic_write(path, newline=None, encoding="utf-8"):
    """Opens a text file that appears at `path` only when the block ends without an error.

    The file gets the permissions a plain open() would give it (0666 less the umask), not
    the 0600 of a temporary file, so a server in a container can read a models.config.

    Args:
      path: the file to write; its folder must exist.
      newline, encoding: as for open(); pass newline="" for the csv module.

    Yields:
      The open text handle.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, staging = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                   dir=folder)
    try:
        with os.fdopen(fd, "w", newline=newline, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(staging, plain_mode())
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


def plain_mode(folder=False):
    """The permissions open() or os.mkdir() would give: 0666 or 0777 less the umask.

    tempfile makes files 0600 and folders 0700, which a server running as another user
    cannot read; whatever is staged in one is given these before it is renamed into place.
    """
    return (0o777 if folder else 0o666) & ~_umask()


def _umask():
    """The process's umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

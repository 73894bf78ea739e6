"""`hive-backup destination=<path>`: a consistent copy of the live database (storage.backup),
safe while cl-hive runs; a relative path is taken from the database's folder."""
from __future__ import annotations

import os

import structlog

from handlers.frame import errors
from storage import backup as store

log = structlog.get_logger("hive.backup")


def backup(db, destination) -> dict:
    if not isinstance(destination, str) or not destination:
        raise errors.bad_param("destination", "expected a file path")
    path = os.path.join(os.path.dirname(os.path.abspath(db.path)), destination)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise errors.bad_param("destination", f"folder {folder} does not exist")
    if os.path.lexists(path):
        raise errors.bad_param("destination", f"{path} exists; a backup never overwrites a "
                                              "file: name a new one")
    try:
        out = store.to_file(db.conn(), path)
    except FileExistsError:             # created meanwhile
        raise errors.bad_param("destination", f"{path} exists; a backup never overwrites "
                                              "a file: name a new one") from None
    except PermissionError as e:
        raise errors.bad_param("destination", f"cannot write {path}: {e.strerror}") from None
    log.info("backup.written", **out)
    return out

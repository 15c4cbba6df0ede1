"""Column types that mean the same on SQLite, PostgreSQL and MySQL/MariaDB.

The schema and every migration build their columns from these, so the rules MySQL adds live in one
place (see ``migrations/README``):

- a timestamp is ``DATETIME(6)`` there: plain ``DATETIME`` drops the microseconds, and two events
  of one task would tie;
- a string in a key needs a length (every key column here is ``VARCHAR(n)``) and must fit the
  3072 bytes of an InnoDB key at four bytes a character (utf8mb4): :func:`key_string` refuses a
  longer one when the schema is built, not when a user's ``nbflow db upgrade`` fails;
- ``TEXT`` and ``JSON`` can be in no key and take no server default.
"""

from __future__ import annotations

from sqlalchemy import DateTime, String
from sqlalchemy.types import TypeEngine

#: bytes InnoDB allows in one key, and the bytes of one utf8mb4 character
MYSQL_KEY_BYTES = 3072
MYSQL_CHAR_BYTES = 4
#: the dialect names MySQL and MariaDB go by in SQLAlchemy
MYSQL_DIALECTS = ("mysql", "mariadb")


def timestamp() -> TypeEngine[object]:
    """An aware timestamp with microseconds on every backend."""
    # imported here: the MySQL dialect costs a SQLite store's commands 10 ms of start-up
    from sqlalchemy.dialects import mysql

    return DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL_DIALECTS)


def key_string(length: int) -> String:
    """A string column that may be part of a key (primary, unique, index).

    Keep the sum of a key's string lengths under 768 characters: that is what one MySQL key holds.
    """
    if length * MYSQL_CHAR_BYTES > MYSQL_KEY_BYTES:
        raise ValueError(f"a key string of {length} characters is longer than a MySQL key holds "
                         f"({MYSQL_KEY_BYTES // MYSQL_CHAR_BYTES}); use Text and no key, or a shorter length")
    return String(length)

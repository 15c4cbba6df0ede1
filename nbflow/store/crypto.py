"""The Fernet key that keeps connection passwords, connection extras and variables encrypted at rest.

The key is the setting ``fernet_key`` when it is set (several keys, comma-separated, rotate: the
first encrypts, every one decrypts, as Airflow's ``fernet_key`` does). Otherwise it lives in the file
``$NBFLOW_HOME/fernet.key``, made on first use with mode 0600 and refused when others can read it:
a key next to the database that anyone may read would protect nothing. ``cryptography``'s errors
stop here; callers see :class:`SecretKeyError` and :class:`DecryptionError`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from nbflow.errors import DecryptionError, SecretKeyError

if TYPE_CHECKING:
    from nbflow.settings import Settings

KEY_FILE = "fernet.key"


class Cipher:
    """Encrypts with the first key, decrypts with any; ``source`` names where the keys came from, so
    that a secret written under another key gets an error pointing at the place to fix."""

    def __init__(self, keys: list[bytes], source: str) -> None:
        self.source = source
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str, what: str) -> str:
        """The plaintext of ``token``; ``what`` names the secret in the error ("the password of
        connection 'db'")."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise DecryptionError(what, self.source) from exc


def cipher_for(settings: Settings) -> Cipher:
    """The cipher of ``settings``: its ``fernet_key``, else the key file under its home."""
    if settings.fernet_key.strip():
        origin = settings.source_of("fernet_key")
        source = f"the setting fernet_key ({'the environment variable ' + origin if origin.startswith('NBFLOW_') else origin})"
        # settings checked the format already
        return Cipher([part.strip().encode("ascii") for part in settings.fernet_key.split(",")], source)
    path = Path(settings.home) / KEY_FILE
    return Cipher([_key_file(path)], f"the key file {path}")


def _key_file(path: Path) -> bytes:
    """The key in ``path``, made first when there is none."""
    if not path.exists():
        _create_key_file(path)
    fix_mode = f"Run chmod 600 {path} (and check who could have read it), or set fernet_key instead"
    try:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretKeyError(
                f"the Fernet key file {path} can be read or written by others (mode {stat.S_IMODE(mode):04o})",
                fix_mode, str(path),
            )
        key = path.read_bytes().strip()
    except OSError as exc:
        raise SecretKeyError(f"the Fernet key file {path} cannot be read ({exc.strerror or exc})",
                             "Make it readable by this user, or set fernet_key (NBFLOW_FERNET_KEY) instead",
                             str(path)) from None
    try:
        Fernet(key)
    except ValueError:
        raise SecretKeyError(
            f"the Fernet key file {path} does not hold a Fernet key (32 url-safe base64-encoded bytes)",
            "Put back the key the secrets were encrypted with, or, if none were stored yet, delete the file "
            "and nbflow makes a new one", str(path),
        ) from None
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key so that no process ever reads a half-written file: into a private file of
    its own first, then linked into place, which fails if another process got there first (its key
    wins)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(Fernet.generate_key() + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise SecretKeyError(f"the Fernet key file {path} cannot be created ({exc.strerror or exc})",
                             "Make NBFLOW_HOME writable, or set fernet_key (NBFLOW_FERNET_KEY)", str(path)) from None

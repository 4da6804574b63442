"""Atomic, verified downloads with urllib (no third-party dependency)."""

import os
import shutil
import tempfile
import urllib.request

from tinyconv.data.errors import DataError

# Seconds for connecting and for each read; a stalled server fails instead of hanging.
DEFAULT_TIMEOUT = 30.0


def download(url, dest, verify=None, timeout=DEFAULT_TIMEOUT):
    """Fetch ``url`` into ``dest`` so that ``dest`` is either absent or complete and verified.

    The body goes to a temporary file in ``dest``'s folder (same file system, so the final
    ``os.replace`` is atomic); ``verify(temp_path)`` may raise to reject it. On any failure the
    temporary file is deleted and the error propagates: OSError (urllib.error.URLError, timeouts)
    for network trouble, DataError for a short body or a failed check.
    """
    folder = os.path.dirname(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dest)}.",
                                    suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "tinyconv"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                shutil.copyfileobj(response, out, 1 << 20)
                announced = response.headers.get("Content-Length")
            received = out.tell()
        if announced is not None and int(announced) != received:
            raise DataError(
                f"{url}: incomplete download: expected {announced} bytes, found {received}"
            )
        if verify is not None:
            verify(tmp_path)
        os.replace(tmp_path, dest)
    except BaseException:
        # BaseException: also clean up on KeyboardInterrupt.
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return dest

"""Mini-Omni / Mini-Omni2 ``/chat`` reply formats (read from gpt-omni/mini-omni@26c31d5 and
gpt-omni/mini-omni2@75f450e, ``server.py`` and ``webui/omni_gradio.py``).

* Mini-Omni streams raw headerless int16 mono PCM at 24 kHz (labelled ``audio/wav``), no text.
* Mini-Omni2 streams ``multipart/x-mixed-replace; boundary=frame``: each step writes
  ``\\r\\n--frame\\r\\n`` ``Content-Type: audio/wav\\r\\n\\r\\n`` + PCM, then ``\\r\\n--frame\\r\\n``
  ``Content-Type: text/plain\\r\\n\\r\\n`` + the step's new text (may be empty). There is no closing boundary:
  the last part ends with the stream.
"""

from __future__ import annotations

import numpy as np

from ..server_client import ProtocolError

SAMPLE_RATE = 24_000
DELIMITER = b"\r\n--frame\r\n"
MAX_PART_BYTES = 8 * 1024 * 1024


class PcmAssembler:
    """int16 little-endian bytes in any split to float32 samples (an odd byte waits for its pair)."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> np.ndarray:
        """Samples completed by ``data``."""
        data = self._rest + data
        whole = len(data) - len(data) % 2
        self._rest = data[whole:]
        return np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0

    @property
    def dangling(self) -> bool:
        """An odd byte is left over (a stream that ends here was cut in the middle of a sample)."""
        return bool(self._rest)


class MultipartReader:
    """Split Mini-Omni2's unterminated ``multipart/x-mixed-replace`` stream into (content type, body) parts."""

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """The parts completed by ``data`` (a part is complete when the next delimiter arrives)."""
        self._buffer += data
        parts: list[tuple[str, bytes]] = []
        if not self._started:
            if len(self._buffer) < len(DELIMITER):
                if not DELIMITER.startswith(self._buffer):
                    raise ProtocolError(f"reply does not start with the multipart boundary: {self._buffer[:40]!r}")
                return parts
            if not self._buffer.startswith(DELIMITER):
                raise ProtocolError(f"reply does not start with the multipart boundary: {self._buffer[:40]!r}")
            self._buffer = self._buffer[len(DELIMITER) :]
            self._started = True
        while True:
            cut = self._buffer.find(DELIMITER)
            if cut < 0:
                break
            parts.append(_part(self._buffer[:cut]))
            self._buffer = self._buffer[cut + len(DELIMITER) :]
        if len(self._buffer) > MAX_PART_BYTES:
            raise ProtocolError(f"a multipart part exceeds {MAX_PART_BYTES} bytes with no boundary")
        return parts

    def finish(self) -> list[tuple[str, bytes]]:
        """The last part (the server never closes the stream with a boundary)."""
        rest, self._buffer = self._buffer, b""
        if not self._started:
            if rest:
                raise ProtocolError(f"reply does not start with the multipart boundary: {rest[:40]!r}")
            return []
        return [_part(rest)]


def _part(raw: bytes) -> tuple[str, bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ProtocolError(f"multipart part without headers: {raw[:40]!r}")
    content_type = ""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            content_type = value.strip().decode("latin-1").lower()
    if content_type not in ("audio/wav", "text/plain"):
        raise ProtocolError(f"unexpected multipart part type {content_type or head[:40]!r}")
    return content_type, body

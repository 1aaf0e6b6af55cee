"""The judges' tests speak with espeak-ng: without it they skip locally and fail under CI."""

from __future__ import annotations

import pytest

from tests.conftest import require
from tests.support.speech import espeak_available


@pytest.fixture(scope="module")
def espeak() -> None:
    """Use with ``pytest.mark.usefixtures("espeak")`` in a module whose speech comes from espeak-ng."""
    require(None if espeak_available() else "espeak-ng is not installed (apt-get install espeak-ng)")

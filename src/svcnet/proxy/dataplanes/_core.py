"""The relay core the TCP relay uses: the C one (:mod:`._relaycore`) when it was built,
else the pure-Python one (:mod:`._pyrelay`) — the same contract, documented there.

``SVCNET_NO_EXTENSIONS=1`` in the environment forces the pure-Python core (as aiohttp's
``AIOHTTP_NO_EXTENSIONS``). :data:`IMPLEMENTATION` says which one is in use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from svcnet.proxy.dataplanes._pyrelay import Counters, Pair, Relay
else:
    try:
        if os.environ.get("SVCNET_NO_EXTENSIONS"):
            raise ImportError("SVCNET_NO_EXTENSIONS is set")
        from svcnet.proxy.dataplanes._relaycore import Counters, Pair, Relay
        IMPLEMENTATION = "c"
    except ImportError:
        from svcnet.proxy.dataplanes._pyrelay import Counters, Pair, Relay
        IMPLEMENTATION = "python"

IMPLEMENTATION: str

__all__ = ["IMPLEMENTATION", "Counters", "Pair", "Relay"]

"""Streaming protocols for ``kubectl exec`` and ``kubectl port-forward``, independent of where
they run: the caller owns the HTTP layer (WebSocket handshake or SPDY upgrade) and hands the
established connection to these functions.

- :mod:`.channels` -- the ``*.channel.k8s.io`` WebSocket framing and final ``Status`` forms;
- :mod:`.process` -- runs a child process (pipes or a pseudo-terminal) fed by events;
- :mod:`.exec` -- exec over a WebSocket channel protocol;
- :mod:`.spdy` -- SPDY/3.1 frames and header-block compression;
- :mod:`.portforward` -- port-forward over SPDY streams and over the WebSocket channel protocol.
"""

"""Serving avatar sessions on a Ray cluster (``emostream serve --ray``; the ``ray`` extra).

- ``placement``: the front's bookkeeping of session hosts (load, capacity, scaling); no Ray.
- ``host``: the session-host actor: loads the engine once, answers offers with its own aiortc
  peers, so media flows between the browser and the host's node.
- ``front``: the HTTP front (same page, ``/offer``, ``/portrait``, ``/health``) that places
  sessions on hosts by load and shares portraits through Ray's object store.
"""

"""Local simulator of the pipeline's outside world: attachment file hosts and the ClaimX REST API.

One HTTP server on 127.0.0.1 (see :mod:`.server` for the URL layout) with switchable faults and
request counters, plus deterministic synthetic event generators (:mod:`.generate`).

    with Simulator() as sim:              # in-process, background thread, free port
        sim.api_base_url                  # http://127.0.0.1:PORT/claimx-api.example.com/service/cxedirest
        sim.set_fault("/claimx-api.example.com/", status=503, times=2)
        sim.stats()                       # {"GET /export/project/{id}": 1, "files": 3, ...}

``python -m simulator serve --port 8765`` runs it standalone; drive that one with
:class:`SimulatorClient`. :func:`expected_bytes` tells the exact bytes served for a file URL.
"""

from simulator.claimx_api import API_HOST, API_PREFIX, DEFAULT_TOKEN
from simulator.control import Simulator, SimulatorClient
from simulator.files import FILE_HOSTS, expected_bytes
from simulator.generate import claimx_events, xact_events

__all__ = [
    "API_HOST",
    "API_PREFIX",
    "DEFAULT_TOKEN",
    "FILE_HOSTS",
    "Simulator",
    "SimulatorClient",
    "claimx_events",
    "expected_bytes",
    "xact_events",
]

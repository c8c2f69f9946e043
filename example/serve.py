"""uvicorn's command line, ending with status 0 after a graceful stop.

    python example/serve.py --app-dir example bookshop.asgi:application --lifespan on

uvicorn re-raises the signal (SIGINT, SIGTERM) that stopped it once its shutdown, lifespan
included, is complete, so the process would end "killed by SIGTERM" even when all went well.
With a handler already in place for those signals the re-raise is a no-op: a clean shutdown
exits 0 and a failed one still exits non-zero.
"""

import signal
import sys

import uvicorn


def _ignore(signum: int, frame: object) -> None:
    """Installed before uvicorn starts; uvicorn puts its own handlers over it while serving."""


if __name__ == "__main__":
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _ignore)
    uvicorn.main.main(args=sys.argv[1:], prog_name="uvicorn")

"""Start the example bookshop with one command: migrate, seed, start the upstream, serve.

    python example/run.py                 # uvicorn (ASGI) on http://127.0.0.1:8000/
    python example/run.py --wsgi          # gunicorn (WSGI, 2 sync workers) instead
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bookshop python example/run.py

The local upstream service for the external-API pages listens on --upstream-port (8001) with
--upstream-delay milliseconds (50). Ctrl+C stops both.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--wsgi", action="store_true", help="gunicorn with 2 sync workers")
    parser.add_argument("--upstream-port", type=int, default=8001)
    parser.add_argument("--upstream-delay", type=float, default=50.0, help="milliseconds")
    args = parser.parse_args()

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bookshop.settings")
    env.setdefault("UPSTREAM_URL", f"http://127.0.0.1:{args.upstream_port}/")
    manage = [sys.executable, str(HERE / "manage.py")]
    subprocess.run([*manage, "migrate", "--verbosity", "1"], env=env, cwd=HERE, check=True)
    subprocess.run([*manage, "seed"], env=env, cwd=HERE, check=True)

    upstream = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "upstream:app"),
            *("--host", "127.0.0.1", "--port", str(args.upstream_port), "--log-level", "warning"),
        ],
        env=dict(env, UPSTREAM_DELAY_MS=str(args.upstream_delay)),
    )
    if args.wsgi:
        server = [sys.executable, "-m", "gunicorn", "--chdir", str(HERE), "--workers", "2"]
        server += ["--bind", f"{args.host}:{args.port}", "bookshop.wsgi:application"]
    else:
        server = [
            sys.executable,
            str(HERE / "serve.py"),
            "--app-dir",
            str(HERE),
            "--lifespan",
            "on",
        ]
        server += ["--host", args.host, "--port", str(args.port), "bookshop.asgi:application"]
    print(f"bookshop: http://{args.host}:{args.port}/ (Ctrl+C to stop)", flush=True)
    try:
        return subprocess.run(server, env=env, cwd=HERE).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    sys.exit(main())

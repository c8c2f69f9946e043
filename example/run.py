"""Start the example bookshop with one command: migrate, seed, start the upstream, serve.

    python example/run.py                 # uvicorn (ASGI) on http://127.0.0.1:8000/
    python example/run.py --wsgi          # gunicorn (WSGI, 2 sync workers) instead
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bookshop python example/run.py

A PostgreSQL or MariaDB database that does not exist yet is created first (on the server's
maintenance database: ``postgres``, or none for MariaDB); if it cannot be, run.py says how to
create it and exits. The local upstream service for the external-API pages listens on
--upstream-port (8001) with --upstream-delay milliseconds (50). Ctrl+C stops both.
"""

import argparse
import subprocess
import sys

import harness  # beside this file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--wsgi", action="store_true", help="gunicorn with 2 sync workers")
    parser.add_argument("--upstream-port", type=int, default=8001)
    parser.add_argument("--upstream-delay", type=float, default=50.0, help="milliseconds")
    args = parser.parse_args()

    env = harness.base_env()
    env.setdefault("UPSTREAM_URL", f"http://127.0.0.1:{args.upstream_port}/")
    try:
        harness.manage(env, "createdb", quiet=False)
        harness.prepare(env, quiet=False)
    except subprocess.CalledProcessError as failed:
        return failed.returncode  # the command has said why
    upstream = subprocess.Popen(
        [*harness.upstream_command("127.0.0.1", args.upstream_port), "--log-level", "warning"],
        env=dict(env, UPSTREAM_DELAY_MS=str(args.upstream_delay)),
    )
    if args.wsgi:
        server = harness.gunicorn_command(args.host, args.port, workers=2)
    else:
        server = harness.uvicorn_command(args.host, args.port)
    print(f"bookshop: http://{args.host}:{args.port}/ (Ctrl+C to stop)", flush=True)
    try:
        return subprocess.run(server, env=env, cwd=harness.HERE).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    sys.exit(main())

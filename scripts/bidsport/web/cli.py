"""``bidsport-web``: serve the export page on this machine.

Prints ``http://HOST:PORT/?token=...`` (like Jupyter, the token is required: the
first visit with it sets a cookie). Stopping the server cancels its running exports
cleanly; a later Start export resumes them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
from pathlib import Path

import yaml

from ..settings import PATH_KEYS, workflow_dir


def load_defaults(path: Path | None) -> dict:
    """--config's keys, with relative paths made absolute against the file's folder."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"bidsport-web: cannot read --config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SystemExit(f"bidsport-web: --config {path} is not a mapping of keys to values")
    base = path.resolve().parent

    def absolute(value) -> str:
        p = Path(str(value)).expanduser()
        return str(p if p.is_absolute() else (base / p).absolute())

    for key in PATH_KEYS:
        if data.get(key):
            data[key] = absolute(data[key])
    if data.get("series_tables"):
        data["series_tables"] = [absolute(v) for v in data["series_tables"]]
    return data


def default_state_dir() -> Path:
    root = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(root) / "bidsport-web"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bidsport-web", description="The export page in a browser (local web application).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    parser.add_argument("--config", type=Path, help="bidsport config whose keys are the form's defaults and pass through to every run")
    parser.add_argument("--token", help="access token (default: a random one, printed in the address)")
    parser.add_argument("--state-dir", type=Path, default=None, help="history, logs and Snakemake work folders (default ~/.local/state/bidsport-web)")
    parser.add_argument("--workflow", type=Path, default=None,
                        help="the bidsport folder (Snakefile, workflow/); default: this package's source tree, else the current folder")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="snakemake --cores of each export (default: all)")
    args = parser.parse_args(argv)
    if args.workflow:
        os.environ["BIDSPORT_WORKFLOW"] = str(args.workflow.resolve())
    try:  # fail now, not at the first Preview
        workflow_dir()
    except FileNotFoundError as exc:
        raise SystemExit(f"bidsport-web: {exc}") from exc

    import uvicorn

    from .app import create_app

    defaults = load_defaults(args.config)
    token = args.token or secrets.token_urlsafe(24)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        raise SystemExit(f"bidsport-web: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    app = create_app(defaults, token, args.state_dir or default_state_dir(), args.cores, cookie_name=f"bidsport_token_{port}")
    # Listening already: the address is valid from the moment it is printed.
    print(f"http://{host}:{port}/?token={token}", flush=True)
    print("bidsport-web: open the address above in a browser; Ctrl-C stops the server (and cancels its running exports).", file=sys.stderr, flush=True)
    # No access log: it would record the token of the first request.
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its clean shutdown
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

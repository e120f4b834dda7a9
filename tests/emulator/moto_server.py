"""`moto_server` that exits when the process that started it goes away.

The Rust test support starts this with a pipe on stdin and never writes to
it. When the test process ends, however it ends (normal exit, panic,
SIGKILL), the kernel closes the pipe, the read below returns EOF and the
server exits: no emulator outlives a test run. Arguments are moto_server's
own (`-H 127.0.0.1 -p PORT`).

It installs moto_shims first: what moto leaves out of AWS (task scale-in
protection calls, the ECS agent's instance attributes, deployments that
complete).
"""

import os
import sys
import threading


def _exit_when_parent_goes() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


threading.Thread(target=_exit_when_parent_goes, daemon=True).start()

import moto_shims  # noqa: E402  (this file's folder is on sys.path)

moto_shims.install()

from moto.server import main  # noqa: E402  (after the watchdog starts)

main(sys.argv[1:])

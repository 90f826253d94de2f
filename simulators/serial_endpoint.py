"""The device end of a simulator's serial link: a loopback TCP listener or a pty pair,
plus the thread that runs the simulator's protocol loop over it. It moves bytes and
follows host connects and disconnects; framing, replies and fault injection stay in each simulator.
"""

from __future__ import annotations

import os
import select
import socket
import termios
import threading
import tty
from pathlib import Path
from typing import Callable

__all__ = ["SerialEndpoint"]

_CHUNK = 65536


class SerialEndpoint:
    """One device-side link, reachable by the host as a pyserial URL.

    `open(transport, port)` returns the URL (`socket://127.0.0.1:PORT` or the pty's
    slave path) and, given `serve`, runs it on a daemon thread; that loop calls
    `read(timeout)` / `write(data)` and keeps going while `serving()`. Over TCP one host
    is served at a time; a host that hangs up is dropped and the next one accepted. With
    `takeover=True` a host that connects while another is served replaces it instead of
    waiting for it to leave. `close()` stops the loop and frees the socket or the fds;
    the endpoint can then be opened again.

    `unplug()` / `replug()` pull the cable and put it back while the loop runs. A pty
    opened with `link=PATH` is reached through that symlink (as udev's
    /dev/serial/by-id/... names a USB adapter), so it can be unplugged: the pty goes
    away with its symlink and a new one appears under the same name.
    """

    def __init__(self, *, takeover: bool = False) -> None:
        self.takeover = takeover
        self.transport: str | None = None
        self.url: str | None = None
        self.connections = 0
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._fresh_termios: list = []
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._unplugged = False
        self._tcp_port: int | None = None
        self._link: Path | None = None

    # ------------------------------------------------------------------ life cycle

    @property
    def is_open(self) -> bool:
        return self.url is not None

    def open(self, transport: str = "tcp", port: int = 0, *, serve: Callable[[], None] | None = None,
             name: str = "serial-endpoint", link: str | os.PathLike[str] | None = None) -> str:
        """Bind 127.0.0.1:`port` (0: any free port) for "tcp", or open a pty pair for "pty"
        (reached through the symlink `link` when given); returns the URL the host should open."""
        if self.is_open:
            raise RuntimeError(f"serial endpoint already open at {self.url}")
        if transport == "tcp":
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", port))
                listener.listen(1)
            except OSError:
                listener.close()
                raise
            self._listener = listener
            self._tcp_port = listener.getsockname()[1]
            url = f"socket://127.0.0.1:{self._tcp_port}"
        elif transport == "pty":
            self._link = Path(link) if link is not None else None
            url = self._open_pty()
        else:
            raise ValueError(f"transport must be 'tcp' or 'pty', got {transport!r}")
        self.transport = transport
        self.url = url
        self._closing.clear()
        if serve is not None:
            self._thread = threading.Thread(target=serve, name=f"{name} {url}", daemon=True)
            self._thread.start()
        return url

    def _open_pty(self) -> str:
        self._master, self._slave = os.openpty()
        # Raw from the start: no echo, no newline translation, no flow control before
        # (or unless) the host configures the line itself.
        tty.setraw(self._slave)
        self._fresh_termios = termios.tcgetattr(self._slave)
        # A pty has no connect: the line is there for whoever opens the slave.
        self.connections += 1
        path = os.ttyname(self._slave)
        if self._link is None:
            return path
        fresh = self._link.with_name(self._link.name + ".new")
        fresh.unlink(missing_ok=True)
        os.symlink(path, fresh)
        os.replace(fresh, self._link)     # the name never points nowhere while it changes
        return str(self._link)

    def _close_pty(self) -> None:
        master, slave = self._master, self._slave
        self._master = self._slave = None
        for fd in (master, slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self._link is not None:
            self._link.unlink(missing_ok=True)

    def serving(self) -> bool:
        """True until close() begins: the condition of the protocol loop."""
        return self.is_open and not self._closing.is_set()

    def close(self, join_timeout: float = 2.0) -> None:
        """Stop the protocol loop (waiting up to join_timeout for it) and free the port or fds."""
        self._closing.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=join_timeout)
        for sock in (self._client, self._listener):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
        self._client = self._listener = None
        self._unplugged = False
        self._tcp_port = None
        self._close_pty()
        self._link = None
        self.transport = None
        self.url = None

    # ------------------------------------------------------------------ the line

    @property
    def connected(self) -> bool:
        """A host is on the line: a TCP client is held, or the pty is open."""
        return self._client is not None or self._master is not None

    def read(self, timeout: float) -> bytes:
        """Bytes from the host, waiting at most `timeout` s; b"" when the line stayed quiet,
        a host just connected, or the host hung up (its connection is then dropped)."""
        master = self._master
        if master is not None:
            return self._read_pty(master, timeout)
        listener, client = self._listener, self._client
        if listener is None:
            if self._unplugged:
                # Unplugged: the line is dead until replug(); keep the protocol loop's pace.
                self._closing.wait(timeout)
                return b""
            raise RuntimeError("serial endpoint is not open")
        waiting = [client] if client is not None else []
        if client is None or self.takeover:
            waiting.append(listener)
        try:
            ready, _, _ = select.select(waiting, [], [], timeout)
        except (OSError, ValueError):
            # unplug() closed a socket under this select from the control thread.
            return b""
        if listener in ready:
            try:
                conn, _ = listener.accept()
            except OSError:
                return b""
            if self._unplugged:
                conn.close()       # accepted just as the cable was pulled
                return b""
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if client is not None:
                client.close()
            # Hold the connection before counting it: a caller that saw the count can hang it up.
            self._client = conn
            self.connections += 1
            return b""
        if client is None or client not in ready:
            return b""
        try:
            data = client.recv(_CHUNK)
        except OSError:
            data = b""
        if not data:
            self._drop(client)
        return data

    def _read_pty(self, master: int, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select([master], [], [], timeout)
        except (OSError, ValueError):
            return b""      # unplug() closed the pty under this select
        if not ready:
            return b""
        try:
            data = os.read(master, _CHUNK)
        except OSError:
            data = b""
        if not data:
            # Nobody has the slave open right now: wait for the host to reopen it
            # rather than spin on a line that reports itself readable.
            self._closing.wait(timeout)
        return data

    def write(self, data: bytes) -> None:
        """Send to the host; dropped when no host is connected (as on a cable nobody holds)."""
        master = self._master
        if master is not None:
            try:
                os.write(master, data)
            except OSError:
                pass
            return
        if self.transport == "pty":
            return          # unplugged
        client = self._client
        if client is None:
            return
        try:
            client.sendall(data)
        except OSError:
            self._drop(client)

    def hang_up(self) -> None:
        """Drop the TCP connection as a pulled cable would; the host sees EOF and the endpoint
        accepts the next one. No effect on a pty (there is no connection to drop)."""
        client = self._client
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def plugged(self) -> bool:
        """False between unplug() and replug()."""
        return not self._unplugged

    def unplug(self) -> None:
        """Pull the cable, until replug(). Over TCP: drop the host's connection and refuse new
        ones, as a network printer or serial-over-IP adapter that lost power does. On a pty
        opened with a link: close the pty (the host's reads and writes fail) and remove the
        link, as a USB serial adapter's device node vanishes. The URL stays the same."""
        if self.transport == "pty":
            if self._link is None:
                raise RuntimeError("unplug on a pty needs open(..., link=PATH): a new pty gets a new name, "
                                   "so the host could never find it again")
            if not self._unplugged:
                self._unplugged = True
                self._close_pty()
            return
        if self.transport != "tcp":
            raise RuntimeError("unplug needs an open endpoint")
        if self._unplugged:
            return
        listener, client = self._listener, self._client
        assert listener is not None
        self._unplugged = True
        self._listener = None
        try:
            # Stop listening now: a select() in the serve thread would keep a merely closed listener alive.
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        listener.close()
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._drop(client)

    def replug(self) -> None:
        """Put the cable back: listen again on the same 127.0.0.1 port, or open a new pty behind
        the same link, so the host's URL works again."""
        if not self._unplugged:
            return
        if self.transport == "pty":
            self._open_pty()
            self._unplugged = False
            return
        port = self._tcp_port
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
            listener.listen(1)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._unplugged = False

    def restore_pty_settings(self) -> None:
        """Put back the raw termios the pty slave had when opened, if the host changed them
        (no effect over TCP). For a device that has to undo a host's settings; it is
        only safe while the line is quiet."""
        if self._slave is None:
            return
        try:
            if termios.tcgetattr(self._slave) != self._fresh_termios:
                termios.tcsetattr(self._slave, termios.TCSANOW, self._fresh_termios)
        except termios.error:
            pass

    def _drop(self, client: socket.socket) -> None:
        if self._client is client:
            self._client = None
        client.close()


def serve_until_interrupted(stop: Callable[[], None], console: Callable[[], None]) -> None:
    """The standalone simulators' main loop: the interactive console when a person is at
    the terminal, else wait for Ctrl-C or a signal; the simulator is stopped either way."""
    import sys
    try:
        if sys.stdin.isatty():
            console()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()

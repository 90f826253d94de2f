"""The loopback web server behind the customer screen: serves the static page,
pushes every kiosk screen over a WebSocket and hands actions back to the kiosk.
It never decides anything about money; in simulate mode it also exposes the
device control panel (/sim). It binds loopback only and refuses anything else."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from aiohttp import WSMsgType, web

from atm import texts
from atm.ui.facade import KioskFacade, PreviewRefused, SimulatorPanel

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")

# A real action is a few hundred bytes. Anything bigger is answered with an
# error and dropped; aiohttp's own hard limit (which closes the socket) sits far
# above it, so an oversized message costs one error reply, not the connection.
MAX_ACTION_BYTES = 16 * 1024
WS_HARD_LIMIT_BYTES = 4 * 1024 * 1024
MAX_PANEL_BODY_BYTES = 64 * 1024

_LOOPBACK_NAMES = {"localhost"}


def _is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname_of(authority: str) -> str:
    """'127.0.0.1:8080' -> '127.0.0.1', '[::1]:8080' -> '::1', 'localhost' -> 'localhost'."""
    authority = authority.strip()
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


# The page loads only its own files and talks only to its own server: even a
# script smuggled in through some future bug could not phone home.
_SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # After a firmware update the browser must not run yesterday's app.js.
    response.headers.setdefault("Cache-Control", "no-cache")


def _dumps(obj: Any) -> str:
    # default=str: a kiosk or panel that slips a Decimal or an enum into its
    # data must still reach the screen rather than kill the connection.
    # allow_nan=False: NaN is not JSON, and the page would drop the whole screen.
    return json.dumps(obj, default=str, ensure_ascii=False, allow_nan=False)


@web.middleware
async def _loopback_only(request: web.Request, handler):
    """Refuse requests addressed to a non-loopback name or coming from a foreign
    page: a DNS-rebinding site in the kiosk's browser would otherwise reach the
    WebSocket (service PIN) or the control panel."""
    host = request.headers.get("Host", "")
    if host and not _is_loopback(_hostname_of(host)):
        return web.json_response(
            {"ok": False, "error": f"Host header {host!r} is not a loopback address; "
                                   "open the screen at http://127.0.0.1:PORT/"},
            status=403)
    # Browsers send Origin; our own page's is exactly this server. Another local
    # service's page, a file:// or sandboxed page ("null") is not the kiosk's.
    # Command-line clients send none and are let through.
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in (f"http://{host}".lower(), f"https://{host}".lower()):
        return web.json_response(
            {"ok": False, "error": f"Origin {origin!r} is not this kiosk's own page (http://{host})"},
            status=403)
    return await handler(request)


class UiServer:
    """Customer screen on `/`, screens over `/ws`, control panel on `/sim`, and the
    service menu's camera picture on `/service/camera.jpg` while its scan test runs."""

    def __init__(self, kiosk: KioskFacade, panel: SimulatorPanel | None = None, *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if not _is_loopback(host):
            raise ValueError(
                f"UI server host {host!r} is not a loopback address: the kiosk listens on "
                "no port outside loopback; use 127.0.0.1, ::1 or localhost")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"UI server port must be an int from 0 to 65535, got {port!r}")
        self._kiosk = kiosk
        self._panel = panel
        self._host = "127.0.0.1" if host.lower() == "localhost" else host.strip("[]")
        self._port = port
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.url: str | None = None

    # -- lifecycle ---------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application; start() serves it, tests may wrap it in TestServer."""
        app = web.Application(middlewares=[_loopback_only], client_max_size=MAX_PANEL_BODY_BYTES)
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/api/screen", self._screen)
        app.router.add_get("/texts/{language}.json", self._texts)
        app.router.add_get("/service/camera.jpg", self._camera_preview)
        # Browsers ask for it on their own; answer rather than log a 404 per page load.
        app.router.add_get("/favicon.ico", _no_content)
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
        if self._panel is not None:
            app.router.add_get("/sim", self._sim_page)
            app.router.add_get("/sim/api", self._sim_get)
            app.router.add_post("/sim/api", self._sim_post)
        app.on_shutdown.append(self._close_sockets)
        app.on_response_prepare.append(_add_security_headers)
        return app

    async def start(self) -> str:
        if self._runner is not None:
            raise RuntimeError(f"UI server already running at {self.url}")
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(exc.errno, f"UI server cannot listen on {self._host}:{self._port}: "
                                     f"{exc.strerror or exc}") from exc
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]  # port 0 -> the port we got
        netloc = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{netloc}:{bound_port}/"
        log.info("customer screen at %s", self.url)
        return self.url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _close_sockets(self, _app: web.Application) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"kiosk UI server stopping")

    # -- pages -------------------------------------------------------------

    async def _index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html",
                                headers={"Cache-Control": "no-store"})

    async def _sim_page(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "sim.html", headers={"Cache-Control": "no-store"})

    async def _texts(self, request: web.Request) -> web.Response:
        """One language's catalogue (atm/locale/<language>.toml) for the page's t(key, values)."""
        language = request.match_info["language"]
        if language not in texts.available_languages():
            return _json({"ok": False, "error": f"no texts for language {language!r}; have "
                                                f"{', '.join(texts.available_languages())}"}, status=404)
        return _json(texts.catalogue(language))

    async def _screen(self, _request: web.Request) -> web.Response:
        try:
            return web.Response(text=_dumps(with_texts(self._kiosk.snapshot())), content_type="application/json")
        except (TypeError, ValueError, RecursionError) as exc:
            log.error("GET /api/screen: the current screen cannot be written as JSON (%s)", exc)
            return _json({"ok": False, "error": f"the current screen cannot be written as JSON: {exc}"},
                         status=500)

    async def _camera_preview(self, _request: web.Request) -> web.Response:
        """The service menu's scan-test picture. The kiosk decides whether there is one
        (menu open behind switch and PIN, scan test running); a frame is never cached."""
        headers = {"Cache-Control": "no-store"}
        preview = getattr(self._kiosk, "service_camera_preview", None)
        if preview is None:
            return web.Response(status=404, text="this kiosk has no camera preview", headers=headers)
        try:
            jpeg = await preview()
        except PreviewRefused as exc:
            return web.Response(status=exc.status, text=str(exc), headers=headers)
        except Exception as exc:
            log.exception("GET /service/camera.jpg: the kiosk failed to give the camera picture")
            return web.Response(status=500, text=f"camera picture failed: {type(exc).__name__}", headers=headers)
        return web.Response(body=jpeg, content_type="image/jpeg", headers=headers)

    # -- customer WebSocket ------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=WS_HARD_LIMIT_BYTES)
        await ws.prepare(request)
        self._sockets.add(ws)
        send_lock = asyncio.Lock()
        # Subscribe before taking the snapshot, so no screen falls in between.
        queue = self._kiosk.subscribe()
        pusher: asyncio.Task | None = None
        try:
            snapshot = self._kiosk.snapshot()
            await self._send(ws, send_lock, snapshot)
            last_seq = snapshot.get("seq") if isinstance(snapshot, dict) else None
            pusher = asyncio.create_task(self._push_screens(ws, send_lock, queue, last_seq))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    reply = await self.answer_message(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    reply = {"reply_to": None, "ok": False,
                             "error": "binary WebSocket message refused: send a JSON object as text"}
                else:
                    break
                await self._send(ws, send_lock, reply)
        except ConnectionResetError:
            pass  # the browser went away mid-send; it reconnects and gets a fresh snapshot
        except Exception:  # a broken client must never take the server down
            log.exception("customer WebSocket failed")
        finally:
            if pusher is not None:
                pusher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pusher
            self._kiosk.unsubscribe(queue)
            self._sockets.discard(ws)
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _push_screens(self, ws: web.WebSocketResponse, lock: asyncio.Lock,
                            queue: "asyncio.Queue[dict[str, Any]]", last_seq: Any) -> None:
        try:
            while not ws.closed:
                screen = await queue.get()
                seq = screen.get("seq") if isinstance(screen, dict) else None
                # The snapshot may already be newer than what was queued meanwhile.
                if _is_int(seq) and _is_int(last_seq) and seq <= last_seq:
                    continue
                last_seq = seq
                await self._send(ws, lock, screen)
        except ConnectionResetError:
            return
        except Exception:
            # A page that silently stops receiving screens would strand the
            # customer; closing makes it reconnect and start from a snapshot.
            log.exception("pushing screens to the customer page failed; closing the connection")
            with contextlib.suppress(Exception):
                await ws.close(code=1011, message=b"screen feed failed")

    @staticmethod
    async def _send(ws: web.WebSocketResponse, lock: asyncio.Lock, obj: Any) -> None:
        try:
            text = _dumps(obj)
        except (TypeError, ValueError, RecursionError) as exc:
            # A kiosk bug must cost one screen, not the customer's connection.
            log.error("screen not sent: it cannot be written as JSON (%s): %.200r", exc, obj)
            return
        async with lock:
            if not ws.closed:
                await ws.send_str(text)

    async def answer_message(self, text: str) -> dict[str, Any]:
        """One client message -> one reply. Never raises."""
        if len(text) > MAX_ACTION_BYTES:
            return _refusal(None, f"message of {len(text)} characters refused: "
                                  f"an action is at most {MAX_ACTION_BYTES}")
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            return _refusal(None, f"message is not JSON ({exc.msg} at character {exc.pos})")
        except (ValueError, RecursionError) as exc:
            return _refusal(None, f"message is not usable JSON ({type(exc).__name__})")
        if not isinstance(message, dict):
            return _refusal(None, f"message must be a JSON object, got {type(message).__name__}")
        action_id = message.get("id")
        if not _is_int(action_id):
            return _refusal(None, f"action needs an integer 'id', got {_short(action_id)}")
        action = message.get("action")
        if not isinstance(action, str) or not action:
            return _refusal(action_id, f"message needs a non-empty string 'action', got {_short(action)}")
        try:
            result = await self._kiosk.handle_action(message)
        except Exception as exc:
            log.exception("kiosk raised on action %r", action)
            return _refusal(action_id, f"the kiosk could not handle {_short(action)}: {type(exc).__name__}")
        if not isinstance(result, Mapping):
            log.error("kiosk answered action %r with %r instead of a dict", action, result)
            return _refusal(action_id, f"the kiosk gave no answer to {_short(action)}")
        ok = result.get("ok") is True
        error = result.get("error")
        if not ok and not error:
            error = f"{_short(action)} refused"
        reply = {"reply_to": action_id, "ok": ok, "error": None if ok else str(error)}
        said = result.get("message")
        if not ok and isinstance(said, Mapping) and isinstance(said.get("key"), str):
            # the customer reads this, in their language; `error` is for logs and tools
            reply["message"] = {"key": said["key"], "values": dict(said.get("values") or {})}
        return reply

    # -- simulator control panel -------------------------------------------

    async def _sim_get(self, _request: web.Request) -> web.Response:
        assert self._panel is not None
        try:
            body = {"commands": self._panel.commands(), "state": self._panel.state()}
        except Exception as exc:
            log.exception("simulator panel failed to describe itself")
            return _json({"ok": False, "error": f"panel state unavailable: {type(exc).__name__}: {exc}"},
                         status=500)
        return _json(body)

    async def _sim_post(self, request: web.Request) -> web.Response:
        assert self._panel is not None
        try:
            command, args = parse_panel_request(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return _json({"ok": False, "error": f"request body over {MAX_PANEL_BODY_BYTES} bytes"},
                         status=413)
        except PanelRequestError as exc:
            return _json({"ok": False, "error": str(exc)}, status=400)
        try:
            result = await self._panel.run(command, args)
        except Exception as exc:
            log.exception("simulator command %r failed", command)
            return _json({"ok": False, "error": f"{command!r} failed: {type(exc).__name__}: {exc}"},
                         status=500)
        if not isinstance(result, Mapping):
            return _json({"ok": False, "error": f"{command!r} gave no answer"}, status=500)
        return _json(dict(result))


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response(status=204)


class PanelRequestError(ValueError):
    """A POST /sim/api body that is not {"command": NAME, "args": {...}}."""


def parse_panel_request(body: bytes) -> tuple[str, dict[str, Any]]:
    """Body of POST /sim/api -> (command, args). Raises only PanelRequestError."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PanelRequestError(f"POST /sim/api body is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise PanelRequestError(f"POST /sim/api body is not JSON: {exc}") from None
    except RecursionError:
        raise PanelRequestError("POST /sim/api body is nested too deeply") from None
    if not isinstance(parsed, dict):
        raise PanelRequestError('POST /sim/api body must be a JSON object {"command": NAME, "args": {...}}, '
                                f"got {type(parsed).__name__}")
    command = parsed.get("command")
    args = parsed.get("args")
    if args is None:
        args = {}
    if not isinstance(command, str) or not command:
        raise PanelRequestError(f"'command' must be a non-empty string, got {_short(command)}")
    if not isinstance(args, dict):
        raise PanelRequestError(f"'args' must be a JSON object, got {type(args).__name__}")
    return command, args


def _short(value: Any, limit: int = 80) -> str:
    """repr() for an error message, cut so a hostile page cannot echo kilobytes back."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refusal(action_id: Any, error: str) -> dict[str, Any]:
    return {"reply_to": action_id, "ok": False, "error": error}


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=_dumps(obj), status=status, content_type="application/json")


def with_texts(screen: Any) -> Any:
    """A screen with its words added (`texts`): every message key in its data rendered
    in the screen's language, for `atm sim screen` and other tools that read no page."""
    if not isinstance(screen, Mapping):
        return screen
    data = screen.get("data") if isinstance(screen.get("data"), Mapping) else {}
    language = data.get("language") if isinstance(data.get("language"), str) else texts.DEFAULT_LANGUAGE
    words: dict[str, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            if isinstance(value.get("key"), str) and isinstance(value.get("values", {}), Mapping):
                try:
                    words[path] = texts.text(language, value["key"], **dict(value.get("values") or {}))
                except (KeyError, IndexError, ValueError):
                    words[path] = value["key"]
                return
            for key, inner in value.items():
                walk(inner, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, f"{path}[{i}]")
    walk(data, "")
    return {**screen, "texts": words}

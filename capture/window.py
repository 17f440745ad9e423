"""Find emulator windows on an X11 desktop and grab screen regions (the live filter's capture stage).

Window lookup shells out to ``xwininfo``/``xdotool`` (x11-utils / xdotool packages) with argument
lists, never a shell: python-xlib is not a dependency, and these tools are on every X11 desktop.
Positions come from ``xwininfo``'s *absolute* upper-left corner of the client window, because
``xdotool getwindowgeometry`` reports decorated windows at the frame's origin plus the decoration
offset twice on many window managers.

Pixels come from ``mss`` (XShm/XGetImage on the root window).  A root grab shows whatever is on
screen, so a window covering the emulator is captured too; :class:`WindowGrabber` reads one
window's own pixels instead (via XComposite, when the server has it), which the "over" placement
needs because our output window then sits on top of the emulator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from utils.errors import UserError

#: Title patterns of the emulators we look for when no --window/--region is given (case-insensitive).
EMULATOR_PATTERNS: tuple[tuple[str, str], ...] = (
    ("mGBA", r"\bmgba\b"),
    ("SameBoy", r"sameboy"),
    ("BGB", r"\bbgb\b"),
    ("VisualBoyAdvance", r"visualboy|\bvba(-m)?\b"),
    ("RetroArch", r"retroarch"),
    ("PyBoy", r"\bpyboy\b"),
    ("Emulicious", r"emulicious"),
    ("Gambatte", r"gambatte"),
)

#: Our own windows' titles start with this; they are never capture candidates.
OWN_TITLE_PREFIX = "retrocolor"


@dataclass(frozen=True)
class Rect:
    """A screen rectangle in absolute root-window pixels."""

    x: int
    y: int
    width: int
    height: int

    def as_monitor(self) -> dict[str, int]:
        """The dict ``mss.grab`` takes."""
        return {"left": self.x, "top": self.y, "width": self.width, "height": self.height}

    def intersect(self, other: Rect) -> Rect | None:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1 = min(self.x + self.width, other.x + other.width)
        y1 = min(self.y + self.height, other.y + other.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return Rect(x0, y0, x1 - x0, y1 - y0)


@dataclass(frozen=True)
class WindowInfo:
    """One top-level client window: X id, title, client-area rectangle, whether it is viewable."""

    id: int
    title: str
    rect: Rect
    viewable: bool = True


class WindowGone(Exception):
    """The window we were following no longer exists (the emulator closed)."""


# --------------------------------------------------------------------------- display checks
def require_display() -> None:
    """Raise a one-line :class:`UserError` when there is no X11 display to capture from."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        if os.environ.get("WAYLAND_DISPLAY"):
            raise UserError("no X11 display: DISPLAY is not set (on Wayland, run the emulator and retrocolor "
                            "under XWayland, which sets DISPLAY)")
        raise UserError("no display: DISPLAY is not set; live capture needs an X11 desktop "
                        "(or a virtual one: Xvfb :1 & DISPLAY=:1 retrocolor live ...)")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pkg = {"xwininfo": "x11-utils", "xdotool": "xdotool", "xprop": "x11-utils"}.get(name, name)
        raise UserError(f"{name} not found; install it (e.g. apt install {pkg}) or use --region X,Y,W,H")
    return path


def _run(argv: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,  # noqa: S603
                          errors="replace")


# --------------------------------------------------------------------------- listing windows
_TREE_LINE = re.compile(
    r"^\s*(0x[0-9a-fA-F]+)\s+(?:\(has no name\)|\"(?P<name>.*)\"):\s+\((?P<cls>.*)\)\s+"
    r"(?P<w>\d+)x(?P<h>\d+)[+-]-?\d+[+-]-?\d+\s+(?P<ax>[+-]-?\d+)(?P<ay>[+-]-?\d+)\s*$"
)


def parse_tree(text: str) -> list[WindowInfo]:
    """Parse ``xwininfo -root -tree`` output into windows with *absolute* positions.

    Each line ends with ``WxH+relX+relY  +absX+absY``; we keep the absolute pair.  Windows
    without a name are skipped (they are frames and helper windows, never what a user types).
    """
    out: list[WindowInfo] = []
    for line in text.splitlines():
        m = _TREE_LINE.match(line)
        if not m or m.group("name") is None:
            continue
        out.append(WindowInfo(int(m.group(1), 16), m.group("name"),
                              Rect(int(m.group("ax")), int(m.group("ay")), int(m.group("w")), int(m.group("h")))))
    return out


def _client_ids() -> set[int] | None:
    """The window manager's client list (EWMH ``_NET_CLIENT_LIST``), or None without a WM.

    It names exactly the application windows a user sees in a task bar (minimised ones too),
    so helper and hidden windows never show up as candidates.
    """
    if not shutil.which("xprop"):
        return None
    r = _run(["xprop", "-root", "-notype", "_NET_CLIENT_LIST"])
    if r.returncode != 0 or "#" not in r.stdout:
        return None
    return {int(t, 16) for t in re.findall(r"0x[0-9a-fA-F]+", r.stdout.split("#", 1)[1])}


def list_windows() -> list[WindowInfo]:
    """Named application windows on the display, our own excluded.

    (``xdotool search --name`` is not used: it misses SDL windows on some xdotool versions.)
    """
    require_display()
    tree = _run([_tool("xwininfo"), "-root", "-tree"])
    if tree.returncode != 0:
        raise UserError(f"xwininfo failed: {tree.stderr.strip() or 'cannot query the X server'}")
    wins = parse_tree(tree.stdout)
    clients = _client_ids()
    result = []
    seen: set[tuple[str, Rect]] = set()
    for w in wins:
        if w.title.lower().startswith(OWN_TITLE_PREFIX) or w.rect.width < 16 or w.rect.height < 16:
            continue
        if clients is not None and w.id not in clients:
            continue
        key = (w.title, w.rect)
        if key in seen:  # SDL and Qt often name a window and its child identically
            continue
        seen.add(key)
        result.append(w)
    if clients is None and len(result) <= 64:
        # No window manager to ask: drop windows that are not mapped (xwininfo lists those too).
        kept = []
        for w in result:
            try:
                if window_state(w.id).viewable:
                    kept.append(w)
            except (WindowGone, OSError):
                continue
        result = kept
    return result


def find_window(title: str) -> WindowInfo:
    """The viewable window whose title contains ``title`` (case-insensitive); the largest wins.

    Nothing matching -> :class:`UserError` listing the candidate titles, so the user can copy one.
    """
    wins = list_windows()
    needle = title.lower()
    hits = [w for w in wins if needle in w.title.lower()]
    if not hits:
        names = sorted({w.title for w in wins if w.title.strip()})
        shown = ", ".join(repr(n) for n in names[:15]) + (f" and {len(names) - 15} more" if len(names) > 15 else "")
        raise UserError(f"no window title contains {title!r}; open windows: {shown or '(none)'}")
    return max(hits, key=lambda w: w.rect.width * w.rect.height)


def find_emulator() -> tuple[str, WindowInfo]:
    """Look for a known emulator's window; returns (emulator name, window)."""
    wins = list_windows()
    for name, pattern in EMULATOR_PATTERNS:
        rx = re.compile(pattern, re.IGNORECASE)
        hits = [w for w in wins if rx.search(w.title)]
        if hits:
            return name, max(hits, key=lambda w: w.rect.width * w.rect.height)
    names = sorted({w.title for w in wins if w.title.strip()})
    raise UserError("no emulator window found (looked for " + ", ".join(n for n, _ in EMULATOR_PATTERNS)
                    + "); pass --window TITLE or --region X,Y,W,H; open windows: "
                    + (", ".join(repr(n) for n in names[:15]) or "(none)"))


def window_state(win_id: int) -> WindowInfo:
    """Current rectangle and map state of one window; raises :class:`WindowGone` once it is destroyed.

    Minimised windows are unmapped by X11 window managers ("IsUnMapped"), or carry
    ``_NET_WM_STATE_HIDDEN``; either way ``viewable`` is False and the caller waits.
    """
    r = _run([_tool("xwininfo"), "-id", hex(win_id)], timeout=3.0)
    if r.returncode != 0:
        if "BadWindow" in r.stderr or "No such window" in r.stderr or "bad window" in r.stderr.lower():
            raise WindowGone(hex(win_id))
        # Any other failure (the X server busy, xwininfo interrupted) says nothing about the
        # window: the caller retries instead of treating a live emulator as closed.
        raise OSError(f"xwininfo failed for {hex(win_id)}: {' '.join(r.stderr.split())[:120]}")
    fields: dict[str, str] = {}
    title = ""
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("xwininfo: Window id:"):
            m = re.search(r'"(.*)"\s*$', line)
            title = m.group(1) if m else ""
        elif ":" in line:
            k, _, v = line.partition(":")
            fields[k.strip()] = v.strip()
    try:
        rect = Rect(int(fields["Absolute upper-left X"]), int(fields["Absolute upper-left Y"]),
                    int(fields["Width"]), int(fields["Height"]))
    except (KeyError, ValueError):
        raise WindowGone(f"cannot read the geometry of {hex(win_id)}") from None
    viewable = fields.get("Map State", "IsViewable") == "IsViewable"
    return WindowInfo(win_id, title, rect, viewable)


# --------------------------------------------------------------------------- regions and grabbing
def screen_rect(sct: object) -> Rect:
    """The whole virtual screen (all monitors) as mss reports it."""
    mon = sct.monitors[0]  # type: ignore[attr-defined]
    return Rect(int(mon["left"]), int(mon["top"]), int(mon["width"]), int(mon["height"]))


def check_region(region: Rect, screen: Rect) -> Rect:
    """Validate a user's --region against the screen; partly visible regions are clipped."""
    if region.width <= 0 or region.height <= 0:
        raise UserError(f"region {region.x},{region.y},{region.width},{region.height} has no area")
    clipped = region.intersect(screen)
    if clipped is None:
        raise UserError(f"region {region.x},{region.y},{region.width},{region.height} is off screen "
                        f"(the screen is {screen.width}x{screen.height} at {screen.x},{screen.y})")
    return clipped


def open_mss() -> object:
    """One mss instance (create it in the thread that grabs: X connections are per thread)."""
    require_display()
    import mss

    try:
        factory = getattr(mss, "MSS", None) or mss.mss  # mss >= 10.2 deprecates mss.mss()
        return factory()
    except Exception as e:  # noqa: BLE001 - mss raises its own ScreenShotError and ctypes errors
        raise UserError(f"cannot open the display {os.environ.get('DISPLAY', '')!r} for capture: {e}") from None


def grab(sct: object, rect: Rect) -> np.ndarray:
    """Grab ``rect`` from the screen as a BGRA ``(H, W, 4)`` uint8 array (what mss gives)."""
    shot = sct.grab(rect.as_monitor())  # type: ignore[attr-defined]
    return np.asarray(shot, dtype=np.uint8).reshape(shot.height, shot.width, 4)


class _XImage(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.c_void_p), ("byte_order", ctypes.c_int),
                ("bitmap_unit", ctypes.c_int), ("bitmap_bit_order", ctypes.c_int), ("bitmap_pad", ctypes.c_int),
                ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int), ("bits_per_pixel", ctypes.c_int)]


_X_ERRORS: list[int] = []


@ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
def _ERROR_HANDLER(_display: int, _event: int) -> int:  # noqa: N802 - a C callback, kept alive at module level
    _X_ERRORS.append(1)
    return 0


class WindowGrabber:
    """Read one window's own pixels, even while another window covers it (XComposite).

    The window is redirected with ``CompositeRedirectAutomatic``: the server keeps its contents
    in an off-screen pixmap and still draws it on screen as before, so nothing changes for the
    user, but ``XGetImage`` on the window now returns its pixels rather than whatever is on top.
    Not thread-safe: create and use it in one thread.
    """

    def __init__(self, win_id: int) -> None:
        require_display()
        x11_name = ctypes.util.find_library("X11")
        comp_name = ctypes.util.find_library("Xcomposite")
        if not x11_name or not comp_name:
            raise UserError("reading a covered window needs libX11 and libXcomposite; use --position beside")
        self._x = ctypes.CDLL(x11_name)
        self._c = ctypes.CDLL(comp_name)
        self._x.XOpenDisplay.restype = ctypes.c_void_p
        self._x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self._x.XGetImage.restype = ctypes.POINTER(_XImage)
        self._x.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                                      ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
        self._x.XDestroyImage.argtypes = [ctypes.POINTER(_XImage)]
        self._x.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self._x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self._x.XSetErrorHandler.restype = ctypes.c_void_p
        self._x.XSetErrorHandler.argtypes = [ctypes.c_void_p]
        self._c.XCompositeRedirectWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int]
        self._c.XCompositeQueryExtension.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int),
                                                     ctypes.POINTER(ctypes.c_int)]
        self._dpy = self._x.XOpenDisplay(None)
        if not self._dpy:
            raise UserError("cannot open the X display for window capture")
        ev, err = ctypes.c_int(), ctypes.c_int()
        if not self._c.XCompositeQueryExtension(self._dpy, ctypes.byref(ev), ctypes.byref(err)):
            self.close()
            raise UserError("the X server has no Composite extension; use --position beside")
        self.win_id = win_id
        self._c.XCompositeRedirectWindow(self._dpy, win_id, 0)  # 0 = CompositeRedirectAutomatic
        self._x.XSync(self._dpy, 0)

    def grab(self, width: int, height: int) -> np.ndarray | None:
        """The window's top-left ``width`` x ``height`` pixels as BGRA, or None if it cannot be read.

        Xlib's default error handler *exits the process* on BadWindow/BadMatch (a window closing
        or being unmapped between our geometry check and the grab), so a recording handler is
        installed around the call.
        """
        _X_ERRORS.clear()
        old = self._x.XSetErrorHandler(ctypes.cast(_ERROR_HANDLER, ctypes.c_void_p))
        try:
            img = self._x.XGetImage(self._dpy, self.win_id, 0, 0, width, height, 0xFFFFFFFF, 2)  # 2 = ZPixmap
            self._x.XSync(self._dpy, 0)
        finally:
            self._x.XSetErrorHandler(old)
        if not img:
            return None
        try:
            im = img.contents
            if im.bits_per_pixel != 32:
                return None
            buf = ctypes.string_at(im.data, im.bytes_per_line * im.height)
            arr = np.frombuffer(buf, np.uint8).reshape(im.height, im.bytes_per_line // 4, 4)[:, :im.width].copy()
            arr[:, :, 3] = 255
            return arr
        finally:
            self._x.XDestroyImage(img)

    def close(self) -> None:
        if getattr(self, "_dpy", None):
            self._x.XCloseDisplay(self._dpy)
            self._dpy = None

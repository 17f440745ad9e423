"""capture.window: parsing xwininfo, choosing windows, clipping regions (no X server needed)."""

from __future__ import annotations

import subprocess

import pytest

import capture.window as cw
from capture.window import Rect, WindowGone, check_region, parse_tree
from utils.errors import UserError

TREE = '''
xwininfo: Window id: 0x1a5 (the root window) (has no name)

  Root window id: 0x1a5 (the root window) (has no name)
  Parent window id: 0x0 (none)
     4 children:
     0x400007 "mGBA - Tetris (1.0): 60 fps": ("mgba-qt" "mGBA")  480x432+0+0  +40+60
        0x400008 (has no name): ()  1x1+-1+-1  +39+59
     0x600001 "retrocolor live": ()  480x432+10+20  +530+60
     0x700001 "Terminal": ("xterm" "XTerm")  800x600+0+0  +100+100
     0x700002 "tiny": ()  4x4+0+0  +0+0
'''

INFO = '''
xwininfo: Window id: 0x400007 "mGBA - Tetris"

  Absolute upper-left X:  52
  Absolute upper-left Y:  71
  Relative upper-left X:  0
  Relative upper-left Y:  0
  Width: 480
  Height: 432
  Map State: {state}
'''


@pytest.fixture
def fake_x(monkeypatch):
    """Answer xwininfo/xprop from canned text; records the argv lists (never a shell string)."""
    calls: list[list[str]] = []
    state = {"map": "IsViewable", "gone": False}

    def run(argv, timeout=5.0):
        calls.append(argv)
        assert isinstance(argv, list)
        if argv[1:] == ["-root", "-tree"]:
            return subprocess.CompletedProcess(argv, 0, TREE, "")
        if argv[0] == "xprop":
            clients = "_NET_CLIENT_LIST: window id # 0x400007, 0x600001, 0x700001\n"
            return subprocess.CompletedProcess(argv, 0, clients, "")
        if state["gone"]:
            return subprocess.CompletedProcess(argv, 1, "", "X Error: BadWindow (invalid Window parameter)")
        return subprocess.CompletedProcess(argv, 0, INFO.format(state=state["map"]), "")

    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(cw, "_run", run)
    monkeypatch.setattr(cw.shutil, "which", lambda name: f"/usr/bin/{name}")
    return state


def test_parse_tree_keeps_named_windows_with_absolute_positions():
    wins = parse_tree(TREE)
    assert [(hex(w.id), w.title, w.rect) for w in wins] == [
        ("0x400007", "mGBA - Tetris (1.0): 60 fps", Rect(40, 60, 480, 432)),
        ("0x600001", "retrocolor live", Rect(530, 60, 480, 432)),
        ("0x700001", "Terminal", Rect(100, 100, 800, 600)),
        ("0x700002", "tiny", Rect(0, 0, 4, 4)),
    ]


def test_find_window_and_emulator(fake_x):
    assert cw.find_window("tetris").id == 0x400007  # case-insensitive substring
    name, win = cw.find_emulator()
    assert name == "mGBA" and win.id == 0x400007
    with pytest.raises(UserError) as e:
        cw.find_window("sameboy")
    msg = str(e.value)
    assert "no window title contains 'sameboy'" in msg and "'Terminal'" in msg and "mGBA - Tetris" in msg
    assert "retrocolor live" not in msg and "tiny" not in msg  # our own window and specks are not candidates


def test_window_state_map_state_and_closing(fake_x):
    st = cw.window_state(0x400007)
    assert st.rect == Rect(52, 71, 480, 432) and st.viewable
    fake_x["map"] = "IsUnMapped"
    assert not cw.window_state(0x400007).viewable  # minimised: the live loop waits
    fake_x["gone"] = True
    with pytest.raises(WindowGone):
        cw.window_state(0x400007)


def test_regions_and_display(monkeypatch):
    screen = Rect(0, 0, 1024, 768)
    assert check_region(Rect(10, 10, 320, 288), screen) == Rect(10, 10, 320, 288)
    assert check_region(Rect(900, 700, 320, 288), screen) == Rect(900, 700, 124, 68)  # partly visible: clipped
    with pytest.raises(UserError, match="off screen .*1024x768"):
        check_region(Rect(2000, 0, 320, 288), screen)
    with pytest.raises(UserError, match="off screen"):
        check_region(Rect(-400, 0, 320, 288), screen)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(cw.sys, "platform", "linux")
    with pytest.raises(UserError, match="DISPLAY is not set"):
        cw.require_display()

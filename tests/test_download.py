"""capture.download against a real loopback HTTP server and real yt-dlp (no mocks).

The server is written here (http.server's SimpleHTTPRequestHandler does not do ``Range``) so we
can test resume after a dropped connection, 404s, and a playlist (an RSS feed whose enclosures
yt-dlp's generic extractor turns into playlist entries).  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import RangeServer, range_server

from capture.download import _verify, condense_error, download, format_selector
from retrocolor import main
from utils.errors import UserError


# --------------------------------------------------------------------------- fixtures
def _make_mp4(path: Path, frames: int = 12, seed: int = 0) -> bytes:
    """A small real MP4 (noise frames compress badly, so it is big enough to cut in half)."""
    rng = np.random.default_rng(seed)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 80))
    assert vw.isOpened()
    for _ in range(frames):
        vw.write(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))
    vw.release()
    data = path.read_bytes()
    assert len(data) > 20_000
    return data


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    p = tmp_path_factory.mktemp("src") / "clip.mp4"
    return p, _make_mp4(p)


@pytest.fixture
def server(clip: tuple[Path, bytes]) -> Iterator[tuple[RangeServer, str]]:
    with range_server({"/clip.mp4": (clip[1], "video/mp4")}) as srv:
        yield srv, srv.url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _final_files(folder: Path) -> list[Path]:
    """Files that look complete: anything but yt-dlp's .part / .ytdl and our hidden temps."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.endswith((".part", ".ytdl")) and not p.name.startswith("."))


# --------------------------------------------------------------------------- success paths
def test_http_download_is_byte_identical(server: tuple[RangeServer, str], clip: tuple[Path, bytes],
                                         tmp_path: Path) -> None:
    _, base = server
    out = tmp_path / "dl" / "nested"  # created on demand
    paths = download(f"{base}/clip.mp4", out)
    assert len(paths) == 1
    p = paths[0]
    assert p.parent == out and p.suffix == ".mp4"
    assert p.read_bytes() == clip[1]
    assert _final_files(out) == [p]
    assert not list(out.glob("*.part"))
    # The file is a real video that OpenCV can open (what the extract stage will do).
    cap = cv2.VideoCapture(str(p))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (80, 96, 3)


def test_second_download_reuses_the_finished_file(server: tuple[RangeServer, str], clip: tuple[Path, bytes],
                                                   tmp_path: Path) -> None:
    _, base = server
    first = download(f"{base}/clip.mp4", tmp_path)
    before = first[0].stat()
    second = download(f"{base}/clip.mp4", tmp_path)
    assert first == second and second[0].read_bytes() == clip[1]
    after = second[0].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def test_file_url_and_local_path_copy_identically(clip: tuple[Path, bytes], tmp_path: Path) -> None:
    src, data = clip
    a = download(src.resolve().as_uri(), tmp_path / "a")
    b = download(str(src), tmp_path / "b")
    assert a == [tmp_path / "a" / "clip.mp4"] and b == [tmp_path / "b" / "clip.mp4"]
    assert a[0].read_bytes() == data and b[0].read_bytes() == data
    assert _final_files(tmp_path / "a") == a and _final_files(tmp_path / "b") == b  # no temp files left
    # A file already in the output folder is returned as is, not copied onto itself.
    assert download(str(a[0]), tmp_path / "a") == a and a[0].read_bytes() == data


def test_playlist_gives_one_file_per_entry(server: tuple[RangeServer, str], tmp_path: Path) -> None:
    """An RSS feed is a playlist to yt-dlp's generic extractor: each enclosure is an entry."""
    srv, base = server
    d1 = _make_mp4(tmp_path / "one.mp4", frames=6, seed=1)
    d2 = _make_mp4(tmp_path / "two.mp4", frames=6, seed=2)
    srv.files["/v/one.mp4"] = (d1, "video/mp4")
    srv.files["/v/two.mp4"] = (d2, "video/mp4")
    items = "".join(
        f'<item><title>{t}</title><enclosure url="{base}/v/{n}.mp4" type="video/mp4" length="{len(d)}"/></item>'
        for t, n, d in [('Part 1: "Boss" / fight?', "one", d1), ("Part 2 &lt;end&gt;", "two", d2)])
    feed = f'<?xml version="1.0"?><rss version="2.0"><channel><title>Longplay</title>{items}</channel></rss>'
    srv.files["/feed.xml"] = (feed.encode(), "application/rss+xml")

    out = tmp_path / "pl"
    paths = download(f"{base}/feed.xml", out)
    assert len(paths) == 2
    assert [p.read_bytes() for p in paths] == [d1, d2]  # in playlist order
    assert sorted(paths) == _final_files(out)
    for p in paths:
        assert p.parent == out
        assert re.fullmatch(r"[A-Za-z0-9._-]+", p.name), p.name  # filesystem- and shell-safe
    assert paths[0].name.startswith("Part_1") and paths[1].name.startswith("Part_2")


# --------------------------------------------------------------------------- resume
def test_interrupted_download_fails_then_resumes(server: tuple[RangeServer, str], clip: tuple[Path, bytes],
                                                 tmp_path: Path) -> None:
    srv, base = server
    data = clip[1]
    srv.cut = True  # every response body stops at half the file, retries included
    with pytest.raises(UserError) as ei:
        download(f"{base}/clip.mp4", tmp_path)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith("download failed:") and base in msg
    assert msg.endswith("run the same command again to resume")
    assert _final_files(tmp_path) == []  # nothing under a final name
    parts = list(tmp_path.glob("*.part"))
    assert len(parts) == 1 and parts[0].read_bytes() == data[: len(data) // 2]

    srv.cut = False
    srv.ranges.clear()
    paths = download(f"{base}/clip.mp4", tmp_path)
    assert paths[0].read_bytes() == data
    # It resumed from the .part (a Range request from the half-way mark), not from scratch.
    assert f"bytes={len(data) // 2}-" in srv.ranges
    assert not list(tmp_path.glob("*.part"))


# --------------------------------------------------------------------------- errors
def test_404_is_one_line_and_leaves_nothing(server: tuple[RangeServer, str], tmp_path: Path) -> None:
    _, base = server
    url = f"{base}/missing.mp4"
    with pytest.raises(UserError) as ei:
        download(url, tmp_path)
    assert str(ei.value) == f"download failed: HTTP Error 404: Not Found ({url})"
    assert list(tmp_path.iterdir()) == []
    # An -o folder the failed download would have created is not left behind, empty.
    with pytest.raises(UserError):
        download(url, tmp_path / "new" / "videos")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/clip.mp4"
    with pytest.raises(UserError) as ei:
        download(url, tmp_path)
    msg = str(ei.value)
    assert "\n" not in msg and "connection refused" in msg.lower() and msg.endswith(f"({url})")
    assert "caused by" not in msg and "ERROR" not in msg
    assert list(tmp_path.iterdir()) == []


def test_page_without_video_is_unsupported(server: tuple[RangeServer, str], tmp_path: Path) -> None:
    srv, base = server
    srv.files["/page.html"] = (b"<html><head><title>Hi</title></head><body>no video here</body></html>",
                               "text/html; charset=utf-8")
    with pytest.raises(UserError) as ei:
        download(f"{base}/page.html", tmp_path)
    assert str(ei.value) == f"download failed: Unsupported URL ({base}/page.html)"
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_are_user_errors(tmp_path: Path, clip: tuple[Path, bytes]) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        download(str(clip[0]), a_file)
    with pytest.raises(UserError, match="no such file"):
        download(str(tmp_path / "nope.mp4"), tmp_path / "o")
    with pytest.raises(UserError, match="no such file"):
        download((tmp_path / "nope.mp4").as_uri(), tmp_path / "o")
    with pytest.raises(UserError, match="not a file"):
        download(str(tmp_path), tmp_path / "o")
    with pytest.raises(UserError, match="max-height"):
        download(str(clip[0]), tmp_path / "o", max_height=0)
    with pytest.raises(UserError, match="download failed") as ei:
        download("gopher2://example.invalid/x", tmp_path / "o")
    assert "\n" not in str(ei.value)
    assert _final_files(tmp_path / "o") == []


def test_cli_success_prints_the_path(server: tuple[RangeServer, str], clip: tuple[Path, bytes], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, base = server
    rc = main(["download", f"{base}/clip.mp4", "-o", str(tmp_path), "--max-height", "480"])
    out, err = capsys.readouterr()
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 1 and Path(lines[0]).read_bytes() == clip[1]
    assert "ERROR" not in err and "Traceback" not in err


def test_cli_failure_is_one_line_nonzero_exit(server: tuple[RangeServer, str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _, base = server
    url = f"{base}/gone.mp4"
    rc = main(["download", url, "-o", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc != 0 and out == ""
    assert err.splitlines() == [f"retrocolor: error: download failed: HTTP Error 404: Not Found ({url})"]
    rc = main(["download", f"http://127.0.0.1:{_closed_port()}/x.mp4", "-o", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc != 0 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("retrocolor: error: download failed:")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- format choice (yt-dlp's real selector)
def _select(formats: list[dict[str, object]], max_height: int) -> list[str]:
    """Run yt-dlp's own format selection (no network: the info dict is given)."""
    import yt_dlp

    from capture.download import FORMAT_SORT

    info = {"id": "x", "title": "x", "extractor": "test", "extractor_key": "Test", "webpage_url": "http://x.invalid/",
            "formats": [dict(f, url=f"http://x.invalid/{f['format_id']}") for f in formats]}
    with yt_dlp.YoutubeDL({"format": format_selector(max_height), "format_sort": FORMAT_SORT, "quiet": True,
                           "simulate": True, "logger": _Silent()}) as ydl:
        res = ydl.process_ie_result(info, download=False)
    return [f["format_id"] for f in res["requested_formats"]] if "requested_formats" in res else [res["format_id"]]


class _Silent:
    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


def test_format_choice_prefers_video_only_up_to_max_height() -> None:
    yt_like = [
        {"format_id": "a", "ext": "m4a", "vcodec": "none", "acodec": "mp4a.40.2", "abr": 128},
        {"format_id": "c360", "ext": "mp4", "vcodec": "avc1.42001E", "acodec": "mp4a.40.2", "height": 360},
        {"format_id": "v480", "ext": "mp4", "vcodec": "avc1.4d401e", "acodec": "none", "height": 480},
        {"format_id": "v720", "ext": "mp4", "vcodec": "avc1.4d401f", "acodec": "none", "height": 720},
        {"format_id": "v720av1", "ext": "mp4", "vcodec": "av01.0.05M.08", "acodec": "none", "height": 720},
        {"format_id": "v1080", "ext": "mp4", "vcodec": "avc1.640028", "acodec": "none", "height": 1080},
    ]
    assert _select(yt_like, 720) == ["v720"]       # video-only, <= 720, H.264 over AV1
    assert _select(yt_like, 1080) == ["v1080"]
    assert _select(yt_like, 480) == ["v480"]
    assert _select(yt_like, 144) == ["c360"]      # nothing small enough: the smallest video
    combined_only = [
        {"format_id": "c360", "ext": "mp4", "vcodec": "avc1", "acodec": "mp4a", "height": 360},
        {"format_id": "c720", "ext": "mp4", "vcodec": "avc1", "acodec": "mp4a", "height": 720},
        {"format_id": "c1080", "ext": "mp4", "vcodec": "avc1", "acodec": "mp4a", "height": 1080},
    ]
    assert _select(combined_only, 720) == ["c720"]
    assert _select([{"format_id": "mp4", "ext": "mp4"}], 720) == ["mp4"]  # a direct link: nothing known


def test_condense_error_strips_ytdlp_noise() -> None:
    assert condense_error("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found "
                          "(caused by <HTTPError 404: Not Found>)") == "HTTP Error 404: Not Found"
    assert condense_error("ERROR: [generic] x: Unable to download webpage: [Errno 111] Connection refused "
                          "(caused by TransportError('[Errno 111] Connection refused'))") == "Connection refused"
    assert condense_error("ERROR: [youtube] abc: Video unavailable\nThis video is private") == \
        "Video unavailable This video is private"
    assert condense_error("ERROR: Unsupported URL: http://x/; please report this issue on https://...") == \
        "Unsupported URL: http://x/"


def test_short_or_empty_file_is_never_reported_as_success(tmp_path: Path) -> None:
    """The last line of defence behind yt-dlp's own length check: a short file goes back to .part."""
    short = tmp_path / "v.mp4"
    short.write_bytes(b"x" * 10)
    with pytest.raises(UserError, match="got 10 bytes of v.mp4, expected 20 bytes"):
        _verify(short, 20, "http://h/v.mp4")
    assert not short.exists() and (tmp_path / "v.mp4.part").read_bytes() == b"x" * 10
    empty = tmp_path / "e.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="expected a non-empty file"):
        _verify(empty, None, "http://h/e.mp4")
    assert not empty.exists()
    ok = tmp_path / "ok.mp4"
    ok.write_bytes(b"y" * 20)
    _verify(ok, 20, "http://h/ok.mp4")
    _verify(ok, None, "http://h/ok.mp4")
    assert ok.read_bytes() == b"y" * 20

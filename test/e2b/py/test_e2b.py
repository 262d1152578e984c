"""Drives the unmodified E2B Python SDK against a SoulBox daemon.

test/e2b/run.sh installs the pinned SDK (requirements.txt) into a venv and
runs this with E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY pointing at a
daemon it started. Every test makes its own sandboxes and kills them.
"""

import asyncio
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from importlib.metadata import version

import pytest

from e2b import (
    AsyncSandbox,
    CommandExitException,
    FileType,
    FilesystemEventType,
    NotFoundException,
    PtySize,
    Sandbox,
    SandboxNotFoundException,
    SandboxQuery,
    SandboxState,
    TimeoutException,
)

for _v in ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY"):
    if not os.environ.get(_v):
        raise RuntimeError(f"{_v} must be set (test/e2b/run.sh sets it)")

print("e2b Python SDK", version("e2b"))


@pytest.fixture
def sbx():
    s = Sandbox.create(timeout=300)
    yield s
    s.kill()


def until(what, cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def tag(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_create_metadata_envs_info_kill():
    t = tag("meta")
    s = Sandbox.create(metadata={"suite": t}, envs={"GREETING": "hi there"}, timeout=120)
    try:
        info = s.get_info()
        assert info.sandbox_id == s.sandbox_id
        assert info.metadata == {"suite": t}
        assert info.end_at > info.started_at
        assert s.commands.run('echo "$GREETING"').stdout == "hi there\n"
        assert s.is_running()
    finally:
        assert s.kill() is True
    assert not s.is_running()
    assert Sandbox.kill(s.sandbox_id) is False


def test_commands_foreground(sbx):
    out = []
    r = sbx.commands.run(
        "echo out; echo err >&2; echo $A; pwd; id -un",
        envs={"A": "x"},
        cwd="/tmp",
        on_stdout=out.append,
    )
    assert r.exit_code == 0
    assert r.stdout == "out\nx\n/tmp\nuser\n"
    assert r.stderr == "err\n"
    assert "".join(out) == r.stdout
    assert sbx.commands.run("id -u", user="root").stdout == "0\n"
    # Without stdin (envd 0.3.0), cat reads end of file at once.
    assert sbx.commands.run("cat", stdin=False).stdout == ""


def test_metrics(sbx):
    sbx.commands.run("head -c 1000000 /dev/urandom | sha256sum")
    until("metrics", lambda: len(sbx.get_metrics()) > 0)
    m = sbx.get_metrics()[-1]
    assert m.cpu_count >= 1 and m.mem_total > 0 and m.mem_used > 0


def test_command_exit_error(sbx):
    with pytest.raises(CommandExitException) as e:
        sbx.commands.run("echo bad >&2; exit 3")
    assert e.value.exit_code == 3
    assert e.value.stderr == "bad\n"


def test_command_timeout(sbx):
    t0 = time.monotonic()
    with pytest.raises(TimeoutException):
        sbx.commands.run("sleep 30", timeout=1)
    assert time.monotonic() - t0 < 10
    # SoulBox (unlike envd) ends only the stream at the timeout: the
    # command keeps running, listed and killable.
    left = [p for p in sbx.commands.list() if "sleep 30" in p.args]
    assert left, "the timed-out command is still running"
    assert sbx.commands.kill(left[0].pid)
    until("the killed command to be gone", lambda: all("sleep 30" not in p.args for p in sbx.commands.list()))


def test_commands_background_stdin_list_connect_kill(sbx):
    cat = sbx.commands.run("cat", background=True, stdin=True)
    sbx.commands.send_stdin(cat.pid, "one\n")
    cat.send_stdin(b"two\n")
    sbx.commands.close_stdin(cat.pid)
    assert cat.wait().stdout == "one\ntwo\n"

    # Client-streamed stdin (StreamInput over HTTP/2).
    cat2 = sbx.commands.run("cat", background=True, stdin=True)
    sbx.commands.stream_input(cat2.pid, iter(["a\n", b"b\n", "c\n"]))
    sbx.commands.close_stdin(cat2.pid)
    assert cat2.wait().stdout == "a\nb\nc\n"

    bg = sbx.commands.run("echo started; touch /tmp/started; sleep 600", background=True)
    until("the background command", lambda: sbx.files.exists("/tmp/started"))
    pids = [p.pid for p in sbx.commands.list()]
    assert bg.pid in pids
    again = sbx.commands.connect(bg.pid)
    assert again.pid == bg.pid
    assert sbx.commands.kill(bg.pid) is True
    with pytest.raises(CommandExitException):
        again.wait()
    with pytest.raises(CommandExitException) as e:
        bg.wait()
    assert "started" in e.value.stdout
    assert bg.pid not in [p.pid for p in sbx.commands.list()]
    assert sbx.commands.kill(bg.pid) is False

    h = sbx.commands.run("sleep 0.2; echo done", background=True)
    assert h.wait().stdout == "done\n"


def test_files(sbx):
    d = "/home/user/work"
    assert sbx.files.make_dir(d) is True
    assert sbx.files.make_dir(d) is False
    w = sbx.files.write(f"{d}/a.txt", "alpha")
    assert w.path == f"{d}/a.txt"
    sbx.files.write(f"{d}/bin.dat", b"\x00\x01\xff")
    sbx.files.write_files([{"path": f"{d}/m.txt", "data": "m"}, {"path": f"{d}/sub/n.txt", "data": b"n"}])
    sbx.files.write_files([{"path": f"{d}/gz.txt", "data": "zipped"}], gzip=True)
    assert sbx.files.read(f"{d}/gz.txt") == "zipped"
    sbx.files.remove(f"{d}/gz.txt")
    assert sbx.files.read(f"{d}/a.txt") == "alpha"
    assert bytes(sbx.files.read(f"{d}/bin.dat", format="bytes")) == b"\x00\x01\xff"
    assert b"".join(sbx.files.read(f"{d}/sub/n.txt", format="stream")) == b"n"
    entries = {e.name: e for e in sbx.files.list(d)}
    assert sorted(entries) == ["a.txt", "bin.dat", "m.txt", "sub"]
    assert entries["sub"].type == FileType.DIR
    assert sbx.files.exists(f"{d}/a.txt")
    assert not sbx.files.exists(f"{d}/nope")
    info = sbx.files.get_info(f"{d}/a.txt")
    assert info.type == FileType.FILE and info.size == 5
    moved = sbx.files.rename(f"{d}/a.txt", f"{d}/b.txt")
    assert moved.path == f"{d}/b.txt"
    sbx.files.remove(f"{d}/b.txt")
    assert not sbx.files.exists(f"{d}/b.txt")
    with pytest.raises(NotFoundException):
        sbx.files.read(f"{d}/b.txt")


def test_watch_dir(sbx):
    d = "/home/user/watched"
    sbx.files.make_dir(d)
    h = sbx.files.watch_dir(d, recursive=True)
    sbx.files.write(f"{d}/f.txt", "x")
    sbx.commands.run(f"mkdir {d}/sub && echo y > {d}/sub/g.txt && rm {d}/f.txt")
    events = []

    def seen():
        events.extend(h.get_new_events())
        return any(e.name == "f.txt" and e.type == FilesystemEventType.REMOVE for e in events) and any(
            e.name.endswith("g.txt") for e in events
        )

    until("watch events", seen)
    assert any(e.name == "f.txt" and e.type in (FilesystemEventType.CREATE, FilesystemEventType.WRITE) for e in events)
    h.stop()


def test_signed_urls():
    s = Sandbox.create(secure=True, timeout=120)
    try:
        path = "/home/user/signed.txt"
        up = s.upload_url(path, use_signature_expiration=60)
        assert "signature=v1_" in up and "signature_expiration=" in up
        boundary = "soulboxboundary"
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"signed.txt\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\nvia a signed URL\r\n--{boundary}--\r\n"
        ).encode()
        req = urllib.request.Request(up, data=body, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req) as r:
            assert r.status == 200
        assert s.files.read(path) == "via a signed URL"
        with urllib.request.urlopen(s.download_url(path, use_signature_expiration=60)) as r:
            assert r.read() == b"via a signed URL"
        with urllib.request.urlopen(s.download_url(path)) as r:
            assert r.read() == b"via a signed URL"
        short = s.download_url(path, use_signature_expiration=1)
        time.sleep(2.1)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(short)
        assert e.value.code == 401
    finally:
        s.kill()


def test_pty(sbx):
    out = bytearray()
    term = sbx.pty.create(PtySize(rows=24, cols=80), envs={"PS1": "$ "})
    reader = threading.Thread(target=_drain, args=(term, out), daemon=True)
    reader.start()
    sbx.pty.send_stdin(term.pid, b'stty size; echo "pty-$((6*7))"\n')
    until("pty output", lambda: b"pty-42" in out)
    assert b"24 80" in out
    sbx.pty.resize(term.pid, PtySize(rows=30, cols=100))
    sbx.pty.stream_input(term.pid, iter([b"stty ", b"size\n"]))
    until("resized pty", lambda: b"30 100" in out)
    assert sbx.pty.kill(term.pid) is True
    reader.join(10)
    assert not reader.is_alive()


def _drain(handle, out):
    try:
        handle.wait(on_pty=out.extend)
    except CommandExitException:
        pass


def test_set_timeout():
    s = Sandbox.create(timeout=60)
    before = s.get_info().end_at
    s.set_timeout(600)
    assert (s.get_info().end_at - before).total_seconds() > 480
    s.set_timeout(2)
    until("the sandbox to expire", lambda: not s.is_running(), 15)
    with pytest.raises(NotFoundException):
        Sandbox.get_info(s.sandbox_id)


def test_list_metadata_filter_paginated():
    t = tag("list")
    boxes = [Sandbox.create(metadata={"suite": t, "i": str(i)}, timeout=120) for i in range(3)]
    other = Sandbox.create(metadata={"suite": t + "-other"}, timeout=120)
    try:
        pager = Sandbox.list(query=SandboxQuery(metadata={"suite": t}), limit=2)
        seen = []
        while pager.has_next:
            items = pager.next_items()
            assert len(items) <= 2
            seen.extend(items)
        assert sorted(s.sandbox_id for s in seen) == sorted(b.sandbox_id for b in boxes)
        assert all(s.state == SandboxState.RUNNING and s.metadata["suite"] == t for s in seen)
        one = Sandbox.list(query=SandboxQuery(metadata={"suite": t, "i": "1"})).next_items()
        assert [s.sandbox_id for s in one] == [boxes[1].sandbox_id]
    finally:
        for b in boxes + [other]:
            b.kill()


def test_pause_connect_preserves_files_and_process():
    s = Sandbox.create(timeout=120)
    try:
        s.files.write("/home/user/keep.txt", "kept")
        bg = s.commands.run("i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.1; done", background=True)
        until("the counter", lambda: s.files.exists("/tmp/counter"))
        c0 = int(s.files.read("/tmp/counter"))
        assert s.pause() is True
        assert not s.is_running()
        paused = Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED])).next_items()
        assert s.sandbox_id in [p.sandbox_id for p in paused]
        back = Sandbox.connect(s.sandbox_id)
        assert back.is_running()
        assert back.files.read("/home/user/keep.txt") == "kept"
        c1 = int(back.files.read("/tmp/counter"))
        assert c1 >= c0
        assert bg.pid in [p.pid for p in back.commands.list()]
        until("the counter to move on", lambda: int(back.files.read("/tmp/counter")) > c1)
    finally:
        s.kill()


def test_unknown_sandbox():
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect("doesnotexist0")
    with pytest.raises(NotFoundException):
        Sandbox.get_info("doesnotexist0")


def test_async_sdk():
    async def main():
        sandboxes = await asyncio.gather(*[AsyncSandbox.create(timeout=120) for _ in range(10)])
        try:
            results = await asyncio.gather(*[s.commands.run(f"echo {i}") for i, s in enumerate(sandboxes)])
            assert [r.stdout for r in results] == [f"{i}\n" for i in range(10)]
            await sandboxes[0].files.write("/tmp/a", "async")
            assert await sandboxes[0].files.read("/tmp/a") == "async"
        finally:
            await asyncio.gather(*[s.kill() for s in sandboxes])

    asyncio.run(main())

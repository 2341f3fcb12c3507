"""LogCapture with real children writing into its pipe: rotation, reads, waiting and closing."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sentinel.errors import CaptureClosed
from sentinel.logs import LINE_MAX, LogCapture

# Numbered lines of uneven length (50..149 bytes), so that neither chunks nor rotations line up
# with line ends. The child and the test build the same bytes from this source.
LINES_SOURCE = """
def lines(count):
    return b"".join(b"%08d %s\\n" % (i, b"x" * (i * 7919 % 100 + 40)) for i in range(count))
"""
namespace: dict[str, Callable[[int], bytes]] = {}
exec(LINES_SOURCE, namespace)
lines = namespace["lines"]


def writer(expression: str, block: int = 1 << 16) -> str:
    """A child that writes the bytes of `expression` to stdout in `block`-sized writes."""
    return textwrap.dedent(LINES_SOURCE) + textwrap.dedent(f"""
        import os
        data = memoryview({expression})
        while data:
            data = data[os.write(1, data[:{block}]):]
    """)


async def run_child(capture: LogCapture, code: str) -> None:
    """Run a real child with its stdout on the capture's pipe and wait for it to exit."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", code], stdin=subprocess.DEVNULL, stdout=capture.write_fd
    )
    returncode = await asyncio.get_running_loop().run_in_executor(None, proc.wait)
    assert returncode == 0


async def wait_stored(capture: LogCapture, count: int, timeout: float = 10) -> None:
    """Wait until the capture has stored `count` bytes; the timeout only guards against hangs."""
    async with asyncio.timeout(timeout):
        while (written := capture.written) < count:
            await capture.wait_written(written)
    assert capture.written == count


def files_in_order(path: Path) -> list[Path]:
    """path.N ... path.1, path: oldest first."""
    backups = sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.suffix[1:]))
    return [*reversed(backups), path]


@pytest.fixture
async def make_capture(tmp_path: Path) -> AsyncIterator[Callable[..., LogCapture]]:
    """Build started captures under tmp_path; each is closed at teardown."""
    made: list[LogCapture] = []

    def make(max_bytes: int = 0, backups: int = 0, use_splice: bool = True) -> LogCapture:
        capture = LogCapture(
            tmp_path / "logs" / "out.log", max_bytes, backups, use_splice=use_splice
        )
        capture.start()
        made.append(capture)
        return capture

    yield make
    for capture in made:
        await capture.aclose()


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "copy"])
async def test_fast_writer_rotates_without_losing_or_splitting_lines(
    make_capture: Callable[..., LogCapture], use_splice: bool
) -> None:
    """A fast writer's 20 MB arrive whole, in order, in files no larger than max_bytes."""
    capture = make_capture(max_bytes=1_000_000, backups=100, use_splice=use_splice)
    expected = lines(200_000)
    await run_child(capture, writer("lines(200_000)", block=1 << 20))
    await wait_stored(capture, len(expected))

    files = files_in_order(capture.path)
    contents = [f.read_bytes() for f in files]
    assert b"".join(contents) == expected
    assert len(files) >= 20
    for content in contents:
        assert len(content) <= 1_000_000
        assert content.endswith(b"\n")  # no line is split across files
    for content in contents[:-1]:  # rotated only when the next line did not fit
        assert len(content) > 1_000_000 - 150


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "copy"])
async def test_unfinished_line_moves_to_the_next_file_and_only_an_overlong_line_is_split(
    make_capture: Callable[..., LogCapture], use_splice: bool
) -> None:
    """A line that does not fit starts the next file; one longer than max_bytes is split."""
    capture = make_capture(max_bytes=100, backups=10, use_splice=use_splice)
    a, b, c, d = b"a" * 60 + b"\n", b"b" * 60 + b"\n", b"c" * 250 + b"\n", b"d" * 10 + b"\n"
    await run_child(capture, writer(repr(a + b + c + d), block=7))
    await wait_stored(capture, len(a + b + c + d))

    contents = [f.read_bytes() for f in files_in_order(capture.path)]
    assert contents == [a, b, b"c" * 100, b"c" * 100, b"c" * 50 + b"\n" + d]


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "copy"])
async def test_a_line_longer_than_line_max_is_split_at_the_rotation(
    make_capture: Callable[..., LogCapture], use_splice: bool
) -> None:
    """The search for the last line end looks back LINE_MAX bytes only: a line of LINE_MAX
    moves whole to the next file, a longer one that straddles the rotation is split there."""
    capture = make_capture(max_bytes=4 * LINE_MAX, backups=10, use_splice=use_splice)
    sizes = {b"a": LINE_MAX, b"b": 2 * LINE_MAX, b"c": LINE_MAX - 1, b"f": 3 * LINE_MAX + 100}
    # c straddles the first rotation and moves whole; f straddles the second, its start is
    # too far back.
    a, b, c, f = (char * size + b"\n" for char, size in sizes.items())
    expression = " + ".join(f"{char!r} * {size} + b'\\n'" for char, size in sizes.items())
    await run_child(capture, writer(expression, block=4096))
    await wait_stored(capture, len(a + b + c + f))

    contents = [path.read_bytes() for path in files_in_order(capture.path)]
    assert contents == [a + b, c + b"f" * (3 * LINE_MAX), b"f" * 100 + b"\n"]


async def test_only_the_newest_backups_are_kept(make_capture: Callable[..., LogCapture]) -> None:
    """With backups = 2, rotation keeps path, path.1 and path.2 and removes anything older."""
    capture = make_capture(max_bytes=1000, backups=2)
    expected = lines(1000)
    await run_child(capture, writer("lines(1000)"))
    await wait_stored(capture, len(expected))

    files = files_in_order(capture.path)
    assert [f.name for f in files] == ["out.log.2", "out.log.1", "out.log"]
    kept = b"".join(f.read_bytes() for f in files)
    assert expected.endswith(kept)
    assert expected[: -len(kept)].endswith(b"\n")  # what was removed ended at a line end


async def test_no_backups_truncates_in_place(make_capture: Callable[..., LogCapture]) -> None:
    """With backups = 0 the file starts over, holding the newest whole lines only."""
    capture = make_capture(max_bytes=1000, backups=0)
    expected = lines(1000)
    await run_child(capture, writer("lines(1000)"))
    await wait_stored(capture, len(expected))

    assert files_in_order(capture.path) == [capture.path]
    kept = capture.path.read_bytes()
    assert 0 < len(kept) <= 1000
    assert expected.endswith(kept)
    assert expected[: -len(kept)].endswith(b"\n")


async def test_read_tails_ranges_and_reads_to_the_end(
    make_capture: Callable[..., LogCapture],
) -> None:
    """read() serves a tail (negative offset), a range, the whole file, and nothing past it."""
    capture = make_capture()
    expected = lines(100)
    await run_child(capture, writer("lines(100)"))
    await wait_stored(capture, len(expected))
    size = len(expected)

    assert capture.read(-20, 0) == (expected[-20:], size)
    assert capture.read(-(size + 50), 0) == (expected, size)
    assert capture.read(10, 25) == (expected[10:35], 35)
    assert capture.read(size - 5, 100) == (expected[-5:], size)
    assert capture.read(0, 0) == (expected, size)
    assert capture.read(size + 100, 0) == (b"", size)  # how a follower notices a rotation
    with pytest.raises(ValueError, match="length"):
        capture.read(0, -1)


async def test_wait_written_resolves_on_new_data(make_capture: Callable[..., LogCapture]) -> None:
    """wait_written returns once new bytes are stored, at once if they already are."""
    capture = make_capture()
    waiting = asyncio.ensure_future(capture.wait_written(0))
    await asyncio.sleep(0)
    assert not waiting.done()

    await run_child(capture, "import os; os.write(1, b'hello\\n')")  # one write: one wake-up
    async with asyncio.timeout(10):
        assert await waiting == 6
    assert await capture.wait_written(5) == 6


async def test_wait_written_gives_way_to_a_timeout(
    make_capture: Callable[..., LogCapture],
) -> None:
    """A timeout cancels a wait with nothing written, and later waits still resolve."""
    capture = make_capture()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await capture.wait_written(0)

    await run_child(capture, "print('late')")
    await wait_stored(capture, 5)


async def test_an_existing_file_is_appended_to(
    make_capture: Callable[..., LogCapture], tmp_path: Path
) -> None:
    """A capture on an existing file keeps its content and writes after it."""
    path = tmp_path / "logs" / "out.log"
    path.parent.mkdir()
    path.write_bytes(b"before a restart\n")
    capture = make_capture()
    await run_child(capture, "print('after')")
    await wait_stored(capture, 6)

    assert path.read_bytes() == b"before a restart\nafter\n"
    assert capture.read(0, 0) == (b"before a restart\nafter\n", 23)


@pytest.mark.parametrize("use_splice", [True, False], ids=["splice", "copy"])
async def test_aclose_stores_all_the_pipe_holds_across_a_rotation_a_few_bytes_away(
    tmp_path: Path, use_splice: bool
) -> None:
    """The file is 500 bytes short of max_bytes and the pipe holds 5 kB: the first move stops
    at the rotation, and the rest still reaches the next file."""
    path = tmp_path / "out.log"
    old = lines(200)[:9500]
    old = old[: old.rfind(b"\n") + 1]
    path.write_bytes(old)
    capture = LogCapture(path, 10_000 - (9500 - len(old)), 3, use_splice=use_splice)
    expected = lines(50)  # ~5 kB: fits the smallest pipe, so the child exits undrained
    await run_child(capture, writer("lines(50)"))
    await capture.aclose()
    stored = b"".join(f.read_bytes() for f in files_in_order(path))
    assert stored == old + expected


async def test_a_write_per_line_does_not_wake_the_loop_per_line(
    make_capture: Callable[..., LogCapture], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line-buffered writer's 40 000 writes are drained in batches (the pipe is left to
    fill for a millisecond after a small drain), not one wake-up each, and arrive whole."""
    drains = 0
    drain = LogCapture._drain

    def counted(self: LogCapture) -> None:
        nonlocal drains
        drains += 1
        drain(self)

    monkeypatch.setattr(LogCapture, "_drain", counted)
    capture = make_capture()
    expected = lines(40_000)
    code = textwrap.dedent(LINES_SOURCE) + textwrap.dedent("""
        import os
        for line in lines(40_000).splitlines(keepends=True):
            os.write(1, line)
    """)
    await run_child(capture, code)
    await wait_stored(capture, len(expected))
    assert capture.path.read_bytes() == expected
    # Drained as each write arrives, it took about 2000 wake-ups here; left to fill, about 20
    # (a millisecond each: the writer takes some 50 ms).
    assert drains < 400, f"{drains} wake-ups for 40 000 writes"


async def test_aclose_stores_what_is_left_in_the_pipe(tmp_path: Path) -> None:
    """aclose drains the pipe into the file, fails pending waits, and may be called twice."""
    capture = LogCapture(tmp_path / "out.log", 0, 0)  # never started: nothing drains but aclose
    expected = lines(500)  # ~50 kB: fits the smallest pipe, so the child exits undrained
    await run_child(capture, writer("lines(500)"))
    waiting = asyncio.ensure_future(capture.wait_written(len(expected)))
    await asyncio.sleep(0)

    await capture.aclose()
    await capture.aclose()
    assert capture.path.read_bytes() == expected
    assert capture.written == len(expected)
    with pytest.raises(CaptureClosed):
        await waiting
    with pytest.raises(CaptureClosed):
        await capture.wait_written(0)


async def test_a_full_disk_drops_output_rather_than_block_the_child(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Writing to /dev/full logs one error and keeps draining, so the child never blocks."""
    capture = LogCapture(Path("/dev/full"), 0, 0)  # max_bytes 0: never renames /dev/full
    capture.start()
    try:
        with caplog.at_level(logging.ERROR, logger="sentinel.logs"):
            await run_child(capture, writer("lines(50_000)"))  # ~5 MB: more than any pipe holds
        assert capture.written == 0
        assert [r.getMessage() for r in caplog.records] == [
            "/dev/full: cannot write ([Errno 28] No space left on device): "
            "dropping output until it can"
        ]
    finally:
        await capture.aclose()

"""The ffmpeg binary as a transport for protocols PyAV's FFmpeg build lacks.

PyAV's wheels are built without libsrt, so ``srt://`` cannot be opened in-process. The
ffmpeg binary that imageio-ffmpeg ships (or one on ``PATH``) has it: vsr runs it as a
child process that carries MPEG-TS between a pipe and the stream, and PyAV demuxes or
muxes that pipe as it would any MPEG-TS input or output. Reading, ffmpeg copies the
stream's packets into MPEG-TS; sending, it relays vsr's MPEG-TS bytes as they are.

A finite stream arrives whole: SRT's live mode, by default, drops what is still in flight
when the sender hangs up, at both ends. The receiving side turns off timestamp-based
delivery (``tsbpd=0``: packets reach the pipe as they arrive, none waits out the latency
window to be discarded). The sending side:

- relays bytes (the ``data`` demuxer and muxer) in SRT-payload-sized pieces, which vsr's
  stream fills exactly (null packets pad its end), so ffmpeg holds nothing back for the end
  of its input: remuxing held the last packets (an interleaving queue, buffered audio) until
  then, and ffmpeg's SRT teardown right after its trailer discarded what it had not yet sent
  (the end of the audio on every run, now and then the last video frame);
- ends ffmpeg's input only once ffmpeg reports (``-progress``) having taken every byte and
  the receiver's latency window has passed (the receiver holds the last packets back that
  long, and drops them if the sender hangs up first);
- never drops a packet for being late (``snddropdelay=-1``): in live mode a packet that
  waited in the send buffer longer than the latency window (at least a second) is dropped,
  and on a loaded machine the process carrying the stream can be kept from running that long;
- lingers (``linger``) until the receiver has acknowledged every packet.

A URL's own values for any of these options win.

An input's passphrase stays off ffmpeg's command line, which every user of the machine can
read: the URL goes in without it, through the concat demuxer, whose script (the URL and the
protocol options, passphrase included) ffmpeg reads from a pipe.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import threading
import time

from vsr.errors import ConfigError
from vsr.io.source import mask_url, url_scheme

TRANSPORT_SCHEMES = ("srt",)
_LINGER_S = 5  # how long a sender waits for the receiver to acknowledge the last packets
_DRAIN_S = 1.0  # the receiver's latency window (SRT's default 120 ms) and a margin, unless the URL's is longer
_PAYLOAD = 1316  # bytes in each SRT message: seven 188-byte MPEG-TS packets, SRT's live-mode default
_NULL_TS = b"\x47\x1f\xff\x10" + b"\xff" * 184  # an MPEG-TS null packet, which demuxers skip


def needs_transport(target: str) -> bool:
    """True for URLs PyAV cannot open itself and the ffmpeg binary carries (``srt://``)."""
    return url_scheme(target) in TRANSPORT_SCHEMES


def find_ffmpeg() -> str | None:
    """The ffmpeg executable: imageio-ffmpeg's (it has libsrt and libvmaf), else ``ffmpeg`` on
    ``PATH``, else ``None``."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def ffmpeg_binary(target: str) -> str:
    """:func:`find_ffmpeg` for carrying ``target``.

    Raises:
        ConfigError: no ffmpeg is available.
    """
    found = find_ffmpeg()
    if found is None:
        raise ConfigError(f"{url_scheme(target)}:// is carried by the ffmpeg binary, which was not found: "
                          "pip install 'vsr[srt]' (imageio-ffmpeg) or put an ffmpeg built with libsrt on PATH")
    return found


class FfmpegPipe:
    """One ffmpeg process copying ``url`` to MPEG-TS on its standard output (``mode="r"``),
    or MPEG-TS from its standard input to ``url`` (``mode="w"``).

    Args:
        url: the stream (``srt://host:port?mode=caller``, ``srt://:port?mode=listener``...).
        mode: ``"r"`` to read the stream, ``"w"`` to send one.
        timeout: seconds the protocol may wait for the peer to connect or send (its
            ``timeout`` option, unless the URL sets one).
        input_format: for ``mode="r"``, the demuxer of what the stream carries (default:
            probed by ffmpeg).

    Attributes:
        file: the pipe to hand to PyAV: readable for ``"r"``, writable for ``"w"``.
    """

    def __init__(self, url: str, mode: str, timeout: float | None = None, input_format: str | None = None) -> None:
        if mode not in ("r", "w"):
            raise ValueError(f"mode must be 'r' or 'w'; got {mode!r}")
        self.url = url
        self.mode = mode
        protocol = {"tsbpd": "0"} if mode == "r" else {"linger": str(_LINGER_S), "snddropdelay": "-1"}
        if timeout:
            micro = str(int(timeout * 1_000_000))
            protocol.update(timeout=micro, listen_timeout=micro)
        query = _query(url)
        protocol = {key: value for key, value in protocol.items() if key not in query}  # the URL's own win
        command = [ffmpeg_binary(url), "-hide_banner", "-nostats", "-loglevel", "error"]
        inherited = progress = None  # the pipe end the child gets: the concat script, or where it reports
        self._taken = 0  # bytes ffmpeg has reported taking from the pipe (mode "w")
        self._progress_ended = False  # ffmpeg closed its progress pipe: it is exiting
        self._taken_changed = threading.Condition()
        if mode == "r":
            if "passphrase" in query and not input_format:
                inherited = _concat_script(url, protocol)
                source = ["-f", "concat", "-safe", "0", "-protocol_whitelist", "file,srt", "-i", f"/dev/fd/{inherited}"]
            else:
                source = [*_options(protocol), *(["-f", input_format] if input_format else []), "-i", url]
            command += ["-nostdin", *source, "-map", "0", "-c", "copy", "-f", "mpegts", "pipe:1"]
        else:
            progress, inherited = os.pipe()
            command += ["-progress", f"pipe:{inherited}", "-stats_period", "0.1",
                        "-f", "data", "-raw_packet_size", str(_PAYLOAD), "-i", "pipe:0",
                        "-map", "0", "-c", "copy", *_options(protocol), "-f", "data", url]
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        # A session of its own: Ctrl-C stops vsr, which then ends the transport in order (an output
        # sends what vsr finishes), rather than reaching ffmpeg directly.
        try:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE if mode == "w" else subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if mode == "r" else subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         pass_fds=(inherited,) if inherited is not None else ())
        except BaseException:
            if progress is not None:
                os.close(progress)
            raise
        finally:
            if inherited is not None:
                os.close(inherited)  # the child holds its own copy
        self.file = self.proc.stdout if mode == "r" else _CountingWriter(self.proc.stdin)
        self._reader = threading.Thread(target=self._read_stderr, name="vsr-ffmpeg-stderr", daemon=True)
        self._reader.start()
        if progress is not None:
            threading.Thread(target=self._read_progress, args=(progress,), name="vsr-ffmpeg-progress",
                             daemon=True).start()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            text = line.decode(errors="replace").strip()
            if text:
                self._stderr.append(text)

    def _read_progress(self, fd: int) -> None:
        try:
            with os.fdopen(fd, "rb") as lines:
                for line in lines:
                    key, _, value = line.decode(errors="replace").strip().partition("=")
                    if key == "total_size" and value.isdigit():
                        with self._taken_changed:
                            self._taken = int(value)
                            self._taken_changed.notify_all()
        finally:
            with self._taken_changed:
                self._progress_ended = True
                self._taken_changed.notify_all()

    def _wait_until_taken(self, size: int, timeout: float) -> bool:
        """Wait until ffmpeg reports ``size`` bytes taken, at most ``timeout`` seconds; False if
        it did not get there. ``size`` is a whole number of payloads, each sent as it fills."""
        with self._taken_changed:
            return self._taken_changed.wait_for(lambda: self._taken >= size or self._progress_ended,
                                                timeout=timeout) and self._taken >= size

    def error(self, wait: float = 2.0) -> str | None:
        """ffmpeg's last error line (secrets hidden) once it has exited with a failure, else ``None``.

        Waits up to ``wait`` seconds for the process to exit.
        """
        try:
            code = self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None
        if code == 0:
            return None
        self._reader.join(timeout=1.0)
        last = self._stderr[-1] if self._stderr else f"ffmpeg exited with code {code}"
        return mask_url(last)

    def close(self, wait: float = 10.0) -> str | None:
        """End the transport; returns ffmpeg's error (as :meth:`error`) or ``None``.

        Reading: the process is stopped. Writing: the stream is padded to whole payloads; once
        ffmpeg has taken it all (waiting at most ``wait`` seconds) and the receiver's latency
        window has passed, its input is closed and it exits; it is stopped if that takes longer
        than another ``wait`` seconds. If ffmpeg exits early (a failed connection), this returns
        as soon as it has.
        """
        if self.mode == "r":
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            return None
        try:
            # Null packets to the end of a payload, and one payload more: ffmpeg holds the last
            # piece it reads until its input ends, so that piece is padding.
            self.file.write(_NULL_TS * ((-self.file.written % _PAYLOAD) // len(_NULL_TS)))
            sent = self.file.written
            self.file.write(_NULL_TS * (_PAYLOAD // len(_NULL_TS)))
            self.file.flush()
            if self.proc.poll() is None and wait > 0 and self._wait_until_taken(sent, wait):
                # The receiver holds the last packets back for its latency window and drops them
                # when the sender hangs up: give it time to deliver them first.
                time.sleep(_drain_s(self.url))
            self.proc.stdin.close()
        except OSError:  # the process is already gone (broken pipe)
            pass
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"ffmpeg did not finish sending to {mask_url(self.url)} within {wait:g} s"
        return self.error(wait=0)


class _CountingWriter:
    """A binary stream's ``write`` and ``flush``, counting the bytes written (no ``seek``:
    PyAV then writes it as a stream)."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.written = 0

    def write(self, data: bytes) -> int:
        self._stream.write(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        self._stream.flush()


def _drain_s(url: str) -> float:
    """Seconds to wait for the receiver's latency window: :data:`_DRAIN_S`, or the URL's
    ``latency``/``peerlatency`` (microseconds, as ffmpeg reads them) and half a second if longer."""
    query = _query(url)
    asked = [int(query[key]) / 1e6 + 0.5 for key in ("latency", "peerlatency") if query.get(key, "").isdigit()]
    return max([_DRAIN_S, *asked])


def _query(url: str) -> dict[str, str]:
    """The URL's query as ffmpeg's SRT protocol reads it: raw ``key=value`` pairs, not unquoted."""
    from urllib.parse import urlsplit

    pairs = (item.partition("=") for item in urlsplit(url).query.split("&") if item)
    return {key: value for key, _, value in pairs}


def _options(options: dict[str, str]) -> list[str]:
    return [arg for key, value in options.items() for arg in (f"-{key}", value)]


def _concat_script(url: str, protocol: dict[str, str]) -> int:
    """A concat demuxer script that opens ``url`` without its query, the query and ``protocol``
    given as options instead; returns the read end of the pipe that holds it."""
    from urllib.parse import urlsplit, urlunsplit

    def quoted(text: str) -> str:  # the script's quoting: nothing but the quote is special inside
        return "'" + text.replace("'", "'\\''") + "'"

    bare = urlunsplit(urlsplit(url)._replace(query=""))
    lines = ["ffconcat version 1.0", f"file {quoted(bare)}"]
    lines += [f"option {key} {quoted(value)}" for key, value in {**_query(url), **protocol}.items()]
    read, write = os.pipe()
    with os.fdopen(write, "w") as f:
        f.write("\n".join(lines) + "\n")
    return read

"""The ffmpeg binary as a transport for protocols PyAV's FFmpeg build lacks.

PyAV's wheels are built without libsrt, so ``srt://`` cannot be opened in-process. The
ffmpeg binary that imageio-ffmpeg ships (or one on ``PATH``) has it: vsr runs it as a
child process that copies the stream, packet for packet, to or from MPEG-TS on a pipe,
and PyAV demuxes or muxes that pipe as it would any MPEG-TS input or output.

A finite stream arrives whole: SRT's live mode, by default, drops what is still in flight
when the sender hangs up, at both ends. The receiving side turns off timestamp-based
delivery (``tsbpd=0``: packets reach the pipe as they arrive, none waits out the latency
window to be discarded), and the sending side lingers (``linger``) until the receiver has
acknowledged every packet. A URL's own values for either win.

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
_DRAIN_S = 1.0


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
        protocol = {"tsbpd": "0"} if mode == "r" else {"linger": str(_LINGER_S)}
        if timeout:
            micro = str(int(timeout * 1_000_000))
            protocol.update(timeout=micro, listen_timeout=micro)
        query = _query(url)
        protocol = {key: value for key, value in protocol.items() if key not in query}  # the URL's own win
        command = [ffmpeg_binary(url), "-hide_banner", "-nostats", "-loglevel", "error"]
        script = None
        if mode == "r":
            if "passphrase" in query and not input_format:
                script = _concat_script(url, protocol)
                source = ["-f", "concat", "-safe", "0", "-protocol_whitelist", "file,srt", "-i", f"/dev/fd/{script}"]
            else:
                source = [*_options(protocol), *(["-f", input_format] if input_format else []), "-i", url]
            command += ["-nostdin", *source, "-map", "0", "-c", "copy", "-f", "mpegts", "pipe:1"]
        else:
            # Probe little and write every packet at once: each is sent as soon as it is encoded.
            command += ["-analyzeduration", "0", "-probesize", "32768", "-f", "mpegts", "-i", "pipe:0",
                        "-map", "0", "-c", "copy", "-flush_packets", "1", *_options(protocol), "-f", "mpegts", url]
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        # A session of its own: Ctrl-C stops vsr, which then ends the transport in order (an output
        # sends what vsr finishes), rather than reaching ffmpeg directly.
        try:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE if mode == "w" else subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if mode == "r" else subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         pass_fds=(script,) if script is not None else ())
        finally:
            if script is not None:
                os.close(script)  # the child holds its own copy
        self.file = self.proc.stdout if mode == "r" else self.proc.stdin
        self._reader = threading.Thread(target=self._read_stderr, name="vsr-ffmpeg-stderr", daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            text = line.decode(errors="replace").strip()
            if text:
                self._stderr.append(text)

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

        Reading: the process is stopped. Writing: its input is closed, so it sends what it
        holds and exits; it is stopped if that takes longer than ``wait`` seconds.
        """
        if self.mode == "r":
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            return None
        try:
            self.proc.stdin.flush()
            if self.proc.poll() is None and wait > 0:
                # The receiver holds the last packets back for its latency window and drops them
                # when the sender hangs up: give it time to deliver them first.
                time.sleep(_DRAIN_S)
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

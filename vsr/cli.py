"""The ``vsr`` command: ``run``, ``probe``, ``methods`` and ``models``.

Errors end with one line on standard error and a non-zero exit code; ``--debug``
shows the traceback as well.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

from vsr.errors import Cancelled, ConfigError, VsrError

PRESET_DIR = Path(__file__).resolve().parent.parent / "pipelines"
EXIT_SIGTERM = 143


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"--size takes WIDTHxHEIGHT, e.g. 1920x1080; got {text!r}")
    return int(parts[0]), int(parts[1])


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _attempts(text: str) -> int:
    if text.lower() in ("forever", "inf", "-1"):
        return -1
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--reconnect takes a number of attempts or 'forever'; got {text!r}")
    return int(text)


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param takes KEY=VALUE; got {text!r}")
    return key.replace("-", "_"), _value(value)


def load_preset(name: str) -> dict[str, Any]:
    """Read a pipeline preset: a path to a TOML file, or the name of one in ``pipelines/``.

    Raises:
        ConfigError: not found, or not valid TOML.
    """
    path = Path(name)
    if not path.is_file():
        path = PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESET_DIR.glob("*.toml")) if PRESET_DIR.is_dir() else []
        raise ConfigError(f"pipeline preset {name!r} not found; give a .toml path"
                          + (f" or one of: {', '.join(known)}" if known else ""))
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pipeline preset {path} is not valid TOML: {exc}") from exc


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="upscale a video file or stream",
                       description="Upscale a video; audio and subtitles are copied untouched.")
    p.add_argument("input", help="input file, '-' for standard input, or a URL (rtsp://, http://, srt://...)")
    p.add_argument("-o", "--output", help="output file (.mp4, .mkv, .mov), '-' or a URL; "
                                          "default: INPUT_METHODxSCALE.mp4 beside the input")
    p.add_argument("-m", "--method", help="upscaling method (see `vsr methods`); default misr")
    p.add_argument("-s", "--scale", type=int, help="scale factor 2, 3 or 4 (up to 8 for some methods); default 2, "
                                                   "4 for the Real-ESRGAN methods, a --model file's own")
    p.add_argument("--size", type=_size, help="exact output size WIDTHxHEIGHT")
    p.add_argument("-p", "--pipeline", help="a preset from pipelines/ (name or .toml path); flags override it")
    g = p.add_argument_group("method parameters")
    g.add_argument("--window", type=int, help="frames per window for multi-frame methods (odd, e.g. 5)")
    g.add_argument("--causal", action="store_true", default=None, help="windows end at the current frame (live)")
    g.add_argument("--model", help="model name or file for neural methods")
    g.add_argument("--tile", type=int, help="tile size in pixels for neural methods (0: automatic)")
    g.add_argument("--fp32", action="store_true", default=None, help="no half precision on CUDA")
    g.add_argument("--half", choices=("fp16", "bf16"), help="the half precision neural methods use on CUDA (default fp16)")
    g.add_argument("--outscale", type=float,
                   help="any output factor for neural methods (e.g. 1.5): the network's output, resized")
    g.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the network (neural methods; slow start, faster frames)")
    g.add_argument("--temporal", action="store_true", default=None,
                   help="neural methods: blend each output with the previous one warped along the optical flow "
                        "(no flicker; occlusions and new content follow the current frame; no added latency)")
    g.add_argument("--evidence", help="directory for per-frame evidence maps (misr)")
    g.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE",
                   help="any other method parameter (repeatable)")
    g.add_argument("--roi", help="upscale only the region x,y,w,h (writes that crop and a JSON record)")
    g.add_argument("--record", help="write a JSON record of the run (input hash, parameters, frames) here")
    e = p.add_argument_group("encoding")
    e.add_argument("--codec", help="libx264 (default), libx265, libsvtav1 or ffv1 (lossless)")
    e.add_argument("--crf", type=float, help="constant rate factor (quality; lower is better)")
    e.add_argument("--preset", help="encoder preset (ultrafast..veryslow; 0..13 for libsvtav1)")
    e.add_argument("--pix-fmt", help="output pixel format (default: source bit depth, 4:2:0)")
    e.add_argument("--format", help="container format when the extension does not say (e.g. mpegts)")
    r = p.add_argument_group("running")
    r.add_argument("--video-stream", type=int, help="index of the video stream to upscale")
    r.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    r.add_argument("--queue-size", type=int, help="frames each queue between stages holds (default 8; 2 with --live)")
    r.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a network source")
    r.add_argument("--input-format", help="force the input demuxer (e.g. mpegts, lavfi), as ffmpeg's -f before -i")
    r.add_argument("--reconnect", type=_attempts, default=3,
                   help="times to reopen a network source that drops or stalls, or 'forever' (default 3)")
    r.add_argument("--resume", action="store_true",
                   help="write committed segments beside the output; after a crash the same command continues")
    r.add_argument("--segment-seconds", type=float, default=10.0,
                   help="segment length for --resume and --ray (default 10)")
    r.add_argument("--live", action="store_true",
                   help="never fall behind the source: drop the oldest waiting frame when the method is slower")
    r.add_argument("--overwrite", "-y", action="store_true", help="replace an existing output")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    r.add_argument("--json-progress", action="store_true", help="progress as JSON lines on standard error")
    d = p.add_argument_group("scaling out (needs pip install 'vsr[ray]')")
    d.add_argument("--ray", metavar="ADDRESS",
                   help="split the job over a Ray cluster: auto (the running one), local (start one here), "
                        "or ray://HEAD:10001; the input and output folder must be reachable by every worker")
    p.set_defaults(handler=_run)


def _default_output(source: str, method: str, scale: int | None) -> str:
    from vsr.io.source import is_url

    if source == "-" or is_url(source):
        raise ConfigError("give an output with -o when reading from a stream or standard input")
    src = Path(source)
    suffix = src.suffix.lower() if src.suffix.lower() in (".mp4", ".mkv", ".mov") else ".mkv"
    return str(src.with_name(f"{src.stem}_{method}{f'x{scale}' if scale else ''}{suffix}"))


def _run(args: argparse.Namespace) -> int:
    from vsr import api
    from vsr.io.encode import EncodeSettings
    from vsr.io.source import OpenOptions, mask_url
    from vsr.methods.registry import default_scale

    preset = load_preset(args.pipeline) if args.pipeline else {}
    method_cfg = dict(preset.get("method", {}))
    encode_cfg = dict(preset.get("encode", {}))
    method = args.method or method_cfg.get("name", "misr")
    scale = args.scale or method_cfg.get("scale") or default_scale(method)
    params: dict[str, Any] = dict(method_cfg.get("params", {})) if method == method_cfg.get("name", method) else {}
    for key in ("window", "causal", "model", "tile", "fp32", "half", "outscale", "compile", "temporal", "evidence"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    params.update(dict(args.param))
    encode = EncodeSettings(
        codec=args.codec or encode_cfg.get("codec", "libx264"),
        crf=args.crf if args.crf is not None else encode_cfg.get("crf"),
        preset=args.preset or (str(encode_cfg["preset"]) if "preset" in encode_cfg else None),
        pix_fmt=args.pix_fmt or encode_cfg.get("pix_fmt"),
        format=args.format or encode_cfg.get("format"),
        options={str(k): str(v) for k, v in encode_cfg.get("options", {}).items()},
    )
    output = args.output or _default_output(args.input, method, scale)

    display = None
    if args.json_progress:
        from vsr.progress import JsonProgress

        display = JsonProgress()
    elif not args.quiet and sys.stderr.isatty():
        from vsr.progress import RichProgress

        display = RichProgress(f"{method} x{scale}" if scale else method)

    terminated = []

    def on_start(pipeline) -> None:
        def on_term(signum, frame):  # noqa: ARG001 - signal handler signature
            terminated.append(signum)
            pipeline.cancel()

        signal.signal(signal.SIGTERM, on_term)

    try:
        if args.ray:
            stats = _run_on_ray(args, output, method, scale, params, encode, display)
        else:
            stats = api.upscale(
                args.input, output, method=method, scale=scale, size=args.size, params=params, encode=encode,
                video_stream=args.video_stream, roi=args.roi, record=args.record, overwrite=args.overwrite,
                device=args.device, queue_size=args.queue_size, open_options=OpenOptions(timeout=args.timeout),
                reconnect=args.reconnect, live=args.live, resume=args.resume, segment_seconds=args.segment_seconds,
                on_progress=display, on_start=on_start,
            )
    except Cancelled as exc:
        if display is not None:
            display.close()
        print(f"vsr: {exc}: {mask_url(output)}", file=sys.stderr)
        return EXIT_SIGTERM if terminated else exc.exit_code
    if display is not None:
        display.close()
    if not args.quiet:
        extra = []
        if stats.packets_passed:
            extra.append(f"{stats.packets_passed} audio/subtitle packets copied")
        if stats.corrupt_packets:
            extra.append(f"{stats.corrupt_packets} damaged packets skipped")
        if stats.scene_cuts:
            extra.append(f"{stats.scene_cuts} scene cuts")
        if stats.frames_dropped:
            extra.append(f"{stats.frames_dropped} frames dropped to keep up (--live)")
        if stats.reconnects:
            extra.append(f"{stats.reconnects} reconnects")
        for dropped in stats.dropped_streams:
            extra.append(f"dropped {dropped}")
        print(f"wrote {mask_url(output)}: {stats.frames_written} frames in {stats.elapsed:.1f} s "
              f"({stats.fps:.1f} fps)" + ("; " + "; ".join(extra) if extra else ""), file=sys.stderr)
    return 0


def _run_on_ray(args: argparse.Namespace, output: str, method: str, scale: int, params: dict[str, Any],
                encode, display):
    """``vsr run --ray``: the same job as a plain run, split over a Ray cluster."""
    from vsr.distributed import run_on_ray
    from vsr.io.source import OpenOptions

    if args.live:
        raise ConfigError("--live and --ray do not go together: --ray splits a file, a live stream cannot be split")
    if args.record:
        raise ConfigError("--record is not available with --ray yet; run without --ray to get a record")
    return run_on_ray(args.input, output, method=method, scale=scale, address=args.ray,
                      segment_seconds=args.segment_seconds, size=args.size, params=params, encode=encode,
                      video_stream=args.video_stream, roi=args.roi, overwrite=args.overwrite, device=args.device,
                      open_options=OpenOptions(timeout=args.timeout), on_progress=display)


def _add_probe(sub) -> None:
    p = sub.add_parser("probe", help="describe a video's streams, size, rate, colour and duration")
    p.add_argument("input")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--video-stream", type=int)
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(handler=_probe)


def _probe(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from vsr.io.source import OpenOptions, mask_url, probe

    info = probe(args.input, args.video_stream, OpenOptions(timeout=args.timeout))
    if args.json:
        data = asdict(info)
        data["time_base"] = str(info.time_base)
        data["average_rate"] = str(info.average_rate) if info.average_rate else None
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rate = f"{float(info.average_rate):.3f} fps" if info.average_rate else "unknown"
    c = info.color
    console.print(f"[bold]{mask_url(args.input)}[/bold]")
    summary = Table(show_header=False, box=None)
    for key, value in [
        ("video stream", str(info.stream_index)),
        ("size", f"{info.width}x{info.height}"),
        ("rate", rate),
        ("pixel format", f"{info.pix_fmt} ({info.bit_depth}-bit)"),
        ("colour", f"matrix {c.matrix or '?'}, range {c.range or '?'}, primaries {c.primaries or '?'}, "
                   f"transfer {c.transfer or '?'}"),
        ("rotation", f"{info.rotation} deg"),
        ("duration", f"{info.duration:.3f} s" if info.duration is not None else "unknown (stream)"),
        ("frames", str(info.frame_count) if info.frame_count else "unknown"),
    ]:
        summary.add_row(f"[dim]{key}", value)
    console.print(summary)
    table = Table("#", "type", "codec", "language", "detail")
    for s in info.streams:
        table.add_row(str(s.index), s.kind, s.codec, s.language or "", s.detail)
    console.print(table)
    return 0


def _add_methods(sub) -> None:
    p = sub.add_parser("methods", help="list the upscaling methods")
    p.set_defaults(handler=_methods)


def _methods(args: argparse.Namespace) -> int:  # noqa: ARG001
    from rich.console import Console
    from rich.table import Table

    from vsr.methods.registry import METHODS

    table = Table("method", "what it is")
    for entry in METHODS.values():
        table.add_row(entry.name, entry.summary)
    Console().print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from vsr import __version__

    parser = argparse.ArgumentParser(prog="vsr", description="Video super-resolution: sharper, larger video.")
    parser.add_argument("--version", action="version", version=f"vsr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_probe(sub)
    _add_methods(sub)
    try:
        from vsr.models.commands import add_models_command
    except ImportError:
        pass
    else:
        add_models_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vsr`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        format="vsr: %(levelname)s: %(message)s")
    try:
        return args.handler(args)
    except VsrError as exc:
        if args.debug:
            raise
        from vsr.io.source import mask_url

        print(f"vsr: error: {mask_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vsr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback, unless --debug
        if args.debug:
            raise
        from vsr.io.source import mask_url

        print(f"vsr: internal error: {type(exc).__name__}: {mask_url(str(exc))} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``vsr`` command: ``run``, ``probe``, ``compare``, ``methods`` and ``models``.

Errors end with one line on standard error and a non-zero exit code; ``--debug``
shows the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import os
import re
import signal
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from vsr.errors import Cancelled, ConfigError, VsrError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

EXIT_SIGTERM = 143
# Where a URL can come from instead of the command line, which every user of the machine sees in `ps`.
INPUT_URL_ENV = "VSR_INPUT_URL"
OUTPUT_URL_ENV = "VSR_OUTPUT_URL"


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one line naming the problem and where the help is."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument [^:]+: (?=--)", "", message)  # the type functions name their flag
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _scale(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--scale takes a whole factor such as 2, 3 or 4; got {text!r} "
                                         "(for other sizes use --size WIDTHxHEIGHT, or --outscale with a neural method)")
    return int(text)


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"--size takes WIDTHxHEIGHT, e.g. 1920x1080; got {text!r}")
    return int(parts[0]), int(parts[1])


def _attempts(text: str) -> int:
    if text.lower() in ("forever", "inf", "-1"):
        return -1
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--reconnect takes a number of attempts or 'forever'; got {text!r}")
    return int(text)


def _param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param takes KEY=VALUE; got {text!r}")
    return key.replace("-", "_"), value  # read as the parameter's type says (vsr.methods.params)


def preset_names() -> list[str]:
    """Names of the presets shipped in ``vsr/pipelines/`` (package data), sorted."""
    return sorted(entry.name.removesuffix(".toml") for entry in importlib.resources.files("vsr.pipelines").iterdir()
                  if entry.name.endswith(".toml"))


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--muxer-option takes KEY=VALUE, e.g. hls_time=4; got {text!r}")
    return key, value


#: What a preset may hold: ``[method]`` (name, scale, ``[method.params]``) and ``[encode]``.
_PRESET_KEYS = {"method": ("name", "scale", "params"),
                "encode": ("codec", "crf", "preset", "pix_fmt", "format", "options", "muxer_options")}


def load_preset(name: str) -> dict[str, Any]:
    """Read a pipeline preset: a path to a TOML file, or the name of one shipped in ``vsr/pipelines/``.

    Its ``[method.params]`` are checked against the parameter dataclass of its method.

    Raises:
        ConfigError: not found, not valid TOML, or a key or value the preset may not hold (the
            message names the file and the key).
    """
    path: Path | Traversable = Path(name)
    if not path.is_file():
        path = importlib.resources.files("vsr.pipelines") / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"pipeline preset {name!r} not found; give a .toml path or one of: "
                          + ", ".join(preset_names()))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pipeline preset {name} is not valid TOML: {exc}") from exc
    try:
        _check_preset(data)
    except ConfigError as exc:
        raise ConfigError(f"pipeline preset {path}: {exc}") from None
    return data


def _check_preset(data: dict[str, Any]) -> None:
    from vsr.methods.registry import parse_params

    for table, value in data.items():
        if table not in _PRESET_KEYS:
            raise ConfigError(f"unknown table [{table}]; a preset holds [method] and [encode]")
        if not isinstance(value, dict):
            raise ConfigError(f"{table} must be a table ([{table}])")
        unknown = sorted(set(value) - set(_PRESET_KEYS[table]))
        if unknown:
            raise ConfigError(f"unknown key {', '.join(unknown)} in [{table}]; it takes: "
                              + ", ".join(_PRESET_KEYS[table]))
    method = data.get("method", {})
    scale = method.get("scale")
    if scale is not None and (not isinstance(scale, int) or isinstance(scale, bool) or scale < 1):
        raise ConfigError(f"scale in [method] takes a whole factor such as 2; got {scale!r}")
    parse_params(method.get("name", "misr"), method.get("params", {}), text=True)


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="upscale a video file or stream",
                       description="Upscale a video; audio and subtitles are copied untouched.")
    p.add_argument("input", nargs="?", help="input file, '-' for standard input, or a URL (rtsp://, http://, "
                                            f"srt://...); default: the URL in ${INPUT_URL_ENV}")
    p.add_argument("-o", "--output", help="output file (.mp4, .mkv, .mov), '-' or a URL; default: the URL in "
                                          f"${OUTPUT_URL_ENV}, else INPUT_METHODxSCALE.mp4 beside the input")
    p.add_argument("-m", "--method", help="upscaling method (see `vsr methods`); default misr")
    p.add_argument("-s", "--scale", type=_scale, help="scale factor 2, 3 or 4 (up to 8 for some methods); default 2, "
                                                   "4 for the Real-ESRGAN methods, a --model file's own")
    p.add_argument("--size", type=_size, help="exact output size WIDTHxHEIGHT")
    p.add_argument("-p", "--pipeline", help="a preset shipped in vsr/pipelines/ (by name, e.g. live) or a .toml path; "
                                            "flags override it")
    g = p.add_argument_group("method parameters (each method's, with types and defaults: vsr methods NAME)")
    for name, (info, methods) in method_flags().items():
        flag = "--" + name.replace("_", "-")
        text = f"{info.help.rstrip('.')} ({', '.join(methods)})".replace("%", "%%")
        if info.kind == "bool":
            g.add_argument(flag, action="store_true", default=None, help=text)
        else:
            g.add_argument(flag, metavar="{" + ",".join(map(str, info.choices)) + "}" if info.choices
                           else info.kind.removesuffix(" | None").upper(), help=text)
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
    e.add_argument("--muxer-option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="a container or protocol option passed to FFmpeg's muxer, e.g. hls_time=4 or "
                        "pkt_size=1316 (repeatable)")
    r = p.add_argument_group("running")
    r.add_argument("--video-stream", type=int, help="index of the video stream to upscale")
    r.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    r.add_argument("--queue-size", type=int, help="frames each queue between stages holds (default 8; 2 with --live)")
    r.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a network source")
    r.add_argument("--input-format", help="force the input demuxer (e.g. mpegts, lavfi), as ffmpeg's -f before -i")
    r.add_argument("--reconnect", type=_attempts, default=3,
                   help="times to reopen a network source that drops or stalls, or 'forever' (default 3)")
    r.add_argument("--reconnect-at-end", action="store_true", default=None,
                   help="also reopen a network source that ends normally (default: only with --live); "
                        "without it a URL that ends is read once")
    r.add_argument("--accept-partial", action="store_true",
                   help="upscale what a truncated file holds (its index points past its end) instead of refusing it")
    r.add_argument("--resume", action="store_true",
                   help="write committed segments beside the output; after a crash the same command continues")
    r.add_argument("--segment-seconds", type=float, default=10.0,
                   help="segment length for --resume and --ray (default 10)")
    r.add_argument("--live", action="store_true",
                   help="never fall behind the source: drop the oldest waiting frame when the method is slower; "
                        "a stream that ends is reopened (see --reconnect); an .m3u8 output becomes a rolling "
                        "live playlist (without: VOD, every segment kept)")
    r.add_argument("--overwrite", "-y", action="store_true", help="replace an existing output")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    r.add_argument("--json-progress", action="store_true", help="progress as JSON lines on standard error")
    r.add_argument("--no-verify", action="store_true",
                   help="do not read the output back to check frames, pts, audio, colour and duration")
    r.add_argument("--report", metavar="PAGE.html",
                   help="write an HTML report of the run: streams, verification, method, hashes, "
                        "throughput over time, frames before and after")
    d = p.add_argument_group("scaling out (needs pip install 'vsr[ray]')")
    d.add_argument("--ray", metavar="ADDRESS",
                   help="split the job over a Ray cluster: auto (the running one), local (start one here), "
                        "or ray://HEAD:10001; the input and output folder must be reachable by every worker")
    p.set_defaults(handler=_run)


def method_flags() -> dict[str, tuple[Any, list[str]]]:
    """The method parameters with a flag of their own (``flags`` of the parameter dataclasses):
    name -> (its :class:`~vsr.methods.params.ParamInfo`, the methods that take it)."""
    from vsr.methods.params import describe_fields
    from vsr.methods.registry import METHODS

    out: dict[str, tuple[Any, list[str]]] = {}
    for entry in METHODS.values():
        for info in describe_fields(entry.params_class()):
            if not info.flag:
                continue
            if info.name in out and out[info.name][0].kind != info.kind:
                raise RuntimeError(f"parameter {info.name} is {out[info.name][0].kind} for "
                                   f"{out[info.name][1][0]} but {info.kind} for {entry.name}: one flag cannot take both")
            out.setdefault(info.name, (info, []))[1].append(entry.name)
    return out


def method_params(method: str, preset: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The parameters given for ``method``: the preset's (if it is the preset's method), then the
    flags, then ``--param``; checked by the method's dataclass and returned as typed values.

    Raises:
        ConfigError: a flag of another method (naming the methods it is for), an unknown
            parameter or a bad value.
    """
    from vsr.methods.registry import parse_params

    method_cfg = preset.get("method", {})
    given: dict[str, Any] = dict(method_cfg.get("params", {})) if method == method_cfg.get("name", "misr") else {}
    for name, (_, methods) in method_flags().items():
        value = getattr(args, name)
        if value is None:
            continue
        if method not in methods:
            raise ConfigError(f"--{name.replace('_', '-')} does not apply to {method}; it is for: {', '.join(methods)}")
        given[name] = value
    given.update(dict(args.param))
    typed = parse_params(method, given, text=True)
    return {key: getattr(typed, key) for key in given if given[key] is not None}


def _input(args: argparse.Namespace) -> str:
    """The input argument, else the URL in ``$VSR_INPUT_URL`` (which keeps its secrets out of ``ps``)."""
    import os

    if args.input:
        return args.input
    url = os.environ.get(INPUT_URL_ENV)
    if not url:
        raise ConfigError(f"give an input (a file, '-' or a URL), or set {INPUT_URL_ENV} to the input URL")
    return url


def _default_output(source: str, method: str, scale: int | None) -> str:
    import os

    from vsr.io.source import is_url

    if os.environ.get(OUTPUT_URL_ENV):
        return os.environ[OUTPUT_URL_ENV]
    if source == "-" or is_url(source):
        raise ConfigError(f"give an output with -o (or in {OUTPUT_URL_ENV}) when reading from a stream "
                          "or standard input")
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
    scale = args.scale if args.scale is not None else method_cfg.get("scale") or default_scale(method)
    params = method_params(method, preset, args)
    encode = EncodeSettings(
        codec=args.codec or encode_cfg.get("codec", "libx264"),
        crf=args.crf if args.crf is not None else encode_cfg.get("crf"),
        preset=args.preset or (str(encode_cfg["preset"]) if "preset" in encode_cfg else None),
        pix_fmt=args.pix_fmt or encode_cfg.get("pix_fmt"),
        format=args.format or encode_cfg.get("format"),
        options={str(k): str(v) for k, v in encode_cfg.get("options", {}).items()},
        muxer_options={**{str(k): str(v) for k, v in encode_cfg.get("muxer_options", {}).items()},
                       **dict(args.muxer_option)},
        live=args.live,
    )
    args.input = _input(args)
    output = args.output or _default_output(args.input, method, scale)
    if args.quiet:
        quiet_libraries()
    open_options = OpenOptions(timeout=args.timeout, format=args.input_format)

    display = None
    if args.json_progress:
        from vsr.progress import JsonProgress

        display = JsonProgress()
    elif not args.quiet and sys.stderr.isatty():
        from vsr.progress import RichProgress

        display = RichProgress(f"{method} x{scale}" if scale else method)
    if args.report:
        from vsr.progress import Recorder

        display = Recorder(display)

    terminated = []
    started = []

    def on_start(pipeline) -> None:
        decoder = getattr(pipeline, "decoder", None)  # a resumed run's executor opens one per segment
        if decoder is not None and decoder.partial:
            print(f"vsr: warning: {mask_url(args.input)} is a partial file: {pipeline.decoder.partial}; "
                  "upscaling what it holds (--accept-partial)", file=sys.stderr)
        started.append(pipeline)

        def on_term(signum, frame):  # noqa: ARG001 - signal handler signature
            terminated.append(signum)
            pipeline.cancel()

        signal.signal(signal.SIGTERM, on_term)
        pipeline.on_notice = _say

    partial = _segmented_partial(args)
    if partial:  # a whole run says it once its decoder has opened the file (on_start)
        print(f"vsr: warning: {mask_url(args.input)} is a partial file: {partial}; upscaling what it holds "
              "(--accept-partial)", file=sys.stderr)
    try:
        if args.ray:
            stats = _run_on_ray(args, output, method, scale, params, encode, display, open_options)
        else:
            stats = api.upscale(
                args.input, output, method=method, scale=scale, size=args.size, params=params, encode=encode,
                video_stream=args.video_stream, roi=args.roi, record=args.record, overwrite=args.overwrite,
                device=args.device, queue_size=args.queue_size, open_options=open_options,
                reconnect=args.reconnect, reconnect_at_end=args.reconnect_at_end,
                accept_partial=args.accept_partial, live=args.live, resume=args.resume,
                segment_seconds=args.segment_seconds,
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
        extra.extend(getattr(stats, "notes", []))
        print(f"wrote {mask_url(output)}: {stats.frames_written} frames in {stats.elapsed:.1f} s "
              f"({stats.fps:.1f} fps)" + ("; " + "; ".join(extra) if extra else ""), file=sys.stderr)
    _check_and_report(args, output, method, scale, params, encode, stats, started[0] if started else None, display)
    return 0


def _check_and_report(args: argparse.Namespace, output: str, method: str, scale: int | None, params: dict[str, Any],
                      encode, stats, pipeline, display) -> None:
    """After a run: verify the output (unless ``--no-verify``), write ``--report``, add the
    verification to the record.

    Raises:
        VerificationError: the output does not match its input (after the report is written).
    """
    from vsr.io.source import mask_url

    verification = None if args.no_verify else _verify(args, output, scale, params, stats, pipeline)
    record = args.record or (f"{output}.json" if args.roi else None)
    if args.report:
        from vsr.report.run import write_run_report

        write_run_report(args.report, argv=args.argv, source=args.input, output=output,
                         method=pipeline.method.describe() if pipeline is not None else {"name": method, "scale": scale, **params},
                         encode=encode, stats=stats, samples=display.samples, verification=verification,
                         video_stream=args.video_stream, evidence=params.get("evidence"), record=record,
                         model=params.get("model"))
        if not args.quiet:
            print(f"report: {args.report}", file=sys.stderr)
    elif record and verification is not None:
        from vsr.report.run import amend_record

        amend_record(record, {"verification": verification.as_dict()})
    if verification is not None and not verification.ok:
        from vsr.errors import VerificationError

        raise VerificationError(f"{mask_url(output)} does not match its input: "
                                + "; ".join(verification.problems)
                                + " (the output is kept for inspection; --no-verify skips this check)")


def quiet_libraries() -> None:
    """Keep the libraries vsr drives to errors only: SVT-AV1's banner and Ray's startup lines.

    Both read their level from the environment (Ray when it is imported, SVT-AV1 when an encoder
    starts; Ray's local workers inherit it); a value the user set already is left alone.
    """
    os.environ.setdefault("SVT_LOG", "1")
    os.environ.setdefault("RAY_LOGGER_LEVEL", "error")


def _segmented_partial(args: argparse.Namespace) -> str | None:
    """What a partial input accepted by a ``--resume`` or ``--ray`` run lacks (their segments
    each open the file), else ``None``."""
    if not args.accept_partial or not (args.resume or args.ray):
        return None
    from vsr.io.source import close_input, open_input, partial_file

    container = open_input(args.input)
    try:
        return partial_file(container)
    finally:
        close_input(container)


def _verify(args: argparse.Namespace, output: str, scale: int | None, params: dict[str, Any], stats, pipeline):
    """Read the finished output back and check it against the input; prints the one-line result."""
    from dataclasses import replace

    from vsr.verify import RunFacts, can_read_back, verify, verify_sent

    sink = getattr(pipeline, "sink", None)  # a resumed run's executor has one per segment
    decoder = getattr(pipeline, "decoder", None)
    facts = RunFacts(
        frames_written=None if args.resume else stats.frames_written,
        frames_skipped=stats.corrupt_packets + stats.frames_dropped,
        dropped_streams=len(stats.dropped_streams),
        expected_size=_expected_size(args, scale, params, pipeline),
        adjusted_pts=getattr(sink, "adjusted_pts", 0),
        partial_input=bool(decoder.partial if decoder is not None else _segmented_partial(args)),
    )
    # A forced demuxer (--input-format: a raw stream, a filter graph) is not read back as a file.
    if can_read_back(args.input) and can_read_back(output) and not args.input_format:
        result = verify(args.input, output, args.video_stream, facts)
    else:
        why = "the output is a stream" if not can_read_back(output) else (
            "the input is read through --input-format" if args.input_format else "the input is a stream")
        result = verify_sent(stats.frames_decoded, replace(facts, frames_skipped=stats.frames_dropped), why)
    if result.ok and not args.quiet:
        print(result.summary, file=sys.stderr)
    return result


def _expected_size(args: argparse.Namespace, scale: int | None, params: dict[str, Any],
                   pipeline) -> tuple[int, int] | None:
    """The ``(width, height)`` the options ask for, or ``None`` where a method decides it."""
    if args.size:
        return args.size
    decoder = getattr(pipeline, "decoder", None)
    if not scale or params.get("outscale") or decoder is None:
        return None
    roi = decoder.roi
    info = decoder.info
    width, height = (roi.w, roi.h) if roi else (info.width, info.height)
    return width * scale, height * scale


def _run_on_ray(args: argparse.Namespace, output: str, method: str, scale: int, params: dict[str, Any],
                encode, display, open_options):
    """``vsr run --ray``: the same job as a plain run, split over a Ray cluster."""
    from vsr.distributed import run_on_ray

    if args.live:
        raise ConfigError("--live and --ray do not go together: --ray splits a file, a live stream cannot be split")
    return run_on_ray(args.input, output, method=method, scale=scale, address=args.ray,
                      segment_seconds=args.segment_seconds, size=args.size, params=params, encode=encode,
                      video_stream=args.video_stream, roi=args.roi, record=args.record, overwrite=args.overwrite,
                      device=args.device, open_options=open_options, accept_partial=args.accept_partial,
                      on_progress=display)


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="line up videos of the same content frame by frame: crops and an HTML page",
                       description="Line up two or more videos of the same content (input and outputs, at their "
                                   "own sizes) frame by frame by pts; write PNG crops side by side and a "
                                   "self-contained HTML page with a before/after slider per frame.")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="two or more videos; the first is 'before'")
    p.add_argument("-o", "--output", default="compare", help="folder for compare.html and the crops (default: compare)")
    p.add_argument("--at", help="times of the frames to show, e.g. 6s,12.5s (default: a fifth, half and four fifths "
                                "of the first video)")
    p.add_argument("--crop", help="region x,y,w,h in pixels of the first video (default: the most detailed one)")
    p.add_argument("--reference", metavar="GT", help="ground truth: adds per-frame PSNR, SSIM, VMAF and flicker")
    p.add_argument("--evidence", help="the --evidence folder of the misr run that made the second video")
    p.add_argument("--no-vmaf", action="store_true", help="leave VMAF out (it is the slowest metric)")
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from vsr.report.compare import compare, parse_times

    times = parse_times(args.at) if args.at else None
    result = compare(args.videos, args.output, at=times, crop=args.crop, reference=args.reference,
                     evidence=args.evidence, vmaf=not args.no_vmaf)
    for label, means in result.metrics.items():
        figures = ", ".join(f"{k} {v:.4g}" for k, v in means.items() if v is not None)
        print(f"{label}: {figures}", file=sys.stderr)
    print(f"wrote {result.page} and {len(result.crops)} crop images", file=sys.stderr)
    return 0


def _add_probe(sub) -> None:
    p = sub.add_parser("probe", help="describe a video's streams, size, rate, colour and duration")
    p.add_argument("input", nargs="?", help=f"file, '-' or URL; default: the URL in ${INPUT_URL_ENV}")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--video-stream", type=int)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--input-format", help="force the input demuxer (e.g. mpegts, lavfi)")
    p.set_defaults(handler=_probe)


def _probe(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from vsr.io.color import resolve_conversion
    from vsr.io.source import OpenOptions, mask_url, probe

    args.input = _input(args)
    info = probe(args.input, args.video_stream, OpenOptions(timeout=args.timeout, format=args.input_format))
    if args.json:
        data = asdict(info)
        data["time_base"] = str(info.time_base)
        data["average_rate"] = str(info.average_rate) if info.average_rate else None
        data["color_assumed"] = asdict(resolve_conversion(info.color, info.height, info.pix_fmt).tags)
        data["sample_aspect_ratio"] = str(info.sample_aspect_ratio) if info.sample_aspect_ratio else None
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rate = f"{float(info.average_rate):.3f} fps" if info.average_rate else "unknown"
    c, assumed = info.color, resolve_conversion(info.color, info.height, info.pix_fmt).tags

    def tag(given: str | None, guess: str | None) -> str:
        return given or (f"{guess}*" if guess else "unknown")
    console.print(f"[bold]{mask_url(args.input)}[/bold]")
    summary = Table(show_header=False, box=None)
    for key, value in [
        ("video stream", str(info.stream_index)),
        ("size", f"{info.width}x{info.height}"),
        ("rate", rate),
        ("pixel format", f"{info.pix_fmt} ({info.bit_depth}-bit)"),
        ("colour", f"matrix {tag(c.matrix, assumed.matrix)}, range {tag(c.range, assumed.range)}, "
                   f"primaries {tag(c.primaries, assumed.primaries)}, transfer {tag(c.transfer, assumed.transfer)}"
                   + (" (*untagged: what vsr assumes)" if None in (c.matrix, c.range, c.primaries, c.transfer) else "")),
        ("rotation", f"{info.rotation} deg" + (" (display matrix; kept on the output)" if info.rotation else "")),
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
    p = sub.add_parser("methods", help="list the upscaling methods, or one method's parameters",
                       description="List the upscaling methods; with a NAME, that method's parameters: "
                                   "type, default and what each does (set them with --param KEY=VALUE, "
                                   "or the flag shown).")
    p.add_argument("name", nargs="?", help="a method (e.g. misr) to show the parameters of")
    p.set_defaults(handler=_methods)


def _shown(value: Any) -> str:
    return "unset" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _methods(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from vsr.methods.params import describe_fields
    from vsr.methods.registry import METHODS, entry

    console = Console()
    if args.name is None:
        table = Table("method", "what it is", "parameters")
        for found in METHODS.values():
            count = len(describe_fields(found.params_class()))
            table.add_row(found.name, found.summary, str(count) if count else "none")
        console.print(table)
        console.print("vsr methods NAME shows a method's parameters.")
        return 0
    found = entry(args.name)
    scale = found.default_scale
    console.print(f"[bold]{found.name}[/bold]: {found.summary}; default scale "
                  f"{scale if scale else 'the model file’s own'}")
    infos = describe_fields(found.params_class())
    if not infos:
        console.print("no parameters")
        return 0
    table = Table("parameter", "type", "default", "what it does")
    for info in infos:
        name = f"{info.name} (--{info.name.replace('_', '-')})" if info.flag else info.name
        table.add_row(name, info.kind, _shown(info.default), info.help)
    console.print(table)
    console.print(f"set them with --param KEY=VALUE (or the flag shown): vsr run IN -m {found.name} --param KEY=VALUE")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from vsr import __version__

    parser = _Parser(prog="vsr", description="Video super-resolution: sharper, larger video.")
    parser.add_argument("--version", action="version", version=f"vsr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_probe(sub)
    _add_compare(sub)
    _add_methods(sub)
    try:
        from vsr.models.commands import add_models_command
    except ImportError:
        pass
    else:
        add_models_command(sub)
    return parser


def _say(message: str) -> None:
    """One line on standard error; a reader that has gone away silences it instead of failing."""
    try:
        print(f"vsr: {message}", file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        from vsr.progress import silence

        silence(sys.stderr)


class _MaskingFormatter(logging.Formatter):
    """Log lines, tracebacks included, with the secrets of URLs hidden."""

    def format(self, record: logging.LogRecord) -> str:
        from vsr.io.source import mask_url

        return mask_url(super().format(record))


def _print_traceback(exc: BaseException) -> None:
    """``--debug``: the traceback, with the secrets of URLs hidden as everywhere else."""
    import traceback

    from vsr.io.source import mask_url

    print(mask_url("".join(traceback.format_exception(exc))), end="", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vsr`` command; returns the exit code.

    When a forced stop left a worker inside a native call (a long model step), the process
    ends here with ``os._exit``: a normal exit would tear the library down under it and abort.
    """
    code = _main(argv)
    if "vsr.engine.queues" in sys.modules and sys.modules["vsr.engine.queues"].busy_workers():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from vsr.io.source import mask_url

    args.argv = ["vsr", *(sys.argv[1:] if argv is None else argv)]  # for the run report
    handler = logging.StreamHandler()
    handler.setFormatter(_MaskingFormatter("vsr: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR, handlers=[handler])
    try:
        return args.handler(args)
    except VsrError as exc:
        if args.debug:
            _print_traceback(exc)
        else:
            print(f"vsr: error: {mask_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vsr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback, unless --debug
        if args.debug:
            _print_traceback(exc)
            return 1
        print(f"vsr: internal error: {type(exc).__name__}: {mask_url(str(exc))} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

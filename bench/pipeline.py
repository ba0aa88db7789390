"""Pipeline overhead: vsr bicubic x2 against the ffmpeg binary doing the same job, same run.

Both read the same 640x360 clip, upscale x2 with bicubic and encode libx264 at the same
preset and crf, copying the audio. Decode-only and encode-only times show the floor the
pipeline stands on: with the stages overlapped, vsr's time should approach the larger
of the two. A second ffmpeg job does vsr's exact work (its kernel, Keys' cubic with
a = -0.75, and the chroma sitings it reads and writes), so the pipeline's own cost shows
apart from the kernel's effect on the encoder.

    python bench/pipeline.py [--clip PATH] [--repeats 3] [--preset medium] [--crf 18]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, ffmpeg_exe, load_average, machine, measure_call, print_table, time_command  # noqa: E402


def decode_only(clip: str) -> int:
    from vsr.io.decode import Decoder

    with Decoder(clip) as dec:
        dec.use_yuv()
        return sum(1 for _ in dec.frames())


def upscaled_frames(clip: str) -> tuple[list, object]:
    """Every frame's planes resized x2 as the pipeline resizes them, with its pts."""
    from dataclasses import replace

    from vsr.io.decode import Decoder
    from vsr.io.yuv import packed_height
    from vsr.methods.interp import bicubic

    method = bicubic(2)
    frames = []
    with Decoder(clip) as dec:
        dec.use_yuv()
        for f in dec.frames():
            fmt = dec.yuv
            size = (2 * packed_height(f.data.shape[-2], fmt), 2 * f.data.shape[-1])
            frames.append((method.upscale_planes(f.data, fmt, replace(fmt, siting="center"), size)[0].numpy(), f.pts))
        info = dec.info
    return frames, info


def encode_only(frames, info, out: str, preset: str, crf: float) -> None:
    from vsr.io.encode import EncodeSettings, Sink

    sink = Sink(out, info, EncodeSettings(crf=crf, preset=preset))
    sink.open(2 * info.width, 2 * info.height)
    for planes, pts in frames:
        sink.write_frame(sink.planes_picture(planes), pts)
    sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "samples" / "chaplin.mp4"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--crf", type=float, default=18)
    args = parser.parse_args()

    import os

    n = decode_only(args.clip)
    ff = ffmpeg_exe()
    vsr_cli = str(Path(sys.executable).with_name("vsr"))
    with tempfile.TemporaryDirectory() as tmp:
        out_ff, out_vsr, out_enc = (os.path.join(tmp, name) for name in ("ff.mp4", "vsr.mp4", "enc.mp4"))
        ffmpeg = time_command([ff, "-y", "-v", "error", "-i", args.clip, "-vf", "scale=iw*2:ih*2:flags=bicubic",
                               "-c:v", "libx264", "-preset", args.preset, "-crf", f"{args.crf:g}",
                               "-pix_fmt", "yuv420p", "-c:a", "copy", out_ff], args.repeats)
        # The same job done the way vsr does it: each plane resized with vsr's kernel, chroma
        # read at the siting vsr's decoder settles on and written centred.
        same_path = (f"scale=iw*2:ih*2:flags=bicubic:param0=0:param1=0.75:in_chroma_loc={_siting(args.clip)}"
                     ":out_chroma_loc=center")
        ffmpeg_same = time_command([ff, "-y", "-v", "error", "-i", args.clip, "-vf", same_path,
                                   "-c:v", "libx264", "-preset", args.preset, "-crf", f"{args.crf:g}",
                                   "-c:a", "copy", out_ff], args.repeats)
        vsr = time_command([vsr_cli, "run", args.clip, "-o", out_vsr, "-m", "bicubic", "-s", "2", "--preset",
                            args.preset, "--crf", f"{args.crf:g}", "-q", "-y"], args.repeats)
        ff_decode = time_command([ff, "-v", "error", "-i", args.clip, "-f", "null", "-"], args.repeats)

        from vsr import api

        in_process = measure_call(lambda: api.upscale(args.clip, out_vsr, "bicubic", 2, overwrite=True,
                                                      encode=_settings(args)), args.repeats)
        decode = measure_call(lambda: decode_only(args.clip), args.repeats)
        frames, info = upscaled_frames(args.clip)
        encode = measure_call(lambda: encode_only(frames, info, out_enc, args.preset, args.crf), args.repeats)

    def row(name: str, seconds: float, peak: float | None, note: str = "", cpu: float | None = None) -> list[str]:
        return [name, f"{seconds:.2f}", f"{n / seconds:.1f}", f"{1000 * seconds / n:.1f}",
                "" if cpu is None else f"{cpu:.2f}", "" if peak is None else f"{peak:.0f}", note]

    rows = [
        row("ffmpeg scale=bicubic + libx264 (baseline)", ffmpeg.seconds, ffmpeg.peak_mib, cpu=ffmpeg.cpu_seconds),
        row("vsr run -m bicubic (CLI, incl. start-up)", vsr.seconds, vsr.peak_mib,
            f"{vsr.seconds / ffmpeg.seconds:.2f}x ffmpeg (CPU {vsr.cpu_seconds / ffmpeg.cpu_seconds:.2f}x)",
            cpu=vsr.cpu_seconds),
        row("vsr.upscale() in process", in_process.seconds, None,
            f"{in_process.seconds / ffmpeg.seconds:.2f}x ffmpeg "
            f"(CPU {in_process.cpu_seconds / ffmpeg.cpu_seconds:.2f}x); "
            f"{in_process.seconds / ffmpeg_same.seconds:.2f}x the same work "
            f"(CPU {in_process.cpu_seconds / ffmpeg_same.cpu_seconds:.2f}x)",
            cpu=in_process.cpu_seconds),
        row("ffmpeg doing vsr's work (its kernel and sitings) + libx264", ffmpeg_same.seconds,
            ffmpeg_same.peak_mib, f"{ffmpeg_same.seconds / ffmpeg.seconds:.2f}x ffmpeg "
            f"(CPU {ffmpeg_same.cpu_seconds / ffmpeg.cpu_seconds:.2f}x)", cpu=ffmpeg_same.cpu_seconds),
        row("ffmpeg decode only", ff_decode.seconds, ff_decode.peak_mib, cpu=ff_decode.cpu_seconds),
        row("vsr decode only (YUV planes)", decode.seconds, None, cpu=decode.cpu_seconds),
        row("vsr encode only (YUV planes 1280x720 -> x264)", encode.seconds, None,
            f"{encode.seconds / ffmpeg.seconds:.2f}x ffmpeg (CPU {encode.cpu_seconds / ffmpeg.cpu_seconds:.2f}x)",
            cpu=encode.cpu_seconds),
    ]
    print_table(f"bicubic x2, {Path(args.clip).name}, {n} frames, libx264 {args.preset} crf {args.crf:g} "
                f"-- {machine()}; at the end: {load_average()}",
                ["job", "seconds", "frames/s", "ms/frame", "CPU s", "peak MiB", "vs baseline"], rows)


def _siting(clip: str) -> str:
    """The chroma siting vsr's decoder reads ``clip``'s planes at."""
    from vsr.io.decode import Decoder

    with Decoder(clip) as dec:
        dec.use_yuv()
        next(iter(dec))
        return dec.yuv.siting


def _settings(args):
    from vsr.io.encode import EncodeSettings

    return EncodeSettings(crf=args.crf, preset=args.preset)


if __name__ == "__main__":
    main()

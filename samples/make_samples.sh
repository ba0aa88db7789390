#!/usr/bin/env bash
# Rebuilds every clip in samples/ from public material and FFmpeg's own generators.
# Uses the ffmpeg binary shipped in the imageio-ffmpeg package (pip install imageio-ffmpeg).
# Run from the repository root with ../shared/data beside it.
set -euo pipefail
FF=$(python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
cd "$(dirname "$0")"

# 1. The film excerpt for the README's first command: the public-domain picture copied
#    bit for bit, its soundtrack (of unknown origin) replaced by a generated two-tone AAC track.
"$FF" -y -hide_banner -loglevel error -i ../../shared/data/clips/chaplin.mp4 \
  -f lavfi -i "aevalsrc=0.2*sin(2*PI*440*t)+0.1*sin(2*PI*660*t):s=44100:c=stereo" \
  -map 0:v:0 -map 1:a:0 -c:v copy -c:a aac -b:a 96k -shortest -map_metadata -1 \
  -metadata:s:v:0 language=und -metadata title="Silent-era Chaplin film excerpt (US public domain)" \
  chaplin.mp4

# 2. Variable frame rate with audio: a 30 fps test pattern keeping 3 frames of every 5,
#    timestamps passed through, so frame durations alternate 1/30 s and 3/30 s.
"$FF" -y -hide_banner -loglevel error \
  -f lavfi -i "testsrc2=size=320x180:rate=30:duration=3" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=3" \
  -vf "select='lt(mod(n\,5)\,3)',setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709" \
  -fps_mode passthrough -c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p \
  -c:a aac -b:a 64k vfr_audio.mp4

# 3. 10-bit 4:2:0, full range, BT.709 tags, Matroska with Opus audio.
"$FF" -y -hide_banner -loglevel error \
  -f lavfi -i "testsrc2=size=320x180:rate=25:duration=2" \
  -f lavfi -i "sine=frequency=1000:sample_rate=48000:duration=2" \
  -vf "format=yuv420p10le,setparams=range=pc:color_primaries=bt709:color_trc=bt709:colorspace=bt709" \
  -c:v libx264 -preset veryfast -crf 18 -c:a libopus -b:a 48k full_range_10bit.mkv

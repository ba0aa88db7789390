"""Train the networks vsr ships, reproducibly, on frames of the bundled real clips: the SRCNN
(``--net srcnn``) and SPAN fine-tuned for compressed input (``--net span``, ``span-crf``).

Data: frames of the clips in ``../shared/data/clips`` (the film, the camera, the NASA and
the animation clips; the synthetic test pattern is left out), never a Vid4 frame or any
benchmark image. Each clip's first 80 % gives the training frames, its last 15 % the
validation frames (the 5 % between keeps near-duplicates apart). Low-resolution inputs are
made as the protocols say: ``bi`` = MATLAB bicubic shrink (:func:`vsr.quality.imresize`);
``x264`` = the same, then runs of consecutive frames through libx264 at a crf drawn from 18 to
28 in 4:2:0 (:func:`vsr.quality.compress`).

SRCNN: 48x48 luma patches of the bicubic upscale, batches of 16, scales cycling 4, 2, 4, 3
(``--scales``), starting as bicubic (last layer zero); the defaults give the shipped x3 network
(``srcnn-x3``), the x4 one (``srcnn-x4``) is trained at x4 alone on more frames, each also
shrunk x2 and x3 where it stays at least 240 pixels high (``--pyramid``: the 720p clips' textures
then come at the density of standard-definition video), on patches with some detail
(``--min-detail``), with an L2 loss over the last fifth (``--l2-from``). SPAN: RGB patches of
the low-resolution frames (``--patch`` high-resolution pixels, 128 by default: 32x32 in at x4),
batches of 8, one scale, starting from the pretrained SPAN of the model manifest
(``span-x4-ch48`` at x4), trained in its folded inference form
(:func:`vsr.models.arch.span.trainable`) and saved folded in float16 (under 1 MB). Both: random
flips and transposes, L1 loss, Adam with a cosine learning rate (optionally after a linear
warm-up, ``--warmup``, and with the gradients' norm clipped, ``--clip-grad``; both off by
default), one CPU thread, a fixed seed: the same command makes the same draws and training
steps (with ``x264``, libx264 itself does not always code a run the same way twice, even on one
thread, so two runs of one command end a few hundredths of a dB apart and their sha256 differ). The
log (validation PSNR-Y of the network beside bicubic's on the held-out frames, at step 0 too) goes
to ``--log``; the weights to ``--out`` as safetensors, with their sha256 in the log;
``--save-validations`` also writes them at each validation (``NAME-stepN.safetensors`` beside
``--out``, same training otherwise), so that a run can be stopped or chosen from at any validation.

    python bench/train_srcnn.py [--steps 3000] [--scales 4,2,4,3] [--degradation bi|x264] [--kernels 9,1,5]
                                [--out vsr/methods/weights/srcnn-x3.safetensors] [--log bench/logs/srcnn-x3.log]
    python bench/train_srcnn.py --scales 4 --pyramid 1,2,3 --per-clip 60 --min-detail 0.03 --l2-from 0.8 \
                                --steps 6000 --batch 32 --out vsr/methods/weights/srcnn-x4.safetensors \
                                --log bench/logs/srcnn-x4.log
    python bench/train_srcnn.py --net span --scales 4 --degradation x264 --steps 2000 --per-clip 40 --lr 1e-4 \
                                --validate-every 250 --out vsr/methods/weights/span-crf-x4.safetensors \
                                --log bench/logs/span-crf-x4.log
    python bench/train_srcnn.py --net span --scales 2 --degradation x264 --steps 2000 --patch 64 --per-clip 40 \
                                --lr 5e-5 --warmup 100 --clip-grad 1.0 --validate-every 250 \
                                --out vsr/methods/weights/span-crf-x2.safetensors --log bench/logs/span-crf-x2.log
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHARED

#: (file, video stream index) of the training clips.
CLIPS = (("chaplin.mp4", 0), ("cockatoo.mp4", 0), ("nasa_13013.mp4", 1), ("realshort.mp4", 0),
         ("big_buck_bunny_0_30.webm", 0))
PATCH = 48  # high-resolution patch side, a multiple of every scale
SCALE_CYCLE = (4, 2, 4, 3)
MARGIN = 2  # low-resolution pixels read around a patch so the bicubic upscale has no border
RUN = 5  # consecutive frames compressed together for the x264 degradation
VAL_CROP = 240  # centre crop of validation frames (high resolution)
PYRAMID_MIN_SIDE = 240  # shorter side of the smallest shrunk copy of a frame (--pyramid)
DETAIL_TRIES = 8  # patches drawn at most to find one with --min-detail


@dataclass
class Sample:
    """One high-resolution frame and its low-resolution frame per scale: luma float32 in [0, 1]
    (SRCNN) or ``(H, W, 3)`` uint8 RGB (SPAN)."""

    hr: np.ndarray
    lr: dict[int, np.ndarray]


def count_frames(path: Path, stream: int) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[stream]) if p.size)


def decode_indices(path: Path, stream: int, wanted: set[int]) -> dict[int, np.ndarray]:
    """RGB uint8 frames of ``path`` at the decode indices in ``wanted``."""
    import av

    out = {}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[stream])):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if len(out) == len(wanted):
                break
    return out


def y01(rgb: np.ndarray) -> np.ndarray:
    from vsr.quality import rgb_to_y

    return (rgb_to_y(rgb) / 255.0).astype(np.float32)


def make_samples(frames: list[np.ndarray], degradation: str, scales: tuple[int, ...],
                 rng: np.random.Generator, rgb: bool = False) -> list[Sample]:
    """Samples from a run of consecutive RGB frames (one frame for ``bi``); ``rgb`` keeps
    uint8 RGB instead of float luma."""
    from vsr.quality import compress, imresize

    plane = (lambda x: x) if rgb else y01

    lr: dict[int, list[np.ndarray]] = {}
    for s in sorted(set(scales)):
        cropped = [f[: f.shape[0] // 12 * 12, : f.shape[1] // 12 * 12] for f in frames]
        small = [imresize(f, 1 / s) for f in cropped]
        if degradation == "x264":
            small = compress(small, crf=int(rng.integers(18, 29)))
        lr[s] = [plane(x) for x in small]
    keep = range(len(frames)) if degradation == "bi" else range(0, len(frames), 2)
    return [Sample(plane(frames[k][: frames[k].shape[0] // 12 * 12, : frames[k].shape[1] // 12 * 12]),
                   {s: lr[s][k] for s in lr}) for k in keep]


def shrink_levels(frames: list[np.ndarray], pyramid: tuple[int, ...]) -> list[list[np.ndarray]]:
    """``frames`` shrunk by each factor of ``pyramid`` (MATLAB bicubic, 1 = as decoded), keeping a
    level only while its shorter side stays at least :data:`PYRAMID_MIN_SIDE` pixels."""
    from vsr.quality import imresize

    side = min(frames[0].shape[:2])
    return [frames if d == 1 else [imresize(f, 1 / d) for f in frames]
            for d in pyramid if side / d >= PYRAMID_MIN_SIDE]


def build_data(degradation: str, scales: tuple[int, ...], per_clip: int, rng: np.random.Generator,
               log, rgb: bool = False, pyramid: tuple[int, ...] = (1,)) -> tuple[list[Sample], list[Sample]]:
    """Training and validation samples from every clip in :data:`CLIPS`, each frame at every
    level of ``pyramid`` (:func:`shrink_levels`)."""
    train, val = [], []
    run = RUN if degradation == "x264" else 1
    for name, stream in CLIPS:
        path = SHARED / "clips" / name
        n = count_frames(path, stream)
        starts = np.linspace(0, int(0.8 * n) - run, per_clip).astype(int)
        val_starts = np.linspace(int(0.85 * n), n - run, 3).astype(int)
        wanted = {int(s) + k for s in (*starts, *val_starts) for k in range(run)}
        frames = decode_indices(path, stream, wanted)
        levels = 0
        for s in starts:
            for f in shrink_levels([frames[int(s) + k] for k in range(run)], pyramid):
                train += make_samples(f, degradation, scales, rng, rgb)
        for s in val_starts:
            for f in shrink_levels([frames[int(s) + k] for k in range(run)], pyramid):
                h, w = f[0].shape[:2]
                c = min(VAL_CROP, h // 12 * 12, w // 12 * 12)
                y, x = (h - c) // 2, (w - c) // 2
                val += make_samples([g[y:y + c, x:x + c] for g in f], degradation, scales, rng, rgb)[-1:]
                levels += 1
        log(f"{name}: {n} frames, {len(starts)} training runs of {run}, {len(val_starts)} validation frames, "
            f"{levels // len(val_starts)} size(s)")
    return train, val


def bicubic_up(lr: np.ndarray, scale: int) -> np.ndarray:
    """The method's own bicubic upscale (vsr.methods.interp.resize) of a luma plane, or of
    ``(H, W, 3)`` uint8 RGB (then float RGB in [0, 1])."""
    import torch

    from vsr.methods.interp import resize

    if lr.ndim == 3:
        t = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1).float() / 255.0
        return resize(t, (lr.shape[0] * scale, lr.shape[1] * scale), "bicubic").permute(1, 2, 0).numpy()
    t = torch.from_numpy(np.ascontiguousarray(lr))[None]
    return resize(t, (lr.shape[0] * scale, lr.shape[1] * scale), "bicubic")[0].numpy()


def augment(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 flips and transposes (``k`` in 0..7) of an input/target pair, 2-D or ``(H, W, C)``."""
    if k & 1:
        x, y = x[:, ::-1], y[:, ::-1]
    if k & 2:
        x, y = x[::-1], y[::-1]
    if k & 4:
        x, y = x.swapaxes(0, 1), y.swapaxes(0, 1)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def batch(samples: list[Sample], scale: int, size: int, rng: np.random.Generator, min_detail: float = 0.0):
    """``size`` (bicubic input, target) patch pairs at ``scale``: two ``(size, 1, 48, 48)`` tensors.

    ``min_detail`` > 0 redraws a patch (up to :data:`DETAIL_TRIES` draws) while the standard
    deviation of its high-resolution luma (0..1) is below it, so flat sky and black borders
    take fewer of the steps."""
    import torch

    p = PATCH // scale
    xs, ys = [], []
    for _ in range(size):
        for _ in range(DETAIL_TRIES if min_detail > 0 else 1):
            smp = samples[int(rng.integers(len(samples)))]
            lr = smp.lr[scale]
            i = int(rng.integers(MARGIN, lr.shape[0] - p - MARGIN + 1))
            j = int(rng.integers(MARGIN, lr.shape[1] - p - MARGIN + 1))
            if min_detail <= 0 or smp.hr[i * scale:i * scale + PATCH, j * scale:j * scale + PATCH].std() >= min_detail:
                break
        up = bicubic_up(lr[i - MARGIN:i + p + MARGIN, j - MARGIN:j + p + MARGIN], scale)
        x = up[MARGIN * scale:MARGIN * scale + PATCH, MARGIN * scale:MARGIN * scale + PATCH]
        y = smp.hr[i * scale:i * scale + PATCH, j * scale:j * scale + PATCH]
        x, y = augment(x, y, int(rng.integers(8)))
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys))[:, None]


def batch_rgb(samples: list[Sample], scale: int, size: int, patch: int, rng: np.random.Generator):
    """``size`` (low-resolution, target) RGB patch pairs: ``(size, 3, p, p)`` and
    ``(size, 3, patch, patch)`` float in [0, 1], ``p = patch / scale``."""
    import torch

    p = patch // scale
    xs, ys = [], []
    for _ in range(size):
        smp = samples[int(rng.integers(len(samples)))]
        lr = smp.lr[scale]
        i = int(rng.integers(0, lr.shape[0] - p + 1))
        j = int(rng.integers(0, lr.shape[1] - p + 1))
        x, y = augment(lr[i:i + p, j:j + p], smp.hr[i * scale:(i + p) * scale, j * scale:(j + p) * scale],
                       int(rng.integers(8)))
        xs.append(x)
        ys.append(y)
    return tuple(torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255.0 for a in (xs, ys))


def validate(net, samples: list[Sample], scales: tuple[int, ...]) -> dict[int, tuple[float, float]]:
    """Mean PSNR-Y (dB) of bicubic and of the network per scale on the held-out frames."""
    import torch

    from vsr.quality import psnr_y

    out = {}
    for s in sorted(set(scales)):
        bic, ours = [], []
        for smp in samples:
            up = bicubic_up(smp.lr[s], s)
            rgb = smp.hr.ndim == 3
            with torch.inference_mode():
                if rgb:
                    x = torch.from_numpy(smp.lr[s]).permute(2, 0, 1)[None].float() / 255.0
                    pred = net(x)[0].permute(1, 2, 0).numpy()
                else:
                    pred = net(torch.from_numpy(up)[None, None])[0, 0].numpy()
            hr = smp.hr if rgb else smp.hr * 255
            bic.append(psnr_y(np.clip(up, 0, 1) * 255, hr))
            ours.append(psnr_y(np.clip(pred, 0, 1) * 255, hr))
        out[s] = (float(np.mean(bic)), float(np.mean(ours)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=("srcnn", "span"), default="srcnn")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=None, help="patches per step (16 for srcnn, 8 for span)")
    ap.add_argument("--lr", type=float, default=None, help="Adam's learning rate (1e-3 for srcnn, 2e-4 for span)")
    ap.add_argument("--patch", type=int, default=128, help="span: high-resolution patch side")
    ap.add_argument("--degradation", choices=("bi", "x264"), default="bi")
    ap.add_argument("--scales", default=",".join(map(str, SCALE_CYCLE)), help="scale of each step, cycled")
    ap.add_argument("--kernels", default="9,1,5", help="f1,f2,f3 of SRCNN (9,1,5 or 9,5,5)")
    ap.add_argument("--per-clip", type=int, default=40, help="training frames (runs) per clip")
    ap.add_argument("--pyramid", default="1",
                    help="also train and validate on each frame shrunk by these factors (1,2: as decoded "
                         f"and half size), while its shorter side stays >= {PYRAMID_MIN_SIDE}")
    ap.add_argument("--min-detail", type=float, default=0.0,
                    help="srcnn: redraw patches whose luma standard deviation (0..1) is below this")
    ap.add_argument("--l2-from", type=float, default=1.0,
                    help="fraction of the steps after which the loss is L2 instead of L1")
    ap.add_argument("--warmup", type=int, default=0,
                    help="steps of linear learning-rate warm-up from 1/100 of --lr before the cosine (0: none)")
    ap.add_argument("--clip-grad", type=float, default=None,
                    help="clip the gradients' total norm to this before each step (default: no clipping)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validate-every", type=int, default=1000)
    ap.add_argument("--save-validations", action="store_true",
                    help="also write the weights at each validation, beside --out as NAME-stepN.safetensors")
    ap.add_argument("--out", type=Path, default=ROOT / "vsr" / "methods" / "weights" / "srcnn-x3.safetensors")
    ap.add_argument("--log", type=Path, default=ROOT / "bench" / "logs" / "srcnn-x3.log")
    args = ap.parse_args()

    import cv2
    import torch
    from safetensors.torch import save_file

    from vsr.methods.srcnn import make_net
    from vsr.models.arch import span as span_arch

    is_span = args.net == "span"
    args.batch = args.batch or (8 if is_span else 16)
    args.lr = args.lr or (2e-4 if is_span else 1e-3)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    logfile = args.log.open("w")

    def log(msg: str) -> None:
        print(msg, flush=True)
        logfile.write(msg + "\n")
        logfile.flush()

    t0 = time.perf_counter()
    log(f"train_srcnn {' '.join(sys.argv[1:])}")
    scales = tuple(int(s) for s in args.scales.split(","))
    if is_span and len(set(scales)) != 1:
        sys.exit("train_srcnn: --net span trains one scale (--scales 4 or --scales 2)")
    pyramid = tuple(int(d) for d in args.pyramid.split(","))
    train, val = build_data(args.degradation, scales, args.per_clip, rng, log, rgb=is_span, pyramid=pyramid)
    log(f"{len(train)} training frames, {len(val)} validation frames, data ready in {time.perf_counter() - t0:.0f} s")

    if is_span:
        from vsr.models.loader import load

        init = f"span-x{scales[0]}-ch48"
        net = load(init).module
        params = span_arch.trainable(net)
        arch = f"span {init} fine-tuned"
    else:
        f1, f2, f3 = (int(k) for k in args.kernels.split(","))
        net = make_net(f1, f2, f3)
        torch.nn.init.zeros_(net.conv3.weight)  # starts as bicubic
        torch.nn.init.zeros_(net.conv3.bias)
        params = list(net.parameters())
        arch = f"srcnn {f1}-{f2}-{f3}"

    def report(step: int, what: str = "") -> None:
        if not is_span:
            net.eval()
        scores = validate(net, val, scales)
        if not is_span:
            net.train()
        log(f"step {step} validation{what} PSNR-Y bicubic/{args.net}: " + ", ".join(
            f"x{s} {b:.2f}/{o:.2f} ({o - b:+.2f})" for s, (b, o) in scores.items()))

    def save(path: Path) -> None:
        """Write the weights as shipped (SPAN: folded float16, validated again as loaded) and log their sha256."""
        nonlocal net
        path.parent.mkdir(parents=True, exist_ok=True)
        steps = str(args.steps) if step == args.steps else f"{step} of {args.steps}"
        state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
        if is_span:
            state = {k: v.half() for k, v in span_arch.folded(state).items()}
            # One metadata key: safetensors writes several in no fixed order (the sha256 would vary).
            meta = {"trained": f"{arch}, {args.degradation}, x{scales[0]}, {steps} steps, seed {args.seed}"}
        else:
            meta = {"arch": arch, "degradation": args.degradation, "steps": steps,
                    "seed": str(args.seed), "scales": ",".join(map(str, sorted(set(scales))))}
        save_file(state, str(path), metadata=meta)
        if is_span:  # the shipped float16 weights, validated as the method loads them
            from safetensors.torch import load_file

            with torch.random.fork_rng():  # building a network draws initial weights: training's draws stay as they were
                training, net = net, span_arch.build(span_arch.unfolded(load_file(str(path)))).eval()
            report(step, " of the float16 file")
            net = training
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
            f"({path.stat().st_size} bytes) sha256 {digest}")

    step = 0
    if is_span:
        report(0)
    opt = torch.optim.Adam(params, lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps - args.warmup, eta_min=args.lr / 100)
    if args.warmup:
        sched = torch.optim.lr_scheduler.SequentialLR(
            opt, [torch.optim.lr_scheduler.LinearLR(opt, 1 / 100, total_iters=args.warmup), sched], [args.warmup])
    running = 0.0
    norms: list[float] = []  # gradient norms before clipping since the last loss line
    for step in range(1, args.steps + 1):
        scale = scales[step % len(scales)]
        if is_span:
            x, y = batch_rgb(train, scale, args.batch, args.patch, rng)
        else:
            x, y = batch(train, scale, args.batch, rng, args.min_detail)
        loss_fn = torch.nn.functional.mse_loss if step > args.l2_from * args.steps else torch.nn.functional.l1_loss
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        if args.clip_grad is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, args.clip_grad)))
        opt.step()
        sched.step()
        running += loss.item()
        if step % 100 == 0:
            log(f"step {step} loss ({'L2' if loss_fn is torch.nn.functional.mse_loss else 'L1'}) "
                f"{running / 100:.5f} lr {sched.get_last_lr()[0]:.2e} "
                f"{time.perf_counter() - t0:.0f} s" + (
                    f", gradient norm mean {np.mean(norms):.3g} max {max(norms):.3g}, "
                    f"{sum(n > args.clip_grad for n in norms)} clipped" if norms else ""))
            running = 0.0
            norms = []
        if step % args.validate_every == 0 or step == args.steps:
            report(step)
            if args.save_validations and step < args.steps:
                save(args.out.with_name(f"{args.out.stem}-step{step}{args.out.suffix}"))

    save(args.out)
    log(f"training took {time.perf_counter() - t0:.0f} s on {torch.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()

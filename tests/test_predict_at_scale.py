"""`predict` over a collection as people have it (issue 30): sharded across processes (--nproc,
torchrun, two torchrun "nodes" meeting at a c10d rendezvous on this machine), each equal to one
process's run; killed at random points (SIGKILL) and started again, ending with exactly the
uninterrupted run's files; a rerun with other arguments refused; and the kinds of images people
have: EXIF-rotated JPEGs, 16-bit PNGs, palettes, transparency, CMYK, too large, truncated. The
model is the demo's recorded one (docs/demo/model.pt, 128x128), the images the demo's shapes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from inputs import png_bytes

from roiops.__main__ import main
from roiops.demo import shapes

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "docs" / "demo" / "model.pt"
COMMAND = [sys.executable, "-P", "-m", "roiops"]
PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """24 of the demo's held-out images as PNG files."""
    folder = tmp_path_factory.mktemp("collection")
    images, _ = shapes.as_lists(list(shapes.ShapesDataset(0, part=1, length=24)))
    shapes.save_images(folder, images)
    return folder


def predict_command(folder: Path, out: Path, *extra: str) -> list[str]:
    return [*COMMAND, "predict", str(MODEL), str(folder), "--out", str(out),
            "--image-size", "128x128", "--batch-size", "2", *extra]  # fmt: skip


# Every run here: one thread per process, so that each image's arithmetic is the same whatever the
# number of processes (a convolution's last bits depend on how its sums are split among threads:
# with 2 threads against 1, boxes move by ~1e-6 pixels and nothing else changes); and never the
# checkout's roiops from the working folder (torchrun's children run `-m roiops` without -P).
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONSAFEPATH": "1"}


def run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def one_process(collection, tmp_path_factory):
    """The reference: one process, uninterrupted."""
    out = tmp_path_factory.mktemp("one_process")
    run(predict_command(collection, out))
    return out


def outputs_of(out: Path) -> tuple[bytes, bytes, dict[str, bytes]]:
    pictures = {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}
    return (out / "detections.json").read_bytes(), (out / "images.json").read_bytes(), pictures


def assert_same_results(out: Path, reference: Path) -> None:
    """The same files, byte for byte: detections (image ids included), the catalogue and the
    pictures."""
    detections, catalogue, pictures = outputs_of(out)
    expected_detections, expected_catalogue, expected_pictures = outputs_of(reference)
    assert json.loads(catalogue) == json.loads(expected_catalogue)
    assert json.loads(detections) == json.loads(expected_detections)
    assert detections == expected_detections
    assert pictures.keys() == expected_pictures.keys() and len(pictures) == 24
    assert pictures == expected_pictures


def test_the_reference_run_is_whole(one_process, collection):
    catalogue = json.loads((one_process / "images.json").read_text())
    files = sorted(collection.iterdir())
    assert [(i["id"], i["file_name"]) for i in catalogue["images"]] == [
        (k, str(path)) for k, path in enumerate(files)
    ]
    detections = json.loads((one_process / "detections.json").read_text())
    assert len({d["image_id"] for d in detections}) > 20
    ids = [d["image_id"] for d in detections]
    assert ids == sorted(ids)  # in the order of the images
    assert len(list((one_process / "parts").glob("batch-*.json"))) == 12


def test_two_processes_give_the_one_process_results(collection, one_process, tmp_path):
    result = run(predict_command(collection, tmp_path, "--nproc", "2"))
    assert "2 process(es)" in result.stderr
    assert result.stdout.split() == [
        str(tmp_path / "detections.json"),
        str(tmp_path / "images.json"),
    ]
    assert_same_results(tmp_path, one_process)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_nodes_meeting_at_a_rendezvous_give_the_one_process_results(
    collection, one_process, tmp_path
):
    """Two torchrun agents, each a "machine" with one process, meet at a c10d rendezvous on
    localhost (as machines meet at one's address) and share the output folder."""
    rendezvous = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                "--nproc-per-node", "1", *rendezvous, "--rdzv-id", "predict-test"]  # fmt: skip
    command = [*torchrun, "-m", "roiops", *predict_command(collection, tmp_path)[4:]]
    # Each node's output into its own file: read from pipes one after the other, a node whose
    # pipe filled would block, and a node that failed would go unseen behind the other's wait.
    logs = [tmp_path / f"node-{n}.log" for n in range(2)]
    nodes = []
    for log in logs:
        with log.open("w") as file:
            nodes.append(
                subprocess.Popen(
                    command,
                    stdout=file,
                    stderr=subprocess.STDOUT,
                    env=ONE_THREAD,
                    start_new_session=True,  # its group: torchrun and the process it started
                )
            )

    def outputs() -> str:
        return "\n".join(f"{log.name}:\n{log.read_text()[-3000:]}" for log in logs)

    deadline = time.monotonic() + 300  # a run takes ~7 s here
    try:
        for node in nodes:
            node.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the two nodes had not ended after 300 s\n{outputs()}")
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait()
    assert [node.returncode for node in nodes] == [0, 0], outputs()
    assert_same_results(tmp_path, one_process)
    shares = [json.loads(p.read_text())["images"] for p in sorted((tmp_path / "parts").glob("b*"))]
    assert all(len(share) == 2 for share in shares)


def test_a_run_killed_at_random_points_and_started_again_ends_as_an_uninterrupted_run(
    collection, one_process, tmp_path
):
    """SIGKILL at three random moments (while starting, or inside a batch after 1 to 9 are
    done), each time started again with the same arguments; then a run to the end. The result is
    the uninterrupted run's, byte for byte, and no batch was done twice."""
    rng = random.Random(30)
    command = predict_command(collection, tmp_path)
    parts = tmp_path / "parts"
    done_when_killed = []
    # kill once it has done this many batches (0: while it starts), then ~half a batch later
    for target in sorted(rng.sample(range(10), 3)):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=ONE_THREAD)
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if parts.exists() and len(list(parts.glob("batch-*.json"))) >= target:
                time.sleep(rng.uniform(0, 0.05))  # a batch takes ~0.06 s here
                break
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        done_when_killed.append(len(list(parts.glob("batch-*.json"))))
    assert done_when_killed[-1] < 12, "the runs ended before they were killed"
    modified = {p.name: p.stat().st_mtime_ns for p in parts.glob("batch-*.json")}
    result = run(command)
    assert f"{done_when_killed[-1]} of 12 batches done before, resuming" in result.stderr
    # what was done is not done again
    assert all(parts.joinpath(name).stat().st_mtime_ns == t for name, t in modified.items())
    assert_same_results(tmp_path, one_process)


def run_in_process(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exit:
            status = exit.code
    return status, err.getvalue()


def test_a_rerun_with_other_arguments_into_the_same_folder_is_refused(collection, tmp_path):
    files = sorted(collection.iterdir())[:2]
    base = ["predict", str(MODEL), *map(str, files), "--out", str(tmp_path),
            "--image-size", "128x128"]  # fmt: skip
    assert run_in_process(*base)[0] == 0
    status, printed = run_in_process(*base)  # the same: nothing left, merged again
    assert status == 0 and "1 of 1 batches done before" in printed
    status, printed = run_in_process(*base, "--draw-threshold", "0.7")
    assert status == 2
    assert f"--out {tmp_path} holds a run with other arguments (draw_threshold: 0.5 then" in printed
    status, printed = run_in_process(*base[:-1], "96x96")
    assert status == 2 and "image_size: [128, 128] then, [96, 96] now" in printed
    status, printed = run_in_process(*base[:3], "--out", str(tmp_path), "--image-size", "128x128")
    assert status == 2 and "images: 2 then, 1 now" in printed


def test_no_pictures_writes_the_same_results_and_no_picture(collection, one_process, tmp_path):
    run(predict_command(collection, tmp_path, "--no-pictures", "--readers", "0"))
    assert not list(tmp_path.glob("*.png"))
    assert (tmp_path / "detections.json").read_bytes() == (
        one_process / "detections.json"
    ).read_bytes()


# --- images as people have them ----------------------------------------------------------------


BACKGROUND = (0.485, 0.456, 0.406)
RNG = np.random.default_rng(30)
GREY16 = RNG.integers(0, 65536, (6, 5, 1))
RGB16 = RNG.integers(0, 65536, (6, 5, 3))
GREY_ALPHA16 = RNG.integers(0, 65536, (6, 5, 2))
INDICES = RNG.integers(0, 4, (6, 5, 1))
PALETTE = RNG.integers(0, 256, (4, 3))
RGBA = RNG.integers(0, 256, (6, 5, 4))


def composited(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """8-bit colour and alpha -> [0, 1] floats on BACKGROUND, as read_image composites."""
    rgb = rgb.astype(np.float32) / 255
    alpha = alpha.astype(np.float32) / 255
    return rgb * alpha + np.asarray(BACKGROUND, np.float32) * (1 - alpha)


# (file bytes, the pixels read_image must give [H, W, 3] in [0, 1])
PNG_KINDS = {
    # a random 16-bit grey image came out white (mean 254.5 of 255) when clipped
    "grey 16-bit": (png_bytes(GREY16, 0, 16), np.repeat(GREY16 >> 8, 3, axis=2) / 255),
    "RGB 16-bit": (png_bytes(RGB16, 2, 16), (RGB16 >> 8) / 255),
    "grey + alpha 16-bit": (
        png_bytes(GREY_ALPHA16, 4, 16),
        composited(np.repeat(GREY_ALPHA16[..., :1] >> 8, 3, axis=2), GREY_ALPHA16[..., 1:] >> 8),
    ),
    "palette": (png_bytes(INDICES, 3, palette=PALETTE), PALETTE[INDICES[..., 0]] / 255),
    "palette + tRNS": (
        png_bytes(INDICES, 3, palette=PALETTE, trns=bytes([0, 128, 255])),
        composited(PALETTE[INDICES[..., 0]], np.array([0, 128, 255, 255])[INDICES]),
    ),
    "grey 8-bit": (png_bytes(INDICES * 60, 0), np.repeat(INDICES * 60, 3, axis=2) / 255),
    "RGBA": (png_bytes(RGBA, 6), composited(RGBA[..., :3], RGBA[..., 3:])),
}


@pytest.mark.parametrize("kind", PNG_KINDS)
def test_png_kinds_are_read_as_a_viewer_shows_them(kind, tmp_path):
    from roiops.deploy.images import read_image

    data, expected = PNG_KINDS[kind]
    path = tmp_path / "image.png"
    path.write_bytes(data)
    image = read_image(path, background=BACKGROUND)
    assert image.shape == (3, 6, 5) and image.dtype == torch.float32
    expected = torch.from_numpy(np.asarray(expected, np.float32)).permute(2, 0, 1)
    torch.testing.assert_close(image, expected, rtol=0, atol=1e-6)


def test_a_cmyk_jpeg_is_read_as_rgb(tmp_path):
    """Pillow's CMYK JPEGs are stored inverted (Adobe's): read back, the colours are the
    image's, not their negative."""
    from roiops.deploy.images import read_image

    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16] = (200, 30, 40)
    rgb[:, 16:] = (20, 160, 220)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as stored:
        assert stored.mode == "CMYK"
    image = read_image(tmp_path / "cmyk.jpg").permute(1, 2, 0).numpy()
    assert np.abs(image * 255 - rgb).mean() < 6


def exif_rotated_jpeg(path: Path) -> np.ndarray:
    """A 40 x 24 (W x H) picture, red in its top-left corner as displayed, stored turned a
    quarter (24 x 40) with EXIF orientation 6 ("rotate 90 clockwise to display"), as phones store
    portrait photos. Returns the upright pixels."""
    upright = np.full((24, 40, 3), 255, np.uint8)
    upright[:8, :8] = (255, 0, 0)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # 90 anticlockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, exif=exif, quality=95)
    return upright


def test_exif_orientation_is_applied(tmp_path):
    from roiops.deploy.images import read_image

    upright = exif_rotated_jpeg(tmp_path / "phone.jpg")
    with Image.open(tmp_path / "phone.jpg") as stored:
        assert stored.size == (24, 40)  # stored sideways
    image = read_image(tmp_path / "phone.jpg").permute(1, 2, 0).numpy()
    assert image.shape == (24, 40, 3)
    assert np.abs(image * 255 - upright).mean() < 6


def test_an_image_beyond_pillows_decompression_bomb_limit_is_refused(tmp_path, monkeypatch):
    from roiops.deploy.images import ImageTooLarge, read_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("RGB", (10, 10)).save(tmp_path / "at.png")  # exactly the limit: read
    assert read_image(tmp_path / "at.png").shape == (3, 10, 10)
    Image.new("RGB", (12, 10)).save(tmp_path / "above.png")  # 1.2x: pillow only warns
    message = r"12x10 = 120 pixels, more than pillow's decompression-bomb limit of 100 \("
    with pytest.raises(ImageTooLarge, match=message + r"PIL.Image.MAX_IMAGE_PIXELS\)"):
        read_image(tmp_path / "above.png")
    Image.new("RGB", (30, 10)).save(tmp_path / "far.png")  # 3x: pillow refuses
    with pytest.raises(Image.DecompressionBombError):
        read_image(tmp_path / "far.png")


def test_predict_reads_every_kind_and_names_what_it_cannot(collection, tmp_path, monkeypatch):
    """One folder of every kind: each is processed with its upright size reported; the truncated
    and the too-large ones are named at the end (exit status 1), the others done."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for k, (data, _) in enumerate(PNG_KINDS.values()):
        (inputs / f"kind{k}.png").write_bytes(data)
    exif_rotated_jpeg(inputs / "phone.jpg")
    good = (sorted(collection.iterdir())[0]).read_bytes()
    (inputs / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.new("RGB", (150, 150)).save(inputs / "large.png")  # 1.4x the limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 128 * 128)
    status, printed = run_in_process(
        "predict", str(MODEL), str(inputs), "--out", str(tmp_path / "out"),
        "--image-size", "128x128",
    )  # fmt: skip
    assert status == 1
    assert "could not read 2 of 10 images" in printed
    assert "large.png: ImageTooLarge: 150x150 = 22500 pixels" in printed
    assert re.search(r"truncated.png: OSError: .*truncated", printed), printed
    catalogue = json.loads((tmp_path / "out" / "images.json").read_text())
    sizes = {Path(i["file_name"]).name: (i["height"], i["width"]) for i in catalogue["images"]}
    assert sizes == {"phone.jpg": (24, 40), **{f"kind{k}.png": (6, 5) for k in range(7)}}

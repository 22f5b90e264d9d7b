import logging
import os

import numpy as np
import pytest
from PIL import Image

from train.data import (FASHION_MNIST_DIR, FLUENT_EMOJI_DIR, NOTO_EMOJI_FONT, load_prepared, main, prepare_digits,
                        prepare_fashion_mnist, prepare_fluent_emoji, prepare_folder, prepare_noto_emoji, to_square)


def test_transparency_is_composited_on_white_and_padding_is_white():
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))          # fully transparent red, wide
    rgba.paste((0, 0, 255, 255), (8, 3, 12, 7))                  # an opaque blue square
    out = to_square(rgba, 8, fit="pad")
    assert out.shape == (8, 8, 3)
    assert tuple(out[0, 0]) == (255, 255, 255)                   # padding and transparency: white
    assert out[4, 4, 2] > 200 and out[4, 4, 0] < 80             # the blue survived
    cropped = to_square(Image.new("RGB", (30, 10), (10, 20, 30)), 4, fit="crop")
    assert (cropped == [10, 20, 30]).all()
    grey = to_square(Image.new("L", (5, 5), 7), 4, channels=1)
    assert grey.shape == (4, 4, 1)


@pytest.mark.parametrize("mode,key", [("L", 0), ("RGB", (0, 0, 0))])
def test_a_transparent_colour_key_is_white_not_black(tmp_path, mode, key):
    # A greyscale (or RGB) PNG whose black is declared transparent: the background is white.
    image = Image.new(mode, (6, 6), 0)
    image.paste(128 if mode == "L" else (128, 128, 128), (2, 2, 4, 4))
    image.save(tmp_path / "keyed.png", transparency=key)
    with Image.open(tmp_path / "keyed.png") as reopened:
        assert "transparency" in reopened.info
        out = to_square(reopened, 6, fit="pad")
    assert tuple(out[0, 0]) == (255, 255, 255)                   # the keyed colour became white
    assert tuple(out[3, 3]) == (128, 128, 128)                   # the opaque grey stayed


def test_image_folder_recursive_with_corrupt_files_skipped(tmp_path, caplog):
    src = tmp_path / "images"
    (src / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), "red").save(src / "a.png")
    Image.new("RGB", (30, 40), "green").save(src / "sub" / "b.jpg")
    Image.new("RGBA", (16, 16), (0, 0, 255, 128)).save(src / "sub" / "c.webp")
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    (src / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING):
        out = prepare_folder(src, 16, tmp_path / "prepared")
    assert "skipped 1 unreadable" in caplog.text
    data = load_prepared(out)
    assert data.images.shape == (3, 16, 16, 3) and data.images.dtype == np.uint8
    assert [i["file"] for i in data.manifest["items"]] == ["a.png", "sub/b.jpg", "sub/c.webp"]
    assert data.manifest["skipped"] == ["broken.png"]


def test_empty_missing_and_unprepared_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_folder(tmp_path / "missing", 16, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        prepare_folder(tmp_path / "empty", 16, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        load_prepared(tmp_path / "empty")
    with pytest.raises(ValueError, match="power of two"):
        prepare_digits(20, tmp_path / "out")


def test_digits(tmp_path):
    data = load_prepared(prepare_digits(16, tmp_path / "d"))
    assert data.images.shape == (1797, 16, 16, 3)
    assert data.images[:, 0, 0].min() > 200  # white background, dark strokes
    assert data.images.min() < 50


# Skipped only outside CI: in CI (CI=true) a missing package is a failure, not a skip.
@pytest.mark.system
@pytest.mark.skipif(not NOTO_EMOJI_FONT.is_file() and not os.environ.get("CI"), reason="needs Debian's fonts-noto-color-emoji "
                    "(scripts/install_system_deps.sh installs it; CI always has it)")
def test_noto_emoji(tmp_path):
    data = load_prepared(prepare_noto_emoji(32, tmp_path / "all"))
    assert data.images.shape == (3926, 32, 32, 3)
    texts = {i["text"] for i in data.manifest["items"]}
    assert "😀" in texts and "👋🏾" in texts      # single characters and ligature sequences
    assert "Apache" in data.manifest["licence"]
    faces = load_prepared(prepare_noto_emoji(16, tmp_path / "faces", subset="faces"))
    assert 50 < len(faces) < 200 and all(i["codepoints"][0].startswith("U+1F") for i in faces.manifest["items"])
    base = load_prepared(prepare_noto_emoji(16, tmp_path / "base", subset="base"))
    assert not any("U+1F3FD" in i["codepoints"] for i in base.manifest["items"])
    with pytest.raises(ValueError, match="subset"):
        prepare_noto_emoji(16, tmp_path / "x", subset="cats")


@pytest.mark.system
@pytest.mark.skipif(not FLUENT_EMOJI_DIR.is_dir() and not os.environ.get("CI"), reason="needs the npm package "
                    "fluentui-emoji (scripts/install_system_deps.sh installs it; CI always has it)")
def test_fluent_emoji(tmp_path):
    animals = load_prepared(prepare_fluent_emoji(16, tmp_path / "animals", subset="animals"))
    assert 80 < len(animals) <= 110 and animals.images.shape[1:] == (16, 16, 3)
    items = animals.manifest["items"]
    assert {"file": "gorilla.svg", "name": "gorilla", "codepoints": ["U+1F98D"], "text": "🦍"} in items
    assert "MIT" in animals.manifest["licence"] and animals.manifest["style"] == "flat"
    # drawn on white, and not blank: the corners are background, the centre is not
    assert (animals.images[:, 0, 0] > 240).all() and (animals.images[:, 4:12, 4:12].std(axis=(1, 2, 3)) > 5).all()
    faces = load_prepared(prepare_fluent_emoji(16, tmp_path / "faces", subset="faces", style="modern"))
    assert 50 < len(faces) < 110 and all(i["codepoints"][0].startswith("U+1F") for i in faces.manifest["items"])
    with pytest.raises(ValueError, match="style"):
        prepare_fluent_emoji(16, tmp_path / "x", style="3d")
    with pytest.raises(FileNotFoundError, match="fluentui-emoji"):
        prepare_fluent_emoji(16, tmp_path / "x", src=tmp_path / "nowhere")


@pytest.mark.system
@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir() and not os.environ.get("CI"), reason="needs Debian's dataset-fashion-mnist "
                    "(scripts/install_system_deps.sh installs it; CI always has it)")
def test_fashion_mnist(tmp_path):
    data = load_prepared(prepare_fashion_mnist(32, tmp_path / "f", limit=50))
    assert data.images.shape == (50, 32, 32, 1)


def test_cli(tmp_path, capsys):
    main(["digits", "--resolution", "8", "--out", str(tmp_path / "d")])
    assert "wrote 1797 images of 8x8x3" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["folder", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert e.value.code == 2


@pytest.mark.parametrize("flag", ["--res", "--sr", "--ou"])
def test_a_sub_commands_flags_are_never_abbreviated(tmp_path, flag, capsys):
    """argparse would take --res as --resolution and go on; every sub-command refuses it instead."""
    (tmp_path / "src").mkdir()
    Image.new("RGB", (16, 16), "red").save(tmp_path / "src" / "a.png")
    args = {"--resolution": "8", "--src": str(tmp_path / "src"), "--out": str(tmp_path / "x")}
    argv = ["folder"] + [a for name, value in args.items() for a in ((flag if name.startswith(flag) else name), value)]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and flag in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

"""Scene generator, vocabulary, Karpathy JSON loader and image folders."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ssjdn import (
    SCENE_CLASSES,
    RetrievalData,
    Vocabulary,
    label_from_filename,
    load_karpathy_dataset,
    load_karpathy_json,
    make_scenes,
    tokenize,
)


def test_scenes_shapes_deterministic_and_flags() -> None:
    a = make_scenes(40, image_size=32, seed=3)
    b = make_scenes(40, image_size=32, seed=3)
    assert a.images.shape == (40, 3, 32, 32)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert float(a.images.min()) >= 0.0 and float(a.images.max()) <= 1.0
    assert all(len(c) == 5 for c in a.captions)
    assert a.caption_small.shape == (200,) and a.image_small.shape == (40,)
    assert 0 < a.caption_small.mean() < 1 and 0 < a.image_small.mean() < 1  # scales vary
    assert set(a.labels.tolist()) == set(range(len(SCENE_CLASSES)))
    assert not torch.equal(a.images, make_scenes(40, image_size=32, seed=4).images)


def test_captions_are_tied_to_content() -> None:
    d = make_scenes(60, seed=0)
    colours = {"red", "white", "blue", "yellow", "black", "orange"}
    scene_words = 0
    for k, caps in enumerate(d.captions):
        cls = d.class_names[int(d.labels[k])]
        for c in caps:
            words = set(tokenize(c))
            assert words & colours, c  # every caption names a colour it drew
            scene_words += cls.split()[-1] in words or any(
                w in words
                for w in (
                    "airport",
                    "airfield",
                    "port",
                    "harbour",
                    "harbor",
                    "neighbourhood",
                    "suburb",
                    "factory",
                    "farmland",
                    "fields",
                    "farm",
                    "beach",
                    "seaside",
                    "coast",
                    "playground",
                    "stadium",
                    "sports",
                    "forest",
                    "woods",
                    "parking",
                    "car",
                    "industrial",
                    "residential",
                )
            )
    frac = scene_words / (5 * len(d))
    assert 0.3 < frac < 0.8  # the scene word appears in only about half of the captions


def test_colour_in_caption_is_drawn() -> None:
    d = make_scenes(30, image_size=64, seed=1)
    rgb = {"red": (0.85, 0.15, 0.12), "yellow": (0.95, 0.85, 0.1), "orange": (0.95, 0.5, 0.1)}
    for k, caps in enumerate(d.captions):
        for name, col in rgb.items():
            if any(name in tokenize(c) for c in caps):
                diff = (d.images[k] - torch.tensor(col).view(3, 1, 1)).abs().amax(0)
                assert (diff < 1e-5).sum() >= 2, (k, name)


def test_same_class_hard_negatives_exist() -> None:
    d = make_scenes(50, seed=2)
    labels = d.labels.numpy()
    cls0 = np.flatnonzero(labels == labels[0])
    assert len(cls0) >= 2
    assert set(d.captions[cls0[0]]).isdisjoint(d.captions[cls0[1]])


def test_vocabulary_roundtrip_and_errors() -> None:
    v = Vocabulary.build(["A red car.", "two red cars"], min_count=1)
    assert v.itos[:3] == ["<pad>", "<unk>", "red"]
    ids, mask = v.batch(["red car", "blue boat red"])
    assert ids.shape == (2, 3) and mask.sum().item() == 5
    assert ids[1, 0].item() == 1  # unknown word
    assert Vocabulary.from_state_dict(v.state_dict()).itos == v.itos
    with pytest.raises(ValueError, match="caption 1"):
        v.batch(["red", "  ...  "])
    with pytest.raises(TypeError, match="single str"):
        v.batch("red car")
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(["a"], min_count=0)


def test_label_from_filename() -> None:
    assert label_from_filename("airport_12.jpg") == "airport"
    assert label_from_filename("denseresidential_3.jpg") == "denseresidential"
    assert label_from_filename("storagetanks-7.png") == "storagetanks"
    assert label_from_filename("00012.jpg") is None
    assert label_from_filename("12.tif") is None


def _write_dataset(tmp_path: Path) -> Path:
    from PIL import Image

    entries = []
    names = ["airport_1.jpg", "airport_2.jpg", "beach_1.jpg", "00004.jpg"]
    for k, fn in enumerate(names):
        Image.fromarray(np.full((20, 24, 3), 40 * k, dtype=np.uint8)).save(tmp_path / fn)
        sents = [{"raw": f"caption {k} {j} of {fn}", "tokens": []} for j in range(5)]
        if k == 1:
            sents[0] = {"tokens": ["many", "planes"]}
        entries.append({"filename": fn, "split": "test" if k else "train", "sentences": sents})
    path = tmp_path / "dataset_rsicd.json"
    path.write_text(json.dumps({"images": entries, "dataset": "rsicd"}))
    return path


def test_karpathy_json_and_images(tmp_path: Path) -> None:
    path = _write_dataset(tmp_path)
    entries = load_karpathy_json(path)
    assert [e.label for e in entries] == ["airport", "airport", "beach", None]
    assert entries[1].captions[0] == "many planes"
    test = load_karpathy_json(path, split="test")
    assert len(test) == 3
    data = load_karpathy_dataset(
        path, tmp_path, split="test", image_size=16, class_names=["airport", "beach"]
    )
    assert data.images.shape == (3, 3, 16, 16)
    assert data.labels.tolist() == [0, 1, -1]  # numeric name -> unlabelled
    assert data.images[1].mean().item() == pytest.approx(80 / 255, abs=1e-3)
    assert data.filenames == ["airport_2.jpg", "beach_1.jpg", "00004.jpg"]


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"imgs": []}, "'images' list"),
        ({"images": [{"split": "test", "sentences": [{"raw": "a"}]}]}, r"images\[0\]\.filename"),
        ({"images": [{"filename": "a.jpg", "sentences": [{"raw": "a"}]}]}, r"images\[0\]\.split"),
        (
            {"images": [{"filename": "a.jpg", "split": "test", "sentences": []}]},
            r"images\[0\]\.sentences",
        ),
        (
            {
                "images": [
                    {
                        "filename": "a.jpg",
                        "split": "test",
                        "sentences": [{"raw": "a"}, {"raw": " "}],
                    }
                ]
            },
            r"sentences\[1\]",
        ),
        ({"images": ["a.jpg"]}, r"images\[0\] must be an object"),
    ],
)
def test_karpathy_json_rejects_malformed(tmp_path: Path, doc: dict, match: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=match):
        load_karpathy_json(p)


def test_karpathy_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset_rsicd.json"):
        load_karpathy_json(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_karpathy_json(tmp_path / "broken.json")
    path = _write_dataset(tmp_path)
    (tmp_path / "beach_1.jpg").unlink()
    with pytest.raises(ValueError, match=r"beach_1.jpg. \(entry 1\) is missing"):
        load_karpathy_dataset(path, tmp_path, split="test", image_size=16)


def test_retrieval_data_bad_inputs() -> None:
    imgs = torch.rand(2, 3, 16, 16)
    caps = [["a red car"], ["a blue ship"]]
    with pytest.raises(ValueError, match=r"captions\[1\]\[0\] is empty"):
        RetrievalData(imgs, [["a red car"], [""]], torch.tensor([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\)"):
        RetrievalData(torch.rand(2, 16, 16), caps, torch.tensor([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="3 lists for 2 images"):
        RetrievalData(imgs, [*caps, ["x"]], torch.tensor([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="labels must lie"):
        RetrievalData(imgs, caps, torch.tensor([0, 5]), ["a", "b"])
    with pytest.raises(ValueError, match="n must be"):
        make_scenes(0)
    with pytest.raises(ValueError, match="classes"):
        make_scenes(3, classes=["volcano"])


def _write_precomp(tmp_path: Path, split: str = "test", suffix: str = "") -> Path:
    from PIL import Image

    folder = tmp_path / "rsitmd_precomp"
    folder.mkdir(exist_ok=True)
    names = ["airport_3.tif", "00017.tif", "beach_9.tif"]
    for k, fn in enumerate(names):
        Image.new("RGB", (20, 20), (40 * k, 0, 0)).save(tmp_path / fn)
    caps = [f"caption {c} of image {k} with planes" for k in range(3) for c in range(5)]
    (folder / f"{split}_caps{suffix}.txt").write_text("\n".join(caps) + "\n")
    (folder / f"{split}_filename{suffix}.txt").write_text("\n".join(names) + "\n")
    return folder


def test_precomp_split_and_dataset(tmp_path: Path) -> None:
    from ssjdn import load_precomp_dataset, load_precomp_split

    folder = _write_precomp(tmp_path)
    entries = load_precomp_split(folder, "test")
    assert [n for n, _ in entries] == ["airport_3.tif", "00017.tif", "beach_9.tif"]
    assert all(len(c) == 5 for _, c in entries)
    assert entries[1][1][0] == "caption 0 of image 1 with planes"
    data = load_precomp_dataset(folder, tmp_path, "test", image_size=16)
    assert data.class_names == ["airport", "beach"]
    assert data.labels.tolist() == [0, -1, 1]  # numeric name -> unlabelled
    assert data.caption_image.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    # a label mapping (e.g. a UCM/Sydney class list) overrides filename prefixes
    mapped = load_precomp_dataset(
        folder,
        tmp_path,
        "test",
        image_size=16,
        labels={"00017.tif": "port", "airport_3.tif": "airport"},
    )
    assert mapped.class_names == ["airport", "port"]
    assert mapped.labels.tolist() == [0, 1, -1]
    # AMFMN's train/val "_verify" files, and one filename line per caption (im_div = 1)
    _write_precomp(tmp_path, "train", "_verify")
    assert len(load_precomp_split(folder, "train")) == 3
    (folder / "val_caps.txt").write_text("a red car\na red car too\na blue ship\n")
    (folder / "val_filename.txt").write_text("a_1.tif\na_1.tif\nb_2.tif\n")
    assert load_precomp_split(folder, "val") == [
        ("a_1.tif", ["a red car", "a red car too"]),
        ("b_2.tif", ["a blue ship"]),
    ]


def test_precomp_rejects_malformed(tmp_path: Path) -> None:
    from ssjdn import load_precomp_dataset, load_precomp_split

    folder = _write_precomp(tmp_path)
    with pytest.raises(FileNotFoundError, match="train_caps.txt"):
        load_precomp_split(folder, "train")
    with pytest.raises(FileNotFoundError, match="precomp folder"):
        load_precomp_split(tmp_path / "nope", "test")
    (folder / "test_caps.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(ValueError, match="multiple of the image count"):
        load_precomp_split(folder, "test")
    (folder / "test_caps.txt").write_text("a\n...\nc\n")
    with pytest.raises(ValueError, match="line 2 holds no caption words"):
        load_precomp_split(folder, "test")
    (folder / "test_caps.txt").write_text("a\nb\nc\n")
    (folder / "test_filename.txt").write_text("x.tif\n\ny.tif\n")
    with pytest.raises(ValueError, match="line 2 is empty"):
        load_precomp_split(folder, "test")
    _write_precomp(tmp_path)  # valid files again
    with pytest.raises(TypeError, match="labels must be a mapping"):
        load_precomp_dataset(folder, tmp_path, "test", labels=3)  # type: ignore[arg-type]


def test_image_folder_without_a_list(tmp_path: Path) -> None:
    from PIL import Image
    from ssjdn import image_files, load_image_folder

    for fn in ("b_2.png", "a_1.jpg", "00003.tif"):
        Image.new("RGB", (10, 12), (255, 0, 0)).save(tmp_path / fn)
    (tmp_path / "notes.txt").write_text("not an image")
    names = image_files(tmp_path)
    assert names == ["00003.tif", "a_1.jpg", "b_2.png"]
    assert [label_from_filename(n) for n in names] == [None, "a", "b"]
    imgs = load_image_folder(tmp_path, image_size=8)
    assert imgs.shape == (3, 3, 8, 8) and imgs[:, 0].min().item() == pytest.approx(1.0, abs=0.02)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_image_folder(empty)

"""Bad input to every public entry point of ssjdn: a ValueError/TypeError naming what is wrong."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from ssjdn import (
    SSJDN,
    RetrievalData,
    SSJDNConfig,
    load_image_folder,
    load_karpathy_dataset,
    load_karpathy_json,
    load_precomp_split,
    make_scenes,
    train_retrieval,
)

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


@pytest.fixture(scope="module")
def tiny() -> RetrievalData:
    return make_scenes(16, image_size=32, seed=0)


def _entry(fn: object = "airport_1.jpg", **kw: object) -> dict:
    e = {"filename": fn, "split": "test", "sentences": [{"raw": "two planes"}]}
    e.update(kw)
    return e


def _write(tmp_path: Path, images: list) -> Path:
    p = tmp_path / "dataset_rsitmd.json"
    p.write_text(json.dumps({"images": images}))
    return p


# -- Karpathy JSON (RSICD, RSITMD, UCM-Captions, Sydney-Captions) ----------------------------------


def test_karpathy_missing_sentences(tmp_path: Path) -> None:
    """load_karpathy_json: an entry without `sentences`"""
    e = _entry()
    del e["sentences"]
    with pytest.raises(ValueError, match=r"images\[0\]\.sentences is missing"):
        load_karpathy_json(_write(tmp_path, [e]))


def test_karpathy_sentences_not_a_list(tmp_path: Path) -> None:
    """load_karpathy_json: `sentences` that is not a list"""
    with pytest.raises(ValueError, match=r"images\[0\]\.sentences must be a non-empty list"):
        load_karpathy_json(_write(tmp_path, [_entry(sentences="two planes")]))


def test_karpathy_non_string_tokens(tmp_path: Path) -> None:
    """load_karpathy_json: `tokens` holding non-strings"""
    e = _entry(sentences=[{"tokens": ["two", 3, "planes"]}])
    with pytest.raises(
        ValueError, match=r"images\[0\]\.sentences\[0\] 'tokens' must all be strings"
    ):
        load_karpathy_json(_write(tmp_path, [e]))


def test_karpathy_non_string_raw(tmp_path: Path) -> None:
    """load_karpathy_json: `raw` that is not a string"""
    e = _entry(sentences=[{"raw": ["two", "planes"]}])
    with pytest.raises(ValueError, match=r"images\[0\]\.sentences\[0\] 'raw' must be a string"):
        load_karpathy_json(_write(tmp_path, [e]))


def test_karpathy_non_string_filename(tmp_path: Path) -> None:
    """load_karpathy_json: a file name that is not a string"""
    with pytest.raises(ValueError, match=r"images\[0\]\.filename must be a non-empty string"):
        load_karpathy_json(_write(tmp_path, [_entry(fn=12)]))


def test_karpathy_duplicate_filename(tmp_path: Path) -> None:
    """load_karpathy_json: a file name listed twice"""
    with pytest.raises(
        ValueError, match=r"images\[1\]\.filename 'airport_1.jpg' repeats images\[0\]"
    ):
        load_karpathy_json(_write(tmp_path, [_entry(), _entry()]))


def test_karpathy_duplicate_imgid(tmp_path: Path) -> None:
    """load_karpathy_json: an `imgid` used twice"""
    docs = [_entry("a_1.jpg", imgid=7), _entry("a_2.jpg", imgid=7)]
    with pytest.raises(ValueError, match=r"images\[1\]\.imgid 7 repeats images\[0\]"):
        load_karpathy_json(_write(tmp_path, docs))


def test_karpathy_duplicate_sentid(tmp_path: Path) -> None:
    """load_karpathy_json: a sentence id shared by two images"""
    docs = [_entry("a_1.jpg", sentids=[0, 1]), _entry("a_2.jpg", sentids=[1, 2])]
    with pytest.raises(ValueError, match=r"images\[1\]\.sentids 1 repeats images\[0\]"):
        load_karpathy_json(_write(tmp_path, docs))


def test_karpathy_reports_every_bad_entry(tmp_path: Path) -> None:
    """load_karpathy_json: several bad entries are reported in one error"""
    docs = [_entry("a_1.jpg"), _entry(None), _entry("a_3.jpg", sentences=5), "x", _entry("a_1.jpg")]
    with pytest.raises(ValueError, match="4 malformed entries") as err:
        load_karpathy_json(_write(tmp_path, docs))
    for k in (1, 2, 3, 4):
        assert f"images[{k}]" in str(err.value)
    assert "images[0]" not in str(err.value).replace("repeats images[0]", "")


def test_karpathy_truncated_file(tmp_path: Path) -> None:
    """load_karpathy_json: a truncated (invalid) JSON file"""
    p = _write(tmp_path, [_entry()])
    p.write_text(p.read_text()[:-7])
    with pytest.raises(ValueError, match="not valid JSON"):
        load_karpathy_json(p)


def test_karpathy_not_json(tmp_path: Path) -> None:
    """load_karpathy_json: a binary file that is not JSON at all"""
    p = tmp_path / "dataset.json"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_karpathy_json(p)


def test_karpathy_empty_images(tmp_path: Path) -> None:
    """load_karpathy_json: an empty `images` list"""
    with pytest.raises(ValueError, match="'images' list is empty"):
        load_karpathy_json(_write(tmp_path, []))


def test_karpathy_bad_split_argument(tmp_path: Path) -> None:
    """load_karpathy_json: a split argument that is not a string"""
    with pytest.raises(ValueError, match="split must be a non-empty str"):
        load_karpathy_json(_write(tmp_path, [_entry()]), split=3)  # type: ignore[arg-type]


def test_karpathy_unreadable_images(tmp_path: Path) -> None:
    """load_karpathy_dataset: images that are missing or not images, all named at once"""
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a_1.jpg")
    (tmp_path / "a_2.jpg").write_bytes(b"not a jpeg at all")
    docs = [_entry("a_1.jpg"), _entry("a_2.jpg"), _entry("a_3.jpg")]
    with pytest.raises(ValueError, match="2 unreadable images") as err:
        load_karpathy_dataset(_write(tmp_path, docs), tmp_path, image_size=8)
    assert "'a_2.jpg' (entry 1) cannot be read" in str(err.value)
    assert "'a_3.jpg' (entry 2) is missing" in str(err.value)


def test_image_folder_non_string_name(tmp_path: Path) -> None:
    """load_image_folder: a file name that is not a string"""
    with pytest.raises(ValueError, match=r"filenames\[0\] must be a non-empty string"):
        load_image_folder(tmp_path, [3], image_size=8)  # type: ignore[list-item]


def test_image_folder_bad_size(tmp_path: Path) -> None:
    """load_image_folder: an image size below 8"""
    with pytest.raises(ValueError, match="image_size must be an int >= 8"):
        load_image_folder(tmp_path, ["a.jpg"], image_size=2)


# -- AMFMN precomp files ---------------------------------------------------------------------------


def test_precomp_reports_every_bad_line(tmp_path: Path) -> None:
    """load_precomp_split: empty captions, empty and repeated file names in one error"""
    (tmp_path / "test_caps.txt").write_text("a car\n...\nb\nc\n!!\nd\n")
    (tmp_path / "test_filename.txt").write_text("x.tif\n\nx.tif\n")
    with pytest.raises(ValueError, match="4 malformed entries") as err:
        load_precomp_split(tmp_path, "test")
    msg = str(err.value)
    assert "line 2 holds no caption words" in msg and "line 5 holds no caption words" in msg
    assert "test_filename.txt line 2 is empty" in msg
    assert "line 3: image 'x.tif' repeats line 1" in msg


def test_precomp_not_text(tmp_path: Path) -> None:
    """load_precomp_split: files that are not UTF-8 text"""
    (tmp_path / "test_caps.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "test_filename.txt").write_text("x.tif\n")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        load_precomp_split(tmp_path, "test")


# -- the dataset container -------------------------------------------------------------------------


def test_retrieval_data_nan_images() -> None:
    """RetrievalData: images holding NaN"""
    imgs = torch.rand(3, 3, 16, 16)
    imgs[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf values \(images \[1\]\)"):
        RetrievalData(imgs, [["a car"]] * 3, torch.zeros(3, dtype=torch.long), ["a"])


def test_retrieval_data_inf_images() -> None:
    """RetrievalData: images holding inf"""
    imgs = torch.rand(2, 3, 16, 16)
    imgs[0, 0, 0, 0] = math.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        RetrievalData(imgs, [["a car"]] * 2, torch.zeros(2, dtype=torch.long), ["a"])


def test_retrieval_data_integer_images() -> None:
    """RetrievalData: integer (uint8) images"""
    imgs = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(TypeError, match="float tensor"):
        RetrievalData(imgs, [["a car"]] * 2, torch.zeros(2, dtype=torch.long), ["a"])


def test_retrieval_data_label_out_of_range() -> None:
    """RetrievalData: a label outside the class names"""
    with pytest.raises(ValueError, match="labels must lie in"):
        RetrievalData(torch.rand(2, 3, 16, 16), [["a car"]] * 2, torch.tensor([0, 5]), ["a"])


# -- model and training ----------------------------------------------------------------------------


def test_encode_images_nan(tiny: RetrievalData) -> None:
    """SSJDN.encode_images: images holding NaN"""
    model = SSJDN.from_data(tiny, SSJDNConfig(**TINY), seed=0)
    x = tiny.images[:2].clone()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        model.encode_images(x)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"weight_decay": -1.0}, "weight_decay must be a finite number"),
        ({"epochs": 0}, "epochs must be a positive int"),
        ({"batch_size": 1}, "batch_size must be >= 2"),
        ({"warmup_epochs": -1}, "warmup_epochs must be an int >= 0"),
    ],
    ids=["nan-lr", "zero-lr", "negative-weight-decay", "zero-epochs", "batch-1", "negative-warmup"],
)
def test_train_bad_numbers(tiny: RetrievalData, kw: dict, match: str) -> None:
    """train_retrieval: out-of-range numbers"""
    model = SSJDN.from_data(tiny, SSJDNConfig(**TINY), seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=match):
        train_retrieval(model, tiny, **{"epochs": 1, **kw}, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_bad_eval_data(tiny: RetrievalData) -> None:
    """train_retrieval: eval_data that is not a RetrievalData"""
    model = SSJDN.from_data(tiny, SSJDNConfig(**TINY), seed=0)
    with pytest.raises(TypeError, match="eval_data must be a RetrievalData"):
        train_retrieval(model, tiny, epochs=1, eval_data=[1], progress=False)  # type: ignore[arg-type]


def test_train_nan_loss_names_the_step(tiny: RetrievalData) -> None:
    """train_retrieval: a loss that turns NaN stops training and names the step"""
    model = SSJDN.from_data(tiny, SSJDNConfig(**TINY), seed=0)
    with torch.no_grad():  # a NaN weight in the fusion layer makes every embedding NaN
        model.bsd.fuse.weight[0, 0] = float("nan")
    before = model.text.proj.weight.detach().clone()
    with pytest.raises(ValueError, match=r"non-finite loss nan at epoch 0, step 0 "):
        train_retrieval(model, tiny, epochs=2, batch_size=8, progress=False)
    assert torch.equal(model.text.proj.weight, before)  # stopped before the update


def test_load_missing_folder(tmp_path: Path) -> None:
    """SSJDN.load: a folder that does not exist"""
    with pytest.raises(FileNotFoundError, match="saved-model folder not found"):
        SSJDN.load(tmp_path / "nope")


def test_load_not_a_config(tmp_path: Path) -> None:
    """SSJDN.load: a config.json that is not an SSJDN config"""
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 3}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not an SSJDN config"):
        SSJDN.load(tmp_path)


def test_load_truncated_weights(tiny: RetrievalData, tmp_path: Path) -> None:
    """SSJDN.load: a truncated weights file"""
    SSJDN.from_data(tiny, SSJDNConfig(**TINY), seed=0).save(tmp_path)
    w = tmp_path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ValueError, match="model.safetensors is not a safetensors file"):
        SSJDN.load(tmp_path)


def test_load_weights_of_another_model(tiny: RetrievalData, tmp_path: Path) -> None:
    """SSJDN.load: weights that do not fit the saved config"""
    SSJDN.from_data(tiny, SSJDNConfig(**TINY), seed=0).save(tmp_path / "a")
    SSJDN.from_data(tiny, SSJDNConfig(**{**TINY, "embed_dim": 8}), seed=0).save(tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes(
        (tmp_path / "b" / "model.safetensors").read_bytes()
    )
    with pytest.raises(ValueError, match="does not fit the model of config.json"):
        SSJDN.load(tmp_path / "a")


def test_load_bad_vocabulary(tiny: RetrievalData, tmp_path: Path) -> None:
    """SSJDN.load: a vocabulary file with non-string words"""
    SSJDN.from_data(tiny, SSJDNConfig(**TINY), seed=0).save(tmp_path)
    (tmp_path / "vocabulary.json").write_text(json.dumps({"itos": ["<pad>", "<unk>", 3]}))
    with pytest.raises(ValueError, match="vocabulary.json is not an ssjdn vocabulary"):
        SSJDN.load(tmp_path)


def test_metrics_nan_similarities() -> None:
    """retrieval_metrics: a similarity matrix holding NaN"""
    from ssjdn import retrieval_metrics

    s = np.zeros((2, 2))
    s[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        retrieval_metrics(s, [0, 1])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sgs_polarity": "invert"}, "sgs_polarity must be"),
        ({"sgs_pool": "residual"}, "sgs_pool must be 'multiply' or 'centered'"),
        ({"lsd_combine": "prior"}, "lsd_combine must be 'concat' or 'residual'"),
    ],
    ids=["unknown-polarity", "retired-pool", "retired-combine"],
)
def test_config_bad_issue19_options(kw: dict, match: str) -> None:
    """SSJDNConfig: SGS polarity out of range; the retired values of kept options"""
    with pytest.raises(ValueError, match=match):
        SSJDNConfig(**kw)


def test_salience_suppression_bad_polarity() -> None:
    """salience_suppression: unknown polarity"""
    from ssjdn import salience_suppression

    with pytest.raises(ValueError, match="polarity must be"):
        salience_suppression(torch.rand(1, 1, 4, 4), (4, 4), polarity="both")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sgs_guide": "saliency"}, "sgs_guide must be"),
        ({"sgs_guide": "contrast", "sgs_scope": "chain"}, "sgs_guide='contrast' needs"),
        ({"sgs_contrast_kernel": 4}, "sgs_contrast_kernel must be an odd int >= 3"),
        ({"sgs_contrast_kernel": 1}, "sgs_contrast_kernel must be an odd int >= 3"),
        ({"sgs_contrast_kernel": True}, "sgs_contrast_kernel must be an odd int >= 3"),
    ],
    ids=["unknown-guide", "contrast-with-chain", "even-kernel", "kernel-1", "bool-kernel"],
)
def test_config_bad_sgs_guide(kw: dict, match: str) -> None:
    """SSJDNConfig: SGS guide source / contrast kernel out of range"""
    with pytest.raises(ValueError, match=match):
        SSJDNConfig(**kw)


def test_local_contrast_salience_bad_input() -> None:
    """local_contrast_salience: images not (B, C, H, W), a bad size or kernel; BSD with the
    contrast guide called without the images"""
    from ssjdn import BidirectionalScaleDecoupling, local_contrast_salience

    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"images must be a \(B, C, H, W\) tensor"):
        local_contrast_salience(x[0], (4, 4))
    with pytest.raises(ValueError, match=r"images must be a \(B, C, H, W\) tensor"):
        local_contrast_salience(x.numpy(), (4, 4))
    with pytest.raises(ValueError, match="size must be two positive ints"):
        local_contrast_salience(x, (0, 4))
    with pytest.raises(ValueError, match="kernel must be an odd int >= 3"):
        local_contrast_salience(x, (4, 4), kernel=2)
    with pytest.raises(ValueError, match="guide must be"):
        BidirectionalScaleDecoupling(4, 2, guide="saliency")
    with pytest.raises(ValueError, match="guide='contrast' needs scope='guide'"):
        BidirectionalScaleDecoupling(4, 2, guide="contrast", scope="chain")
    bsd = BidirectionalScaleDecoupling(4, 2, guide="contrast", scope="guide")
    with pytest.raises(ValueError, match="needs the images"):
        bsd([torch.rand(1, 4, 4, 4), torch.rand(1, 4, 2, 2)])

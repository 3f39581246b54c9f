"""Data for remote-sensing image-text retrieval: a procedural scene + caption generator, a
tokenizer/vocabulary, and loaders for the real datasets' files.

The built-in generator (numpy only) draws top-down "scenes" of ten classes (airport, port, dense and
sparse residential, industrial, farmland, beach, playground, forest, parking). Each scene holds one or
two groups of objects (planes, ships, houses, tanks, cars, trees, ...) whose count, colour, size and
position vary; a global zoom varies the scale across images and small/large groups vary it within an
image. Five template captions per image describe what was drawn (counts, sizes, colours, positions,
relations, synonyms); the scene word appears in only about half of them, so captions of the same class
share little text and images of the same class are hard negatives that differ in detail only.

Real data (RSICD, RSITMD, UCM-Captions, Sydney-Captions) come as a "Karpathy-style" JSON
(``images[].filename``, ``split``, ``sentences[].raw/tokens``) or as AMFMN's "precomp" split text files
(``{split}_caps.txt`` + ``{split}_filename.txt``), plus an image folder; class labels are the filename
prefix (``airport_12.jpg`` -> ``airport``); purely numeric names (RSICD's ``00012.jpg``, UCM's and
Sydney's ``12.tif``) are unlabelled and get label -1 unless a ``labels`` mapping names their class.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "SCENE_CLASSES",
    "KarpathyEntry",
    "RetrievalData",
    "Vocabulary",
    "image_files",
    "label_from_filename",
    "load_image_folder",
    "load_karpathy_json",
    "load_karpathy_dataset",
    "load_precomp_dataset",
    "load_precomp_split",
    "make_scenes",
    "tokenize",
]

UNLABELLED = -1

# --------------------------------------------------------------------------------------------------
# Tokenizer and vocabulary
# --------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters and digits), the tokenisation of the Karpathy JSON files."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Word <-> id map built from captions; id 0 is padding, id 1 is the unknown word."""

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, words: Sequence[str]) -> None:
        self.itos: list[str] = [
            self.PAD,
            self.UNK,
            *[w for w in words if w not in (self.PAD, self.UNK)],
        ]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("words must not repeat")

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Vocabulary of every token seen at least ``min_count`` times (most frequent first)."""
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive int, got {min_count!r}")
        counts = Counter(tok for c in captions for tok in tokenize(c))
        if not counts:
            raise ValueError("captions must contain at least one word")
        words = sorted(
            (w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (unknown words -> 1)."""
        return [self.stoi.get(t, 1) for t in tokenize(text)]

    def batch(self, texts: Sequence[str], max_len: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids (B, L) and a boolean mask of real tokens; empty texts raise ValueError."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single str")
        ids = [self.encode(t)[:max_len] for t in texts]
        for i, x in enumerate(ids):
            if not x:
                raise ValueError(
                    f"caption {i} ({texts[i]!r}) has no words; captions must not be empty"
                )
        L = max(len(x) for x in ids)
        out = torch.zeros(len(ids), L, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x)
        return out, out != 0

    def state_dict(self) -> dict[str, list[str]]:
        """JSON-able form."""
        return {"itos": list(self.itos)}

    @classmethod
    def from_state_dict(cls, state: dict[str, list[str]]) -> Vocabulary:
        """Inverse of ``state_dict``."""
        return cls(state["itos"][2:])


# --------------------------------------------------------------------------------------------------
# The dataset container
# --------------------------------------------------------------------------------------------------


@dataclass
class RetrievalData:
    """Images with their captions and class labels.

    images: float tensor (N, 3, H, W) in [0, 1]; captions: N lists of caption strings (usually 5);
    labels: long tensor (N,), -1 where unlabelled; class_names: label id -> name.
    caption_small: optional boolean array over the flattened captions, True for captions that only
    mention small objects (used for the small-object mR); image_small likewise per image.
    """

    images: torch.Tensor
    captions: list[list[str]]
    labels: torch.Tensor
    class_names: list[str]
    caption_small: np.ndarray | None = None
    image_small: np.ndarray | None = None
    filenames: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(self.images).__name__}")
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(self.images.shape)}")
        n = self.images.shape[0]
        if n == 0:
            raise ValueError("images must not be empty")
        if len(self.captions) != n:
            raise ValueError(
                f"captions must hold one list per image: {len(self.captions)} lists for {n} images"
            )
        for i, caps in enumerate(self.captions):
            if isinstance(caps, str) or len(caps) == 0:
                raise ValueError(f"captions[{i}] must be a non-empty list of strings, got {caps!r}")
            for j, c in enumerate(caps):
                if not isinstance(c, str) or not tokenize(c):
                    raise ValueError(f"captions[{i}][{j}] is empty ({c!r}); captions need words")
        labels = torch.as_tensor(self.labels, dtype=torch.long)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < -1 or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels must lie in [-1, {len(self.class_names) - 1}] (-1 = unlabelled), "
                f"got range [{int(labels.min())}, {int(labels.max())}]"
            )
        self.labels = labels

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def flat_captions(self) -> list[str]:
        """All captions in image order."""
        return [c for caps in self.captions for c in caps]

    @property
    def caption_image(self) -> np.ndarray:
        """Image index of each flattened caption."""
        return np.repeat(np.arange(len(self)), [len(c) for c in self.captions])

    def subset(self, idx: Sequence[int] | np.ndarray) -> RetrievalData:
        """The images ``idx`` with their captions and flags."""
        idx = np.asarray(idx, dtype=np.int64)
        cap_img = self.caption_image
        cap_sel = np.concatenate([np.flatnonzero(cap_img == i) for i in idx]) if len(idx) else []
        return RetrievalData(
            images=self.images[torch.as_tensor(idx)],
            captions=[self.captions[i] for i in idx],
            labels=self.labels[torch.as_tensor(idx)],
            class_names=list(self.class_names),
            caption_small=None if self.caption_small is None else self.caption_small[cap_sel],
            image_small=None if self.image_small is None else self.image_small[idx],
            filenames=[self.filenames[i] for i in idx] if self.filenames else [],
        )


# --------------------------------------------------------------------------------------------------
# Procedural scenes
# --------------------------------------------------------------------------------------------------

SCENE_CLASSES: tuple[str, ...] = (
    "airport",
    "port",
    "dense residential",
    "sparse residential",
    "industrial",
    "farmland",
    "beach",
    "playground",
    "forest",
    "parking",
)

_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.15, 0.12),
    "white": (0.95, 0.95, 0.95),
    "blue": (0.15, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "black": (0.08, 0.08, 0.08),
    "orange": (0.95, 0.5, 0.1),
}

# noun -> (synonyms (singular, plural), shape, aspect)
_OBJECTS: dict[str, tuple[list[tuple[str, str]], str, float]] = {
    "plane": (
        [("plane", "planes"), ("airplane", "airplanes"), ("aircraft", "aircraft")],
        "cross",
        1.0,
    ),
    "ship": ([("ship", "ships"), ("boat", "boats"), ("vessel", "vessels")], "rect", 2.5),
    "house": ([("house", "houses"), ("building", "buildings"), ("home", "homes")], "rect", 1.0),
    "tank": (
        [("tank", "tanks"), ("storage tank", "storage tanks"), ("oil tank", "oil tanks")],
        "disc",
        1.0,
    ),
    "car": ([("car", "cars"), ("vehicle", "vehicles")], "rect", 1.8),
    "tree": ([("tree", "trees"), ("bush", "bushes")], "disc", 1.0),
    "court": ([("court", "courts"), ("tennis court", "tennis courts")], "ring", 1.6),
    "umbrella": ([("umbrella", "umbrellas"), ("parasol", "parasols")], "disc", 1.0),
}

# class -> (background colour, layout, object kinds, phrases naming the scene)
_SCENES: dict[str, tuple[tuple[float, float, float], str, list[str], list[str]]] = {
    "airport": (
        (0.62, 0.6, 0.55),
        "runway",
        ["plane"],
        ["an airport", "the airport", "an airfield"],
    ),
    "port": ((0.55, 0.52, 0.48), "water_half", ["ship"], ["a port", "the harbour", "a harbor"]),
    "dense residential": (
        (0.7, 0.62, 0.5),
        "grid",
        ["house", "car"],
        ["a dense residential area", "a crowded neighbourhood", "a dense residential district"],
    ),
    "sparse residential": (
        (0.35, 0.6, 0.3),
        "none",
        ["house", "tree"],
        ["a sparse residential area", "a quiet suburb", "a sparse residential district"],
    ),
    "industrial": (
        (0.5, 0.5, 0.52),
        "blocks",
        ["tank", "house"],
        ["an industrial area", "a factory zone", "an industrial park"],
    ),
    "farmland": (
        (0.55, 0.65, 0.25),
        "fields",
        ["tree", "house"],
        ["farmland", "the fields", "a farm"],
    ),
    "beach": (
        (0.9, 0.82, 0.6),
        "water_side",
        ["umbrella", "ship"],
        ["a beach", "the seaside", "the coast"],
    ),
    "playground": (
        (0.25, 0.6, 0.3),
        "track",
        ["court", "tree"],
        ["a playground", "a sports field", "a stadium"],
    ),
    "forest": (
        (0.1, 0.35, 0.12),
        "noise",
        ["tree", "house"],
        ["a forest", "the woods", "a dense forest"],
    ),
    "parking": (
        (0.4, 0.4, 0.42),
        "lines",
        ["car"],
        ["a parking lot", "a car park", "a parking area"],
    ),
}

_COUNT_WORDS = ["one", "two", "three", "four", "five", "six"]
_REGIONS = {
    (0, 0): "upper left",
    (0, 1): "top",
    (0, 2): "upper right",
    (1, 0): "left",
    (1, 1): "middle",
    (1, 2): "right",
    (2, 0): "lower left",
    (2, 1): "bottom",
    (2, 2): "lower right",
}


@dataclass
class _Group:
    kind: str
    colour: str
    small: bool
    count: int
    centre: tuple[float, float]  # (row, col) in [0, 1]
    size: float = 0.0


def _paint_background(img: np.ndarray, cls: str, rng: np.random.Generator) -> None:
    H, W, _ = img.shape
    base, layout, _, _ = _SCENES[cls]
    img[:] = np.asarray(base) + rng.normal(0, 0.03, size=(H, W, 1)) * np.ones(3)
    water = np.array([0.1, 0.3, 0.55])
    if layout == "runway":
        t = max(2, H // 8)
        if rng.random() < 0.5:
            r = rng.integers(t, H - 2 * t)
            img[r : r + t] = (0.3, 0.3, 0.32)
        else:
            c = rng.integers(t, W - 2 * t)
            img[:, c : c + t] = (0.3, 0.3, 0.32)
    elif layout == "water_half":
        k = int(H * rng.uniform(0.35, 0.6))
        if rng.random() < 0.5:
            img[k:] = water
        else:
            img[:, k:] = water
    elif layout == "water_side":
        k = int(W * rng.uniform(0.3, 0.5))
        img[:, :k] = water
    elif layout == "grid":
        step = max(4, H // 6)
        img[::step] = (0.45, 0.45, 0.45)
        img[:, ::step] = (0.45, 0.45, 0.45)
    elif layout == "blocks":
        for _ in range(3):
            r, c = rng.integers(0, H - H // 4, size=2)
            img[r : r + H // 4, c : c + W // 4] = (0.6, 0.6, 0.62)
    elif layout == "fields":
        n = rng.integers(2, 4)
        cuts = np.sort(rng.integers(H // 6, H - H // 6, size=n))
        edges = [0, *cuts.tolist(), H]
        for a, b in zip(edges[:-1], edges[1:]):
            img[a:b] = np.asarray(base) * rng.uniform(0.7, 1.3, size=3)
    elif layout == "track":
        rr, cc = np.mgrid[0:H, 0:W]
        d = ((rr - H / 2) / (H * 0.4)) ** 2 + ((cc - W / 2) / (W * 0.3)) ** 2
        img[(d > 0.75) & (d < 1.0)] = (0.75, 0.3, 0.25)
    elif layout == "noise":
        img += rng.normal(0, 0.06, size=img.shape)
    elif layout == "lines":
        step = max(4, W // 8)
        img[:, ::step] = (0.9, 0.9, 0.9)


def _draw(
    img: np.ndarray, shape: str, r: float, c: float, size: float, aspect: float, colour
) -> None:
    H, W, _ = img.shape
    h = max(1.0, size / (aspect**0.5))
    w = max(1.0, size * (aspect**0.5))
    r0, r1 = int(round(r - h / 2)), int(round(r + h / 2))
    c0, c1 = int(round(c - w / 2)), int(round(c + w / 2))
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(max(r1, r0 + 1), H), min(max(c1, c0 + 1), W)
    if r0 >= H or c0 >= W:
        return
    col = np.asarray(colour)
    if shape == "rect":
        img[r0:r1, c0:c1] = col
    elif shape in ("disc", "ring"):
        rr, cc = np.mgrid[r0:r1, c0:c1]
        d = ((rr + 0.5 - r) / max(h / 2, 0.5)) ** 2 + ((cc + 0.5 - c) / max(w / 2, 0.5)) ** 2
        m = d <= 1.0 if shape == "disc" else (d <= 1.0) & (d >= 0.35)
        img[r0:r1, c0:c1][m] = col
    elif shape == "cross":
        t = max(1, int(round(size / 4)))
        rm, cm = int(round(r)), int(round(c))
        img[max(rm - t // 2, 0) : rm - t // 2 + t, c0:c1] = col
        img[r0:r1, max(cm - t // 2, 0) : cm - t // 2 + t] = col
    else:  # pragma: no cover - internal table
        raise AssertionError(shape)


def _region(centre: tuple[float, float]) -> str:
    r = min(int(centre[0] * 3), 2)
    c = min(int(centre[1] * 3), 2)
    return _REGIONS[(r, c)]


def _relation(a: _Group, b: _Group) -> str:
    dr, dc = b.centre[0] - a.centre[0], b.centre[1] - a.centre[1]
    if abs(dr) > abs(dc):
        return "above" if dr > 0 else "below"
    return "to the left of" if dc > 0 else "to the right of"


def _phrase(g: _Group, rng: np.random.Generator, with_size: bool = True) -> str:
    sing, plur = _OBJECTS[g.kind][0][rng.integers(len(_OBJECTS[g.kind][0]))]
    noun = sing if g.count == 1 else plur
    size = ("small" if g.small else rng.choice(["large", "big"])) if with_size else ""
    count = "a" if g.count == 1 and rng.random() < 0.5 else _COUNT_WORDS[g.count - 1]
    return " ".join(w for w in (count, size, g.colour, noun) if w)


def _captions(
    cls: str, groups: list[_Group], rng: np.random.Generator
) -> tuple[list[str], list[bool]]:
    """Five captions tied to the drawn content, and whether each mentions only small objects."""
    scene_names = _SCENES[cls][3]
    caps, small = [], []
    for k in range(5):
        with_scene = k % 2 == 0 if rng.random() < 0.5 else k % 2 == 1
        scene = (
            str(rng.choice(scene_names))
            if with_scene
            else str(rng.choice(["the area", "the image", "this scene"]))
        )
        use = (
            groups
            if len(groups) == 1 or rng.random() < 0.5
            else [groups[rng.integers(len(groups))]]
        )
        g = use[0]
        templ = rng.integers(4)
        if len(use) == 2:
            h = use[1]
            text = f"{_phrase(g, rng)} {_relation(h, g)} {_phrase(h, rng)} in {scene}"
        elif templ == 0:
            text = f"{_phrase(g, rng)} in the {_region(g.centre)} of {scene}"
        elif templ == 1:
            text = f"there are {_phrase(g, rng)} in {scene}"
        elif templ == 2:
            text = f"{scene} with {_phrase(g, rng)} on the {_region(g.centre)}"
        else:
            text = f"in {scene} we see {_phrase(g, rng)}"
        text = re.sub(r"\bare a\b", "is a", text).replace("are one", "is one")
        caps.append(text[0].upper() + text[1:] + ".")
        small.append(all(x.small for x in use))
    return caps, small


def make_scenes(
    n: int,
    image_size: int = 64,
    seed: int = 0,
    classes: Sequence[str] = SCENE_CLASSES,
    small_fraction: float = 0.5,
) -> RetrievalData:
    """Procedural remote-sensing scenes with five captions each (built-in benchmark data).

    Every image gets a class (cycled, then shuffled), a background layout, and one or two object
    groups; each group is small (a few pixels) with probability ``small_fraction``, else large, and a
    per-image zoom in [0.75, 1.25] scales both. ``caption_small``/``image_small`` flag captions and
    images whose described objects are all small.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
    classes = list(classes)
    unknown = [c for c in classes if c not in _SCENES]
    if not classes or unknown:
        raise ValueError(
            f"classes must be a non-empty subset of {list(SCENE_CLASSES)}, got unknown {unknown}"
        )
    if not 0.0 <= small_fraction <= 1.0:
        raise ValueError(f"small_fraction must be in [0, 1], got {small_fraction!r}")
    rng = np.random.default_rng(seed)
    S = image_size
    labels = rng.permutation(np.arange(n) % len(classes))
    images = np.zeros((n, S, S, 3), dtype=np.float32)
    captions: list[list[str]] = []
    cap_small: list[bool] = []
    img_small = np.zeros(n, dtype=bool)
    colours = list(_COLOURS)
    for i in range(n):
        cls = classes[labels[i]]
        img = np.zeros((S, S, 3), dtype=np.float64)
        _paint_background(img, cls, rng)
        zoom = rng.uniform(0.75, 1.25)
        kinds = _SCENES[cls][2]
        n_groups = 1 if len(kinds) == 1 or rng.random() < 0.4 else 2
        chosen = rng.choice(len(kinds), size=n_groups, replace=False)
        groups: list[_Group] = []
        halves: list[int] = []
        for gi, kidx in enumerate(chosen):
            small = bool(rng.random() < small_fraction)
            count = int(rng.integers(1, 5 if small else 4))
            # two groups sit in different halves so relations are well defined
            if n_groups == 2:
                half = int(rng.integers(2)) if gi == 0 else 1 - halves[0]
                centre = (rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.4) + 0.45 * half)
                if rng.random() < 0.5:
                    centre = (centre[1], centre[0])
            else:
                half = 0
                centre = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8))
            colour = colours[rng.integers(len(colours))]
            if n_groups == 2 and gi == 1:
                while colour == groups[0].colour:
                    colour = colours[rng.integers(len(colours))]
            g = _Group(kinds[kidx], colour, small, count, centre)
            halves.append(half)
            g.size = zoom * (S / 64) * (rng.uniform(3.0, 4.5) if small else rng.uniform(8.0, 12.0))
            groups.append(g)
        for g in groups:
            shape, aspect = _OBJECTS[g.kind][1], _OBJECTS[g.kind][2]
            spread = 0.12 * S if g.small else 0.32 * S
            angle0 = rng.uniform(0, 2 * np.pi)
            for k in range(g.count):
                if g.count == 1:
                    r, c = g.centre[0] * S, g.centre[1] * S
                else:
                    a = angle0 + 2 * np.pi * k / g.count
                    r = g.centre[0] * S + spread * 0.5 * np.sin(a)
                    c = g.centre[1] * S + spread * 0.5 * np.cos(a)
                _draw(img, shape, r, c, g.size, aspect, _COLOURS[g.colour])
        images[i] = np.clip(img, 0.0, 1.0)
        caps, sm = _captions(cls, groups, rng)
        captions.append(caps)
        cap_small.extend(sm)
        img_small[i] = all(g.small for g in groups)
    return RetrievalData(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        captions=captions,
        labels=torch.as_tensor(labels, dtype=torch.long),
        class_names=classes,
        caption_small=np.asarray(cap_small, dtype=bool),
        image_small=img_small,
    )


# --------------------------------------------------------------------------------------------------
# Real datasets
# --------------------------------------------------------------------------------------------------

_PREFIX = re.compile(r"^([A-Za-z][A-Za-z_\- ]*?)[_\-\s]*\d*$")


def label_from_filename(filename: str) -> str | None:
    """Class name from a filename prefix (``denseresidential_12.jpg`` -> ``denseresidential``).

    Returns None for names without a letter prefix (RSICD's numeric ``00012.jpg``): unlabelled.
    """
    if not isinstance(filename, str) or not filename:
        raise ValueError(f"filename must be a non-empty str, got {filename!r}")
    stem = Path(filename).stem
    m = _PREFIX.match(stem)
    if not m:
        return None
    name = m.group(1).strip("_- ").lower()
    return name or None


@dataclass(frozen=True)
class KarpathyEntry:
    """One image of a Karpathy-style JSON: filename, split, caption strings, class name or None."""

    filename: str
    split: str
    captions: tuple[str, ...]
    label: str | None


def load_karpathy_json(
    path: str | os.PathLike[str], split: str | None = None
) -> list[KarpathyEntry]:
    """Read ``dataset_rsicd.json``-style files (also RSITMD, UCM-Captions, Sydney-Captions).

    Expected: ``{"images": [{"filename": str, "split": str, "sentences": [{"raw": str} or
    {"tokens": [str]}, ...]}, ...]}``. Malformed entries raise ValueError naming the entry index and
    field. ``split`` keeps only that split (``train``/``val``/``test``; RSITMD uses ``train``/``test``).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"Karpathy JSON not found: {p} (pass the path of e.g. dataset_rsicd.json)"
        )
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p} is not valid JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise ValueError(f"{p}: expected an object with an 'images' list at the top level")
    out = []
    for i, e in enumerate(doc["images"]):
        where = f"{p}: images[{i}]"
        if not isinstance(e, dict):
            raise ValueError(f"{where} must be an object, got {type(e).__name__}")
        fn = e.get("filename")
        if not isinstance(fn, str) or not fn:
            raise ValueError(f"{where}.filename must be a non-empty string, got {fn!r}")
        sp = e.get("split")
        if not isinstance(sp, str) or not sp:
            raise ValueError(f"{where}.split must be a non-empty string, got {sp!r}")
        sents = e.get("sentences")
        if not isinstance(sents, list) or not sents:
            raise ValueError(f"{where}.sentences must be a non-empty list, got {sents!r}")
        caps = []
        for j, s in enumerate(sents):
            raw = s.get("raw") if isinstance(s, dict) else None
            if raw is None and isinstance(s, dict) and isinstance(s.get("tokens"), list):
                raw = " ".join(str(t) for t in s["tokens"])
            if not isinstance(raw, str) or not tokenize(raw):
                raise ValueError(
                    f"{where}.sentences[{j}] needs a non-empty 'raw' or 'tokens', got {s!r}"
                )
            caps.append(raw.strip())
        if split is None or sp == split:
            out.append(KarpathyEntry(fn, sp, tuple(caps), label_from_filename(fn)))
    if not out:
        raise ValueError(f"{p}: no images with split {split!r}")
    return out


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def load_image_folder(
    folder: str | os.PathLike[str],
    filenames: Sequence[str] | None = None,
    image_size: int = 224,
) -> torch.Tensor:
    """Load ``filenames`` from ``folder`` as RGB, resized to ``image_size``; (N, 3, S, S) in [0, 1].

    ``filenames=None`` loads every image file of the folder (``IMAGE_SUFFIXES``, sorted by name;
    `image_files` lists them, and `label_from_filename` gives their classes).
    """
    from PIL import Image

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    if filenames is None:
        filenames = image_files(root)
    out = torch.empty(len(filenames), 3, image_size, image_size)
    for i, fn in enumerate(filenames):
        f = root / fn
        if not f.is_file():
            raise FileNotFoundError(
                f"image {fn!r} listed in the captions file is missing from {root}"
            )
        with Image.open(f) as im:
            arr = np.asarray(im.convert("RGB").resize((image_size, image_size)), dtype=np.float32)
        out[i] = torch.from_numpy(arr / 255.0).permute(2, 0, 1)
    return out


def image_files(folder: str | os.PathLike[str]) -> list[str]:
    """Names of the image files (``IMAGE_SUFFIXES``) directly in ``folder``, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    names = sorted(
        f.name for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    )
    if not names:
        raise ValueError(f"{root} holds no image files (looked for {', '.join(IMAGE_SUFFIXES)})")
    return names


def load_karpathy_dataset(
    json_path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    split: str = "test",
    image_size: int = 224,
    class_names: Sequence[str] | None = None,
    labels: Mapping[str, str] | Callable[[str], str | None] | None = None,
) -> RetrievalData:
    """A split of a Karpathy-style dataset as `RetrievalData` (labels from filename prefixes).

    Unlabelled images (numeric names) get label -1; the label-based parts of SSJDN skip them.
    ``class_names`` fixes the label ids (pass the train split's names when loading the test split);
    images whose class is not among them are unlabelled too. ``labels`` (a filename -> class-name
    mapping or function, e.g. from a UCM/Sydney class list) overrides the filename prefixes.
    """
    entries = load_karpathy_json(json_path, split=split)
    return _build_dataset(
        [e.filename for e in entries],
        [list(e.captions) for e in entries],
        image_dir,
        image_size,
        class_names,
        labels,
    )


def _resolve_labels(
    filenames: Sequence[str],
    labels: Mapping[str, str] | Callable[[str], str | None] | None,
) -> list[str | None]:
    if labels is None:
        return [label_from_filename(f) for f in filenames]
    if isinstance(labels, Mapping):
        return [labels.get(f) for f in filenames]
    if callable(labels):
        return [labels(f) for f in filenames]
    raise TypeError(
        f"labels must be a mapping or a function of the filename, got {type(labels).__name__}"
    )


def _build_dataset(
    filenames: list[str],
    captions: list[list[str]],
    image_dir: str | os.PathLike[str],
    image_size: int,
    class_names: Sequence[str] | None,
    labels: Mapping[str, str] | Callable[[str], str | None] | None,
) -> RetrievalData:
    names_per_image = _resolve_labels(filenames, labels)
    names = (
        list(class_names)
        if class_names is not None
        else sorted({c for c in names_per_image if c is not None})
    )
    index = {c: k for k, c in enumerate(names)}
    ids = [index.get(c, UNLABELLED) if c is not None else UNLABELLED for c in names_per_image]
    images = load_image_folder(image_dir, filenames, image_size)
    return RetrievalData(
        images=images,
        captions=captions,
        labels=torch.as_tensor(ids, dtype=torch.long),
        class_names=names,
        filenames=list(filenames),
    )


def load_precomp_split(
    folder: str | os.PathLike[str], split: str = "test"
) -> list[tuple[str, list[str]]]:
    """Read AMFMN's "precomp" split files: ``(filename, captions)`` per image, in file order.

    ``folder`` (e.g. ``data/rsitmd_precomp``) holds ``{split}_caps.txt`` (one caption per line, the
    captions of one image on consecutive lines) and ``{split}_filename.txt`` (one image per line); the
    ``{split}_caps_verify.txt`` / ``{split}_filename_verify.txt`` pair that AMFMN reads for train/val
    is used when the plain pair is missing. As in AMFMN, with N captions and M filenames each image has
    N / M captions (5 in the released files); when N = M every line names its caption's image and
    consecutive repeats of a filename are grouped into one image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"precomp folder not found: {root}")
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty str, got {split!r}")
    for suffix in ("", "_verify"):
        caps_f, names_f = root / f"{split}_caps{suffix}.txt", root / f"{split}_filename{suffix}.txt"
        if caps_f.is_file() and names_f.is_file():
            break
    else:
        raise FileNotFoundError(
            f"{root} has no {split}_caps.txt + {split}_filename.txt (nor the _verify pair)"
        )
    caps = [x.strip() for x in caps_f.read_text(encoding="utf-8").splitlines()]
    names = [x.strip() for x in names_f.read_text(encoding="utf-8").splitlines()]
    while caps and not caps[-1]:  # trailing blank lines
        caps.pop()
    while names and not names[-1]:
        names.pop()
    if not caps or not names:
        raise ValueError(f"{caps_f.name} and {names_f.name} must not be empty")
    for i, c in enumerate(caps):
        if not tokenize(c):
            raise ValueError(f"{caps_f}: line {i + 1} holds no caption words ({c!r})")
    for i, n in enumerate(names):
        if not n:
            raise ValueError(f"{names_f}: line {i + 1} is empty; every line must name an image")
    if len(caps) == len(names):
        out: list[tuple[str, list[str]]] = []
        for n, c in zip(names, caps):
            if out and out[-1][0] == n:
                out[-1][1].append(c)
            else:
                out.append((n, [c]))
        return out
    if len(caps) % len(names):
        raise ValueError(
            f"{caps_f.name} has {len(caps)} captions for {len(names)} images in {names_f.name}: "
            "the caption count must be a multiple of the image count (AMFMN: 5 per image)"
        )
    k = len(caps) // len(names)
    return [(n, caps[i * k : (i + 1) * k]) for i, n in enumerate(names)]


def load_precomp_dataset(
    folder: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    split: str = "test",
    image_size: int = 224,
    class_names: Sequence[str] | None = None,
    labels: Mapping[str, str] | Callable[[str], str | None] | None = None,
) -> RetrievalData:
    """A split of AMFMN's precomp files (`load_precomp_split`) with its images as `RetrievalData`.

    Labels as in `load_karpathy_dataset` (filename prefixes; numeric names unlabelled; ``labels``
    overrides; ``class_names`` fixes the ids).
    """
    entries = load_precomp_split(folder, split)
    return _build_dataset(
        [n for n, _ in entries],
        [c for _, c in entries],
        image_dir,
        image_size,
        class_names,
        labels,
    )

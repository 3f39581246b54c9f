"""The built-in data: a procedural remote-sensing scene + caption generator (numpy only).

The generator draws top-down "scenes" of ten classes (airport, port, dense and
sparse residential, industrial, farmland, beach, playground, forest, parking). Each scene holds one or
two groups of objects (planes, ships, houses, tanks, cars, trees, ...) whose count, colour, size and
position vary; a global zoom varies the scale across images and small/large groups vary it within an
image. Five template captions per image describe what was drawn (counts, sizes, colours, positions,
relations, synonyms); the scene word appears in only about half of them, so captions of the same class
share little text and images of the same class are hard negatives that differ in detail only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from maskloop.checks import check_fraction, check_int

from ssjdn.data import RetrievalData

__all__ = ["SCENE_CLASSES", "SMALL_KINDS", "make_multiscale_scenes", "make_scenes"]

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


def _sentence(text: str) -> str:
    """Grammar fix-ups ("are a" -> "is a"), a capital letter and a full stop."""
    text = re.sub(r"\bare a\b", "is a", text).replace("are one", "is one")
    return text[0].upper() + text[1:] + "."


def _group_caption(scene: str, g: _Group, rng: np.random.Generator) -> str:
    """One caption about group ``g`` in ``scene``, from one of four templates."""
    templ = rng.integers(4)
    if templ == 0:
        text = f"{_phrase(g, rng)} in the {_region(g.centre)} of {scene}"
    elif templ == 1:
        text = f"there are {_phrase(g, rng)} in {scene}"
    elif templ == 2:
        text = f"{scene} with {_phrase(g, rng)} on the {_region(g.centre)}"
    else:
        text = f"in {scene} we see {_phrase(g, rng)}"
    return _sentence(text)


def _draw_group(img: np.ndarray, g: _Group, spread: float, rng: np.random.Generator) -> None:
    """Draw the ``g.count`` objects of ``g`` evenly around a circle of diameter ``spread``."""
    S = img.shape[0]
    shape, aspect = _OBJECTS[g.kind][1], _OBJECTS[g.kind][2]
    angle0 = rng.uniform(0, 2 * np.pi)
    for k in range(g.count):
        if g.count == 1:
            r, c = g.centre[0] * S, g.centre[1] * S
        else:
            a = angle0 + 2 * np.pi * k / g.count
            r = g.centre[0] * S + spread * 0.5 * np.sin(a)
            c = g.centre[1] * S + spread * 0.5 * np.cos(a)
        _draw(img, shape, r, c, g.size, aspect, _COLOURS[g.colour])


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
        if len(use) == 1:
            caps.append(_group_caption(scene, use[0], rng))
        else:
            g, h = use
            rng.integers(
                4
            )  # the template draw a two-group caption does not use (same data as before)
            caps.append(
                _sentence(f"{_phrase(g, rng)} {_relation(h, g)} {_phrase(h, rng)} in {scene}")
            )
        small.append(all(x.small for x in use))
    return caps, small


def _check_classes(classes: Sequence[str]) -> list[str]:
    """``classes`` as a list, or a ValueError unless it is a non-empty subset of SCENE_CLASSES."""
    classes = list(classes)
    unknown = [c for c in classes if c not in _SCENES]
    if not classes or unknown:
        raise ValueError(
            f"classes must be a non-empty subset of {list(SCENE_CLASSES)}, got unknown {unknown}"
        )
    return classes


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
    n, image_size = check_int("n", n, 1), check_int("image_size", image_size, 16)
    classes = _check_classes(classes)
    small_fraction = check_fraction("small_fraction", small_fraction, high_inclusive=True)
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
            _draw_group(img, g, 0.12 * S if g.small else 0.32 * S, rng)
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
# Scenes where scale decides: a large and a small group in every image, twin distractors
# --------------------------------------------------------------------------------------------------

SMALL_KINDS: tuple[str, ...] = ("car", "ship", "tree", "tank")


def make_multiscale_scenes(
    n: int,
    image_size: int = 64,
    seed: int = 0,
    classes: Sequence[str] = SCENE_CLASSES,
    twin_fraction: float = 0.5,
    small_captions: int = 2,
) -> RetrievalData:
    """Scenes where the claim of scale decoupling can show (issue 19 point 2).

    Every image holds objects at clearly different scales: its class's background layout and a
    **large** group of the class's own object kind (planes at an airport, ships in a port, ...; 8-12 %
    of the image side per object), plus a **small** group (cars, boats, trees or tanks of any class;
    3.5-5 % of the side, i.e. 2-3 pixels at 64 px) in another part of the image. Each of the five
    captions mentions the objects of **one** scale: ``small_captions`` of them describe the small
    group (kind, count, colour, region), the others the large group; the scene word appears in about
    half. The class (shared by about n / len(classes) images) therefore carries information about
    the large objects, not the small ones.

    A ``twin_fraction`` of the images come in **twin pairs**: the second image repeats the first's
    scene exactly (background, large group, small group's place and count) and differs only in the
    small group's colour (and, half the time, its kind). A twin's large-object captions describe
    its sibling as well, so only small-object queries can tell twins apart: ``twin_fraction=1`` is
    the hard split. ``caption_small`` flags the small-object captions, ``image_small`` the images that
    have a twin.
    """
    n, image_size = check_int("n", n, 2), check_int("image_size", image_size, 32)
    classes = _check_classes(classes)
    twin_fraction = check_fraction("twin_fraction", twin_fraction, high_inclusive=True)
    small_captions = check_int("small_captions", small_captions, 0)
    if small_captions > 5:
        raise ValueError(f"small_captions must be in [0, 5], got {small_captions!r}")
    rng = np.random.default_rng(seed)
    S = image_size
    n_twins = int(round(twin_fraction * n / 2))
    n_single = n - 2 * n_twins
    n_scenes = n_twins + n_single
    scene_labels = rng.permutation(np.arange(n_scenes) % len(classes))
    twin_of = rng.permutation(n_scenes) < n_twins  # which scenes get a twin
    colours = list(_COLOURS)
    images, captions, labels, cap_small, img_twin = [], [], [], [], []
    for s in range(n_scenes):
        cls = classes[scene_labels[s]]
        scene_names = _SCENES[cls][3]
        large_kind = _SCENES[cls][2][0]
        zoom = rng.uniform(0.9, 1.1)
        half = int(rng.integers(2))
        big_c = (rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.35) + 0.45 * half)
        small_c = (rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.3) + 0.55 * (1 - half))
        if rng.random() < 0.5:
            big_c, small_c = (big_c[1], big_c[0]), (small_c[1], small_c[0])
        big = _Group(
            large_kind,
            colours[rng.integers(len(colours))],
            False,
            int(rng.integers(1, 4)),
            big_c,
            zoom * S * rng.uniform(0.08, 0.12),
        )
        small = _Group(
            SMALL_KINDS[rng.integers(len(SMALL_KINDS))],
            colours[rng.integers(len(colours))],
            True,
            int(rng.integers(1, 4)),
            small_c,
            zoom * S * rng.uniform(0.035, 0.05),
        )
        while small.colour == big.colour:
            small.colour = colours[rng.integers(len(colours))]
        bg = np.zeros((S, S, 3), dtype=np.float64)
        _paint_background(bg, cls, rng)
        draw_seed = int(rng.integers(2**31))
        variants = [small]
        if twin_of[s]:
            other = _Group(small.kind, small.colour, True, small.count, small.centre, small.size)
            while other.colour in (small.colour, big.colour):
                other.colour = colours[rng.integers(len(colours))]
            if rng.random() < 0.5:
                other.kind = SMALL_KINDS[
                    (SMALL_KINDS.index(small.kind) + 1 + rng.integers(len(SMALL_KINDS) - 1))
                    % len(SMALL_KINDS)
                ]
            variants.append(other)
        which_small = rng.permutation(5) < small_captions
        cap_rng_seed = int(rng.integers(2**31))
        for g_small in variants:
            img = bg.copy()
            draw_rng = np.random.default_rng(draw_seed)  # same placement for twins
            _draw_group(img, big, 0.3 * S, draw_rng)
            _draw_group(img, g_small, 0.1 * S, draw_rng)
            images.append(np.clip(img, 0.0, 1.0).astype(np.float32))
            crng = np.random.default_rng(cap_rng_seed)  # twins share the large captions' wording
            caps = []
            for k in range(5):
                with_scene = crng.random() < 0.5
                scene = (
                    str(crng.choice(scene_names))
                    if with_scene
                    else str(crng.choice(["the area", "the image", "this scene"]))
                )
                caps.append(_group_caption(scene, g_small if which_small[k] else big, crng))
            captions.append(caps)
            cap_small.extend(bool(x) for x in which_small)
            labels.append(int(scene_labels[s]))
            img_twin.append(bool(twin_of[s]))
    order = rng.permutation(len(images))
    cap_small_arr = np.asarray(cap_small, dtype=bool).reshape(len(images), 5)[order].reshape(-1)
    return RetrievalData(
        images=torch.from_numpy(np.stack([images[i] for i in order]))
        .permute(0, 3, 1, 2)
        .contiguous(),
        captions=[captions[i] for i in order],
        labels=torch.as_tensor([labels[i] for i in order], dtype=torch.long),
        class_names=classes,
        caption_small=cap_small_arr,
        image_small=np.asarray([img_twin[i] for i in order], dtype=bool),
    )

"""Readers of the real datasets' files: RSICD, RSITMD, UCM-Captions and Sydney-Captions.

Real data (RSICD, RSITMD, UCM-Captions, Sydney-Captions) come as a "Karpathy-style" JSON
(``images[].filename``, ``split``, ``sentences[].raw/tokens``) or as AMFMN's "precomp" split text files
(``{split}_caps.txt`` + ``{split}_filename.txt``), plus an image folder; class labels are the filename
prefix (``airport_12.jpg`` -> ``airport``); purely numeric names (RSICD's ``00012.jpg``, UCM's and
Sydney's ``12.tif``) are unlabelled and get label -1 unless a ``labels`` mapping names their class.

Every reader checks the whole file first and raises one ValueError listing every bad entry
(missing or non-list ``sentences``, tokens that are not strings, non-string file names, duplicate
ids, images that cannot be read), so nothing is loaded silently from a malformed file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ssjdn.data import UNLABELLED, RetrievalData
from ssjdn.vocabulary import tokenize

__all__ = [
    "IMAGE_SUFFIXES",
    "KarpathyEntry",
    "image_files",
    "label_from_filename",
    "load_image_folder",
    "load_karpathy_dataset",
    "load_karpathy_json",
    "load_precomp_dataset",
    "load_precomp_split",
]

LabelSource = Mapping[str, str] | Callable[[str], str | None]
"""Where class names come from besides filename prefixes: a filename -> class mapping or function."""

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


def _raise_all(source: object, problems: list[str], what: str = "malformed entries") -> None:
    """One ValueError listing every problem found in ``source`` (at most 50 spelled out)."""
    if problems:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise ValueError(f"{source}: {len(problems)} {what}:\n  {shown}{more}")


def _sentence_text(s: object) -> tuple[str | None, str | None]:
    """(caption text, problem) of one ``sentences[j]`` item: ``{"raw": str}`` or ``{"tokens": [str]}``."""
    if not isinstance(s, dict):
        return None, f"must be an object with 'raw' or 'tokens', got {type(s).__name__}"
    raw, tokens = s.get("raw"), s.get("tokens")
    if raw is not None and not isinstance(raw, str):
        return None, f"'raw' must be a string, got {type(raw).__name__}"
    if tokens is not None:
        if not isinstance(tokens, list):
            return None, f"'tokens' must be a list of strings, got {type(tokens).__name__}"
        bad = [k for k, t in enumerate(tokens) if not isinstance(t, str)]
        if bad:
            return None, f"'tokens' must all be strings; tokens {bad[:5]} are not ({tokens!r})"[
                :200
            ]
    if raw is None and tokens is None:
        return None, "needs a 'raw' string or a 'tokens' list"
    text = raw if raw is not None else " ".join(tokens or [])
    if not tokenize(text):
        return None, f"holds no words ({s!r})"[:200]
    return text.strip(), None


def load_karpathy_json(
    path: str | os.PathLike[str], split: str | None = None
) -> list[KarpathyEntry]:
    """Read ``dataset_rsicd.json``-style files (also RSITMD, UCM-Captions, Sydney-Captions).

    Expected: ``{"images": [{"filename": str, "split": str, "sentences": [{"raw": str} or
    {"tokens": [str]}, ...]}, ...]}`` (optional ``imgid`` / ``sentids`` must not repeat). The whole
    file is checked first: one ValueError lists every malformed entry by index and field (missing or
    non-list ``sentences``, non-string tokens or file names, duplicate file names or ids).
    ``split`` keeps only that split (``train``/``val``/``test``; RSITMD uses ``train``/``test``).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"Karpathy JSON not found: {p} (pass the path of e.g. dataset_rsicd.json)"
        )
    if split is not None and (not isinstance(split, str) or not split):
        raise ValueError(f"split must be a non-empty str or None, got {split!r}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{p} is not valid JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise ValueError(f"{p}: expected an object with an 'images' list at the top level")
    if not doc["images"]:
        raise ValueError(f"{p}: the 'images' list is empty")
    problems: list[str] = []
    seen_fn: dict[str, int] = {}
    seen_id: dict[object, int] = {}
    seen_sent: dict[object, int] = {}
    out = []
    for i, e in enumerate(doc["images"]):
        where = f"images[{i}]"
        if not isinstance(e, dict):
            problems.append(f"{where} must be an object, got {type(e).__name__}")
            continue
        fn, sp, sents = e.get("filename"), e.get("split"), e.get("sentences")
        ok = True
        if not isinstance(fn, str) or not fn.strip():
            problems.append(f"{where}.filename must be a non-empty string, got {fn!r}")
            ok = False
        elif fn in seen_fn:
            problems.append(f"{where}.filename {fn!r} repeats images[{seen_fn[fn]}]")
            ok = False
        else:
            seen_fn[fn] = i
        if not isinstance(sp, str) or not sp:
            problems.append(f"{where}.split must be a non-empty string, got {sp!r}")
            ok = False
        if "imgid" in e:
            iid = e["imgid"]
            if isinstance(iid, bool) or not isinstance(iid, int | str):
                problems.append(f"{where}.imgid must be an int or string, got {iid!r}")
                ok = False
            elif iid in seen_id:
                problems.append(f"{where}.imgid {iid!r} repeats images[{seen_id[iid]}]")
                ok = False
            else:
                seen_id[iid] = i
        for sid in e.get("sentids", []) if isinstance(e.get("sentids"), list) else []:
            if isinstance(sid, int | str) and not isinstance(sid, bool):
                if sid in seen_sent and seen_sent[sid] != i:
                    problems.append(f"{where}.sentids {sid!r} repeats images[{seen_sent[sid]}]")
                    ok = False
                seen_sent[sid] = i
        if "sentences" not in e:
            problems.append(f"{where}.sentences is missing")
            continue
        if not isinstance(sents, list) or not sents:
            problems.append(f"{where}.sentences must be a non-empty list, got {sents!r}"[:200])
            continue
        caps = []
        for j, s_ in enumerate(sents):
            text, problem = _sentence_text(s_)
            if problem is not None:
                problems.append(f"{where}.sentences[{j}] {problem}")
                ok = False
            else:
                caps.append(text)
        if ok and (split is None or sp == split):
            out.append(KarpathyEntry(fn, sp, tuple(caps), label_from_filename(fn)))
    _raise_all(p, problems)
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
    `image_files` lists them, and `label_from_filename` gives their classes). Every listed file is
    tried; one ValueError names every file that is missing, not a string or cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    if filenames is None:
        filenames = image_files(root)
    if isinstance(filenames, str):
        raise TypeError("filenames must be a sequence of file names, not a single str")
    if len(filenames) == 0:
        raise ValueError("filenames must not be empty")
    out = torch.empty(len(filenames), 3, image_size, image_size)
    problems: list[str] = []
    for i, fn in enumerate(filenames):
        if not isinstance(fn, str) or not fn:
            problems.append(f"filenames[{i}] must be a non-empty string, got {fn!r}")
            continue
        f = root / fn
        if not f.is_file():
            problems.append(f"image {fn!r} (entry {i}) is missing")
            continue
        try:
            with Image.open(f) as im:
                arr = np.asarray(
                    im.convert("RGB").resize((image_size, image_size)), dtype=np.float32
                )
        except (UnidentifiedImageError, OSError, ValueError) as err:
            problems.append(f"image {fn!r} (entry {i}) cannot be read: {err}"[:200])
            continue
        out[i] = torch.from_numpy(arr / 255.0).permute(2, 0, 1)
    _raise_all(root, problems, "unreadable images")
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
    labels: LabelSource | None = None,
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
    labels: LabelSource | None,
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
    labels: LabelSource | None,
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
    try:
        caps = [x.strip() for x in caps_f.read_text(encoding="utf-8").splitlines()]
        names = [x.strip() for x in names_f.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise ValueError(f"{caps_f} / {names_f} are not UTF-8 text: {err}") from err
    while caps and not caps[-1]:  # trailing blank lines
        caps.pop()
    while names and not names[-1]:
        names.pop()
    if not caps or not names:
        raise ValueError(f"{caps_f.name} and {names_f.name} must not be empty")
    problems = [
        f"{caps_f.name} line {i + 1} holds no caption words ({c!r})"
        for i, c in enumerate(caps)
        if not tokenize(c)
    ]
    problems += [
        f"{names_f.name} line {i + 1} is empty; every line must name an image"
        for i, n in enumerate(names)
        if not n
    ]
    if len(caps) == len(names):
        out: list[tuple[str, list[str]]] = []
        first: dict[str, int] = {}
        for i, (n, c) in enumerate(zip(names, caps)):
            if out and out[-1][0] == n:
                out[-1][1].append(c)
                continue
            if n and n in first:
                problems.append(
                    f"{names_f.name} line {i + 1}: image {n!r} repeats line {first[n] + 1} "
                    "(the captions of one image must be on consecutive lines)"
                )
            first.setdefault(n, i)
            out.append((n, [c]))
        _raise_all(root, problems)
        return out
    if len(caps) % len(names):
        problems.append(
            f"{caps_f.name} has {len(caps)} captions for {len(names)} images in {names_f.name}: "
            "the caption count must be a multiple of the image count (AMFMN: 5 per image)"
        )
    first = {}
    for i, n in enumerate(names):
        if n and n in first:
            problems.append(f"{names_f.name} line {i + 1}: image {n!r} repeats line {first[n] + 1}")
        first.setdefault(n, i)
    _raise_all(root, problems)
    k = len(caps) // len(names)
    return [(n, caps[i * k : (i + 1) * k]) for i, n in enumerate(names)]


def load_precomp_dataset(
    folder: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    split: str = "test",
    image_size: int = 224,
    class_names: Sequence[str] | None = None,
    labels: LabelSource | None = None,
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

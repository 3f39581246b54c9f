"""The scikit-learn-style estimator base shared by CDHM and the neural baselines.

It owns what every unsupervised domain-adaptation classifier here needs: input validation,
label encoding, working-condition indices, per-window standardisation, the source/target batch
sampler, prediction in batches, and save/load as safetensors weights plus a JSON config.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import maskloop
import numpy as np
import torch
from maskloop import Callback
from maskloop.checks import check_int, check_real
from safetensors.torch import load_file, save_file
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import Tags, TransformerTags, check_array
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch import nn

from cdhm.models import standardize_windows
from cdhm.training import ClipGradNorm, DomainAdaptationObjective, SourceTargetBatches

__all__ = ["DomainAdaptiveClassifier"]


class DomainAdaptiveClassifier(ClassifierMixin, BaseEstimator):
    """Base class: ``fit(X, y, target_x=None, source_c=None, target_c=None)``, ``predict``, ...

    A scikit-learn classifier (``BaseEstimator`` + ``ClassifierMixin``): the constructor stores
    its arguments unchanged and ``fit`` validates them, so ``clone``, ``set_params``,
    ``GridSearchCV``, ``cross_val_score`` and ``Pipeline`` work. ``X`` holds the labelled source
    windows (N, L) and ``y`` their labels; the unlabelled target windows are the fit parameter
    ``target_x`` (without it the estimator trains on the source alone).

    Subclasses implement ``_build(segment_length, n_classes, n_conditions) -> nn.Module``,
    ``_step(batch, progress) -> (loss, logs)``, ``_logits(x)`` and ``_features(x, c)``.
    Windows are cut into ``n_segments`` segments of L / n_segments samples.
    Working conditions ``c`` are small non-negative ints (default 0 for source, 1 for target).
    ``progress`` (default on) shows ``maskloop.fit``'s progress bar for each epoch.
    """

    def __init__(
        self,
        n_segments: int = 8,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        standardize: str = "window",
        classes: list | tuple | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        self.n_segments = n_segments
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.classes = classes
        self.seed = seed
        self.progress = progress

    def __sklearn_tags__(self) -> Tags:
        """A classifier whose ``transform`` gives learned features (float32, any input dtype)."""
        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags

    def _check_params(self) -> None:
        """Validate the constructor arguments (called by ``fit``, as scikit-learn does)."""
        check_int("n_segments", self.n_segments, 1)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 2)
        check_real("lr", self.lr, low=0.0, low_inclusive=False)
        check_real("weight_decay", self.weight_decay, low=0.0)
        if self.standardize not in ("window", "none"):
            raise ValueError(f"standardize must be 'window' or 'none', got {self.standardize!r}")
        if self.classes is not None and not isinstance(self.classes, (list, tuple, np.ndarray)):
            raise TypeError(f"classes must be None or a list of labels, got {self.classes!r}")
        check_int("seed", self.seed, 0)
        if not isinstance(self.progress, (bool, np.bool_)):
            raise TypeError(f"progress must be a bool, got {self.progress!r}")

    # ----------------------------------------------------------------------------- inputs
    def _array(self, x: Any, name: str, reset: bool = False) -> np.ndarray:
        """Validated float windows (N, L) with L divisible by ``n_segments``."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if name == "X":
            arr = validate_data(self, x, reset=reset, dtype=[np.float64, np.float32])
        else:
            arr = check_array(x, dtype=[np.float64, np.float32], input_name=name)
        if arr.shape[1] % self.n_segments:
            raise ValueError(
                f"n_segments={self.n_segments} must divide the window length of {name} "
                f"({arr.shape[1]}); allowed: divisors of {arr.shape[1]}"
            )
        if not reset and hasattr(self, "n_features_in_") and arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{name} has windows of {arr.shape[1]} samples; the model was fit on "
                f"{self.n_features_in_}"
            )
        return arr

    def _tensor(self, x: Any, name: str = "X", reset: bool = False) -> torch.Tensor:
        arr = self._array(x, name, reset)
        arr = np.array(arr, dtype=np.float32)  # a writable copy (inputs may be read-only)
        if self.standardize == "window":
            arr = standardize_windows(arr)
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        return t.reshape(t.shape[0], self.n_segments, -1)

    def _encode_labels(self, y: Any) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        classes = list(self.classes) if self.classes is not None else np.unique(y).tolist()
        if len(classes) < 2 or len(np.unique(y)) < 2:
            got = len(np.unique(y))
            raise ValueError(
                f"y must contain >= 2 classes, got {got} class{'es' if got != 1 else ''}: "
                f"{np.unique(y).tolist()}"
            )
        lookup = {c: i for i, c in enumerate(classes)}
        unknown = sorted({v for v in y.tolist() if v not in lookup}, key=str)
        if unknown:
            raise ValueError(f"y contains unknown class labels {unknown}; allowed: {classes}")
        self.classes_ = np.asarray(classes) if self.classes is not None else np.unique(y)
        return np.asarray([lookup[v] for v in y.tolist()], dtype=np.int64)

    @staticmethod
    def _conditions(c: Any, n: int, default: int, name: str) -> np.ndarray:
        if c is None:
            return np.full(n, default, dtype=np.int64)
        c = np.asarray(c)
        if c.ndim == 0:
            c = np.full(n, c)
        if c.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {c.shape}")
        if not np.issubdtype(c.dtype, np.integer) or (c < 0).any():
            raise ValueError(f"{name} must hold non-negative int condition indices, got {c[:5]}")
        return c.astype(np.int64)

    # ----------------------------------------------------------------------------- training
    def fit(
        self,
        X: Any,
        y: Any,
        target_x: Any = None,
        source_c: Any = None,
        target_c: Any = None,
        callbacks: Sequence[Callback] = (),
    ) -> DomainAdaptiveClassifier:
        """Train on labelled source windows `X`, `y` and (if given) unlabelled `target_x`.

        Target labels are never an argument: model selection cannot see them. The budget is fixed
        (``epochs`` passes over the source set); the final weights are kept. `source_c` and
        `target_c` are the working-condition indices (default 0 and 1). Training runs in
        ``maskloop.fit`` (Adam, gradient norm clipped at 10); extra `callbacks` join it, e.g.
        ``maskloop.Checkpoint(dir)`` to save each epoch and resume an interrupted fit.
        ``history_`` maps each logged quantity (``loss``, ``source_acc``, ...) to its per-epoch
        mean over the training windows.
        """
        self._check_params()
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be maskloop.Callback instances, got {cb!r}")
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])  # finite, same length
        xs = self._tensor(X, "X")
        ys = self._encode_labels(y)
        if len(ys) != len(xs):
            raise ValueError(f"y has {len(ys)} labels for {len(xs)} source windows in X")
        cs = self._conditions(source_c, len(xs), 0, "source_c")
        if target_x is not None:
            xt = self._tensor(target_x, "target_x")
            ct = self._conditions(target_c, len(xt), 1, "target_c")
        else:
            xt, ct = None, None
        torch.manual_seed(self.seed)
        self.window_length_ = xs.shape[1] * xs.shape[2]
        self.n_conditions_ = int(max(cs.max(), ct.max() if ct is not None else 0)) + 1
        self.n_classes_ = len(self.classes_)
        self.net_ = self._build(xs.shape[2], self.n_classes_, self.n_conditions_)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        batches = SourceTargetBatches(
            xs,
            torch.from_numpy(ys),
            torch.from_numpy(cs),
            xt,
            torch.from_numpy(ct) if ct is not None else None,
            batch_size=self.batch_size,
            seed=self.seed,
        )
        objective = DomainAdaptationObjective(self._step, self.epochs * batches.steps_per_epoch)
        history = maskloop.fit(
            self.net_,
            batches,
            epochs=self.epochs,
            optimizer=opt,
            objective=objective,
            callbacks=[
                batches,
                objective,
                ClipGradNorm(10.0),
                *self._fit_callbacks(xt, torch.from_numpy(ct) if ct is not None else None),
                *callbacks,
            ],
            device="cpu",
            progress=self.progress,
        )
        self.history_ = {
            k[len("train_") :]: history[k]
            for k in (history.epochs[-1] if history.epochs else {})
            if k.startswith("train_") and k != "train_samples"
        }
        self.net_.eval()
        return self

    def fit_transform(self, X: Any, y: Any, **fit_params: Any) -> np.ndarray:
        """``fit(X, y, **fit_params)`` then the learned features of `X` (its conditions
        ``source_c`` if given)."""
        return self.fit(X, y, **fit_params).transform(X, fit_params.get("source_c"))

    # subclass hooks -----------------------------------------------------------------------
    def _fit_callbacks(self, xt: torch.Tensor | None, ct: torch.Tensor | None) -> list[Callback]:
        """Extra ``maskloop.fit`` callbacks of a subclass, given the whole target set (xt, ct)."""
        return []

    def _build(self, segment_length: int, n_classes: int, n_conditions: int) -> nn.Module:
        raise NotImplementedError

    def _step(self, batch: dict[str, torch.Tensor], progress: float) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _features(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ----------------------------------------------------------------------------- inference
    def _check_fitted(self) -> nn.Module:
        check_is_fitted(self, "net_")
        return self.net_

    @torch.no_grad()
    def predict_proba(self, X: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, n_classes) from posterior means (no sampling)."""
        net = self._check_fitted()
        net.eval()
        xt = self._tensor(X)
        out = [
            torch.softmax(self._logits(xt[i : i + batch_size]), -1)
            for i in range(0, len(xt), batch_size)
        ]
        return torch.cat(out).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels (values of ``classes_``)."""
        self._check_fitted()
        return self.classes_[self.predict_proba(X).argmax(1)]

    @torch.no_grad()
    def transform(self, X: Any, c: Any = None, batch_size: int = 256) -> np.ndarray:
        """Learned features (N, F); see the subclass for their layout."""
        net = self._check_fitted()
        net.eval()
        xt = self._tensor(X)
        ct = torch.from_numpy(self._conditions(c, len(xt), 0, "c"))
        if (ct >= self.n_conditions_).any():
            raise ValueError(f"c holds conditions >= n_conditions ({self.n_conditions_})")
        out = [
            self._features(xt[i : i + batch_size], ct[i : i + batch_size])
            for i in range(0, len(xt), batch_size)
        ]
        return torch.cat(out).numpy()

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Save to directory `path`: ``model.safetensors`` (weights) + ``config.json``."""
        net = self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(path / "model.safetensors"))
        params = self.get_params(deep=False)
        if params.get("classes") is not None:
            params["classes"] = np.asarray(params["classes"]).tolist()
        params = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
        cfg = {
            "class": type(self).__name__,
            "params": params,
            "classes_": self.classes_.tolist(),
            "window_length_": self.window_length_,
            "n_features_in_": self.n_features_in_,
            "n_conditions_": self.n_conditions_,
        }
        (path / "config.json").write_text(json.dumps(cfg, indent=1, default=str))
        return path

    #: Constructor options retired from a subclass: name -> (its neutral value, the commit where
    #: it last existed). A saved config that names one at its neutral value loads (the value is
    #: dropped: it fitted exactly as the option's absence); any other value is refused.
    _retired_params: dict[str, tuple[Any, str]] = {}

    @classmethod
    def _drop_retired(cls, params: dict[str, Any]) -> dict[str, Any]:
        """`params` of a saved config without the retired options of :attr:`_retired_params`
        (ValueError naming the option and its last commit when one holds a non-neutral value)."""
        out = dict(params)
        for name, (neutral, commit) in cls._retired_params.items():
            if name in out and out.pop(name) != neutral:
                raise ValueError(
                    f"{name}={params[name]!r} was retired (rejected on validation); only its "
                    f"neutral value {neutral!r} still loads. The option last existed at commit "
                    f"{commit} (git show {commit}:packages/cdhm/src/cdhm/causal_hmm.py)"
                )
        return out

    @classmethod
    def load(cls, path: str | Path) -> DomainAdaptiveClassifier:
        """Load an estimator written by :meth:`save` (weights via safetensors, no pickle)."""
        path = Path(path)
        cfg_file = path / "config.json"
        if not cfg_file.exists():
            raise FileNotFoundError(f"{str(cfg_file)!r} not found; was it written by save()?")
        weights = path / "model.safetensors"
        try:
            cfg = json.loads(cfg_file.read_text())
            if cfg.get("class") != cls.__name__:
                raise ValueError(f"holds a {cfg.get('class')!r}, not a {cls.__name__}")
            est = cls(**cls._drop_retired(cfg["params"]))
            est._check_params()
            est.classes_ = np.asarray(cfg["classes_"])
            est.n_classes_ = len(est.classes_)
            est.window_length_ = int(cfg["window_length_"])
            est.n_features_in_ = int(cfg.get("n_features_in_", est.window_length_))
            est.n_conditions_ = int(cfg["n_conditions_"])
        except (ValueError, TypeError, KeyError) as err:
            msg = f"missing entry {err}" if isinstance(err, KeyError) else str(err)
            raise ValueError(f"{cfg_file}: not a valid {cls.__name__} config: {msg}") from None
        seg = est.window_length_ // est.n_segments
        est.net_ = est._build(seg, est.n_classes_, est.n_conditions_)
        try:
            state = load_file(str(weights))
        except Exception as err:
            raise ValueError(f"{weights}: not a readable safetensors file: {err}") from None
        try:
            est.net_.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{weights}: weights do not match the config: {err}") from None
        est.net_.eval()
        est.history_ = {}
        return est

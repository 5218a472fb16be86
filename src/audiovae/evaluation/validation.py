"""Score an inner VAE through the whole path on a fixed validation subset, in seconds.

The inner VAE's own loss (squared error of standardised outer codes) is not what a listener
hears: every code value counts alike, whether the outer decoder makes it a formant or nothing.
These scores decode the inner VAE's output through the frozen outer decoder instead, as
``audiovae reconstruct`` does, and compare it with the real spectrogram:

- ``full_path``: the outer model's own training loss (``outer.loss``) between the real validation
  spectrogram and its reconstruction through outer encoder -> inner VAE -> outer decoder;
- ``generated_accuracy``: the clean classifier (the evaluate stage's primary judge, trained on
  clean real training audio) on generations of every label, through Griffin-Lim;
- ``listen``: PESQ-NB / STOI (speech) and the clean classifier on reconstructions, for tables.

The subset is fixed (the first ``clips`` validation files in a seeded order), so candidates are
compared on the same files; the test split is never touched (it belongs to the evaluate stage).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from audiovae import layout
from audiovae.config.schema import Params, generation_spread
from audiovae.data.artifacts import load_encodings, open_features, real_rows
from audiovae.evaluation import quality
from audiovae.evaluation.classifier import CleanClassifier
from audiovae.inference.model import AudioVAE
from audiovae.models.checkpoints import load_outer
from audiovae.models.losses import spectrogram_loss

log = logging.getLogger("audiovae.validation")
OBJECTIVES: dict[str, Literal["minimize", "maximize"]] = {
    "val_loss": "minimize", "full_path": "minimize", "generated_accuracy": "maximize",
    # the prior's: held-out log-likelihood per latent dimension, and how far its generations'
    # novelty ratio (against validation latents) is from 1, as new as an unheard recording
    "val_loglik": "maximize", "novelty_gap": "minimize"}
NEEDS = [str(layout.FEATURES), str(layout.FILTERED), str(layout.OUTER_DIR)]  # besides the encodings


@dataclass
class Validation:
    base: AudioVAE            # the project's outer model, codec and statistics; ``inner`` unset
    specs: np.ndarray         # the fixed validation subset's spectrograms
    labels: np.ndarray        # their labels (str)
    waves: np.ndarray         # their real audio, the model's input form
    loss_kind: str
    sc_weight: float
    classifier: CleanClassifier | None
    spread: float
    generated_per_label: int
    speech: bool
    seed: int

    @classmethod
    def from_project(cls, root: Path, params: Params, clips: int, generated_per_label: int,
                     classifier: bool = True) -> "Validation":
        root = Path(root)
        seed = params.seed
        specs, index, codec = open_features(root / layout.FEATURES)
        waves = np.load(root / layout.FILTERED_AUDIO, mmap_mode="r")
        _, stats, _, _ = load_encodings(root)
        outer, _ = load_outer(root / layout.OUTER_MODEL, "cpu")
        audio_meta = _read_json(root / layout.FILTERED_META)
        val = real_rows(index, "val")
        if len(val) == 0:
            raise ValueError("the validation split is empty: full-path scores need validation files")
        pick = np.sort(np.random.default_rng(seed).permutation(val)[: clips or len(val)])
        all_labels = index["label"].astype(str).to_numpy()
        labels = sorted(set(all_labels))
        # an outer-only model: its inner VAE and label statistics are never used, each trial brings its own
        base = AudioVAE(outer=outer, inner=None, mean=stats["mean"], std=stats["std"], codec=codec,  # type: ignore[arg-type]
                        length=int(audio_meta["length"]), length_mode=audio_meta["length_mode"], labels=labels,
                        class_means=None, class_scales=None, device=torch.device("cpu"))  # type: ignore[arg-type]
        judge = None
        if classifier:
            train = real_rows(index, "train")
            judge = CleanClassifier(codec.sample_rate, params.evaluate.clean_classifier, seed).fit(
                np.asarray(waves[index["row"].to_numpy()[train]]), all_labels[train])
        speech = set(index["dataset"].astype(str)) <= {"fsdd", "audiomnist"}
        return cls(base, np.asarray(specs[pick]), all_labels[pick], np.asarray(waves[index["row"].to_numpy()[pick]]),
                   params.outer.loss, params.outer.sc_weight, judge,
                   generation_spread(params.evaluate.generate_spread, params.prior, learned=False),
                   generated_per_label, speech, seed)

    def model(self, inner, info: dict) -> AudioVAE:
        """The whole model with a freshly trained inner VAE and its label statistics (``train_inner``'s info)."""
        points = info.get("class_points")
        return replace(self.base, inner=inner.cpu().eval(), labels=[str(x) for x in info["labels"]],
                       class_means=np.asarray(info["class_means"]), class_scales=np.asarray(info["class_scales"]),
                       class_points=None if points is None or len(points) == 0 else np.asarray(points),
                       class_point_labels=np.asarray(info["class_point_labels"]))

    def spectrogram_score(self, reconstructions: np.ndarray) -> float:
        """The outer model's own training loss between the subset's real spectrograms and
        ``reconstructions`` of them (lower is better; 0 for the spectrograms themselves)."""
        loss = spectrogram_loss(self.loss_kind, self.base.codec, self.sc_weight)
        with torch.no_grad():
            return float(loss(torch.from_numpy(np.asarray(reconstructions, np.float32)), torch.from_numpy(self.specs)))

    def full_path(self, model: AudioVAE) -> float:
        """``spectrogram_score`` of the full-path reconstructions: outer encoder -> inner VAE -> outer decoder."""
        labels = list(self.labels) if model.inner.conditional else None
        return self.spectrogram_score(model.reconstruct(self.specs, labels))

    def generations(self, model: AudioVAE) -> tuple[np.ndarray, np.ndarray]:
        """``generated_per_label`` sounds of every label, as audio, and their labels."""
        specs = np.concatenate([model.generate(label, self.generated_per_label, seed=self.seed + i, spread=self.spread)
                                for i, label in enumerate(model.labels)])
        return model.to_audio(specs), np.repeat(np.array(model.labels), self.generated_per_label)

    def generated_accuracy(self, model: AudioVAE) -> float:
        if self.classifier is None:
            raise ValueError("this validation set was built without the clean classifier")
        audio, labels = self.generations(model)
        return self.classifier.accuracy(audio, labels)

    def references(self) -> dict[str, dict]:
        """The rows a candidate is read against, on the same subset: the real audio, and the outer
        model alone (the best the full path can do through this outer model)."""
        sr = self.base.codec.sample_rate
        outer_specs = self.base.reconstruct_outer(self.specs)
        rows = {"real": {}, "outer": {"full_path": self.spectrogram_score(outer_specs)}}
        outer_audio = self.base.to_audio(outer_specs)
        rows["outer"].update(self._measures(outer_audio, sr))
        if self.classifier is not None:
            rows["real"]["clean_accuracy"] = self.classifier.accuracy(self.waves, self.labels)
        if self.speech:
            rows["real"]["dnsmos_ovrl"] = quality.dnsmos(self.waves, sr)["ovrl"]
            rows["outer"]["dnsmos_ovrl"] = quality.dnsmos(outer_audio, sr)["ovrl"]
        return rows

    def _measures(self, audio: np.ndarray, sr: int) -> dict:
        out: dict[str, float] = {}
        if self.speech:
            out.update(pesq_nb=quality.pesq_mean(self.waves, audio, sr, "nb"),
                       stoi=quality.stoi_score(self.waves, audio, sr))
        else:
            out["mrstft"] = quality.mrstft_distance(self.waves, audio, sr)
        if self.classifier is not None:
            out["clean_accuracy"] = self.classifier.accuracy(audio, self.labels)
        return out

    def listen(self, model: AudioVAE) -> dict:
        """The standard measures of reconstructions and generations on the subset (for tables)."""
        labels = list(self.labels) if model.inner.conditional else None
        audio = model.to_audio(model.reconstruct(self.specs, labels))
        sr = model.codec.sample_rate
        out = {"full_path": self.full_path(model), **self._measures(audio, sr)}
        if self.classifier is not None:
            gen_audio, gen_labels = self.generations(model)
            out["generated_accuracy"] = self.classifier.accuracy(gen_audio, gen_labels)
            if self.speech:
                out["generated_dnsmos_ovrl"] = quality.dnsmos(gen_audio, sr)["ovrl"]
        if self.speech:
            out["dnsmos_ovrl"] = quality.dnsmos(audio, sr)["ovrl"]
        return out


def _read_json(path: Path) -> dict:
    import json
    return json.loads(Path(path).read_text())

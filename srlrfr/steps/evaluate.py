"""Rule evaluate: LFW verification of one (method, resolution) configuration.

The first image of every pair stays at full resolution; the second is
degraded, then brought back to the crop size by the method under test
(METHOD.md; srlrfr.methods). Full-resolution features come from the
``features`` rule; only the distinct probe images are restored and embedded,
in chunks, so memory stays flat whatever the number of pairs.

A feature is concat(FNet(x), FNet(mirror)); ``flip`` (evaluate.flip) says
what the mirror of a restored probe is: ``restored`` mirrors the restored
face; ``authors`` restores the mirrored probe, as the authors' script does
for SR methods. Their script mirrors interpolated (baseline) and undegraded
faces after the fact, so both protocols are the same there.

Beyond the paper (srlrfr.metrics.protocols, .identification): with
``lr_vs_lr`` (evaluate.protocols) or as evaluate.matrix's method, the first
image of every pair is restored too; with evaluate.identification, the split's
probes. Their features are scored here and saved in features.npz (for the
resolution matrix); the paper's numbers come from the second images alone, in
the same batches as before.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..atomic import save_npz, write_csv, write_json
from ..damaged import load_npz
from ..faults import pause_point
from ..metrics.identification import identification_report, identification_split, probe_ranks
from ..metrics.protocols import Features, cosine_scores, pair_report
from ..metrics.verification import threshold_grid, verification_report
from ..storage import CHUNK, AlignedSet, open_level

NAME = "evaluate"
HELP = "score every pair of one (method, resolution) configuration"
OUTPUTS_TOGETHER = True  # all outputs appear at once, or none (srlrfr.cli)

log = logging.getLogger(__name__)


FLIPS = ("restored", "authors")


def probe_features(fnet, method: str, probes: np.ndarray, restored: np.ndarray, *, flip: str = "restored",
                   srnet=None, batch_size: int = 128, device="cpu") -> np.ndarray:
    """Flip-concatenated features of restored probes under protocol ``flip`` (module doc); a mirrored
    probe is restored to the size of ``restored``."""
    # deferred: loads torch, cv2
    from ..methods import is_sr, restore
    from ..models.fnet import extract_features
    if flip not in FLIPS:
        raise ValueError(f"evaluate.flip must be one of {FLIPS}, got {flip!r}")
    if flip == "restored" or not is_sr(method) or probes.shape[1:3] == restored.shape[1:3]:
        return extract_features(fnet, restored, batch_size=batch_size, device=device, progress=False)
    mirrored = restore(method, np.ascontiguousarray(probes[:, :, ::-1]), restored.shape[1:3],
                       srnet=srnet, batch_size=batch_size, device=device)
    return np.hstack([extract_features(fnet, im, batch_size=batch_size, device=device, flip=False, progress=False)
                      for im in (restored, mirrored)])


EXCLUSION_CAUSES = ("unreadable", "corrupt", "no_face")  # a pair counts under the first that applies


def exclusion_causes(aligned, left_rows: np.ndarray, right_rows: np.ndarray, no_face: str) -> np.ndarray:
    """Per pair, why it is left out ('' when scored): a damaged image always, no face if ``no_face='exclude'``."""
    def cause(rows: np.ndarray) -> np.ndarray:
        status = aligned.status[rows].astype(object)
        out = np.where(aligned.damaged[rows], status, "")
        if no_face == "exclude":
            out = np.where((out == "") & ~aligned.ok[rows], "no_face", out)
        return out.astype(object)

    a, b = cause(left_rows), cause(right_rows)
    rank = {c: i for i, c in enumerate(EXCLUSION_CAUSES)}
    return np.array([x if rank.get(x, 99) <= rank.get(y, 99) else y for x, y in zip(a, b)], dtype=object)


def example_pairs(n_pairs: int, k: int, seed: int) -> np.ndarray:
    """The fixed, seeded set of pair indices shown in the restored-face grid."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_pairs, size=min(k, n_pairs), replace=False))


def extra_images(pairs: pd.DataFrame, probes: np.ndarray, *, both_sides: bool,
                 identification: pd.DataFrame | None) -> np.ndarray:
    """Images restored beyond the pairs' second ones, in a fixed order: first images (``both_sides``),
    then the identification probes."""
    wanted = list(pairs["left"]) if both_sides else []
    if identification is not None:
        wanted += list(identification.loc[identification["role"] == "probe", "image_id"])
    seen = set(probes.tolist())
    return np.array([i for i in pd.unique(np.array(wanted, dtype=object)) if i not in seen], dtype=object)


@dataclass(frozen=True)
class EvaluateInputs:
    """The files one configuration reads: the pairs, the aligned crops and their full-resolution
    features, the FNet's weights; the degraded folder and level (None: full resolution) and the
    SRNet of an SR method."""
    pairs_csv: str | os.PathLike
    aligned_dir: str | os.PathLike
    features_npz: str | os.PathLike
    fnet_weights: str | os.PathLike | None = None
    degraded_dir: str | os.PathLike | None = None
    factor: int = 1
    srnet_path: str | os.PathLike | None = None


@dataclass(frozen=True)
class EvaluateOptions:
    """How to evaluate (params: evaluate.*, align.no_face, report.far_targets, fnet).

    ``both_sides``: restore the pairs' first images too (for the resolution matrix) even without lr_vs_lr.
    ``precision``: the dtype the FNet runs in, ``srnet_precision`` the SRNet's (default: the same;
    evaluate.precision.fnet and .srnet).
    """
    fnet_name: str
    dataset: str = "lfw"
    no_face: str = "center"
    threshold_steps: int = 10001
    far_targets: tuple = (1e-2, 1e-3)
    batch_size: int = 128
    device: str = "auto"
    examples: int = 6
    seed: int = 0
    flip: str = "restored"
    protocols: tuple = ("hr_vs_lr",)
    both_sides: bool = False
    identification: bool = False
    max_rank: int = 20
    precision: str = "fp32"
    srnet_precision: str | None = None

    @classmethod
    def from_params(cls, cfg: dict, *, method: str, dataset: str = "lfw") -> "EvaluateOptions":
        """The options of ``method`` on ``dataset``: the matrix's method and identification run on LFW only."""
        e = cfg["evaluate"]
        return cls(fnet_name=cfg["fnet"], dataset=dataset, no_face=cfg["align"]["no_face"],
                   threshold_steps=e["threshold_steps"], far_targets=cfg["report"]["far_targets"],
                   batch_size=e["batch_size"], device=e["device"], examples=e["examples"], seed=e["seed"],
                   flip=e["flip"], protocols=e["protocols"],
                   both_sides=e["matrix"]["method"] == method and dataset == "lfw",
                   identification=e["identification"]["enabled"] and dataset == "lfw",
                   max_rank=e["identification"]["max_rank"], precision=e["precision"]["fnet"],
                   srnet_precision=e["precision"]["srnet"])


@dataclass
class _Pairs:
    """The pairs and where their images are: rows of the aligned set, the distinct probes (second
    images), why each pair is excluded ('' when scored), and the images restored beyond the probes."""
    table: pd.DataFrame
    aligned: Any
    hr_feats: np.ndarray
    left: np.ndarray
    right_ids: np.ndarray
    right_rows: np.ndarray
    right: np.ndarray  # per pair: its probe's position in right_ids
    causes: np.ndarray
    split: pd.DataFrame | None = None  # identification gallery and probes
    extra_ids: np.ndarray | None = None

    @property
    def keep(self) -> np.ndarray:
        return self.causes == ""


@dataclass
class _Probes:
    """Restored features of the probes and of the extra images; the grid's faces; restoration quality."""
    probe_feats: np.ndarray
    extra_feats: np.ndarray
    shown: dict[int, tuple[np.ndarray, np.ndarray]]  # probe position -> (low-res, restored)
    restoration: dict | None


def evaluate(inputs: EvaluateInputs, *, method: str, resolution: str, out_dir,
             options: EvaluateOptions) -> dict:
    """Score every pair for one configuration; write scores.csv, metrics.json, features.npz and examples.npz."""
    # deferred: loads torch
    from ..device import resolve_device
    out_dir = Path(out_dir)
    dev = resolve_device(options.device)
    p = _read_pairs(inputs, options)
    chosen = example_pairs(len(p.table), options.examples, options.seed)
    if inputs.degraded_dir is None:  # full resolution: no degradation, nothing restored
        probes = _undegraded(p, p.right[chosen])
    else:
        probes = _ProbeRestorer(inputs, method, resolution, options, p, dev).run(p.right[chosen])
    metrics = _score(p, probes, out_dir, options)
    metrics.update(dataset=options.dataset, method=method, resolution=resolution, fnet=options.fnet_name,
                   flip=options.flip,
                   precision={"fnet": options.precision, "srnet": options.srnet_precision or options.precision},
                   n_pairs=int(p.keep.sum()), n_excluded=int((~p.keep).sum()),
                   excluded={c: int((p.causes == c).sum()) for c in EXCLUSION_CAUSES},
                   n_probe_images=int(len(p.right_ids)))
    if probes.restoration is not None:
        metrics["restoration"] = probes.restoration
    restored = Features(np.concatenate([p.right_ids, p.extra_ids]).astype(str),
                        np.vstack([probes.probe_feats, probes.extra_feats]))
    _beyond_the_paper(metrics, p, restored, options)
    _write(out_dir, metrics, restored, p, probes, chosen)
    _print_summary(method, resolution, metrics, p, options)
    return metrics


def _read_pairs(inputs: EvaluateInputs, opts: EvaluateOptions) -> _Pairs:
    pairs = pd.read_csv(inputs.pairs_csv)
    aligned = AlignedSet(inputs.aligned_dir)
    z = load_npz(inputs.features_npz, ("features", "ids"))
    hr_feats, hr_ids = z["features"], z["ids"].astype(str)
    if not np.array_equal(hr_ids, aligned.ids):
        raise ValueError(f"{inputs.features_npz} was computed for other images than {inputs.aligned_dir}; "
                         f"rebuild it")
    left = aligned.rows(pairs["left"])
    right_ids = pd.unique(pairs["right"])
    right_rows = aligned.rows(right_ids)
    right_pos = {k: i for i, k in enumerate(right_ids)}
    right = np.array([right_pos[i] for i in pairs["right"]])
    causes = exclusion_causes(aligned, left, right_rows[right], opts.no_face)
    if not (causes == "").any():
        raise ValueError(f"every pair of {inputs.pairs_csv} touches an excluded image ({_counts(causes)}); see "
                         f"{Path(inputs.aligned_dir) / 'faces.csv'} and the landmarks' no-face report")
    p = _Pairs(pairs, aligned, hr_feats, left, right_ids, right_rows, right, causes)
    if opts.identification:
        p.split = _identification_split(inputs, aligned, opts.no_face)
    p.extra_ids = extra_images(pairs, right_ids, both_sides=opts.both_sides or "lr_vs_lr" in opts.protocols,
                               identification=p.split)
    return p


def _identification_split(inputs: EvaluateInputs, aligned, no_face: str) -> pd.DataFrame:
    usable = ~aligned.damaged & (aligned.ok if no_face == "exclude" else True)
    split = identification_split(pd.DataFrame({"image_id": aligned.ids, "identity": _identities(
        Path(inputs.pairs_csv).parent / "images.csv", aligned.ids)}), usable)
    if split.empty:
        raise ValueError(f"evaluate.identification: no identity has two usable images in {inputs.aligned_dir}; "
                         f"turn identification off for this dataset")
    return split


def _undegraded(p: _Pairs, ex_right: np.ndarray) -> _Probes:
    crops = p.aligned.images.take(p.right_rows[ex_right])
    return _Probes(p.hr_feats[p.right_rows], p.hr_feats[p.aligned.rows(p.extra_ids)],
                   {int(i): (c, c) for i, c in zip(ex_right, crops)}, None)


class _ProbeRestorer:
    """Restores and embeds images of the degraded level chunk by chunk, so memory stays flat."""

    def __init__(self, inputs: EvaluateInputs, method: str, resolution: str, opts: EvaluateOptions, p: _Pairs,
                 dev):
        # deferred: loads torch, cv2
        from ..device import inference_dtype
        from ..metrics.restoration import RestorationMeter
        from ..models.fnet import load_fnet
        self.method, self.resolution, self.opts, self.p = method, resolution, opts, p
        self.dev = dev
        self.level = open_level(inputs.aligned_dir, inputs.degraded_dir, inputs.factor)
        self.srnet = None
        if inputs.srnet_path is not None:
            # deferred: loads torch
            from ..models.srnet import load_srnet
            self.srnet = load_srnet(inputs.srnet_path, dev,
                                    inference_dtype(dev, opts.srnet_precision or opts.precision))
        self.fnet = load_fnet(opts.fnet_name, inputs.fnet_weights, dev, inference_dtype(dev, opts.precision))
        self.meter = RestorationMeter()
        # whole batches per chunk: the same batches as one pass
        self.chunk_rows = opts.batch_size * max(1, CHUNK // opts.batch_size)
        self.shown: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def run(self, ex_right: np.ndarray) -> _Probes:
        wanted = set(int(i) for i in ex_right)
        probe_feats = self.embed(self.p.right_rows, wanted)
        extra_feats = self.embed(self.p.aligned.rows(self.p.extra_ids))
        return _Probes(probe_feats, extra_feats, self.shown, self.meter.report())

    def embed(self, rows: np.ndarray, wanted: set[int] | None = None) -> np.ndarray:
        """Restored features of ``rows``; the paper's probes (``wanted`` given: the grid's) also feed the
        meter and grid."""
        # deferred: loads cv2
        from ..methods import restore
        aligned, opts = self.p.aligned, self.opts
        feats = np.empty((len(rows), self.p.hr_feats.shape[1]), np.float32)
        for start in tqdm(range(0, len(rows), self.chunk_rows), desc=f"{self.method} {self.resolution}",
                          unit="chunk"):
            stop = min(start + self.chunk_rows, len(rows))
            lr = self.level.take(rows[start:stop])
            restored = restore(self.method, lr, aligned.size, srnet=self.srnet, batch_size=opts.batch_size,
                               device=self.dev)
            feats[start:stop] = probe_features(self.fnet, self.method, lr, restored, flip=opts.flip,
                                               srnet=self.srnet, batch_size=opts.batch_size, device=self.dev)
            if wanted is not None:
                self.meter.update(restored, aligned.images.take(rows[start:stop]))
                for i in wanted.intersection(range(start, stop)):
                    self.shown[i] = (lr[i - start], restored[i - start])
            pause_point("evaluate:chunk")
        return feats


def _score(p: _Pairs, probes: _Probes, out_dir: Path, opts: EvaluateOptions) -> dict:
    """scores.csv and the paper's verification metrics."""
    scores = cosine_scores(p.hr_feats[p.left], probes.probe_feats[p.right])
    # Every pair keeps its row (so scores line up with the pairs list); 'used'
    # is False for pairs excluded (a damaged image, or no face under align.no_face: exclude).
    table = p.table[["pair", "fold", "label"]].assign(score=scores, used=p.keep)
    write_csv(out_dir / "scores.csv", table)
    used = table[p.keep]
    grid = threshold_grid(opts.threshold_steps)
    return verification_report(used["score"].to_numpy(), used["label"].to_numpy(), used["fold"].to_numpy(),
                               thresholds=grid, far_targets=tuple(opts.far_targets))


def _beyond_the_paper(metrics: dict, p: _Pairs, restored: Features, opts: EvaluateOptions) -> None:
    """lr_vs_lr and identification, when asked for."""
    if "lr_vs_lr" in opts.protocols:
        metrics["lr_vs_lr"] = pair_report(p.table[p.keep], restored, restored, threshold_steps=opts.threshold_steps,
                                          far_targets=opts.far_targets)
    if p.split is not None:
        gallery = p.split[p.split["role"] == "gallery"]
        probes = p.split[p.split["role"] == "probe"]
        ranks = probe_ranks(restored.take(probes["image_id"]), probes["identity"].to_numpy(),
                            p.hr_feats[p.aligned.rows(gallery["image_id"])], gallery["identity"].to_numpy())
        metrics["identification"] = identification_report(ranks, len(gallery), opts.max_rank)


def _write(out_dir: Path, metrics: dict, restored: Features, p: _Pairs, probes: _Probes, chosen: np.ndarray) -> None:
    ex_right = p.right[chosen]
    write_json(out_dir / "metrics.json", metrics)
    save_npz(out_dir / "features.npz", ids=restored.ids.astype(np.str_), features=restored.features)
    save_npz(out_dir / "examples.npz", pair=p.table["pair"].to_numpy()[chosen],
             restored=np.stack([probes.shown[int(i)][1] for i in ex_right]),
             probe=np.stack([probes.shown[int(i)][0] for i in ex_right]),
             ground_truth=p.aligned.images.take(p.right_rows[ex_right]))


def _print_summary(method: str, resolution: str, metrics: dict, p: _Pairs, opts: EvaluateOptions) -> None:
    log.info("%s %s %s: acc %.2f%% +- %.2f", opts.fnet_name, method, resolution, metrics["acc_mean"],
             metrics["acc_std"])
    extra = "".join(f", {k} {metrics[k]['acc_mean']:.2f}%" for k in ("lr_vs_lr",) if k in metrics)
    if "identification" in metrics:
        n_probes = len(p.split) - int((p.split["role"] == "gallery").sum())
        extra += (f", rank-1 {metrics['identification']['rank1']:.2f}% rank-5 "
                  f"{metrics['identification']['rank5']:.2f}% ({n_probes} probes)")
    print(f"evaluate {method} {resolution}: {int(p.keep.sum())} pairs scored, {int((~p.keep).sum())} excluded "
          f"({_counts(p.causes)}){extra}")


def _identities(images_csv: Path, ids: np.ndarray) -> np.ndarray:
    """The identity of each aligned image, from the dataset's image index."""
    if not images_csv.is_file():
        raise FileNotFoundError(f"{images_csv} does not exist: identification needs the image index "
                                f"(image_id, identity) beside the pairs table; rerun the ingest step")
    index = pd.read_csv(images_csv).set_index("image_id")["identity"].astype(str)
    missing = [i for i in ids if i not in index.index]
    if missing:
        raise ValueError(f"{images_csv} lists no identity for {len(missing)} aligned image(s), e.g. {missing[0]}")
    return index.loc[ids].to_numpy()


def _counts(causes: np.ndarray) -> str:
    return ", ".join(f"{c} {int((causes == c).sum())}" for c in EXCLUSION_CAUSES)


def add_arguments(p) -> None:
    p.add_argument("--pairs", required=True)
    p.add_argument("--aligned", required=True, help="aligned folder")
    p.add_argument("--features", required=True, help="full-resolution features (features rule)")
    p.add_argument("--weights", required=True, help="FNet weights")
    p.add_argument("--method", required=True)
    p.add_argument("--resolution", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--degraded", help="degraded folder (omit for full resolution)")
    p.add_argument("--factor", type=int, default=1)
    p.add_argument("--srnet", help="SRNet checkpoint for SR methods")
    p.add_argument("--dataset", default="lfw", help="the verification set the pairs belong to (its rows' name)")


def main(args, cfg) -> None:
    inputs = EvaluateInputs(pairs_csv=args.pairs, aligned_dir=args.aligned, features_npz=args.features,
                            fnet_weights=args.weights, degraded_dir=args.degraded, factor=args.factor,
                            srnet_path=args.srnet)
    evaluate(inputs, method=args.method, resolution=args.resolution, out_dir=args.out_dir,
             options=EvaluateOptions.from_params(cfg, method=args.method, dataset=args.dataset))

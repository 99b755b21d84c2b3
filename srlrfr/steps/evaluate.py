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
from pathlib import Path

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
                   srnet=None, size_hw=None, batch_size: int = 128, device="cpu") -> np.ndarray:
    """Flip-concatenated features of restored probes under protocol ``flip`` (module doc)."""
    # deferred: loads torch, cv2
    from ..methods import is_sr, restore
    from ..models.fnet import extract_features
    if flip not in FLIPS:
        raise ValueError(f"evaluate.flip must be one of {FLIPS}, got {flip!r}")
    if flip == "restored" or not is_sr(method) or probes.shape[1:3] == restored.shape[1:3]:
        return extract_features(fnet, restored, batch_size=batch_size, device=device, progress=False)
    mirrored = restore(method, np.ascontiguousarray(probes[:, :, ::-1]), size_hw or restored.shape[1:3],
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


def evaluate(*, pairs_csv, aligned_dir, features_npz, degraded_dir=None, factor: int = 1, method: str,
             resolution: str, fnet_name: str, fnet_weights, srnet_path=None, out_dir, no_face: str = "center",
             threshold_steps: int = 10001, far_targets=(1e-2, 1e-3), batch_size: int = 128,
             device: str = "auto", examples: int = 6, seed: int = 0, flip: str = "restored",
             dataset: str = "lfw", protocols=("hr_vs_lr",), both_sides: bool = False, identification: bool = False,
             max_rank: int = 20, precision: str = "fp32", srnet_precision: str | None = None) -> dict:
    """Score every pair for one configuration; write scores.csv, metrics.json, features.npz and examples.npz.

    ``both_sides``: restore the pairs' first images too (for the resolution matrix) even without lr_vs_lr.
    ``precision``: the dtype the FNet runs in, ``srnet_precision`` the SRNet's (default: the same;
    evaluate.precision.fnet and .srnet).
    """
    # deferred: loads torch, cv2
    from ..device import inference_dtype, resolve_device
    from ..methods import restore
    from ..metrics.restoration import RestorationMeter
    from ..models.fnet import load_fnet

    out_dir = Path(out_dir)
    dev = resolve_device(device)
    pairs = pd.read_csv(pairs_csv)
    aligned = AlignedSet(aligned_dir)
    z = load_npz(features_npz, ("features", "ids"))
    hr_feats, hr_ids = z["features"], z["ids"].astype(str)
    if not np.array_equal(hr_ids, aligned.ids):
        raise ValueError(f"{features_npz} was computed for other images than {aligned_dir}; rebuild it")

    left = aligned.rows(pairs["left"])
    right_ids = pd.unique(pairs["right"])
    right_rows = aligned.rows(right_ids)
    right_pos = {k: i for i, k in enumerate(right_ids)}
    right = np.array([right_pos[i] for i in pairs["right"]])
    causes = exclusion_causes(aligned, left, right_rows[right], no_face)
    keep = causes == ""
    if not keep.any():
        raise ValueError(f"every pair of {pairs_csv} touches an excluded image ({_counts(causes)}); see "
                         f"{Path(aligned_dir) / 'faces.csv'} and the landmarks' no-face report")
    split = None
    if identification:
        usable = ~aligned.damaged & (aligned.ok if no_face == "exclude" else True)
        split = identification_split(pd.DataFrame({"image_id": aligned.ids, "identity": _identities(
            Path(pairs_csv).parent / "images.csv", aligned.ids)}), usable)
        if split.empty:
            raise ValueError(f"evaluate.identification: no identity has two usable images in {aligned_dir}; "
                             f"turn identification off for this dataset")
    extra_ids = extra_images(pairs, right_ids, both_sides=both_sides or "lr_vs_lr" in protocols,
                             identification=split)
    extra_rows = aligned.rows(extra_ids)
    chosen = example_pairs(len(pairs), examples, seed)
    ex_right = right[chosen]
    shown: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # probe position -> (low-res, restored)

    if degraded_dir is None:  # full resolution: no degradation, nothing restored
        probe_feats = hr_feats[right_rows]
        extra_feats = hr_feats[extra_rows]
        crops = aligned.images.take(right_rows[ex_right])
        shown = {int(p): (c, c) for p, c in zip(ex_right, crops)}
        restoration = None
    else:
        level = open_level(aligned_dir, degraded_dir, factor)
        srnet = None
        if srnet_path is not None:
            # deferred: loads torch
            from ..models.srnet import load_srnet
            srnet = load_srnet(srnet_path, dev, inference_dtype(dev, srnet_precision or precision))
        fnet = load_fnet(fnet_name, fnet_weights, dev, inference_dtype(dev, precision))
        meter = RestorationMeter()
        chunk_rows = batch_size * max(1, CHUNK // batch_size)  # whole batches per chunk: same batches as one pass
        wanted = set(int(p) for p in ex_right)

        def embed(rows: np.ndarray, paper: bool) -> np.ndarray:
            """Restored features of ``rows``; the paper's probes (``paper``) also feed the meter and grid."""
            feats = np.empty((len(rows), hr_feats.shape[1]), np.float32)
            for start in tqdm(range(0, len(rows), chunk_rows), desc=f"{method} {resolution}", unit="chunk"):
                stop = min(start + chunk_rows, len(rows))
                lr = level.take(rows[start:stop])
                restored = restore(method, lr, aligned.size, srnet=srnet, batch_size=batch_size, device=dev)
                feats[start:stop] = probe_features(fnet, method, lr, restored, flip=flip, srnet=srnet,
                                                   size_hw=aligned.size, batch_size=batch_size, device=dev)
                if paper:
                    meter.update(restored, aligned.images.take(rows[start:stop]))
                    for p in wanted.intersection(range(start, stop)):
                        shown[p] = (lr[p - start], restored[p - start])
                pause_point("evaluate:chunk")
            return feats

        probe_feats = embed(right_rows, paper=True)
        extra_feats = embed(extra_rows, paper=False)
        restoration = meter.report()

    scores = cosine_scores(hr_feats[left], probe_feats[right])
    # Every pair keeps its row (so scores line up with the pairs list); 'used'
    # is False for pairs excluded (a damaged image, or no face under align.no_face: exclude).
    table = pairs[["pair", "fold", "label"]].assign(score=scores, used=keep)
    write_csv(out_dir / "scores.csv", table)

    used = table[keep]
    grid = threshold_grid(threshold_steps)
    metrics = verification_report(used["score"].to_numpy(), used["label"].to_numpy(),
                                  used["fold"].to_numpy(), thresholds=grid, far_targets=tuple(far_targets))
    metrics.update(dataset=dataset, method=method, resolution=resolution, fnet=fnet_name, flip=flip,
                   precision={"fnet": precision, "srnet": srnet_precision or precision},
                   n_pairs=int(keep.sum()), n_excluded=int((~keep).sum()),
                   excluded={c: int((causes == c).sum()) for c in EXCLUSION_CAUSES},
                   n_probe_images=int(len(right_ids)))
    if restoration is not None:
        metrics["restoration"] = restoration
    restored = Features(np.concatenate([right_ids, extra_ids]).astype(str), np.vstack([probe_feats, extra_feats]))
    if "lr_vs_lr" in protocols:
        metrics["lr_vs_lr"] = pair_report(pairs[keep], restored, restored, threshold_steps=threshold_steps,
                                          far_targets=far_targets)
    if split is not None:
        gallery = split[split["role"] == "gallery"]
        probes = split[split["role"] == "probe"]
        ranks = probe_ranks(restored.take(probes["image_id"]), probes["identity"].to_numpy(),
                            hr_feats[aligned.rows(gallery["image_id"])], gallery["identity"].to_numpy())
        metrics["identification"] = identification_report(ranks, len(gallery), max_rank)
    write_json(out_dir / "metrics.json", metrics)
    save_npz(out_dir / "features.npz", ids=restored.ids.astype(np.str_), features=restored.features)

    save_npz(out_dir / "examples.npz", pair=pairs["pair"].to_numpy()[chosen],
             restored=np.stack([shown[int(p)][1] for p in ex_right]),
             probe=np.stack([shown[int(p)][0] for p in ex_right]),
             ground_truth=aligned.images.take(right_rows[ex_right]))
    log.info("%s %s %s: acc %.2f%% +- %.2f", fnet_name, method, resolution, metrics["acc_mean"], metrics["acc_std"])
    extra = "".join(f", {p} {metrics[p]['acc_mean']:.2f}%" for p in ("lr_vs_lr",) if p in metrics)
    if "identification" in metrics:
        extra += (f", rank-1 {metrics['identification']['rank1']:.2f}% rank-5 "
                  f"{metrics['identification']['rank5']:.2f}% ({len(split) - len(gallery)} probes)")
    print(f"evaluate {method} {resolution}: {int(keep.sum())} pairs scored, {int((~keep).sum())} excluded "
          f"({_counts(causes)}){extra}")
    return metrics


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
    e = cfg["evaluate"]
    evaluate(pairs_csv=args.pairs, aligned_dir=args.aligned, features_npz=args.features,
             degraded_dir=args.degraded, factor=args.factor, method=args.method, resolution=args.resolution,
             fnet_name=cfg["fnet"], fnet_weights=args.weights, srnet_path=args.srnet, out_dir=args.out_dir,
             no_face=cfg["align"]["no_face"], threshold_steps=e["threshold_steps"],
             far_targets=cfg["report"]["far_targets"], batch_size=e["batch_size"], device=e["device"],
             examples=e["examples"], seed=e["seed"], flip=e["flip"], dataset=args.dataset, protocols=e["protocols"],
             both_sides=e["matrix"]["method"] == args.method and args.dataset == "lfw",
             identification=e["identification"]["enabled"] and args.dataset == "lfw",
             max_rank=e["identification"]["max_rank"], precision=e["precision"]["fnet"],
             srnet_precision=e["precision"]["srnet"])

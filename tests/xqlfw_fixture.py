"""A tiny synthetic XQLFW in the release's exact layout, made from the sample LFW faces (read-only).

``<dest>/lfw_original_imgs_min_qual0.85variant11/<Name>/<Name>_<NNNN>.jpg`` (250x250; every
other pair has one image reduced to 62x62 and enlarged back, JPEG quality 40, as XQLFW's
synthetic degradations), ``xqlfw_pairs.txt`` (LFW's format: one set of ``n`` same and ``n``
different pairs) and ``xqlfw_scores.txt`` (``ID Num Score``; 0.8 clean, 0.3 degraded).
The degraded image is the first of its pair in every odd pair, so ingest must swap those.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import cv2

TOP = "lfw_original_imgs_min_qual0.85variant11"
CLEAN, DEGRADED = 0.8, 0.3


def _number(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def make_xqlfw(dest: Path, shared_data: Path, n: int = 6) -> dict[str, Path]:
    src = shared_data / "lfw-fold1" / "images"
    people = [p for p in sorted(src.iterdir()) if len(list(p.glob("*.jpg"))) >= 2][: 2 * n]
    images = dest / TOP
    scores: dict[tuple[str, int], float] = {}

    def put(path: Path, degrade: bool) -> int:
        img = cv2.imread(str(path))
        if degrade:
            img = cv2.resize(cv2.resize(img, (62, 62), interpolation=cv2.INTER_AREA), (250, 250),
                             interpolation=cv2.INTER_CUBIC)
        out = images / path.parent.name / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), img, [cv2.IMWRITE_JPEG_QUALITY, 40 if degrade else 95])
        scores[(path.parent.name, _number(path))] = DEGRADED if degrade else CLEAN
        return _number(path)

    lines = [f"1\t{n}"]
    for k, person in enumerate(people[:n]):
        a, b = sorted(person.glob("*.jpg"))[:2]
        lines.append(f"{person.name}\t{put(a, k % 2 == 1)}\t{put(b, k % 2 == 0)}")
    others = people[n:]
    firsts = [put(sorted(p.glob("*.jpg"))[0], k % 2 == 1) for k, p in enumerate(others)]
    for k in range(n):
        j = (k + 1) % n
        lines.append(f"{others[k].name}\t{firsts[k]}\t{others[j].name}\t{firsts[j]}")
    (dest / "xqlfw_pairs.txt").write_text("\n".join(lines) + "\n")
    (dest / "xqlfw_scores.txt").write_text(
        "ID Num Score\n" + "".join(f"{name} {num} {s}\n" for (name, num), s in sorted(scores.items())))
    return {"images": images, "pairs": dest / "xqlfw_pairs.txt", "scores": dest / "xqlfw_scores.txt"}


def zip_folder(folder: Path, out: Path) -> Path:
    """``out`` holding ``folder`` under its own name, as the release's zip archives."""
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder.parent).as_posix())
    return out

"""Where the real artefacts live, with the digests that identify their bytes (data only).

Sources of these facts:
- LFW: the LFW project page (http://vis-www.cs.umass.edu/lfw/); md5 sums as
  listed by torchvision's ``datasets.LFWPeople`` / ``LFWPairs``; the figshare
  mirror URLs and sha256 sums as listed by scikit-learn's ``fetch_lfw_*``.
  The two sets of digests were published separately, so each mirror keeps its
  own artefact rather than assuming the bytes are identical.
- CelebA: Google Drive file ids and md5 sums as listed by torchvision's
  ``datasets.CelebA`` (the dataset page links the same Drive folder).
- Authors' weights: repository johnnysclai/SR_LRFR, branch master, folder
  pretrained/; git blob ids as recorded in METHOD.md.  The EDSR checkpoints
  are two-volume 7-Zip archives that unpack to ``<name>.pth``.
- Authors' landmarks: the same repository, folder data/; git blob ids as
  recorded in METHOD.md (LFW.csv: 2,966,174 bytes, 13,233 lines, checked here
  against the repository's own copy).
- CelebA in-the-wild images: img_celeba.7z.001 ... .014 on CelebA's Google
  Drive; the file ids are the ones public CelebA download scripts agree on,
  but no checksum of the parts is published, so srlrfr does not download
  them (``CELEBA_WILD_PARTS`` only names them in the error message).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Artefact:
    name: str
    urls: tuple[str, ...]          # mirrors that serve the same bytes, tried in order
    filename: str                  # local file name
    md5: str | None = None
    sha256: str | None = None
    git_blob: str | None = None    # sha1 of b"blob <size>\0" + content
    google_drive_id: str | None = None


# ------------------------------------------------------------------ LFW
_LFW = "http://vis-www.cs.umass.edu/lfw/"
_FIGSHARE = "https://ndownloader.figshare.com/files/"

LFW_TGZ = Artefact("lfw", (_LFW + "lfw.tgz",), "lfw.tgz",
                   md5="a17d05bd522c52d84eca14327a23d494")
LFW_TGZ_FIGSHARE = Artefact("lfw (figshare mirror)", (_FIGSHARE + "5976018",), "lfw.tgz",
                            sha256="055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0")
LFW_FUNNELED_TGZ = Artefact("lfw-funneled", (_LFW + "lfw-funneled.tgz",), "lfw-funneled.tgz",
                            md5="1b42dfed7d15c9b2dd63d5e5840c86ad")
LFW_FUNNELED_TGZ_FIGSHARE = Artefact(
    "lfw-funneled (figshare mirror)", (_FIGSHARE + "5976015",), "lfw-funneled.tgz",
    sha256="b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a")
LFW_DEEPFUNNELED_TGZ = Artefact("lfw-deepfunneled", (_LFW + "lfw-deepfunneled.tgz",),
                                "lfw-deepfunneled.tgz", md5="68331da3eb755a505a502b5aacb3c201")
LFW_PAIRS = Artefact("lfw pairs.txt", (_LFW + "pairs.txt",), "pairs.txt",
                     md5="9f1ba174e4e1c508ff7cdf10ac338a7d")
LFW_PAIRS_FIGSHARE = Artefact(
    "lfw pairs.txt (figshare mirror)", (_FIGSHARE + "5976006",), "pairs.txt",
    sha256="ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592")

# Candidates per need, official site first; each archive unpacks to a top folder of this name.
LFW_IMAGE_ARCHIVES: dict[str, tuple[Artefact, ...]] = {
    "original": (LFW_TGZ, LFW_TGZ_FIGSHARE),
    "funneled": (LFW_FUNNELED_TGZ, LFW_FUNNELED_TGZ_FIGSHARE),
    "deepfunneled": (LFW_DEEPFUNNELED_TGZ,),
}
LFW_TOP_FOLDERS: dict[str, str] = {
    "original": "lfw", "funneled": "lfw_funneled", "deepfunneled": "lfw-deepfunneled",
}
LFW_PAIRS_CANDIDATES: tuple[Artefact, ...] = (LFW_PAIRS, LFW_PAIRS_FIGSHARE)

# ------------------------------------------------------------------ CelebA (Google Drive)


def _drive(name: str, file_id: str, md5: str) -> Artefact:
    return Artefact(name, (f"https://drive.google.com/uc?id={file_id}",), name, md5=md5,
                    google_drive_id=file_id)


CELEBA_IMG_ALIGN_ZIP = _drive("img_align_celeba.zip", "0B7EVK8r0v71pZjFTYXZWM3FlRnM",
                              "00d2c5bc6d35e252742224ab0c1e8fcb")
CELEBA_IDENTITY = _drive("identity_CelebA.txt", "1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS",
                         "32bd1bd63d3c78cd57e08160ec5ed1e2")
CELEBA_LANDMARKS_ALIGN = _drive("list_landmarks_align_celeba.txt", "0B7EVK8r0v71pd0FJY3Blby1HUTQ",
                                "cc24ecafdb5b50baae59b03474781f8c")
CELEBA_LANDMARKS_WILD = _drive("list_landmarks_celeba.txt", "0B7EVK8r0v71pTzJIdlJWdHczRlU",
                               "063ee6ddb681f96bc9ca28c6febb9d1a")
CELEBA_BBOX = _drive("list_bbox_celeba.txt", "0B7EVK8r0v71pbThiMVRxWXZ4dU0",
                     "00566efa6fedff7a56946cd1c10f1c16")
CELEBA_ATTR = _drive("list_attr_celeba.txt", "0B7EVK8r0v71pblRyaVFSWGxPY0U",
                     "75e246fa4810816ffd6ee81facbd244c")
CELEBA_PARTITION = _drive("list_eval_partition.txt", "0B7EVK8r0v71pY0NSMzRuSXJEVkk",
                          "d32c9cbf5e040fd4025c592c306e6668")
CELEBA_ALIGNED_FOLDER = "img_align_celeba"  # top folder inside img_align_celeba.zip
CELEBA_WILD_FOLDER = "img_celeba"           # top folder inside img_celeba.7z.001 ... .014
CELEBA_WILD_PARTS: tuple[tuple[str, str], ...] = tuple(
    (f"img_celeba.7z.{i:03d}", drive_id) for i, drive_id in enumerate((
        "0B7EVK8r0v71pQy1YUGtHeUM2dUE", "0B7EVK8r0v71peFphOHpxODd5SjQ", "0B7EVK8r0v71pMk5FeXRlOXcxVVU",
        "0B7EVK8r0v71peXc4WldxZGFUbk0", "0B7EVK8r0v71pMktaV1hjZUJhLWM", "0B7EVK8r0v71pbWFfbGRDOVZxOUU",
        "0B7EVK8r0v71pQlZrOENSOUhkQ3c", "0B7EVK8r0v71pLVltX2F6dzVwT0E", "0B7EVK8r0v71pVlg5SmtLa1ZiU0k",
        "0B7EVK8r0v71pa09rcFF4THRmSFU", "0B7EVK8r0v71pNU9BZVBEMF9KN28", "0B7EVK8r0v71pTVd3R2NpQ0FHaGM",
        "0B7EVK8r0v71paXBad2lfSzlzSlk", "0B7EVK8r0v71pcTFwT1VFZzkzZk0"), 1))

# ------------------------------------------------------------------ authors' weights
_REPO_PATHS = ("https://github.com/johnnysclai/SR_LRFR/raw/master/",
               "https://raw.githubusercontent.com/johnnysclai/SR_LRFR/master/")


def _github(filename: str, git_blob: str, folder: str = "pretrained/") -> Artefact:
    return Artefact(filename, tuple(base + folder + filename for base in _REPO_PATHS), filename,
                    git_blob=git_blob)


SFACE_PTH = _github("sface.pth", "0b4104033db5741c4073cfba7777b5daaee49a61")
EDSR_BASELINE_PARTS = (
    _github("edsr_baseline.7z.001", "00d14358e8ecbdc563b4be7873303b74516bd518"),
    _github("edsr_baseline.7z.002", "a497884e20a3e0ab0de323d1f222a9d2bdeb40fe"),
)
EDSR_LAMBDA05_PARTS = (
    _github("edsr_lambda0.5.7z.001", "125743e6b200499932fa165869f416f7d460a736"),
    _github("edsr_lambda0.5.7z.002", "db7339928db88c0650eeb08b804f095de32ed508"),
)
# name -> (files to fetch, the checkpoint file the pipeline loads)
AUTHORS_WEIGHTS: dict[str, tuple[tuple[Artefact, ...], str]] = {
    "sface": ((SFACE_PTH,), "sface.pth"),
    "edsr_baseline": (EDSR_BASELINE_PARTS, "edsr_baseline.pth"),
    "edsr_lambda0.5": (EDSR_LAMBDA05_PARTS, "edsr_lambda0.5.pth"),
}

# ------------------------------------------------------------------ authors' landmarks
LFW_LANDMARKS_AUTHORS = _github("LFW.csv", "989bbeefafca299e2a7ad5d0bc22ff84a7da9fea", "data/")
CELEBA_LANDMARKS_AUTHORS = _github("celeba_clean_landmarks.csv", "3cdfaab9d33624feedf49f6ad787e5856fee61f1",
                                   "data/")
# dataset -> (the file, its layout for srlrfr.face.landmarks_io.read_landmark_file)
AUTHORS_LANDMARKS: dict[str, tuple[Artefact, str]] = {
    "lfw": (LFW_LANDMARKS_AUTHORS, "headerless"),
    "celeba": (CELEBA_LANDMARKS_AUTHORS, "header"),
}

# ------------------------------------------------------------------ XQLFW (Knoche, Hörmann, Rigoll 2021)
# The project page (martlgap.github.io/xqlfw, pages/download.html in github.com/Martlgap/xqlfw,
# branch docs/) links these GitHub release assets, tag 1.0 (sizes as the page states them:
# xqlfw.zip 195.2 MB, xqlfw_aligned_112.zip 57.9 MB, xqlfw_pairs.txt 161 kB, xqlfw_scores.txt
# 328 kB). No checksum is published for any of them, so a download is checked only for
# completeness (Content-Length) and its sha256 is recorded in data/index/xqlfw/summary.json.
# Archive top folders, as third-party loaders read them (not verified against the archives
# here): xqlfw.zip -> lfw_original_imgs_min_qual0.85variant11/<Name>/<Name>_0001.jpg,
# xqlfw_aligned_112.zip -> xqlfw_aligned_112/<Name>/<Name>_0001.jpg (112x112 MTCNN crops).
_XQLFW = "https://github.com/Martlgap/xqlfw/releases/download/1.0/"
XQLFW_ZIP = Artefact("xqlfw.zip", (_XQLFW + "xqlfw.zip",), "xqlfw.zip")
XQLFW_ALIGNED_ZIP = Artefact("xqlfw_aligned_112.zip", (_XQLFW + "xqlfw_aligned_112.zip",), "xqlfw_aligned_112.zip")
XQLFW_PAIRS = Artefact("xqlfw_pairs.txt", (_XQLFW + "xqlfw_pairs.txt",), "xqlfw_pairs.txt")
XQLFW_SCORES = Artefact("xqlfw_scores.txt", (_XQLFW + "xqlfw_scores.txt",), "xqlfw_scores.txt")
# data.xqlfw.variant -> (archive 'download' fetches, the folder it unpacks to)
XQLFW_VARIANTS: dict[str, tuple[Artefact, str]] = {
    "original": (XQLFW_ZIP, "lfw_original_imgs_min_qual0.85variant11"),
    "aligned_112": (XQLFW_ALIGNED_ZIP, "xqlfw_aligned_112"),
}

# ------------------------------------------------------------------ TinyFace (Cheng, Zhu, Gong 2018)
# qmul-tinyface.github.io distributes tinyface.zip (md5 d8f1b97e4fc1857ff6bc7cf49389aab6 as a
# third-party duplicate list records it; not checked here) from Google Drive / Baidu links that
# change; srlrfr reads a local copy only (data.tinyface.source).
TINYFACE_ZIP_MD5 = "d8f1b97e4fc1857ff6bc7cf49389aab6"

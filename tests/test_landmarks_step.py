"""A supplied landmark CSV replaces detection; failures are reported, never dropped."""
import pandas as pd
import pytest

from srlrfr.steps.landmarks import landmarks as landmarks_step

COLS = ["lex", "ley", "rex", "rey", "nx", "ny", "lmx", "lmy", "rmx", "rmy"]


def test_supplied_csv_replaces_detection(tmp_path):
    pd.DataFrame({"image_id": ["a.jpg", "b.jpg"], "path": ["/x/a.jpg", "/x/b.jpg"], "identity": [1, 2]}) \
        .to_csv(tmp_path / "index.csv", index=False)
    given = pd.DataFrame([["b.jpg"] + list(range(10)), ["a.jpg"] + list(range(10, 20)),
                          ["extra.jpg"] + list(range(10))], columns=["image_id"] + COLS)
    given.to_csv(tmp_path / "mine.csv", index=False)
    df = landmarks_step(tmp_path / "index.csv", tmp_path / "lm.csv", tmp_path / "noface.csv",
                        source=str(tmp_path / "mine.csv"))
    assert df["image_id"].tolist() == ["a.jpg", "b.jpg"]  # index order, extra rows ignored
    assert df.loc[0, "lex"] == 10 and (df["status"] == "ok").all()
    assert pd.read_csv(tmp_path / "lm.csv")["image_id"].tolist() == ["a.jpg", "b.jpg"]
    assert len(pd.read_csv(tmp_path / "noface.csv")) == 0


def test_supplied_csv_missing_rows_named(tmp_path):
    pd.DataFrame({"image_id": ["a.jpg", "c.jpg"], "path": ["/x/a.jpg", "/x/c.jpg"], "identity": [1, 2]}) \
        .to_csv(tmp_path / "index.csv", index=False)
    pd.DataFrame([["a.jpg"] + list(range(10))], columns=["image_id"] + COLS).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ValueError, match=r"no row for 1 indexed image.*c\.jpg"):
        landmarks_step(tmp_path / "index.csv", tmp_path / "lm.csv", tmp_path / "r.csv", source=str(tmp_path / "m.csv"))
    assert not (tmp_path / "lm.csv").exists()

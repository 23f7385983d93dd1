import csv

import pytest

from bastion.models.bots.adapters import (
    account_from_user_row,
    data_root,
    load_cresci,
    load_gilani,
    load_kaggle,
    parse_time_ms,
)

ROOT = data_root()
pytestmark = pytest.mark.skipif(not (ROOT / "cresci_rtbust_2019").is_dir(), reason="shared data not present")


def _rows(path, encoding="utf-8", **kw):
    with open(path, newline="", encoding=encoding) as fh:
        return sum(1 for _ in csv.DictReader(fh, **kw))


def test_cresci_reads_every_row():
    ds = load_cresci()
    assert ds.n_rows_read == len(ds) == _rows(ROOT / "cresci_rtbust_2019" / "users_with_labels.csv") == 693
    assert int(ds.y.sum()) == 353
    assert all(a.created_ms and a.handle for a in ds.accounts)
    assert (ds.now_ms > 0).all()


def test_kaggle_reads_every_row():
    base = ROOT / "kaggle_twitter_bots"
    n = _rows(base / "bots_data.csv", "latin-1") + _rows(base / "nonbots_data.csv", "latin-1")
    ds = load_kaggle(drop_conflicts=False)
    assert ds.n_rows_read == len(ds) == n == 2232
    assert all(a.created_ms for a in ds.accounts)  # both Twitter and Excel date forms parse
    assert len(load_kaggle()) < n


def test_gilani_reads_every_row():
    base = ROOT / "gilani2017_bot_features"
    n = sum(_rows(p, skipinitialspace=True) for p in base.glob("*/*.csv"))
    ds = load_gilani(drop_conflicts=False)
    assert ds.n_rows_read == len(ds) == n == 3431
    assert ds.extras is not None and ds.extras.shape == (n, len(ds.extra_names))
    acc = ds.accounts[0]
    assert acc.activity.n_events == acc.activity.n_posts + acc.activity.n_reposts + acc.activity.n_likes \
        + acc.activity.n_replies


def test_user_row_mapping_with_missing_columns():
    acc = account_from_user_row({"id": "7", "screen_name": "bob99", "followers_count": "12",
                                 "default_profile": "TRUE", "created_at": "Sat Oct 17 22:35:31 +0000 2015"})
    assert (acc.id, acc.handle, acc.followers, acc.default_profile) == ("7", "bob99", 12, True)
    assert acc.default_profile_image is None and acc.created_ms == parse_time_ms("2015-10-17T22:35:31+00:00")
    assert parse_time_ms("13/03/2017 22:21") == parse_time_ms("2017-03-13T22:21:00+00:00")
    assert parse_time_ms("7/13/2009 0:38") == parse_time_ms("2009-07-13T00:38:00+00:00")

import math

from bastion.features.account import (
    ACTIVITY_SCHEMA,
    NEIGHBOUR_SCHEMA,
    PROFILE_SCHEMA,
    activity_features,
    neighbour_features,
    profile_features,
    string_entropy,
    vector,
)
from bastion.state.model import Account, ActivityStats

DAY = 86_400_000


def test_handle_digits_and_entropy():
    f = profile_features(Account(id="1", handle="maria1987654321"), now_ms=0)
    assert f["handle_digits"] == 10
    assert f["handle_trailing_digits"] == 10
    assert math.isclose(f["handle_digit_ratio"], 10 / 15)
    assert f["handle_entropy"] == string_entropy("maria1987654321") > 3
    plain = profile_features(Account(id="2", handle="aaaa"), now_ms=0)
    assert plain["handle_entropy"] == 0 and plain["handle_digits"] == 0


def test_default_profile_flags_and_missing():
    f = profile_features(Account(id="1", default_profile=True, default_profile_image=False), now_ms=0)
    assert f["default_profile"] == 1.0 and f["default_profile_image"] == 0.0
    g = profile_features(Account(id="1"), now_ms=0)
    assert math.isnan(g["default_profile"]) and math.isnan(g["age_days"]) and math.isnan(g["posts_per_day"])


def test_name_handle_similarity_bio_and_rates():
    acc = Account(id="1", handle="john_smith", display_name="John Smith", bio="see https://x.io #a @b",
                  created_ms=DAY, followers=99, following=9, posts=100, likes_given=50, listed=2)
    f = profile_features(acc, now_ms=11 * DAY)
    assert f["name_handle_sim"] == 1.0
    assert f["bio_has_url"] == 1.0 and f["bio_hashtags"] == 1 and f["bio_mentions"] == 1
    assert math.isclose(f["age_days"], 10)
    assert math.isclose(f["ff_ratio_log"], math.log(100 / 10))
    assert math.isclose(f["posts_per_day"], math.log1p(10))
    bot = profile_features(Account(id="2", handle="news_bot", display_name="x"), now_ms=0)
    assert bot["handle_has_bot"] == 1.0


def test_schemas_are_produced_exactly():
    acc = Account(id="1", handle="a1")
    assert list(profile_features(acc, 0)) == list(PROFILE_SCHEMA)
    assert list(activity_features(acc, 0)) == list(ACTIVITY_SCHEMA)
    assert list(neighbour_features({})) == list(NEIGHBOUR_SCHEMA)
    assert len(vector({"handle_len": 2.0}, PROFILE_SCHEMA)) == len(PROFILE_SCHEMA)


def test_activity_features_mix_and_entropy():
    st = ActivityStats(n_events=10, n_posts=4, n_replies=2, n_reposts=3, n_likes=1, n_urls=6, n_texts=6,
                       n_dup_texts=3, hours=[5] + [0] * 22 + [5], weekdays=[10] + [0] * 6,
                       first_ts=0, last_ts=DAY, clients={"api": 10})
    f = activity_features(Account(id="1", activity=st), now_ms=DAY)
    assert f["act_frac_posts"] == 0.4 and f["act_frac_reposts"] == 0.3
    assert f["act_url_rate"] == 1.0 and f["act_dup_ratio"] == 0.5
    assert math.isclose(f["act_hour_entropy"], math.log(2) / math.log(24))
    assert f["act_weekday_entropy"] == 0.0
    assert math.isclose(f["act_rate_per_day"], math.log1p(10))
    assert f["act_top_client_share"] == 1.0
    empty = activity_features(Account(id="2"), now_ms=0)
    assert math.isnan(empty["act_frac_posts"]) and math.isnan(empty["act_burstiness"])


def test_neighbour_aggregation():
    f = neighbour_features({"follow": [0.9, 0.2, 0.7], "reply": [0.1]})
    assert math.isclose(f["nb_follow_mean"], 0.6) and f["nb_follow_max"] == 0.9
    assert math.isclose(f["nb_follow_frac_bot"], 2 / 3) and f["nb_reply_frac_bot"] == 0.0
    assert math.isnan(f["nb_shared_id_mean"]) and f["nb_shared_id_n"] == 0.0

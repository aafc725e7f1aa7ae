"""Release configuration: defaults, the shipped example, and one clear error per bad key."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from excessmort.exceptions import InputError
from excessmort.regions import REGIONS
from excessmort.release.calendar import slot_for_month
from excessmort.release.config import Config, RetryPolicy, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "release.example.toml"


def test_defaults_are_fictional_and_complete():
    cfg = load_config(None)
    assert isinstance(cfg, Config)
    assert set(cfg.regional_teams) == set(REGIONS)
    emails = [
        cfg.lead_statistician.email,
        cfg.head_of_profession.email,
        *(c.email for c in cfg.regional_teams.values()),
    ]
    assert all(e.endswith("@example.org") for e in emails)
    assert "fictional" in cfg.lead_statistician.name and "fictional" in cfg.producer
    assert cfg.recipients()[0] == cfg.head_of_profession.email and len(cfg.recipients()) == 10
    assert cfg.smtp.starttls is False
    assert cfg.release_rule.describe() == "3rd Thursday of each month at 14:00 Europe/London"


def test_example_file_loads_and_resolves_paths():
    cfg = load_config(EXAMPLE)
    default = load_config(None)
    assert cfg.regional_teams == default.regional_teams
    assert cfg.lead_statistician == default.lead_statistician
    assert cfg.release_rule == default.release_rule
    assert [t.name for t in cfg.targets] == ["live", "mirror"]
    assert cfg.targets[0].path == EXAMPLE.parent / "../live"
    assert cfg.target == "live" and cfg.fallbacks == ("mirror",)
    assert cfg.retry == RetryPolicy()
    assert cfg.deadline_minutes == 15
    assert cfg.target_spec("mirror").path == EXAMPLE.parent / "../live-mirror"
    with pytest.raises(InputError, match="known: live, mirror"):
        cfg.target_spec("nowhere")


def test_custom_rule_changes_slots(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(
        '[release]\nweekday = "friday"\nnth = -1\ntime = "09:30"\ntimezone = "Europe/London"\n'
    )
    cfg = load_config(path)
    assert cfg.release_rule.weekday == 4 and cfg.release_rule.nth == -1
    assert cfg.release_rule.at == time(9, 30)
    # last Friday of July 2027 is the 30th, 09:30 BST = 08:30 UTC
    slot = slot_for_month("2027-07", cfg.release_rule)
    assert slot.astimezone(UTC) == datetime(2027, 7, 30, 8, 30, tzinfo=UTC)


def test_regional_team_by_name_and_targets(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(
        '[regional_teams]\nLondon = { name = "L", email = "l@example.org" }\n'
        '[[targets]]\nname = "a"\npath = "sub/a"\nbase_url = "http://127.0.0.1:8000/current/"\n'
        '[[targets]]\nname = "b"\npath = "/abs/b"\n'
        '[publish]\ntarget = "b"\nfallbacks = ["a"]\n[publish.retry]\ninitial_seconds = 0.5\n'
        '[smtp]\nhost = "127.0.0.1"\nport = 2525\nfrom = "x@example.org"\n'
    )
    cfg = load_config(path)
    assert dict(cfg.regional_teams) == {"E12000007": cfg.regional_teams["E12000007"]}
    assert cfg.targets[0].path == tmp_path / "sub/a"
    assert cfg.targets[0].base_url == "http://127.0.0.1:8000/current/"
    assert cfg.targets[1].path == Path("/abs/b")
    assert cfg.target == "b" and cfg.fallbacks == ("a",)
    assert cfg.retry.initial_seconds == 0.5 and cfg.retry.factor == 2.0
    assert (cfg.smtp.host, cfg.smtp.port, cfg.smtp.sender) == ("127.0.0.1", 2525, "x@example.org")


@pytest.mark.parametrize(
    ("toml", "column", "value"),
    [
        ('prodcer = "x"\n', "prodcer", "x"),
        ('producer = ""\n', "producer", ""),
        ("[output]\ntitle = 3\n", "output.title", 3),
        ("[release]\nnth = 5\n", "release.nth", 5),
        ('[release]\nweekday = "Funday"\n', "release.weekday", "Funday"),
        ("[release]\nweekday = 7\n", "release.weekday", 7),
        ('[release]\ntime = "25:00"\n', "release.time", "25:00"),
        ('[release]\ntimezone = "Mars/Olympus"\n', "release.timezone", "Mars/Olympus"),
        ('[lead_statistician]\nemail = "nope"\n', "lead_statistician.email", "nope"),
        ('[head_of_profession]\nmobile = "1"\n', "head_of_profession.mobile", "1"),
        (
            '[regional_teams]\nScotland = { name = "S", email = "s@example.org" }\n',
            "regional_teams.Scotland",
            "Scotland",
        ),
        ('[[targets]]\nname = "a"\nkind = "ftp"\npath = "x"\n', "targets[0].kind", "ftp"),
        ('[[targets]]\nname = "a"\n', "targets[0].path", ""),
        (
            '[[targets]]\nname = "a"\npath = "x"\n[[targets]]\nname = "a"\npath = "y"\n',
            "targets[1].name",
            "a",
        ),
        (
            '[[targets]]\nname = "a"\npath = "x"\nbase_url = "ftp://h/"\n',
            "targets[0].base_url",
            "ftp://h/",
        ),
        ('[publish]\ntarget = "nowhere"\n', "publish.target", "nowhere"),
        ('[publish]\nfallbacks = ["live"]\n', "publish.fallbacks[0]", "live"),
        ("[publish]\ndeadline_minutes = 0\n", "publish.deadline_minutes", 0),
        ("[publish.retry]\njitter = 1.5\n", "publish.retry.jitter", 1.5),
        ('[publish.retry]\nfactor = "2"\n', "publish.retry.factor", "2"),
        ("[smtp]\nport = 0\n", "smtp.port", 0),
        ('[smtp]\nstarttls = "yes"\n', "smtp.starttls", "yes"),
        ("[plausibility]\ncounts_max_z = 0\n", "plausibility.counts_max_z", 0),
        ('[plausibility]\ndispersion_max = "100"\n', "plausibility.dispersion_max", "100"),
        ("[plausibility]\nfeed_zero_weeks = 2.5\n", "plausibility.feed_zero_weeks", 2.5),
        ("[plausibility]\nexpected_max_ratio = 0.4\n", "plausibility.expected_min_ratio", 0.5),
        ("[plausibility]\npscore_min = -150\n", "plausibility.pscore_min", -150),
        ("[plausibility]\ncount_max_z = 3\n", "plausibility.count_max_z", 3),
    ],
)
def test_bad_values_name_key_and_value(tmp_path, toml, column, value):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(InputError) as info:
        load_config(path)
    assert info.value.column == column
    assert info.value.value == value
    assert repr(column) in str(info.value) and repr(value) in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="does not exist") as info:
        load_config(tmp_path / "missing.toml")
    assert info.value.column == "config"
    bad = tmp_path / "bad.toml"
    bad.write_text("producer = \n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(bad)


def test_plausibility_thresholds_documented_with_their_defaults():
    """The example file lists every [plausibility] key with the value the code defaults to."""
    import tomllib
    from dataclasses import asdict

    from excessmort.release.config import Plausibility

    with EXAMPLE.open("rb") as fh:
        documented = tomllib.load(fh)["plausibility"]
    assert documented == asdict(Plausibility())
    assert load_config(EXAMPLE).plausibility == Plausibility()


def test_plausibility_thresholds_are_read(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[plausibility]\ncounts_max_ratio = 8\nfeed_zero_weeks = 5\n")
    cfg = load_config(path)
    assert cfg.plausibility.counts_max_ratio == 8.0
    assert cfg.plausibility.feed_zero_weeks == 5 and isinstance(
        cfg.plausibility.feed_zero_weeks, int
    )

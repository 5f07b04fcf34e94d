-- Creates nfl.plays: play-by-play, range-partitioned by season (2023, 2024, 2025 and a DEFAULT
-- partition for anything else until its season's partition is added).

CREATE TABLE nfl.plays (
    game_id                   text NOT NULL,
    play_id                   integer NOT NULL,
    season                    smallint NOT NULL,
    week                      smallint,
    posteam                   text,
    defteam                   text,
    quarter                   smallint,
    quarter_seconds_remaining smallint,
    down                      smallint,
    ydstogo                   smallint,
    yardline_100              smallint,
    play_type                 text,
    yards_gained              smallint,
    epa                       double precision,
    wpa                       double precision,
    description               text,
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT plays_pkey PRIMARY KEY (game_id, play_id, season),
    CONSTRAINT plays_game_fkey FOREIGN KEY (game_id, season) REFERENCES nfl.games (game_id, season),
    CONSTRAINT plays_play_id_positive CHECK (play_id > 0),
    CONSTRAINT plays_week_range CHECK (week BETWEEN 1 AND 22),
    CONSTRAINT plays_team_format CHECK (posteam ~ '^[A-Z]{2,3}$' AND defteam ~ '^[A-Z]{2,3}$'),
    CONSTRAINT plays_teams_differ CHECK (posteam <> defteam),
    CONSTRAINT plays_quarter_range CHECK (quarter >= 1),
    CONSTRAINT plays_quarter_seconds_range CHECK (quarter_seconds_remaining BETWEEN 0 AND 900),
    CONSTRAINT plays_down_range CHECK (down BETWEEN 1 AND 4),
    CONSTRAINT plays_ydstogo_range CHECK (ydstogo BETWEEN 0 AND 100),
    CONSTRAINT plays_yardline_100_range CHECK (yardline_100 BETWEEN 0 AND 100),
    CONSTRAINT plays_play_type_values CHECK (play_type IN (
        'pass', 'run', 'punt', 'field_goal', 'kickoff', 'extra_point', 'qb_kneel', 'qb_spike', 'no_play')),
    CONSTRAINT plays_yards_gained_range CHECK (yards_gained BETWEEN -120 AND 120)
) PARTITION BY RANGE (season);

CREATE INDEX plays_game_id_idx ON nfl.plays (game_id);

CREATE TABLE nfl.plays_2023 PARTITION OF nfl.plays FOR VALUES FROM (2023) TO (2024);

CREATE TABLE nfl.plays_2024 PARTITION OF nfl.plays FOR VALUES FROM (2024) TO (2025);

CREATE TABLE nfl.plays_2025 PARTITION OF nfl.plays FOR VALUES FROM (2025) TO (2026);

CREATE TABLE nfl.plays_default PARTITION OF nfl.plays DEFAULT;

COMMENT ON TABLE nfl.plays IS 'Play-by-play (nflverse pbp subset), one row per play, partitioned by season. The key includes season because it is the partition key; (game_id, season) must match nfl.games.';
COMMENT ON TABLE nfl.plays_2023 IS 'Plays of the 2023 season.';
COMMENT ON TABLE nfl.plays_2024 IS 'Plays of the 2024 season.';
COMMENT ON TABLE nfl.plays_2025 IS 'Plays of the 2025 season.';
COMMENT ON TABLE nfl.plays_default IS 'Plays of seasons without their own partition yet; move them out before adding that season''s partition.';
COMMENT ON COLUMN nfl.plays.play_id IS 'nflverse play_id, unique within a game.';
COMMENT ON COLUMN nfl.plays.quarter IS 'nflverse qtr: 1-4, 5 and above for overtime periods.';
COMMENT ON COLUMN nfl.plays.yardline_100 IS 'Yards from the opponent''s end zone.';
COMMENT ON COLUMN nfl.plays.play_type IS 'nflverse play_type; NULL for non-plays such as timeouts and quarter ends.';
COMMENT ON COLUMN nfl.plays.description IS 'nflverse desc: the play-by-play text.';

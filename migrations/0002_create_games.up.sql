-- Creates nfl.games: one row per game with every column of the nflverse schedule file
-- (data/games.csv), in the file's column order, with constraints the published data satisfies.

CREATE TABLE nfl.games (
    game_id          text PRIMARY KEY,
    season           smallint NOT NULL,
    game_type        text NOT NULL,
    week             smallint NOT NULL,
    gameday          date NOT NULL,
    weekday          text NOT NULL,
    gametime         time(0) without time zone NOT NULL,
    away_team        text NOT NULL REFERENCES nfl.teams (team_abbr),
    away_score       smallint,
    home_team        text NOT NULL REFERENCES nfl.teams (team_abbr),
    home_score       smallint,
    location         text NOT NULL,
    result           smallint,
    total            smallint,
    overtime         boolean,
    old_game_id      text NOT NULL,
    gsis             integer,
    nfl_detail_id    text,
    pfr              text NOT NULL,
    pff              integer,
    espn             integer,
    ftn              integer,
    away_rest        smallint NOT NULL,
    home_rest        smallint NOT NULL,
    away_moneyline   integer,
    home_moneyline   integer,
    spread_line      numeric(4,1),
    away_spread_odds integer,
    home_spread_odds integer,
    total_line       numeric(4,1),
    under_odds       integer,
    over_odds        integer,
    div_game         boolean NOT NULL,
    roof             text,
    surface          text,
    temp             smallint,
    wind             smallint,
    away_qb_id       text,
    home_qb_id       text,
    away_qb_name     text,
    home_qb_name     text,
    away_coach       text NOT NULL,
    home_coach       text NOT NULL,
    referee          text,
    stadium_id       text NOT NULL REFERENCES nfl.stadiums (stadium_id),
    stadium          text NOT NULL,

    -- identity of the game
    CONSTRAINT games_game_id_format CHECK (game_id ~ '^[0-9]{4}_[0-9]{2}_[A-Z]{2,3}_[A-Z]{2,3}$'),
    CONSTRAINT games_game_id_matches_columns CHECK (
        game_id = season::text || '_' || lpad(week::text, 2, '0') || '_' || away_team || '_' || home_team),
    CONSTRAINT games_game_id_season_key UNIQUE (game_id, season),
    CONSTRAINT games_season_range CHECK (season BETWEEN 1999 AND 2100),
    CONSTRAINT games_game_type_values CHECK (game_type IN ('REG', 'WC', 'DIV', 'CON', 'SB')),
    CONSTRAINT games_week_matches_game_type CHECK (
        (game_type = 'REG' AND week BETWEEN 1 AND 18) OR (game_type <> 'REG' AND week BETWEEN 18 AND 22)),
    CONSTRAINT games_gameday_in_season CHECK (
        gameday >= make_date(season, 8, 1) AND gameday < make_date(season + 1, 3, 1)),
    CONSTRAINT games_weekday_matches_gameday CHECK (
        weekday = (ARRAY['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'])
                  [extract(dow FROM gameday)::int + 1]),
    CONSTRAINT games_teams_differ CHECK (away_team <> home_team),
    CONSTRAINT games_location_values CHECK (location IN ('Home', 'Neutral')),

    -- outcome: all present (played) or all absent (not played yet)
    CONSTRAINT games_scores_non_negative CHECK (away_score >= 0 AND home_score >= 0),
    CONSTRAINT games_outcome_all_or_none CHECK (num_nulls(away_score, home_score, result, total, overtime) IN (0, 5)),
    CONSTRAINT games_result_is_margin CHECK (result = home_score - away_score),
    CONSTRAINT games_total_is_sum CHECK (total = home_score + away_score),

    -- external ids
    CONSTRAINT games_old_game_id_format CHECK (old_game_id ~ '^[0-9]{10}$'),
    CONSTRAINT games_pfr_format CHECK (pfr ~ '^[0-9]{9}[a-z]{3}$'),
    CONSTRAINT games_nfl_detail_id_not_blank CHECK (nfl_detail_id <> ''),
    CONSTRAINT games_external_ids_positive CHECK (gsis > 0 AND pff > 0 AND espn > 0 AND ftn > 0),

    -- rest days and betting lines (American odds are <= -100 or >= +100)
    CONSTRAINT games_rest_non_negative CHECK (away_rest >= 0 AND home_rest >= 0),
    CONSTRAINT games_moneylines_paired CHECK ((away_moneyline IS NULL) = (home_moneyline IS NULL)),
    CONSTRAINT games_spread_odds_paired CHECK ((away_spread_odds IS NULL) = (home_spread_odds IS NULL)),
    CONSTRAINT games_total_odds_paired CHECK ((under_odds IS NULL) = (over_odds IS NULL)),
    CONSTRAINT games_american_odds CHECK (
        abs(away_moneyline) >= 100 AND abs(home_moneyline) >= 100
        AND abs(away_spread_odds) >= 100 AND abs(home_spread_odds) >= 100
        AND abs(under_odds) >= 100 AND abs(over_odds) >= 100),
    CONSTRAINT games_spread_line_half_points CHECK (spread_line * 2 = trunc(spread_line * 2)),
    CONSTRAINT games_total_line_half_points CHECK (total_line > 0 AND total_line * 2 = trunc(total_line * 2)),

    -- venue and conditions (temp in degrees Fahrenheit, wind in mph)
    CONSTRAINT games_roof_values CHECK (roof IN ('outdoors', 'dome', 'closed', 'open')),
    CONSTRAINT games_surface_format CHECK (surface ~ '^[a-z_]+$'),
    CONSTRAINT games_temp_fahrenheit_range CHECK (temp BETWEEN -60 AND 130),
    CONSTRAINT games_wind_mph_range CHECK (wind BETWEEN 0 AND 150),

    -- people
    CONSTRAINT games_qb_id_format CHECK (away_qb_id ~ '^00-[0-9]{7}$' AND home_qb_id ~ '^00-[0-9]{7}$'),
    CONSTRAINT games_away_qb_paired CHECK ((away_qb_id IS NULL) = (away_qb_name IS NULL)),
    CONSTRAINT games_home_qb_paired CHECK ((home_qb_id IS NULL) = (home_qb_name IS NULL)),
    CONSTRAINT games_names_not_blank CHECK (
        away_qb_name <> '' AND home_qb_name <> '' AND away_coach <> '' AND home_coach <> ''
        AND referee <> '' AND stadium <> '')
);

CREATE INDEX games_season_week_idx ON nfl.games (season, week);

CREATE INDEX games_home_team_season_idx ON nfl.games (home_team, season);

CREATE INDEX games_away_team_season_idx ON nfl.games (away_team, season);

COMMENT ON TABLE nfl.games IS 'NFL games from the nflverse schedule (nflverse/nfldata data/games.csv), one row per game, columns in the file''s order. Unplayed games have NULL scores, result, total and overtime.';
COMMENT ON COLUMN nfl.games.game_id IS 'nflverse game id: season_week_away_home, e.g. 2023_01_DET_KC.';
COMMENT ON COLUMN nfl.games.game_type IS 'REG regular season; WC, DIV, CON, SB playoff rounds.';
COMMENT ON COLUMN nfl.games.gametime IS 'Scheduled kickoff, US Eastern local time, as published (HH:MM).';
COMMENT ON COLUMN nfl.games.location IS 'Home, or Neutral for neutral-site games (international games, Super Bowl).';
COMMENT ON COLUMN nfl.games.result IS 'home_score - away_score; NULL until the game is played.';
COMMENT ON COLUMN nfl.games.total IS 'home_score + away_score; NULL until the game is played.';
COMMENT ON COLUMN nfl.games.old_game_id IS 'Legacy NFL id YYYYMMDDNN. Not unique in the source: the source repeats some ids (e.g. 2025 week 17) and dates 2025 week 18 games 2025-01-04.';
COMMENT ON COLUMN nfl.games.pfr IS 'Pro Football Reference game id. Not unique in the source (202501040pit appears twice).';
COMMENT ON COLUMN nfl.games.spread_line IS 'Closing spread in points; positive means the home team was favored.';
COMMENT ON COLUMN nfl.games.total_line IS 'Closing over/under total points.';
COMMENT ON COLUMN nfl.games.surface IS 'Playing surface token (grass, fieldturf, ...); NULL when unknown (the source writes a quoted empty string).';
COMMENT ON COLUMN nfl.games.temp IS 'Kickoff temperature in degrees Fahrenheit; usually only for outdoor games.';
COMMENT ON COLUMN nfl.games.wind IS 'Kickoff wind speed in mph; usually only for outdoor games.';
COMMENT ON COLUMN nfl.games.stadium IS 'Stadium name as published for this game.';

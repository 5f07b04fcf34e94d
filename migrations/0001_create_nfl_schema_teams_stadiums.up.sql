-- Creates the nfl schema for the platform's data and the two reference tables that games point at:
-- teams (by nflverse abbreviation) and stadiums (by nflverse stadium id).

CREATE SCHEMA nfl;

COMMENT ON SCHEMA nfl IS 'NFL analytics platform data (schedules, odds, weather, play-by-play, ETL and task bookkeeping).';

CREATE TABLE nfl.teams (
    team_abbr text PRIMARY KEY,
    team_name text,
    CONSTRAINT teams_team_abbr_format CHECK (team_abbr ~ '^[A-Z]{2,3}$'),
    CONSTRAINT teams_team_name_not_blank CHECK (team_name <> '')
);

COMMENT ON TABLE nfl.teams IS 'NFL teams keyed by the nflverse abbreviation (e.g. KC, LA, LAC); the name is optional.';
COMMENT ON COLUMN nfl.teams.team_abbr IS 'nflverse team abbreviation, 2-3 upper-case letters, as used in game_id and the schedule columns.';

CREATE TABLE nfl.stadiums (
    stadium_id text PRIMARY KEY,
    name text NOT NULL,
    CONSTRAINT stadiums_stadium_id_format CHECK (stadium_id ~ '^[A-Z]{3}[0-9]{2}$'),
    CONSTRAINT stadiums_name_not_blank CHECK (name <> '')
);

COMMENT ON TABLE nfl.stadiums IS 'Stadiums keyed by the nflverse/PFR stadium id (e.g. KAN00). Roof and surface are per game in nfl.games: they change from game to game at the same stadium.';
COMMENT ON COLUMN nfl.stadiums.name IS 'Stadium name as published in the nflverse schedule.';
